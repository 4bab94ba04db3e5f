// MoE dispatch and combine, forward and backward; the spec is kernels/reference/moe_dispatch.py.
// x, dx, out, g: (N, H) tokens; xs, dxs, ys, dys: (M, H) rows sorted by expert; order (M,) slot of each
// row; slot_row, weights, dweights: (N, k), slot s = n * k + j, slot_row -1 = dropped. Every kernel is a
// gather per output element (or a permutation write), never a scatter-add: nothing is added into one
// place by two threads, so there are no atomics and the sums are in a fixed order (j = 0 .. k-1), the
// same on every run. Grid (rows, ceil(H / threads)); thread = one column.

// xs[m, :] = x[order[m] / k, :].
extern "C" __global__ void moe_gather(const scalar_t* __restrict__ x, const long long* __restrict__ order,
                                      scalar_t* __restrict__ xs, int h, int top_k) {
    const int k = top_k;
    const int col = blockIdx.y * blockDim.x + threadIdx.x;
    if (col >= h) return;
    const long long m = blockIdx.x;
    xs[m * h + col] = x[(order[m] / k) * h + col];
}

// dx[n, :] = sum over j of dxs[slot_row[n, j], :] (dropped slots add nothing).
extern "C" __global__ void moe_gather_backward(const scalar_t* __restrict__ dxs, const long long* __restrict__ slot_row,
                                               scalar_t* __restrict__ dx, int h, int top_k) {
    const int k = top_k;
    const int col = blockIdx.y * blockDim.x + threadIdx.x;
    if (col >= h) return;
    const long long n = blockIdx.x;
    acc_t s = 0;
    for (int j = 0; j < k; ++j) {
        const long long r = slot_row[n * k + j];
        if (r >= 0) s += widen(dxs[r * h + col]);
    }
    store(&dx[n * h + col], s);
}

// out[n, :] = sum over j of weights[n, j] * ys[slot_row[n, j], :]: the weighted scatter-add of the experts'
// outputs, written as each token's gather over its k slots.
extern "C" __global__ void moe_combine(const scalar_t* __restrict__ ys, const long long* __restrict__ slot_row,
                                       const scalar_t* __restrict__ weights, scalar_t* __restrict__ out, int h, int top_k) {
    const int k = top_k;
    const int col = blockIdx.y * blockDim.x + threadIdx.x;
    if (col >= h) return;
    const long long n = blockIdx.x;
    acc_t s = 0;
    for (int j = 0; j < k; ++j) {
        const long long r = slot_row[n * k + j];
        if (r >= 0) s += widen(weights[n * k + j]) * widen(ys[r * h + col]);
    }
    store(&out[n * h + col], s);
}

// dys[slot_row[s], :] = weights[s] * g[s / k, :] for each kept slot s: each row belongs to exactly one slot,
// so this is a permutation write (dys starts zeroed). Grid (N k, ceil(H / threads)).
extern "C" __global__ void moe_combine_dys(const scalar_t* __restrict__ g, const long long* __restrict__ slot_row,
                                           const scalar_t* __restrict__ weights, scalar_t* __restrict__ dys, int h,
                                           int top_k) {
    const int k = top_k;
    const int col = blockIdx.y * blockDim.x + threadIdx.x;
    const long long s = blockIdx.x, r = slot_row[s];
    if (col >= h || r < 0) return;
    store(&dys[r * h + col], widen(weights[s]) * widen(g[(s / k) * h + col]));
}

// dweights[s] = ys[slot_row[s], :] . g[s / k, :] (0 for a dropped slot). Grid (N k), block (threads): the
// block's threads stride over H and meet in block_sum.
extern "C" __global__ void moe_combine_dweights(const scalar_t* __restrict__ g, const scalar_t* __restrict__ ys,
                                                const long long* __restrict__ slot_row, scalar_t* __restrict__ dweights,
                                                int h, int top_k) {
    const int k = top_k;
    __shared__ acc_t scratch[32];
    const long long s = blockIdx.x, r = slot_row[s];
    acc_t dot = 0;
    if (r >= 0)
        for (int col = threadIdx.x; col < h; col += blockDim.x) dot += widen(ys[r * h + col]) * widen(g[(s / k) * h + col]);
    dot = block_sum(dot, scratch);  // every thread reaches it, dropped slot or not
    if (threadIdx.x == 0) store(&dweights[s], dot);
}
