// index_add for the embedding's backward, out (V, D) [ids (N,)] += src (N, D); the spec is
// kernels/reference/index_add.py (xp.add.at). No atomics, so the result does not depend on
// scheduling: the launcher sorts the ids stably (order = argsort(ids), sorted_ids = ids[order]),
// and the first position of each run of equal ids adds the run's rows, in their original order,
// to its row of out, one column per thread. That is xp.add.at's order of additions exactly.
// Grid (N, ceil(D / threads)): x is the position in the sorted ids, y a block of columns.
extern "C" __global__ void index_add_rows(scalar_t* __restrict__ out, const long long* __restrict__ sorted_ids,
                                          const long long* __restrict__ order, const scalar_t* __restrict__ src,
                                          int n, int d) {
    const int pos = blockIdx.x;
    const int j = blockIdx.y * blockDim.x + threadIdx.x;
    const long long id = sorted_ids[pos];
    if (j >= d || (pos > 0 && sorted_ids[pos - 1] == id)) return;  // not the first of its run
    acc_t acc = widen(out[id * d + j]);
    for (int k = pos; k < n && sorted_ids[k] == id; ++k) acc += widen(src[order[k] * d + j]);
    store(&out[id * d + j], acc);
}
