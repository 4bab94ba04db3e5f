// Causal grouped-query attention, backward: dk and dv. The math and the layouts are in the comment
// at the top of attention_backward_dq.cu; this kernel owns BLOCK_K keys (one per thread) and walks
// the queries, of every head of the key's group, that see them. Compile-time: HEAD_DIM, BLOCK_Q
// (queries per tile), BLOCK_K (kernels/cuda/attention.py), V_DIM = Dv (g, v and dv have Dv columns).
#ifndef V_DIM
#define V_DIM HEAD_DIM  // the value head size; differs from HEAD_DIM (queries' and keys') for MLA
#endif

// dk, dv for BLOCK_K keys of one key/value head, one per thread, summed over the group's G query
// heads. Grid (ceil(S / BLOCK_K), KV, B), block (BLOCK_K).
extern "C" __global__ void attention_backward_dkdv(const scalar_t* __restrict__ g, const scalar_t* __restrict__ q_view,
                                                   long long qb, long long qt, long long qh,
                                                   const scalar_t* __restrict__ k_view,
                                                   const scalar_t* __restrict__ v_view, long long kb, long long kt,
                                                   long long kh, long long vb, long long vt, long long vh,
                                                   const acc_t* __restrict__ lse, const acc_t* __restrict__ delta,
                                                   scalar_t* __restrict__ dk, scalar_t* __restrict__ dv, int t,
                                                   int s, int h, int group, int offset, acc_t scale) {
    __shared__ acc_t k_cols[HEAD_DIM][BLOCK_K];  // column threadIdx.x: this thread's key
    __shared__ acc_t v_cols[V_DIM][BLOCK_K];
    __shared__ acc_t q_tile[BLOCK_Q][HEAD_DIM];  // scaled queries of the current tile
    __shared__ acc_t g_tile[BLOCK_Q][V_DIM];
    __shared__ acc_t lse_tile[BLOCK_Q], delta_tile[BLOCK_Q];
    const int tid = threadIdx.x, kv_head = blockIdx.y, b = blockIdx.z, kv = h / group;
    const int j = blockIdx.x * BLOCK_K + tid;
    const bool valid = j < s;
    const scalar_t* kp = k_view + b * kb + (long long)(valid ? j : 0) * kt + kv_head * kh;
    const scalar_t* vp = v_view + b * vb + (long long)(valid ? j : 0) * vt + kv_head * vh;
    acc_t dk_acc[HEAD_DIM], dv_acc[V_DIM];
#pragma unroll
    for (int d = 0; d < HEAD_DIM; ++d) {
        k_cols[d][tid] = valid ? widen(kp[d]) : (acc_t)0;
        dk_acc[d] = 0;
    }
#pragma unroll
    for (int d = 0; d < V_DIM; ++d) {
        v_cols[d][tid] = valid ? widen(vp[d]) : (acc_t)0;
        dv_acc[d] = 0;
    }
    // The first query that sees key blockIdx.x * BLOCK_K is (that key) - offset; start at its tile.
    const int first_q = max(0, (int)blockIdx.x * BLOCK_K - offset) / BLOCK_Q * BLOCK_Q;
    for (int member = 0; member < group; ++member) {
        const int head = kv_head * group + member;
        for (int q0 = first_q; q0 < t; q0 += BLOCK_Q) {
            __syncthreads();
            for (int e = tid; e < BLOCK_Q * HEAD_DIM; e += BLOCK_K) {
                const int ii = e / HEAD_DIM, d = e % HEAD_DIM, i = q0 + ii;
                q_tile[ii][d] = i < t ? widen(q_view[b * qb + (long long)i * qt + head * qh + d]) * scale : (acc_t)0;
            }
            for (int e = tid; e < BLOCK_Q * V_DIM; e += BLOCK_K) {
                const int ii = e / V_DIM, d = e % V_DIM, i = q0 + ii;
                g_tile[ii][d] = i < t ? widen(g[(((long long)b * t + i) * h + head) * V_DIM + d]) : (acc_t)0;
            }
            for (int ii = tid; ii < BLOCK_Q; ii += BLOCK_K) {
                const int i = q0 + ii;
                const long long stat = ((long long)b * h + head) * t + i;
                lse_tile[ii] = i < t ? lse[stat] : (acc_t)0;
                delta_tile[ii] = i < t ? delta[stat] : (acc_t)0;
            }
            __syncthreads();
            if (!valid) continue;
            // query i sees key j when j <= offset + i: rows from j - offset on
            const int start = max(0, j - offset - q0), stop = min(BLOCK_Q, t - q0);
            for (int ii = start; ii < stop; ++ii) {
                acc_t sc = 0, dp = 0;
#pragma unroll
                for (int d = 0; d < HEAD_DIM; ++d) sc += q_tile[ii][d] * k_cols[d][tid];
#pragma unroll
                for (int d = 0; d < V_DIM; ++d) dp += g_tile[ii][d] * v_cols[d][tid];
                const acc_t p = exp(sc - lse_tile[ii]);
                const acc_t ds = p * (dp - delta_tile[ii]);
#pragma unroll
                for (int d = 0; d < V_DIM; ++d) dv_acc[d] += p * g_tile[ii][d];
#pragma unroll
                for (int d = 0; d < HEAD_DIM; ++d) dk_acc[d] += ds * q_tile[ii][d];  // q_tile holds scale * q
            }
        }
    }
    if (!valid) return;
    const long long o = ((long long)b * s + j) * kv + kv_head;  // the (b, j, kv_head) row of dk and dv
#pragma unroll
    for (int d = 0; d < HEAD_DIM; ++d) store(&dk[o * HEAD_DIM + d], dk_acc[d]);
#pragma unroll
    for (int d = 0; d < V_DIM; ++d) store(&dv[o * V_DIM + d], dv_acc[d]);
}
