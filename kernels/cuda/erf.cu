// erf elementwise, for the exact GELU; the spec is kernels/reference/erf.py. Evaluated in double
// (CUDA's erf is accurate to 2 ulp) and rounded once to the array's type. x, out: n contiguous values.
// Grid (ceil(n / threads)), block (threads).
extern "C" __global__ void erf_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) store(&out[i], (acc_t)erf((double)widen(x[i])));
}
