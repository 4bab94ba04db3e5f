// SwiGLU's gate, silu(gate) * up, forward and backward; the spec is kernels/reference/swiglu.py.
// Every array is N rows of F values at a row stride of its own (ld_*): gate and up are usually the
// two column blocks of one (N, 2F) product, and the backward writes dgate, dup into the two halves
// of one buffer. One thread per element; the flat index runs over (row, column), column fastest.
// sigmoid(x) = 1 / (1 + exp(-x)); at x = -100 exp overflows to inf and sigmoid is 0, as it should be.

// out = gate * sigmoid(gate) * up. Grid (ceil(N*F / threads)), block (threads).
extern "C" __global__ void swiglu_forward(const scalar_t* __restrict__ gate_rows, long long ld_gate,
                                          const scalar_t* __restrict__ up_rows, long long ld_up,
                                          scalar_t* __restrict__ out_rows, long long ld_out, int n, int f) {
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n * f) return;
    const long long i = idx / f, j = idx % f;
    const acc_t x = widen(gate_rows[i * ld_gate + j]);
    const acc_t sig = (acc_t)1 / ((acc_t)1 + exp(-x));
    store(&out_rows[i * ld_out + j], x * sig * widen(up_rows[i * ld_up + j]));
}

// dgate = g * up * sig * (1 + x (1 - sig)), dup = g * x * sig (x = gate). Grid and block as forward.
extern "C" __global__ void swiglu_backward(const scalar_t* __restrict__ g_rows, long long ld_g,
                                           const scalar_t* __restrict__ gate_rows, long long ld_gate,
                                           const scalar_t* __restrict__ up_rows, long long ld_up,
                                           scalar_t* __restrict__ dgate_rows, long long ld_dgate,
                                           scalar_t* __restrict__ dup_rows, long long ld_dup, int n, int f) {
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n * f) return;
    const long long i = idx / f, j = idx % f;
    const acc_t x = widen(gate_rows[i * ld_gate + j]), gi = widen(g_rows[i * ld_g + j]);
    const acc_t sig = (acc_t)1 / ((acc_t)1 + exp(-x));
    store(&dgate_rows[i * ld_dgate + j], gi * widen(up_rows[i * ld_up + j]) * (sig * ((acc_t)1 + x * ((acc_t)1 - sig))));
    store(&dup_rows[i * ld_dup + j], gi * (x * sig));
}
