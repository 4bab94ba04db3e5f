// A CPU emulator for the CUDA C of kernels/cuda, so the CPU tests can run the kernels themselves
// (tests/cuda_emulator/__init__.py builds each kernel file with g++ and this header force-included).
// One block runs at a time; its threads are fibers (ucontext) on one OS thread, each running until it
// reaches a barrier: __syncthreads (the whole block), a warp shuffle (its warp of 32), or its end. A
// fiber only ever stops at those points, so a kernel that reads shared memory another thread writes
// without a barrier in between reads stale data here too, and a barrier that only some threads reach
// is reported as an error instead of hanging. __shared__ arrays are static locals: one copy, shared
// by the block's threads and reused by the next block, as on the GPU.
#pragma once
#include <ucontext.h>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static
#define __launch_bounds__(...)

using std::erf;
using std::exp;
using std::fmax;
using std::log;
using std::sqrt;

template <class T> inline T min(T a, T b) { return b < a ? b : a; }
template <class T> inline T max(T a, T b) { return a < b ? b : a; }

inline float __int_as_float(unsigned bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

namespace emu {
enum State { RUN, WAIT_BLOCK, WAIT_WARP, DONE };

struct Fiber {
    ucontext_t ctx;
    std::vector<char> stack;
    dim3 tid;
    State state = RUN;
    unsigned round = 0;  // warp shuffles done so far (selects one of two exchange buffers)
};

inline dim3 thread_idx, block_idx, block_dim, grid_dim;
inline std::vector<Fiber> fibers;
inline int current = 0;
inline ucontext_t scheduler;
inline std::function<void()> body;
inline unsigned long long exchange[2][1024];  // warp shuffle values, by round parity and thread
inline std::string error;

inline void yield(State s) {
    fibers[current].state = s;
    swapcontext(&fibers[current].ctx, &scheduler);
}

inline void trampoline() {
    try {
        body();
    } catch (const std::exception& e) {
        error = e.what();
    }
    fibers[current].state = DONE;
    swapcontext(&fibers[current].ctx, &scheduler);
}

// Release what may go on: a warp whose 32 fibers all wait at a shuffle; the block when every fiber that
// has not finished waits at __syncthreads. False when nothing can (a barrier some threads never reach).
inline bool release(int n) {
    bool any = false, block_ready = true, all_done = true;
    for (int w = 0; w * 32 < n; ++w) {
        bool ready = true;
        for (int i = w * 32; i < min(n, w * 32 + 32); ++i) ready = ready && fibers[i].state == WAIT_WARP;
        if (ready) {
            for (int i = w * 32; i < min(n, w * 32 + 32); ++i) fibers[i].state = RUN;
            any = true;
        }
    }
    for (int i = 0; i < n; ++i) {
        block_ready = block_ready && (fibers[i].state == WAIT_BLOCK || fibers[i].state == DONE);
        all_done = all_done && fibers[i].state == DONE;
    }
    if (!any && block_ready && !all_done) {
        for (int i = 0; i < n; ++i)
            if (fibers[i].state == WAIT_BLOCK) fibers[i].state = RUN;
        any = true;
    }
    return any || all_done;
}

inline void run_block(int n, bool reverse) {
    for (int i = 0; i < n; ++i) {
        Fiber& f = fibers[i];
        f.state = RUN;
        f.round = 0;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack.data();
        f.ctx.uc_stack.ss_size = f.stack.size();
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, trampoline, 0);
    }
    for (;;) {
        bool ran = false, all_done = true;
        for (int k = 0; k < n; ++k) {
            const int i = reverse ? n - 1 - k : k;
            if (fibers[i].state == RUN) {
                current = i;
                thread_idx = fibers[i].tid;
                swapcontext(&scheduler, &fibers[i].ctx);
                ran = true;
            }
            all_done = all_done && fibers[i].state == DONE;
        }
        if (!error.empty()) throw std::runtime_error(error);
        if (all_done) return;
        if (!ran && !release(n)) throw std::runtime_error("a barrier or shuffle that not every thread reaches");
        if (ran) release(n);
    }
}

inline int launch(dim3 grid, dim3 block, bool reverse, std::function<void()> kernel) {
    const int n = (int)(block.x * block.y * block.z);
    if (n > 1024) throw std::runtime_error("more than 1024 threads per block");
    fibers.resize(n);
    for (int i = 0; i < n; ++i) {
        if (fibers[i].stack.empty()) fibers[i].stack.resize(256 * 1024);
        fibers[i].tid = dim3{(unsigned)(i % block.x), (unsigned)((i / block.x) % block.y),
                             (unsigned)(i / (block.x * block.y))};
    }
    body = kernel;
    block_dim = block;
    grid_dim = grid;
    error.clear();
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                block_idx = dim3{x, y, z};
                run_block(n, reverse);
            }
    return 0;
}

template <class T> inline T shfl_xor(T v, int offset) {
    const int lane = current % 32, me = current;
    const unsigned r = fibers[me].round++ & 1;
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    std::memcpy(&exchange[r][me], &v, sizeof(T));
    yield(WAIT_WARP);
    T out;
    std::memcpy(&out, &exchange[r][me - lane + (lane ^ offset)], sizeof(T));
    return out;
}
}  // namespace emu

#define threadIdx (emu::thread_idx)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)

inline void __syncthreads() { emu::yield(emu::WAIT_BLOCK); }
template <class T> inline T __shfl_xor_sync(unsigned, T v, int offset) { return emu::shfl_xor(v, offset); }
// Fibers switch only at barriers, so a read-modify-write is atomic here.
template <class T> inline T atomicAdd(T* p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}
