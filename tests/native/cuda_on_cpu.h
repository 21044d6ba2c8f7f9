// cuda_on_cpu.h - just enough of CUDA's execution model to run a kernel source on the CPU.
//
// tests/emulator.py compiles a kernel module (the same text NVRTC compiles) after this header,
// with the host C++ compiler. A grid's blocks run GS_EMU_TEAMS at a time, concurrently, as on
// a GPU's multiprocessors, in an order shuffled afresh at every launch: each team of real
// threads (one std::thread per CUDA thread of a block) takes the next block of the shuffled
// order when its previous block is done. Within a block, __syncthreads is a barrier of the
// team's threads, warp shuffles exchange values through per-warp slots between two barriers of
// the warp (one barrier a shuffle), atomics are the compiler's atomic builtins (shared by all teams, as device atomics
// are). Shared memory is per team: the module's kernel text is compiled once per team, in
// namespaces gs_emu_slot0, gs_emu_slot1, ..., so every `__shared__` (a static) has one
// instance per team, reused by the blocks that team runs in turn; GS_EMU_SLOTS(call) makes a
// call in the copy of the calling team.
#pragma once

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstring>
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

#define GS_EMU_TEAMS 2  // blocks resident at once (tests/emulator.py makes one copy each)

struct gs_emu_dim3 {
    unsigned x, y, z;
};

inline thread_local gs_emu_dim3 threadIdx, blockIdx;
inline gs_emu_dim3 blockDim, gridDim;

namespace gs_emu {
// What the threads of one team (one resident block) share.
struct Team {
    explicit Team(unsigned threads, size_t shared_bytes)
        : block_barrier(threads), between_blocks(threads), shared((shared_bytes + 7) / 8) {
        for (unsigned w = 0; w < (threads + 31) / 32; ++w) {
            warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
        }
    }
    std::barrier<> block_barrier;   // __syncthreads
    std::barrier<> between_blocks;  // the team moves on to its next block together
    std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
    unsigned long long warp_slots[2][32][32];  // alternate shuffles use alternate slots
    unsigned char warp_parity[32][32] = {};     // per lane: which slots its next shuffle uses
    std::vector<double> shared;  // dynamic shared memory, sized as the launch asks
    unsigned block = 0;          // index into the launch's order of the block being run
};
inline thread_local Team* team = nullptr;
inline thread_local int slot = 0;  // which copy of the kernel text this team runs
inline thread_local double* dynamic_shared = nullptr;
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

inline void __syncthreads() { gs_emu::team->block_barrier.arrive_and_wait(); }

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

template <typename T>
T __shfl_down_sync(unsigned, T value, int offset) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    const unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    gs_emu::Team& team = *gs_emu::team;
    // One barrier a shuffle: a lane writes this shuffle's slots, waits for its warp, reads a
    // neighbour's. The next shuffle writes the other slots, so nobody overwrites a value still
    // being read; the one after can only start once every lane passed the next barrier.
    unsigned char& parity = team.warp_parity[warp][lane];
    auto& slots = team.warp_slots[parity];
    parity ^= 1;
    std::memcpy(&slots[warp][lane], &value, sizeof(T));
    team.warp_barriers[warp]->arrive_and_wait();
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
// at every launch; each team's thread 0 takes the next block of that order for its team.
template <typename Body>
void gs_emu_launch(unsigned grid, unsigned threads, size_t shared_bytes, Body body) {
    gridDim = {grid, 1, 1};
    blockDim = {threads, 1, 1};
    std::vector<unsigned> order(grid);
    std::iota(order.begin(), order.end(), 0u);
    std::shuffle(order.begin(), order.end(), std::mt19937(std::random_device{}()));
    std::atomic<unsigned> next{0};
    std::vector<std::unique_ptr<gs_emu::Team>> teams;
    for (int t = 0; t < GS_EMU_TEAMS; ++t) {
        teams.push_back(std::make_unique<gs_emu::Team>(threads, shared_bytes));
    }
    std::vector<std::thread> workers;
    for (int slot = 0; slot < GS_EMU_TEAMS; ++slot) {
        for (unsigned t = 0; t < threads; ++t) {
            workers.emplace_back([t, slot, grid, &order, &next, &teams, &body] {
                gs_emu::Team& team = *teams[slot];
                gs_emu::team = &team;
                gs_emu::slot = slot;
                gs_emu::dynamic_shared = team.shared.data();
                threadIdx = {t, 0, 0};
                for (;;) {
                    if (t == 0) {
                        team.block = next.fetch_add(1);
                    }
                    team.between_blocks.arrive_and_wait();
                    const unsigned block = team.block;
                    if (block >= grid) {
                        break;
                    }
                    blockIdx = {order[block], 0, 0};
                    body();
                    team.between_blocks.arrive_and_wait();  // all have read team.block
                }
            });
        }
    }
    for (auto& worker : workers) worker.join();
}
