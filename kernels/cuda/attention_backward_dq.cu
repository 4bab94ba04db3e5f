// Causal grouped-query attention, backward, flash style; the spec is kernels/reference/attention.py.
// P is recomputed tile by tile from the forward's log-sum-exp: P_ij = exp(q_i . k_j * scale - lse_i).
// With delta_i = sum_d dO_id O_id (the softmax backward's row term, attention_delta):
//   dS_ij = P_ij (dO_i . v_j - delta_i),  dq_i = scale sum_j dS_ij k_j,
//   dk_j = scale sum_i dS_ij q_i,  dv_j = sum_i P_ij dO_i   (i over every query head of j's group).
// Two kernels, no atomics (deterministic): attention_backward_dq (this file) owns query rows and walks
// keys; attention_backward_dkdv (attention_backward_dkdv.cu) owns keys and walks the queries that see them.
// Layouts as in attention_forward.cu; g (dO) and out are contiguous (B, T, H, D), lse and delta
// (B, H, T), dq (B, T, H, D), dk and dv (B, S, KV, D) contiguous. Compile-time: HEAD_DIM, BLOCK_Q,
// BLOCK_K (kernels/cuda/attention.py), V_DIM = Dv (MLA: v, out, g and dv have Dv columns, not D).
#ifndef V_DIM
#define V_DIM HEAD_DIM  // the value head size; differs from HEAD_DIM (queries' and keys') for MLA
#endif

// delta[b, head, i] = sum_d g[b, i, head, d] * out[b, i, head, d]. Grid (ceil(B*T*H / threads)).
extern "C" __global__ void attention_delta(const scalar_t* __restrict__ g, const scalar_t* __restrict__ out,
                                           acc_t* __restrict__ delta, int n_rows, int t, int h) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;  // row r = (b * T + i) * H + head
    if (r >= n_rows) return;
    acc_t s = 0;
    for (int d = 0; d < V_DIM; ++d) s += widen(g[(long long)r * V_DIM + d]) * widen(out[(long long)r * V_DIM + d]);
    const int head = r % h, i = (r / h) % t, b = r / (h * t);
    delta[((long long)b * h + head) * t + i] = s;
}

// dq for BLOCK_Q query rows of one head, one per thread. Grid (ceil(T / BLOCK_Q), H, B), block (BLOCK_Q).
extern "C" __global__ void attention_backward_dq(const scalar_t* __restrict__ g, const scalar_t* __restrict__ q_view,
                                                 long long qb, long long qt, long long qh,
                                                 const scalar_t* __restrict__ k_view,
                                                 const scalar_t* __restrict__ v_view, long long kb, long long kt,
                                                 long long kh, long long vb, long long vt, long long vh,
                                                 const acc_t* __restrict__ lse, const acc_t* __restrict__ delta,
                                                 scalar_t* __restrict__ dq, int t, int s, int h, int group,
                                                 int offset, acc_t scale) {
    __shared__ acc_t k_tile[BLOCK_K][HEAD_DIM];
    __shared__ acc_t v_tile[BLOCK_K][V_DIM];
    __shared__ acc_t g_cols[V_DIM][BLOCK_Q];  // column threadIdx.x: this thread's row of dO
    const int tid = threadIdx.x, head = blockIdx.y, b = blockIdx.z, kv_head = head / group;
    const int i = blockIdx.x * BLOCK_Q + tid;
    const bool valid = i < t;
    const long long row = ((long long)b * t + (valid ? i : 0)) * h + head;
    acc_t qr[HEAD_DIM], acc[HEAD_DIM];
    const scalar_t* qp = q_view + b * qb + (long long)(valid ? i : 0) * qt + head * qh;
#pragma unroll
    for (int d = 0; d < HEAD_DIM; ++d) {
        qr[d] = valid ? widen(qp[d]) * scale : (acc_t)0;
        acc[d] = 0;
    }
#pragma unroll
    for (int d = 0; d < V_DIM; ++d) g_cols[d][tid] = valid ? widen(g[row * V_DIM + d]) : (acc_t)0;
    const long long stat = ((long long)b * h + head) * t + (valid ? i : 0);
    const acc_t row_lse = valid ? lse[stat] : (acc_t)0, row_delta = valid ? delta[stat] : (acc_t)0;
    const int visible = min(s, offset + i + 1);
    const int keys_end = min(s, offset + min(t, (int)(blockIdx.x + 1) * BLOCK_Q));
    for (int k0 = 0; k0 < keys_end; k0 += BLOCK_K) {
        __syncthreads();
        for (int e = tid; e < BLOCK_K * HEAD_DIM; e += BLOCK_Q) {
            const int jj = e / HEAD_DIM, d = e % HEAD_DIM, j = k0 + jj;
            k_tile[jj][d] = j < keys_end ? widen(k_view[b * kb + (long long)j * kt + kv_head * kh + d]) : (acc_t)0;
        }
        for (int e = tid; e < BLOCK_K * V_DIM; e += BLOCK_Q) {
            const int jj = e / V_DIM, d = e % V_DIM, j = k0 + jj;
            v_tile[jj][d] = j < keys_end ? widen(v_view[b * vb + (long long)j * vt + kv_head * vh + d]) : (acc_t)0;
        }
        __syncthreads();
        const int n = valid ? min(BLOCK_K, visible - k0) : 0;
        for (int jj = 0; jj < n; ++jj) {
            acc_t sc = 0, dp = 0;
#pragma unroll
            for (int d = 0; d < HEAD_DIM; ++d) sc += qr[d] * k_tile[jj][d];
#pragma unroll
            for (int d = 0; d < V_DIM; ++d) dp += g_cols[d][tid] * v_tile[jj][d];
            const acc_t ds = exp(sc - row_lse) * (dp - row_delta);
#pragma unroll
            for (int d = 0; d < HEAD_DIM; ++d) acc[d] += ds * k_tile[jj][d];
        }
    }
    if (!valid) return;
#pragma unroll
    for (int d = 0; d < HEAD_DIM; ++d) store(&dq[row * HEAD_DIM + d], acc[d] * scale);
}
