// _common.cuh: the loader (kernels/cuda/_runtime.py) puts this text in front of every kernel file.
// The variant's -D options have set SCALAR_T, the arrays' element type, and ACC_T, the type every
// sum and every intermediate value is kept in: float for float32, float16 and bfloat16 arrays,
// double for float64 ones. Low-precision values are widened on load and rounded (to nearest even)
// once, on store, so norms, softmax and losses accumulate in float32 whatever the arrays hold.
#include <cuda_fp16.h>
#include <cuda_bf16.h>

typedef SCALAR_T scalar_t;
typedef ACC_T acc_t;

// ---- loads and stores --------------------------------------------------------------------------------
__device__ __forceinline__ acc_t widen(float x) { return (acc_t)x; }
__device__ __forceinline__ acc_t widen(double x) { return (acc_t)x; }
__device__ __forceinline__ acc_t widen(__half x) { return (acc_t)__half2float(x); }
__device__ __forceinline__ acc_t widen(__nv_bfloat16 x) { return (acc_t)__bfloat162float(x); }

__device__ __forceinline__ void store(float* p, acc_t x) { *p = (float)x; }
__device__ __forceinline__ void store(double* p, acc_t x) { *p = (double)x; }
__device__ __forceinline__ void store(__half* p, acc_t x) { *p = __float2half_rn((float)x); }
__device__ __forceinline__ void store(__nv_bfloat16* p, acc_t x) { *p = __float2bfloat16_rn((float)x); }

// -infinity without <math.h>'s INFINITY, which NVRTC (what CuPy compiles with) does not define.
__device__ __forceinline__ acc_t neg_inf() { return (acc_t)__int_as_float(0xff800000u); }

// ---- reductions --------------------------------------------------------------------------------------
// Every kernel that uses these launches blocks of a multiple of 32 threads (the launch tests check),
// so every warp is full and the 0xffffffff mask is right.
__device__ __forceinline__ acc_t warp_sum(acc_t v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ acc_t warp_max(acc_t v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// The sum (or max) of v over the block, returned to every thread. `scratch`: 32 acc_t of shared
// memory. The first barrier keeps a previous call's readers from seeing this call's partials.
__device__ __forceinline__ acc_t block_sum(acc_t v, acc_t* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    return warp_sum(lane < n_warps ? scratch[lane] : (acc_t)0);
}

__device__ __forceinline__ acc_t block_max(acc_t v, acc_t* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    return warp_max(lane < n_warps ? scratch[lane] : neg_inf());
}
