// MoE routing: top-k expert choice (with DeepSeek's group limit) and the dispatch plan that sorts the
// slots by expert; the spec is kernels/reference/moe_routing.py. N tokens, E experts, k choices; slot
// s = n * k + j. Ties go to the lower index (expert or group), as the reference's stable sort does.

// A group's score: its best expert's, or (top2) the sum of its two best, rounded to scalar_t as the
// reference adds them in the scores' dtype. row: (E,), the group is row[g * per : (g + 1) * per].
__device__ __forceinline__ acc_t group_score(const scalar_t* __restrict__ row, int g, int per, int top2) {
    acc_t m1 = widen(row[g * per]), m2 = neg_inf();
    for (int x = 1; x < per; ++x) {
        const acc_t v = widen(row[g * per + x]);
        if (v > m1) { m2 = m1; m1 = v; }
        else if (v > m2) m2 = v;
    }
    if (!top2 || per < 2) return m1;
    scalar_t sum;
    store(&sum, m2 + m1);
    return widen(sum);
}

// idx[n, :] = the k best experts of token n, best first. scores (N, E), idx (N, k) int64. One thread per
// token; grid (ceil(N / threads)). Group limit when n_group > 1 and topk_group < n_group (n_group <= 64:
// a bit mask; the launcher checks). The j-th choice is the best expert ordered after the (j-1)-th in
// (score descending, index ascending): k passes over the row, no list of taken experts to keep.
extern "C" __global__ void moe_topk(const scalar_t* __restrict__ scores, long long* __restrict__ idx, int n, int e,
                                    int top_k, int n_group, int topk_group, int top2) {
    const int k = top_k;
    const int tok = blockIdx.x * blockDim.x + threadIdx.x;
    if (tok >= n) return;
    const scalar_t* row = scores + (long long)tok * e;
    const bool grouped = n_group > 1 && topk_group < n_group;
    const int per = grouped ? e / n_group : e;
    unsigned long long allowed = ~0ull;  // bit g: group g is among the token's topk_group best
    if (grouped) {
        allowed = 0;
        for (int g = 0; g < n_group; ++g) {
            const acc_t s = group_score(row, g, per, top2);
            int rank = 0;  // groups ahead of g: better, or as good with a lower index
            for (int o = 0; o < n_group; ++o) {
                const acc_t so = group_score(row, o, per, top2);
                rank += (so > s || (so == s && o < g)) ? 1 : 0;
            }
            if (rank < topk_group) allowed |= 1ull << g;
        }
    }
    acc_t prev_v = 0;
    int prev_i = -1;
    for (int j = 0; j < k; ++j) {
        acc_t best_v = 0;
        int best_i = -1;
        for (int x = 0; x < e; ++x) {
            const acc_t v = (allowed >> (x / per)) & 1ull ? widen(row[x]) : neg_inf();  // as the reference's -inf
            const bool after = prev_i < 0 || v < prev_v || (v == prev_v && x > prev_i);
            if (after && (best_i < 0 || v > best_v)) { best_v = v; best_i = x; }  // strict >: lower index on ties
        }
        idx[(long long)tok * k + j] = best_i;
        prev_v = best_v;
        prev_i = best_i;
    }
}

// rank[s] = place of slot s among expert flat[s]'s slots, in slot order; load[e] = how many. A stable
// counting sort without atomics: block e walks all S slots in tiles of blockDim.x and prefix-sums its
// matches in shared memory (Hillis-Steele), so the ranks are the same on every run. Grid (E); block
// (threads <= 1024). A slot whose expert is outside [0, E) gets no rank (the loads then sum to < S).
extern "C" __global__ void moe_expert_rank(const long long* __restrict__ flat, int* __restrict__ rank,
                                           long long* __restrict__ load, int s) {
    __shared__ int scan[1024];
    const long long e = blockIdx.x;
    const int tid = threadIdx.x;
    int running = 0;
    for (int base = 0; base < s; base += blockDim.x) {  // the same trip count for every thread
        const int i = base + tid;
        const int hit = (i < s && flat[i] == e) ? 1 : 0;
        scan[tid] = hit;
        __syncthreads();
        for (int off = 1; off < (int)blockDim.x; off <<= 1) {
            const int v = tid >= off ? scan[tid - off] : 0;
            __syncthreads();
            scan[tid] += v;
            __syncthreads();
        }
        if (hit) rank[i] = running + scan[tid] - 1;
        running += scan[blockDim.x - 1];
        __syncthreads();  // everyone has read scan[last] before the next tile overwrites it
    }
    if (tid == 0) load[e] = running;
}

// order[offsets[e] + rank] = s and slot_row[s] = that row for a kept slot (rank < capacity, or any rank
// when capacity < 0); slot_row[s] = -1 for a dropped one. One thread per slot: a permutation, no two
// threads write one place.
extern "C" __global__ void moe_place(const long long* __restrict__ flat, const int* __restrict__ rank,
                                     const long long* __restrict__ offsets, long long* __restrict__ order,
                                     long long* __restrict__ slot_row, int s, long long capacity) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= s) return;
    const int r = rank[i];
    if (capacity < 0 || r < capacity) {
        const long long row = offsets[flat[i]] + r;
        order[row] = i;
        slot_row[i] = row;
    } else {
        slot_row[i] = -1;
    }
}
