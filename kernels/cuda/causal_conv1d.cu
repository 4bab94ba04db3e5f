// Causal depthwise conv1d (channels-last), SiLU optionally fused; the spec is
// kernels/reference/causal_conv1d.py. x, g, y, dx: (Bt, T, C) C-contiguous; w: (C, K); bias: (C,)
// (zeros when the layer has none). y[b, t, c] = bias[c] + sum_k w[c, k] x[b, t - K + 1 + k, c].

// The pre-activation at one (b, t, c); `i` = (b * T + t) * C + c.
__device__ __forceinline__ acc_t conv_at(const scalar_t* __restrict__ x, const scalar_t* __restrict__ w,
                                         const scalar_t* __restrict__ bias, long long i, int t, int c,
                                         int n_ch, int taps) {
    const int k = taps;
    acc_t v = widen(bias[c]);
    for (int j = 0; j < k; ++j) {
        const int tt = t - k + 1 + j;  // zeros before the row's start: no tap there
        if (tt >= 0) v += widen(w[(long long)c * k + j]) * widen(x[i + (long long)(tt - t) * n_ch]);
    }
    return v;
}

// SiLU as v / (1 + exp(-v)): exp(-v) overflows to inf for very negative v, and v / inf is the right -0.
__device__ __forceinline__ acc_t sigmoid(acc_t v) { return (acc_t)1 / ((acc_t)1 + exp(-v)); }

// y = conv(x) (+ SiLU). One thread per output element; grid (ceil(Bt T C / threads)).
extern "C" __global__ void causal_conv1d_forward(const scalar_t* __restrict__ x, const scalar_t* __restrict__ w,
                                                 const scalar_t* __restrict__ bias, scalar_t* __restrict__ y,
                                                 long long n, int t_len, int n_ch, int taps, int silu) {
    const int k = taps;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int c = (int)(i % n_ch), t = (int)((i / n_ch) % t_len);
    const acc_t v = conv_at(x, w, bias, i, t, c, n_ch, k);
    store(&y[i], silu ? v * sigmoid(v) : v);
}

// gp = dL/d(pre-activation), kept in acc_t: g, or g * silu'(pre) with pre recomputed (not saved: the conv
// is cheap next to its memory). One thread per element.
extern "C" __global__ void causal_conv1d_dpre(const scalar_t* __restrict__ g, const scalar_t* __restrict__ x,
                                              const scalar_t* __restrict__ w, const scalar_t* __restrict__ bias,
                                              acc_t* __restrict__ gp, long long n, int t_len, int n_ch, int taps,
                                              int silu) {
    const int k = taps;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    acc_t d = widen(g[i]);
    if (silu) {
        const int c = (int)(i % n_ch), t = (int)((i / n_ch) % t_len);
        const acc_t v = conv_at(x, w, bias, i, t, c, n_ch, k), s = sigmoid(v);
        d *= s * ((acc_t)1 + v * ((acc_t)1 - s));
    }
    gp[i] = d;
}

// dx[b, t, c] = sum_j w[c, j] gp[b, t + K - 1 - j, c] (x[t] feeds y[t + K - 1 - j] through tap j).
extern "C" __global__ void causal_conv1d_dx(const acc_t* __restrict__ gp, const scalar_t* __restrict__ w,
                                            scalar_t* __restrict__ dx, long long n, int t_len, int n_ch, int taps) {
    const int k = taps;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int c = (int)(i % n_ch), t = (int)((i / n_ch) % t_len);
    acc_t s = 0;
    for (int j = 0; j < k; ++j) {
        const int tt = t + k - 1 - j;
        if (tt < t_len) s += widen(w[(long long)c * k + j]) * gp[i + (long long)(tt - t) * n_ch];
    }
    store(&dx[i], s);
}

// The most taps the dw kernel keeps sums of (the launcher declines K > MAX_TAPS); Mamba's K is 4.
#define MAX_TAPS 8
#define CH 32     // channels per block (threadIdx.x): consecutive, so the loads of a row are coalesced
#define LANES 8   // rows a block walks at once (threadIdx.y)

// partial[part, j, c] = sum over rows r of this part of gp[r, c] x[r - K + 1 + j, c] (same batch row), for
// j < K; partial[part, K, c] = sum of gp[r, c] (dL/dbias). Grid (ceil(C / CH), n_parts), block (CH, LANES).
// The LANES threads of a channel meet in shared memory and are summed in lane order: deterministic.
extern "C" __global__ void causal_conv1d_dw(const acc_t* __restrict__ gp, const scalar_t* __restrict__ x,
                                            acc_t* __restrict__ partial, int rows, int t_len, int n_ch, int taps,
                                            int rows_per_part) {
    const int k = taps;
    __shared__ acc_t sums[LANES][MAX_TAPS + 1][CH];
    const int c = blockIdx.x * CH + threadIdx.x, ly = threadIdx.y;
    acc_t acc[MAX_TAPS + 1];
#pragma unroll
    for (int j = 0; j <= MAX_TAPS; ++j) acc[j] = 0;
    const int first = blockIdx.y * rows_per_part, last = min(rows, first + rows_per_part);
    if (c < n_ch) {
        for (int r = first + ly; r < last; r += LANES) {
            const int t = r % t_len;
            const acc_t gv = gp[(long long)r * n_ch + c];
#pragma unroll
            for (int j = 0; j < MAX_TAPS; ++j) {
                const int tt = t - k + 1 + j;
                if (j < k && tt >= 0) acc[j] += gv * widen(x[((long long)r + tt - t) * n_ch + c]);
            }
            acc[MAX_TAPS] += gv;
        }
    }
#pragma unroll
    for (int j = 0; j <= MAX_TAPS; ++j) sums[ly][j][threadIdx.x] = acc[j];
    __syncthreads();
    if (ly == 0 && c < n_ch) {
        for (int j = 0; j <= k; ++j) {
            const int slot = j == k ? MAX_TAPS : j;
            acc_t s = 0;
            for (int l = 0; l < LANES; ++l) s += sums[l][slot][threadIdx.x];
            partial[((long long)blockIdx.y * (k + 1) + j) * n_ch + c] = s;
        }
    }
}

// dw[c, j] = sum over parts of partial[part, j, c], dbias[c] = ... partial[part, K, c], in part order.
// One thread per (c, j) of a (C, K + 1) table; grid (ceil(C (K + 1) / threads)).
extern "C" __global__ void causal_conv1d_dw_sum(const acc_t* __restrict__ partial, scalar_t* __restrict__ dw,
                                                scalar_t* __restrict__ dbias, int n_parts, int n_ch, int taps) {
    const int k = taps;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_ch * (k + 1)) return;
    const int c = i / (k + 1), j = i % (k + 1);
    acc_t s = 0;
    for (int p = 0; p < n_parts; ++p) s += partial[((long long)p * (k + 1) + j) * n_ch + c];
    if (j < k) store(&dw[(long long)c * k + j], s);
    else store(&dbias[c], s);
}
