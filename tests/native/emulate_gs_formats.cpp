// gs_format_counts launched on the CPU (cuda_on_cpu.h), behind a C interface for ctypes. The
// kernel source is spliced in before this file by tests/support/emulator.py. Takes the storage
// type's index in CUDA_TYPES first and returns sizeof(T) (-1 for an unknown index).

#include "emulate_by_type.h"

extern "C" int emu_gs_format_counts(int type, unsigned grid, unsigned long long data,
                                    long long n, int ndim, long long shape1, long long shape2,
                                    long long shape3, long long shape4, long long shape5,
                                    long long stride0, long long stride1, long long stride2,
                                    long long stride3, long long stride4, long long stride5,
                                    int n_formats, unsigned long long over0,
                                    unsigned long long over1, unsigned long long over2,
                                    unsigned long long over3, unsigned long long under0,
                                    unsigned long long under1, unsigned long long under2,
                                    unsigned long long under3, unsigned long long out) {
    return by_type(type, [&](auto tag) {
        using T = decltype(tag);
        gs_emu_launch(grid, GS_THREADS, 0, [&] {
            GS_EMU_SLOTS(gs_format_counts<T>(
                reinterpret_cast<const T*>(data), n, ndim, shape1, shape2, shape3, shape4,
                shape5, stride0, stride1, stride2, stride3, stride4, stride5, n_formats, over0,
                over1, over2, over3, under0, under1, under2, under3,
                reinterpret_cast<unsigned long long*>(out)));
        });
        return (int)sizeof(T);
    });
}
