// cuda_on_cpu.h - just enough of CUDA's execution model to run a kernel source on the CPU.
//
// tests/support/emulator.py compiles a kernel module (the same text NVRTC compiles) after this header,
// with the host C++ compiler. A grid's blocks run GS_EMU_TEAMS at a time, concurrently, as on
// a GPU's multiprocessors, in an order shuffled afresh at every launch: each team, one real
// thread, takes the next block of the shuffled order when its previous block is done. A
// block's CUDA threads are fibers of its team's thread (ucontext), run in turn up to their
// next barrier: __syncthreads releases them when every thread of the block that has not
// returned arrived, a warp exchange (shuffles) when every lane of the warp did; a barrier
// that can never be released (divergent __syncthreads) aborts. Atomics are the compiler's
// atomic builtins, shared by all teams as device atomics are. Shared memory is per team: the
// module's kernel text is compiled once per team, in namespaces gs_emu_slot0, gs_emu_slot1,
// ..., so every `__shared__` (a static) has one instance per team, reused by the blocks that
// team runs in turn; GS_EMU_SLOTS(call) makes a call in the copy of the calling team.
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __constant__
#define __shared__ static
#define __launch_bounds__(...)

#define GS_EMU_TEAMS 2  // blocks resident at once (tests/support/emulator.py makes one copy each)

struct gs_emu_dim3 {
    unsigned x, y, z;
};

inline thread_local gs_emu_dim3 threadIdx, blockIdx;  // per team thread; threadIdx per fiber
inline gs_emu_dim3 blockDim, gridDim;

namespace gs_emu {
enum FiberState { RUNNABLE, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };
constexpr size_t FIBER_STACK = 128 * 1024;

struct Fiber {
    ucontext_t context;
    std::unique_ptr<char[]> stack{new char[FIBER_STACK]};  // untouched memory stays unmapped
    FiberState state = RUNNABLE;
};

// One resident block at a time: its fibers, barrier counts and shared memory.
struct Team {
    Team(unsigned threads, size_t shared_bytes) : fibers(threads), shared((shared_bytes + 7) / 8) {}
    ucontext_t scheduler;
    std::vector<Fiber> fibers;
    unsigned current = 0;  // the fiber running now
    unsigned done = 0, at_block_barrier = 0;
    unsigned warp_done[32] = {}, at_warp_barrier[32] = {};
    unsigned long long warp_slots[2][32][32];  // alternate shuffles use alternate slots
    unsigned char warp_parity[32][32] = {};     // per lane: which slots its next shuffle uses
    std::vector<double> shared;  // dynamic shared memory, sized as the launch asks
    const std::function<void()>* body = nullptr;
};
inline thread_local Team* team = nullptr;
inline thread_local int slot = 0;  // which copy of the kernel text this team runs
inline thread_local double* dynamic_shared = nullptr;

inline unsigned warp_size_of(const Team& t, unsigned warp) {
    const unsigned threads = (unsigned)t.fibers.size();
    return std::min(32u, threads - 32 * warp);
}

// Release the block barrier, or a warp's, once everyone still running has arrived.
inline void release_barriers(Team& t) {
    const unsigned threads = (unsigned)t.fibers.size();
    if (t.at_block_barrier && t.at_block_barrier == threads - t.done) {
        for (auto& f : t.fibers) {
            if (f.state == AT_BLOCK_BARRIER) f.state = RUNNABLE;
        }
        t.at_block_barrier = 0;
    }
    for (unsigned w = 0; w * 32 < threads; ++w) {
        if (t.at_warp_barrier[w] && t.at_warp_barrier[w] == warp_size_of(t, w) - t.warp_done[w]) {
            for (unsigned i = 32 * w; i < 32 * w + warp_size_of(t, w); ++i) {
                if (t.fibers[i].state == AT_WARP_BARRIER) t.fibers[i].state = RUNNABLE;
            }
            t.at_warp_barrier[w] = 0;
        }
    }
}

inline void wait_at(FiberState barrier) {
    Team& t = *team;
    Fiber& self = t.fibers[t.current];
    self.state = barrier;
    if (barrier == AT_BLOCK_BARRIER) {
        ++t.at_block_barrier;
    } else {
        ++t.at_warp_barrier[t.current / 32];
    }
    release_barriers(t);
    swapcontext(&self.context, &t.scheduler);
}

inline void fiber_entry() {
    Team& t = *team;
    (*t.body)();
    t.fibers[t.current].state = DONE;
    ++t.done;
    ++t.warp_done[t.current / 32];
    release_barriers(t);
}  // returns to t.scheduler (uc_link)

// Run one block: every fiber from the start of `body` to its end, barrier to barrier.
inline void run_block(Team& t) {
    t.done = t.at_block_barrier = 0;
    std::fill(std::begin(t.warp_done), std::end(t.warp_done), 0u);
    std::fill(std::begin(t.at_warp_barrier), std::end(t.at_warp_barrier), 0u);
    for (auto& f : t.fibers) {
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = f.stack.get();
        f.context.uc_stack.ss_size = FIBER_STACK;
        f.context.uc_link = &t.scheduler;
        makecontext(&f.context, fiber_entry, 0);
        f.state = RUNNABLE;
    }
    const unsigned threads = (unsigned)t.fibers.size();
    while (t.done < threads) {
        bool ran = false;
        for (unsigned i = 0; i < threads; ++i) {
            if (t.fibers[i].state != RUNNABLE) continue;
            ran = true;
            t.current = i;
            threadIdx = {i, 0, 0};
            swapcontext(&t.scheduler, &t.fibers[i].context);
        }
        if (!ran) {
            std::fprintf(stderr, "cuda_on_cpu: a barrier no thread can pass (divergent)\n");
            std::abort();
        }
    }
}
}  // namespace gs_emu

#define GS_EMU_SLOTS(...)                                \
    do {                                                 \
        if (gs_emu::slot == 0) {                         \
            using namespace gs_emu_slot0;                \
            __VA_ARGS__;                                 \
        } else {                                         \
            using namespace gs_emu_slot1;                \
            __VA_ARGS__;                                 \
        }                                                \
    } while (0)

inline void __syncthreads() { gs_emu::wait_at(gs_emu::AT_BLOCK_BARRIER); }

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

template <typename T>
T __shfl_down_sync(unsigned, T value, int offset) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    const unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    gs_emu::Team& team = *gs_emu::team;
    // One exchange a shuffle: a lane writes this shuffle's slots, waits for its warp, reads a
    // neighbour's. The next shuffle writes the other slots, so nobody overwrites a value still
    // being read; the one after can only start once every lane passed the next exchange.
    unsigned char& parity = team.warp_parity[warp][lane];
    auto& slots = team.warp_slots[parity];
    parity ^= 1;
    std::memcpy(&slots[warp][lane], &value, sizeof(T));
    gs_emu::wait_at(gs_emu::AT_WARP_BARRIER);
    T result = value;  // a lane with no source lane keeps its own value
    if (lane + offset < 32) {
        std::memcpy(&result, &slots[warp][lane + offset], sizeof(T));
    }
    return result;
}

inline unsigned atomicAdd(unsigned* address, unsigned value) {
    return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);
}

inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
    return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);
}

inline unsigned long long atomicMin(unsigned long long* address, unsigned long long value) {
    unsigned long long seen = __atomic_load_n(address, __ATOMIC_RELAXED);
    while (value < seen && !__atomic_compare_exchange_n(address, &seen, value, true,
                                                         __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return seen;
}

// Double addition as sm_60's atomicAdd: a compare-and-swap loop on the bits.
inline double atomicAdd(double* address, double value) {
    unsigned long long* bits = reinterpret_cast<unsigned long long*>(address);
    unsigned long long seen = __atomic_load_n(bits, __ATOMIC_RELAXED);
    for (;;) {
        double old;
        std::memcpy(&old, &seen, sizeof old);
        const double sum = old + value;
        unsigned long long next;
        std::memcpy(&next, &sum, sizeof next);
        if (__atomic_compare_exchange_n(bits, &seen, next, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
            return old;
        }
    }
}

template <typename T>
T __ldcg(const T* address) {
    return __atomic_load_n(address, __ATOMIC_RELAXED);
}

inline long long __double_as_longlong(double value) {
    long long bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

inline double __longlong_as_double(long long bits) {
    double value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

// Run `body` as a grid of `grid` blocks of `threads` threads, with `shared_bytes` of dynamic
// shared memory a block. GS_EMU_TEAMS teams run the blocks concurrently, in an order shuffled
// at every launch; each team takes the next block of that order when its block is done.
template <typename Body>
void gs_emu_launch(unsigned grid, unsigned threads, size_t shared_bytes, Body body) {
    gridDim = {grid, 1, 1};
    blockDim = {threads, 1, 1};
    std::vector<unsigned> order(grid);
    std::iota(order.begin(), order.end(), 0u);
    std::shuffle(order.begin(), order.end(), std::mt19937(std::random_device{}()));
    std::atomic<unsigned> next{0};
    const std::function<void()> work = body;
    std::vector<std::thread> teams;
    for (int slot = 0; slot < GS_EMU_TEAMS; ++slot) {
        teams.emplace_back([slot, grid, threads, shared_bytes, &order, &next, &work] {
            gs_emu::Team team(threads, shared_bytes);
            team.body = &work;
            gs_emu::team = &team;
            gs_emu::slot = slot;
            gs_emu::dynamic_shared = team.shared.data();
            for (unsigned block = next.fetch_add(1); block < grid; block = next.fetch_add(1)) {
                blockIdx = {order[block], 0, 0};
                gs_emu::run_block(team);
            }
        });
    }
    for (auto& thread : teams) thread.join();
}
