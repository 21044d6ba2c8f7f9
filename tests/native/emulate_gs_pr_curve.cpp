// gs_pr_counts launched on the CPU (cuda_on_cpu.h), behind a C interface for ctypes. The
// kernel source is spliced in before this file by tests/support/emulator.py. Takes the
// prediction type's index in CUDA_TYPES first and returns sizeof(P).

#include "emulate_by_type.h"

extern "C" int emu_gs_pr_counts(int type, unsigned grid, unsigned long long shared_bytes,
                                unsigned long long predictions, unsigned long long labels,
                                int label_type, unsigned long long weights, int weight_type,
                                long long n, int thresholds, int bits, int min_exponent,
                                int integer_sums,
                                unsigned long long out, unsigned long long skipped) {
    return by_type(type, [&](auto tag) {
        using P = decltype(tag);
        gs_emu_launch(grid, GS_THREADS, shared_bytes, [&] {
            GS_EMU_SLOTS(gs_pr_counts<P>(
                reinterpret_cast<const P*>(predictions), reinterpret_cast<const void*>(labels),
                label_type, reinterpret_cast<const void*>(weights), weight_type, n, thresholds,
                bits, min_exponent, integer_sums, reinterpret_cast<double*>(out),
                reinterpret_cast<unsigned long long*>(skipped)));
        });
        return (int)sizeof(P);
    });
}
