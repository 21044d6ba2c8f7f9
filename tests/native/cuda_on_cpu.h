// cuda_on_cpu.h - just enough of CUDA's execution model to run a kernel source on the CPU.
//
// tests/test_kernels_emulated.py compiles a kernel module (the same text NVRTC compiles) after
// this header, with the host C++ compiler: every CUDA thread of a block is a real std::thread,
// __syncthreads is a barrier of the block's threads, warp shuffles exchange values through
// per-warp slots between two barriers of the warp, atomics are the compiler's atomic builtins,
// and blocks run one after another (as a GPU may schedule them), by one team of threads. Shared memory is one static
// instance per variable, which is what blocks see when they run one at a time.
#pragma once

#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __constant__
#define __shared__ static
#define __launch_bounds__(...)

struct gs_emu_dim3 {
    unsigned x, y, z;
};

inline thread_local gs_emu_dim3 threadIdx;
inline gs_emu_dim3 blockIdx, blockDim, gridDim;

namespace gs_emu {
inline double* dynamic_shared = nullptr;
inline std::barrier<>* block_barrier = nullptr;
inline std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
inline unsigned long long warp_slots[32][32];
}  // namespace gs_emu

inline void __syncthreads() { gs_emu::block_barrier->arrive_and_wait(); }

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

template <typename T>
T __shfl_down_sync(unsigned, T value, int offset) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    const unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    std::memcpy(&gs_emu::warp_slots[warp][lane], &value, sizeof(T));
    gs_emu::warp_barriers[warp]->arrive_and_wait();
    T result = value;  // a lane with no source lane keeps its own value
    if (lane + offset < 32) {
        std::memcpy(&result, &gs_emu::warp_slots[warp][lane + offset], sizeof(T));
    }
    gs_emu::warp_barriers[warp]->arrive_and_wait();
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
// shared memory (allocated to exactly that size). One team of threads runs the blocks in turn;
// a barrier between blocks advances blockIdx once every thread has left the previous one.
template <typename Body>
void gs_emu_launch(unsigned grid, unsigned threads, size_t shared_bytes, Body body) {
    std::vector<double> shared((shared_bytes + 7) / 8);
    gs_emu::dynamic_shared = shared.data();
    gridDim = {grid, 1, 1};
    blockDim = {threads, 1, 1};
    blockIdx = {0, 0, 0};
    std::barrier<> block_barrier(threads);
    gs_emu::block_barrier = &block_barrier;
    gs_emu::warp_barriers.clear();
    for (unsigned w = 0; w < (threads + 31) / 32; ++w) {
        gs_emu::warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
    }
    auto next_block = []() noexcept { ++blockIdx.x; };
    std::barrier between_blocks(threads, next_block);
    std::vector<std::thread> team;
    for (unsigned t = 0; t < threads; ++t) {
        team.emplace_back([t, grid, &body, &between_blocks] {
            threadIdx = {t, 0, 0};
            for (unsigned block = 0; block < grid; ++block) {
                body();
                between_blocks.arrive_and_wait();
            }
        });
    }
    for (auto& thread : team) thread.join();
}
