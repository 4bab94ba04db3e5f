// Causal grouped-query attention, forward, flash style; the spec is kernels/reference/attention.py.
// The (T x S) score matrix is never stored: each thread owns one query row and walks the keys a
// tile of BLOCK_K at a time with an online softmax (a running max m and sum l; when m grows, l and
// the output accumulator are rescaled by exp(m_old - m_new)). The row's log-sum-exp m + log(l) is
// saved for the backward, which recomputes P from it (attention_backward.cu).
//
// Layout: q (B, T, H, D), k and v (B, S, KV, D) given by their strides in elements (batch, position,
// head; the D axis is contiguous), so the column blocks of the fused qkv product need no copy.
// out (B, T, H, D) and lse (B, H, T) are contiguous. Head h reads key/value head h / group.
// Query i (position offset + i) sees keys 0 .. offset + i. Compile-time: HEAD_DIM = D, BLOCK_Q
// (threads per block, one query each), BLOCK_K (keys per tile), chosen by kernels/cuda/attention.py.
// V_DIM = Dv, the value head size (MLA: Dv != D; v (B, S, KV, Dv), out (B, T, H, Dv)).
// Grid (ceil(T / BLOCK_Q), H, B), block (BLOCK_Q).
#ifndef V_DIM
#define V_DIM HEAD_DIM  // the value head size; differs from HEAD_DIM (queries' and keys') for MLA
#endif
extern "C" __global__ void attention_forward(const scalar_t* __restrict__ q_view, long long qb, long long qt,
                                             long long qh, const scalar_t* __restrict__ k_view,
                                             const scalar_t* __restrict__ v_view, long long kb, long long kt,
                                             long long kh, long long vb, long long vt, long long vh,
                                             scalar_t* __restrict__ out, acc_t* __restrict__ lse,
                                             int t, int s, int h, int group, int offset, acc_t scale) {
    __shared__ acc_t k_tile[BLOCK_K][HEAD_DIM];
    __shared__ acc_t v_tile[BLOCK_K][V_DIM];
    __shared__ acc_t scores[BLOCK_K][BLOCK_Q];  // column threadIdx.x: this thread's scores of the tile
    const int tid = threadIdx.x, head = blockIdx.y, b = blockIdx.z, kv_head = head / group;
    const int i = blockIdx.x * BLOCK_Q + tid;
    const bool valid = i < t;
    acc_t qr[HEAD_DIM], o[V_DIM];
    const scalar_t* qp = q_view + b * qb + (long long)(valid ? i : 0) * qt + head * qh;
#pragma unroll
    for (int d = 0; d < HEAD_DIM; ++d) qr[d] = valid ? widen(qp[d]) * scale : (acc_t)0;  // the scale folded in once
#pragma unroll
    for (int d = 0; d < V_DIM; ++d) o[d] = 0;
    acc_t m = neg_inf(), l = 0;
    const int visible = min(s, offset + i + 1);                             // this row's keys: [0, visible)
    const int keys_end = min(s, offset + min(t, (int)(blockIdx.x + 1) * BLOCK_Q));  // the block's
    for (int k0 = 0; k0 < keys_end; k0 += BLOCK_K) {  // the same trip count for all: barriers align
        __syncthreads();  // the previous tile is no longer read
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
        if (n <= 0) continue;
        acc_t tile_max = neg_inf();
        for (int jj = 0; jj < n; ++jj) {
            acc_t sc = 0;
#pragma unroll
            for (int d = 0; d < HEAD_DIM; ++d) sc += qr[d] * k_tile[jj][d];
            scores[jj][tid] = sc;
            tile_max = fmax(tile_max, sc);
        }
        const acc_t m_new = fmax(m, tile_max);
        const acc_t alpha = exp(m - m_new);  // 0 on the first tile (m = -inf), when l and o are 0
        l *= alpha;
#pragma unroll
        for (int d = 0; d < V_DIM; ++d) o[d] *= alpha;
        for (int jj = 0; jj < n; ++jj) {
            const acc_t p = exp(scores[jj][tid] - m_new);
            l += p;
#pragma unroll
            for (int d = 0; d < V_DIM; ++d) o[d] += p * v_tile[jj][d];
        }
        m = m_new;
    }
    if (!valid) return;
    const acc_t inv = (acc_t)1 / l;
    scalar_t* op = out + (((long long)b * t + i) * h + head) * V_DIM;
#pragma unroll
    for (int d = 0; d < V_DIM; ++d) store(&op[d], o[d] * inv);
    lse[((long long)b * h + head) * t + i] = m + log(l);
}
