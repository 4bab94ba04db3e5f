// Fused softmax + cross-entropy over the vocabulary; the spec is kernels/reference/cross_entropy.py.
// logits, grad: (N, C) contiguous; targets: (N,) int64. One block per row, its threads striding over
// the C classes. Two passes over the row and no (N, C) scratch: the first finds the row's max m and
// sum s of exp(x - m) at once (an online softmax: a thread rescales its running sum whenever its max
// grows), the second writes the gradient exp(x - m) / s - [j == target] straight into `grad`.
// The loss of row i, log(s) + m - x[target], goes to losses[i] in acc_t (0 for an ignored row);
// status[0] counts the rows not ignored, status[1] the rows whose target is out of [-C, C).
// Grid (N), block (threads).
extern "C" __global__ void softmax_cross_entropy(const scalar_t* __restrict__ logits,
                                                 const long long* __restrict__ targets, long long ignore_index,
                                                 scalar_t* __restrict__ grad, acc_t* __restrict__ losses,
                                                 int* __restrict__ status, int c) {
    __shared__ acc_t scratch[32];
    const long long row = (long long)blockIdx.x * c;
    long long t = targets[blockIdx.x];
    const bool ignored = t == ignore_index;
    const bool bad = !ignored && (t < -c || t >= c);
    if (ignored || bad) {  // the whole block takes this branch: no barrier is skipped by only some
        for (int j = threadIdx.x; j < c; j += blockDim.x) store(&grad[row + j], (acc_t)0);
        if (threadIdx.x == 0) {
            losses[blockIdx.x] = 0;
            if (bad) atomicAdd(&status[1], 1);
        }
        return;
    }
    if (t < 0) t += c;  // as NumPy's indexing in the reference, -1 is the last class
    acc_t m = neg_inf(), s = 0;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        const acc_t v = widen(logits[row + j]);
        if (v > m) {
            s = s * exp(m - v) + (acc_t)1;
            m = v;
        } else {
            s += exp(v - m);
        }
    }
    const acc_t row_max = block_max(m, scratch);
    // exp(m - row_max) is 0 for a thread that saw no class (m = -inf, s = 0): no NaN from 0 * inf.
    const acc_t total = block_sum(s == (acc_t)0 ? (acc_t)0 : s * exp(m - row_max), scratch);
    const acc_t inv = (acc_t)1 / total;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        const acc_t p = exp(widen(logits[row + j]) - row_max) * inv;
        store(&grad[row + j], j == t ? p - (acc_t)1 : p);
    }
    if (threadIdx.x == 0) {
        losses[blockIdx.x] = log(total) + row_max - widen(logits[row + t]);
        atomicAdd(&status[0], 1);
    }
}
