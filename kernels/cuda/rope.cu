// Rotary position embedding (half-split pairs), forward and backward; the spec is kernels/reference/rope.py.
// x_rows: (B*T) rows of H*D values, row r at x_rows + r * ld (a column block of the qkv product, or a
// contiguous array: ld = H*D); row r is position r % T. cos, sin: (T, D) contiguous. out: (B*T, H, D)
// contiguous. One thread per pair (x1, x2) = (x[..., i], x[..., i + D/2]); the flat thread index runs
// over (row, head, i), i fastest, so neighbouring threads read neighbouring elements.
//   forward:  out1 = x1 c1 - x2 s1,  out2 = x2 c2 + x1 s2
//   backward: out1 = x1 c1 + x2 s2,  out2 = x2 c2 - x1 s1   (the transposed rotation, applied to dL/dy)
// Grid (ceil(n_pairs / threads)), block (threads).
extern "C" __global__ void rope(const scalar_t* __restrict__ x_rows, const scalar_t* __restrict__ cos_t,
                                const scalar_t* __restrict__ sin_t, scalar_t* __restrict__ out,
                                int n_pairs, int t, int h, int d, long long ld, int transpose) {
    const int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n_pairs) return;
    const int half = d / 2;
    const int i = idx % half, head = (idx / half) % h, row = idx / (half * h);
    const long long in = row * ld + (long long)head * d + i;
    const long long o = ((long long)row * h + head) * d + i;
    const int pos = (row % t) * d + i;
    const acc_t x1 = widen(x_rows[in]), x2 = widen(x_rows[in + half]);
    const acc_t c1 = widen(cos_t[pos]), c2 = widen(cos_t[pos + half]);
    const acc_t s1 = widen(sin_t[pos]), s2 = widen(sin_t[pos + half]);
    if (transpose) {
        store(&out[o], x1 * c1 + x2 * s2);
        store(&out[o + half], x2 * c2 - x1 * s1);
    } else {
        store(&out[o], x1 * c1 - x2 * s1);
        store(&out[o + half], x2 * c2 + x1 * s2);
    }
}
