// RMSNorm, forward and backward; the spec is kernels/reference/rms_norm.py.
// x, g, y, gx: (N, D) rows, C-contiguous. One block handles one row (forward) or a run of rows
// (backward); its threads stride over the D columns, so thread t touches columns t, t + blockDim.x, ...

// y[i, :] = x[i, :] * rstd[i] * w, rstd[i] = 1 / sqrt(mean(x[i, :]^2) + eps). Grid (N), block (threads).
extern "C" __global__ void rms_norm_forward(const scalar_t* __restrict__ x, const scalar_t* __restrict__ w,
                                            scalar_t* __restrict__ y, scalar_t* __restrict__ rstd,
                                            int d, acc_t eps) {
    __shared__ acc_t scratch[32];
    const long long row = (long long)blockIdx.x * d;
    acc_t sum_sq = 0;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        const acc_t v = widen(x[row + j]);
        sum_sq += v * v;
    }
    const acc_t r = (acc_t)1 / sqrt(block_sum(sum_sq, scratch) / (acc_t)d + eps);
    for (int j = threadIdx.x; j < d; j += blockDim.x) store(&y[row + j], widen(x[row + j]) * r * widen(w[j]));
    if (threadIdx.x == 0) store(&rstd[blockIdx.x], r);
}

// The most columns one thread keeps a share of dL/dw for: D <= MAX_COLS * blockDim.x (the launcher checks).
#define MAX_COLS 8

// gx[i, :] = rstd (g w - xhat * mean(g w xhat)), xhat = x rstd, for rows [part * rows_per_part, ...);
// partial_dw[part, :] = the sum over those rows of g * xhat (summed over parts by rms_norm_dw_sum).
// Grid (n_parts), block (threads).
extern "C" __global__ void rms_norm_backward(const scalar_t* __restrict__ g, const scalar_t* __restrict__ x,
                                             const scalar_t* __restrict__ w, const scalar_t* __restrict__ rstd,
                                             scalar_t* __restrict__ gx, acc_t* __restrict__ partial_dw,
                                             int n, int d, int rows_per_part) {
    __shared__ acc_t scratch[32];
    acc_t dw[MAX_COLS];
#pragma unroll
    for (int c = 0; c < MAX_COLS; ++c) dw[c] = 0;
    const int first = blockIdx.x * rows_per_part, last = min(n, first + rows_per_part);
    for (int i = first; i < last; ++i) {  // the same trip count for every thread: barriers stay aligned
        const long long row = (long long)i * d;
        const acc_t r = widen(rstd[i]);
        acc_t dot = 0;  // sum over the row of g * w * x
        for (int j = threadIdx.x; j < d; j += blockDim.x) dot += widen(g[row + j]) * widen(w[j]) * widen(x[row + j]);
        const acc_t c = block_sum(dot, scratch) * r / (acc_t)d;
#pragma unroll
        for (int k = 0; k < MAX_COLS; ++k) {
            const int j = threadIdx.x + k * blockDim.x;
            if (j < d) {
                const acc_t xhat = widen(x[row + j]) * r, gj = widen(g[row + j]);
                dw[k] += gj * xhat;
                store(&gx[row + j], r * (gj * widen(w[j]) - xhat * c));
            }
        }
    }
#pragma unroll
    for (int k = 0; k < MAX_COLS; ++k) {
        const int j = threadIdx.x + k * blockDim.x;
        if (j < d) partial_dw[(long long)blockIdx.x * d + j] = dw[k];
    }
}

// dw[j] = sum over parts of partial_dw[part, j], in part order (deterministic). Grid (ceil(D / threads)).
extern "C" __global__ void rms_norm_dw_sum(const acc_t* __restrict__ partial_dw, scalar_t* __restrict__ dw,
                                           int n_parts, int d) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    acc_t s = 0;
    for (int p = 0; p < n_parts; ++p) s += partial_dw[(long long)p * d + j];
    store(&dw[j], s);
}
