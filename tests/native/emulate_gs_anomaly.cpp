// gs_anomaly.cu's kernels launched on the CPU (cuda_on_cpu.h), behind a C interface for
// ctypes. The kernel source is spliced in before this file by tests/support/emulator.py. Pointers
// arrive as integers, as the device backend passes device addresses; templated kernels take
// the storage type's index in gpu_summary._kernels.CUDA_TYPES first and return sizeof(T).

#define GS_EMU_LAYOUT                                                                         \
    unsigned long long data, long long n, int ndim, long long shape1, long long shape2,       \
        long long shape3, long long shape4, long long shape5, long long stride0,              \
        long long stride1, long long stride2, long long stride3, long long stride4,           \
        long long stride5
#define GS_EMU_LAYOUT_ARGS(T)                                                                 \
    reinterpret_cast<const T*>(data), n, ndim, shape1, shape2, shape3, shape4, shape5, stride0, \
        stride1, stride2, stride3, stride4, stride5

#include "emulate_by_type.h"

template <typename P>
P* as(unsigned long long address) {
    return reinterpret_cast<P*>(address);
}

extern "C" int emu_gs_anomaly_scan(int type, unsigned grid, GS_EMU_LAYOUT, double lower,
                                   double upper, int has_lower, int has_upper,
                                   unsigned long long counts, unsigned long long tile_counts,
                                   long long n_tiles) {
    return by_type(type, [&](auto tag) {
        using T = decltype(tag);
        gs_emu_launch(grid, GS_THREADS, 0, [&] {
            GS_EMU_SLOTS(gs_anomaly_scan<T>(GS_EMU_LAYOUT_ARGS(T), lower, upper, has_lower, has_upper,
                               as<unsigned long long>(counts), as<unsigned int>(tile_counts),
                               n_tiles));
        });
        return (int)sizeof(T);
    });
}

extern "C" int emu_gs_anomaly_offsets(unsigned grid, unsigned long long tile_counts,
                                      unsigned long long tile_offsets, long long n_tiles) {
    gs_emu_launch(grid, GS_THREADS, 0, [&] {
        GS_EMU_SLOTS(gs_anomaly_offsets(as<const unsigned int>(tile_counts),
                           as<unsigned long long>(tile_offsets), n_tiles));
    });
    return 1;
}

extern "C" int emu_gs_anomaly_collect(int type, unsigned grid, GS_EMU_LAYOUT, double lower,
                                      double upper, int has_lower, int has_upper,
                                      unsigned long long tile_counts,
                                      unsigned long long tile_offsets, long long n_tiles,
                                      long long max_positions, unsigned long long positions,
                                      unsigned long long values) {
    return by_type(type, [&](auto tag) {
        using T = decltype(tag);
        gs_emu_launch(grid, GS_THREADS, 0, [&] {
            GS_EMU_SLOTS(gs_anomaly_collect<T>(GS_EMU_LAYOUT_ARGS(T), lower, upper, has_lower, has_upper,
                                  as<const unsigned int>(tile_counts),
                                  as<const unsigned long long>(tile_offsets), n_tiles,
                                  max_positions, as<long long>(positions), as<double>(values)));
        });
        return (int)sizeof(T);
    });
}

extern "C" int emu_gs_heatmap(int type, unsigned grid, GS_EMU_LAYOUT, long long rows,
                              long long width, long long cell_rows, long long cell_columns,
                              unsigned long long heat_sum, unsigned long long heat_count,
                              unsigned long long heat_nonfinite) {
    return by_type(type, [&](auto tag) {
        using T = decltype(tag);
        gs_emu_launch(grid, GS_THREADS, 0, [&] {
            GS_EMU_SLOTS(gs_heatmap<T>(GS_EMU_LAYOUT_ARGS(T), rows, width, cell_rows, cell_columns,
                          as<double>(heat_sum), as<unsigned long long>(heat_count),
                          as<unsigned long long>(heat_nonfinite)));
        });
        return (int)sizeof(T);
    });
}

extern "C" int emu_gs_select_step(unsigned grid, unsigned long long state,
                                  unsigned long long stats, unsigned long long quantiles,
                                  int n_quantiles, int pass, int passes,
                                  unsigned long long keys) {
    gs_emu_launch(grid, GS_THREADS, 0, [&] {
        GS_EMU_SLOTS(gs_select_step(as<unsigned long long>(state), as<const unsigned long long>(stats),
                       as<const double>(quantiles), n_quantiles, pass, passes,
                       as<unsigned long long>(keys)));
    });
    return 1;
}

extern "C" int emu_gs_select_count(int type, unsigned grid, GS_EMU_LAYOUT,
                                   unsigned long long state, int pass) {
    return by_type(type, [&](auto tag) {
        using T = decltype(tag);
        gs_emu_launch(grid, GS_THREADS, 0, [&] {
            GS_EMU_SLOTS(gs_select_count<T>(GS_EMU_LAYOUT_ARGS(T), as<unsigned long long>(state), pass));
        });
        return (int)sizeof(T);
    });
}
