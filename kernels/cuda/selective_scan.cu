// Mamba1's selective scan, forward and backward; the spec is kernels/reference/selective_scan.py.
// u, delta, y, du, ddelta: (Bt, T, D); A: (D, N); B, C: (Bt, T, N), shared by the D channels; h0, h_T:
// (Bt, D, N); starts: (Bt, n_chunks, D, N), the state before step c * chunk (the reference's convention,
// so either backward reads either forward's). One thread per (batch row, channel): grid (ceil(D / threads),
// Bt); the thread keeps its state h (N numbers, N <= MAX_N, a -D option) in registers and walks the time.

// h_t = exp(delta_t A) h_{t-1} + delta_t u_t B_t; y_t = h_t . C_t.
extern "C" __global__ void selective_scan_forward(const scalar_t* __restrict__ u, const scalar_t* __restrict__ delta,
                                                  const scalar_t* __restrict__ A, const scalar_t* __restrict__ B,
                                                  const scalar_t* __restrict__ C, const scalar_t* __restrict__ h0,
                                                  scalar_t* __restrict__ y, scalar_t* __restrict__ last,
                                                  scalar_t* __restrict__ starts, int t_len, int d, int n, int chunk,
                                                  int has_h0) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
    if (ch >= d) return;  // no barriers or shuffles here: idle threads may leave
    const int n_chunks = (t_len + chunk - 1) / chunk;
    acc_t h[MAX_N], a[MAX_N];
#pragma unroll
    for (int k = 0; k < MAX_N; ++k) {
        h[k] = (k < n && has_h0) ? widen(h0[((long long)b * d + ch) * n + k]) : (acc_t)0;
        a[k] = k < n ? widen(A[(long long)ch * n + k]) : (acc_t)0;
    }
    for (int t = 0; t < t_len; ++t) {
        const long long it = (long long)b * t_len + t;  // the (b, t) row of B and C
        if (t % chunk == 0) {
            scalar_t* s = starts + (((long long)b * n_chunks + t / chunk) * d + ch) * n;
#pragma unroll
            for (int k = 0; k < MAX_N; ++k)
                if (k < n) store(&s[k], h[k]);
        }
        const acc_t dt = widen(delta[it * d + ch]), du = dt * widen(u[it * d + ch]);
        acc_t out = 0;
#pragma unroll
        for (int k = 0; k < MAX_N; ++k) {
            if (k < n) {
                h[k] = exp(dt * a[k]) * h[k] + du * widen(B[it * n + k]);
                out += h[k] * widen(C[it * n + k]);
            }
        }
        store(&y[it * d + ch], out);
    }
#pragma unroll
    for (int k = 0; k < MAX_N; ++k)
        if (k < n) store(&last[((long long)b * d + ch) * n + k], h[k]);
}

// The backward, in reverse over chunks: recompute the chunk's states from starts into `hs` (the state
// before each step, (chunk, N, Bt * D) acc_t, a thread's entries Bt * D apart so a warp's accesses are
// coalesced), then walk the chunk backwards carrying dh = dL/dh_t. dB and dC are sums over the channels:
// each warp sums its 32 channels with shuffles (lanes past D add zeros, and stay in the loop for them) and
// writes one partial row, part_b / part_c (n_warps, Bt, T, N), added up in warp order by
// selective_scan_part_sum. dA is a sum over the batch: part_a (Bt, D, N), added up likewise.
extern "C" __global__ void selective_scan_backward(const scalar_t* __restrict__ g, const scalar_t* __restrict__ u,
                                                   const scalar_t* __restrict__ delta, const scalar_t* __restrict__ A,
                                                   const scalar_t* __restrict__ B, const scalar_t* __restrict__ C,
                                                   const scalar_t* __restrict__ starts, acc_t* __restrict__ hs,
                                                   scalar_t* __restrict__ du_out, scalar_t* __restrict__ ddelta,
                                                   acc_t* __restrict__ part_a, acc_t* __restrict__ part_b,
                                                   acc_t* __restrict__ part_c, int bt, int t_len, int d, int n,
                                                   int chunk) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
    const bool live = ch < d;
    const int c0 = live ? ch : 0;          // a dead lane computes on channel 0 and contributes zeros
    const int warp = ch >> 5, lane = threadIdx.x & 31;
    const int n_chunks = (t_len + chunk - 1) / chunk;
    const long long me = (long long)b * d + c0, stride = (long long)bt * d;
    acc_t h[MAX_N], dh[MAX_N], da[MAX_N], a[MAX_N];
#pragma unroll
    for (int k = 0; k < MAX_N; ++k) {
        dh[k] = da[k] = 0;
        a[k] = k < n ? widen(A[(long long)c0 * n + k]) : (acc_t)0;
    }
    for (int c = n_chunks - 1; c >= 0; --c) {
        const int t0 = c * chunk, len = min(t_len, t0 + chunk) - t0;
        const scalar_t* s = starts + (((long long)b * n_chunks + c) * d + c0) * n;
#pragma unroll
        for (int k = 0; k < MAX_N; ++k) h[k] = k < n ? widen(s[k]) : (acc_t)0;
        for (int i = 0; i < len; ++i) {  // h ends as the state after the chunk's last step
            const long long it = (long long)b * t_len + t0 + i;
            const acc_t dt = widen(delta[it * d + c0]), du = dt * widen(u[it * d + c0]);
#pragma unroll
            for (int k = 0; k < MAX_N; ++k) {
                if (k < n) {
                    hs[((long long)i * n + k) * stride + me] = h[k];
                    h[k] = exp(dt * a[k]) * h[k] + du * widen(B[it * n + k]);
                }
            }
        }
        for (int i = len - 1; i >= 0; --i) {
            const long long it = (long long)b * t_len + t0 + i;
            const acc_t dt = widen(delta[it * d + c0]), uu = widen(u[it * d + c0]), du = dt * uu;
            const acc_t gt = live ? widen(g[it * d + c0]) : (acc_t)0;
            acc_t dhb = 0, dd = 0;
#pragma unroll
            for (int k = 0; k < MAX_N; ++k) {
                if (k >= n) continue;  // the same n for every lane: the shuffles stay aligned
                const acc_t prev = hs[((long long)i * n + k) * stride + me], decay = exp(dt * a[k]);
                const acc_t dc = warp_sum(gt * h[k]);                        // dC[t, k], this warp's share
                dh[k] += gt * widen(C[it * n + k]);
                dhb += dh[k] * widen(B[it * n + k]);
                const acc_t db = warp_sum(live ? dh[k] * du : (acc_t)0);     // dB[t, k], this warp's share
                if (lane == 0) {
                    part_c[((long long)warp * bt * t_len + it) * n + k] = dc;
                    part_b[((long long)warp * bt * t_len + it) * n + k] = db;
                }
                const acc_t dda = dh[k] * prev * decay;  // d/d(decay) = dh h_{t-1}; d decay / d delta = A decay
                dd += dda * a[k];
                da[k] += dda * dt;
                dh[k] *= decay;
                h[k] = prev;
            }
            if (live) {
                store(&du_out[it * d + ch], dhb * dt);
                store(&ddelta[it * d + ch], dd + dhb * uu);
            }
        }
    }
    if (live) {
#pragma unroll
        for (int k = 0; k < MAX_N; ++k)
            if (k < n) part_a[me * n + k] = da[k];
    }
}

// out[i] = sum over p < n_parts of part[p * m + i], in p order (deterministic). One thread per i.
extern "C" __global__ void selective_scan_part_sum(const acc_t* __restrict__ part, scalar_t* __restrict__ out,
                                                   long long m, int n_parts) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m) return;
    acc_t s = 0;
    for (int p = 0; p < n_parts; ++p) s += part[p * m + i];
    store(&out[i], s);
}
