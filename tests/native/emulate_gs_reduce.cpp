// gs_reduce launched on the CPU (cuda_on_cpu.h), behind a C interface for ctypes. The kernel
// source is spliced in before this file by tests/test_kernels_emulated.py. Pointers arrive as
// integers, as the device backend passes device addresses.

#define GS_EMU_PARAMS                                                                          \
    unsigned grid, unsigned long long shared_bytes, unsigned long long data, long long n,       \
        int ndim, long long shape1, long long shape2, long long shape3, long long shape4,      \
        long long shape5, long long stride0, long long stride1, long long stride2,             \
        long long stride3, long long stride4, long long stride5, unsigned long long limits,    \
        int n_limits, int shared_limits, int shared_counts, int bins, unsigned long long counts, \
        unsigned long long stats, unsigned long long block_stats, unsigned long long blocks_done

#define GS_EMU_ARGS                                                                         \
    grid, shared_bytes, data, n, ndim, shape1, shape2, shape3, shape4, shape5, stride0,     \
        stride1, stride2, stride3, stride4, stride5, limits, n_limits, shared_limits,       \
        shared_counts, bins, counts, stats, block_stats, blocks_done

template <typename T, int MODE>
void emulate(GS_EMU_PARAMS) {
    gs_emu_launch(grid, GS_THREADS, shared_bytes, [&] {
        GS_EMU_SLOTS(gs_reduce<T, MODE>(reinterpret_cast<const T*>(data), n, ndim, shape1, shape2, shape3,
                           shape4, shape5, stride0, stride1, stride2, stride3, stride4, stride5,
                           reinterpret_cast<const double*>(limits), n_limits, shared_limits,
                           shared_counts, bins, reinterpret_cast<unsigned long long*>(counts),
                           reinterpret_cast<unsigned long long*>(stats),
                           reinterpret_cast<unsigned long long*>(block_stats),
                           reinterpret_cast<unsigned int*>(blocks_done)));
    });
}

template <typename T>
int by_mode(int mode, GS_EMU_PARAMS) {
    switch (mode) {
        case 0: emulate<T, 0>(GS_EMU_ARGS); return (int)sizeof(T);
        case 1: emulate<T, 1>(GS_EMU_ARGS); return (int)sizeof(T);
        case 2: emulate<T, 2>(GS_EMU_ARGS); return (int)sizeof(T);
        case 3: emulate<T, 3>(GS_EMU_ARGS); return (int)sizeof(T);
        case 4: emulate<T, 4>(GS_EMU_ARGS); return (int)sizeof(T);
    }
    return -1;
}

// Storage types in the order of gpu_summary._kernels.CUDA_TYPES; returns sizeof(T) (-1 for an
// unknown type or mode), which the test checks against the dtype's itemsize.
extern "C" int emu_gs_reduce(int type, int mode, GS_EMU_PARAMS) {
    switch (type) {
        case 0: return by_mode<bool>(mode, GS_EMU_ARGS);
        case 1: return by_mode<signed char>(mode, GS_EMU_ARGS);
        case 2: return by_mode<short>(mode, GS_EMU_ARGS);
        case 3: return by_mode<int>(mode, GS_EMU_ARGS);
        case 4: return by_mode<long long>(mode, GS_EMU_ARGS);
        case 5: return by_mode<unsigned char>(mode, GS_EMU_ARGS);
        case 6: return by_mode<unsigned short>(mode, GS_EMU_ARGS);
        case 7: return by_mode<unsigned int>(mode, GS_EMU_ARGS);
        case 8: return by_mode<unsigned long long>(mode, GS_EMU_ARGS);
        case 9: return by_mode<gs::half16>(mode, GS_EMU_ARGS);
        case 10: return by_mode<gs::bfloat16>(mode, GS_EMU_ARGS);
        case 11: return by_mode<float>(mode, GS_EMU_ARGS);
        case 12: return by_mode<double>(mode, GS_EMU_ARGS);
    }
    return -1;
}

// gs_multi_ladder<T>: the same storage-type indices; returns sizeof(T), -1 if unknown.
#define GS_EMU_MULTI_PARAMS                                                                  \
    unsigned grid, unsigned long long shared_bytes, unsigned long long pointers,              \
        unsigned long long lengths, unsigned long long strides, unsigned long long first_chunk, \
        int n_tensors, unsigned long long counts, unsigned long long stats,                   \
        unsigned long long chunk_stats, unsigned long long chunks_done

template <typename T>
int emulate_multi(GS_EMU_MULTI_PARAMS) {
    gs_emu_launch(grid, GS_THREADS, shared_bytes, [&] {
        GS_EMU_SLOTS(gs_multi_ladder<T>(reinterpret_cast<const unsigned long long*>(pointers),
                           reinterpret_cast<const long long*>(lengths),
                           reinterpret_cast<const long long*>(strides),
                           reinterpret_cast<const long long*>(first_chunk), n_tensors,
                           reinterpret_cast<unsigned long long*>(counts),
                           reinterpret_cast<unsigned long long*>(stats),
                           reinterpret_cast<unsigned long long*>(chunk_stats),
                           reinterpret_cast<unsigned int*>(chunks_done)));
    });
    return (int)sizeof(T);
}

extern "C" int emu_gs_multi_ladder(int type, GS_EMU_MULTI_PARAMS) {
#define GS_EMU_MULTI_ARGS                                                                    \
    grid, shared_bytes, pointers, lengths, strides, first_chunk, n_tensors, counts, stats,    \
        chunk_stats, chunks_done
    switch (type) {
        case 0: return emulate_multi<bool>(GS_EMU_MULTI_ARGS);
        case 1: return emulate_multi<signed char>(GS_EMU_MULTI_ARGS);
        case 2: return emulate_multi<short>(GS_EMU_MULTI_ARGS);
        case 3: return emulate_multi<int>(GS_EMU_MULTI_ARGS);
        case 4: return emulate_multi<long long>(GS_EMU_MULTI_ARGS);
        case 5: return emulate_multi<unsigned char>(GS_EMU_MULTI_ARGS);
        case 6: return emulate_multi<unsigned short>(GS_EMU_MULTI_ARGS);
        case 7: return emulate_multi<unsigned int>(GS_EMU_MULTI_ARGS);
        case 8: return emulate_multi<unsigned long long>(GS_EMU_MULTI_ARGS);
        case 9: return emulate_multi<gs::half16>(GS_EMU_MULTI_ARGS);
        case 10: return emulate_multi<gs::bfloat16>(GS_EMU_MULTI_ARGS);
        case 11: return emulate_multi<float>(GS_EMU_MULTI_ARGS);
        case 12: return emulate_multi<double>(GS_EMU_MULTI_ARGS);
    }
    return -1;
}

// gs_flight<T>: the same storage-type indices; returns sizeof(T), -1 if unknown.
#include "emulate_by_type.h"

extern "C" int emu_gs_flight(int type, unsigned grid, unsigned long long pointers,
                             unsigned long long lengths, unsigned long long strides,
                             unsigned long long first_chunk, unsigned long long columns,
                             unsigned long long orders, int n_tensors, long long n_columns,
                             long long slot, long long step, unsigned long long ring,
                             unsigned long long scratch, unsigned long long chunks_done) {
    return by_type(type, [&](auto tag) {
        using T = decltype(tag);
        gs_emu_launch(grid, GS_THREADS, 0, [&] {
            GS_EMU_SLOTS(gs_flight<T>(reinterpret_cast<const unsigned long long*>(pointers),
                                      reinterpret_cast<const long long*>(lengths),
                                      reinterpret_cast<const long long*>(strides),
                                      reinterpret_cast<const long long*>(first_chunk),
                                      reinterpret_cast<const long long*>(columns),
                                      reinterpret_cast<const long long*>(orders), n_tensors,
                                      n_columns, slot, step,
                                      reinterpret_cast<unsigned long long*>(ring),
                                      reinterpret_cast<unsigned long long*>(scratch),
                                      reinterpret_cast<unsigned int*>(chunks_done)));
        });
        return (int)sizeof(T);
    });
}
