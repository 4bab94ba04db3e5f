// AdamW over many parameters in one launch; the update rule (and its operation order) is
// kernels/reference/adamw.py. Each parameter's arrays are reached through tables of addresses:
// params[i], exp_avgs[i], exp_avg_sqs[i] hold scalar_t (the parameter's dtype, float32 master
// weights under mixed precision), grads[i] grad_t (float16 gradients of the float16 model, say),
// and copies[i], when has_copies, a copy_t array that receives the new value rounded (the model's
// float16 weights). The work is cut into chunks of `chunk` elements: chunk c belongs to parameter
// chunk_param[c] and starts at element chunk_start[c] of it; one block takes one chunk.
// The gradient is read as grad * grad_scale (mixed precision unscales and clips through it).
// Grid (n_chunks), block (threads).
typedef GRAD_T grad_t;
typedef COPY_T copy_t;

extern "C" __global__ void adamw_multi(const unsigned long long* __restrict__ params,
                                       const unsigned long long* __restrict__ grads,
                                       const unsigned long long* __restrict__ exp_avgs,
                                       const unsigned long long* __restrict__ exp_avg_sqs,
                                       const unsigned long long* __restrict__ copies,
                                       const long long* __restrict__ sizes, const int* __restrict__ chunk_param,
                                       const long long* __restrict__ chunk_start, int chunk, int has_copies,
                                       acc_t decay, acc_t one_minus_beta1, acc_t beta2, acc_t one_minus_beta2,
                                       acc_t bias_correction2_sqrt, acc_t eps, acc_t step_size, acc_t grad_scale) {
    const int i = chunk_param[blockIdx.x];
    const long long start = chunk_start[blockIdx.x];
    const long long stop = min(start + (long long)chunk, sizes[i]);
    scalar_t* p = (scalar_t*)params[i];
    const grad_t* g = (const grad_t*)grads[i];
    scalar_t* m = (scalar_t*)exp_avgs[i];
    scalar_t* v = (scalar_t*)exp_avg_sqs[i];
    copy_t* out = has_copies ? (copy_t*)copies[i] : (copy_t*)0;
    for (long long e = start + threadIdx.x; e < stop; e += blockDim.x) {
        const acc_t gi = widen(g[e]) * grad_scale;
        const acc_t mi = widen(m[e]) + (gi - widen(m[e])) * one_minus_beta1;
        const acc_t vi = widen(v[e]) * beta2 + (gi * gi) * one_minus_beta2;
        store(&m[e], mi);
        store(&v[e], vi);
        const acc_t denom = sqrt(vi) / bias_correction2_sqrt + eps;
        const acc_t pi = widen(p[e]) * decay - (mi / denom) * step_size;
        store(&p[e], pi);
        if (has_copies) store(&out[e], pi);
    }
}
