// gs_pr_counts launched on the CPU (cuda_on_cpu.h), behind a C interface for ctypes. The
// kernel source is spliced in before this file by tests/support/emulator.py. Takes the
// prediction type's index in CUDA_TYPES first and returns sizeof(P).

template <typename F>
int by_type(int type, F run) {
    switch (type) {
        case 0: return run(bool{});
        case 1: return run((signed char)0);
        case 2: return run((short)0);
        case 3: return run(0);
        case 4: return run(0LL);
        case 5: return run((unsigned char)0);
        case 6: return run((unsigned short)0);
        case 7: return run(0u);
        case 8: return run(0ULL);
        case 9: return run(gs::half16{});
        case 10: return run(gs::bfloat16{});
        case 11: return run(0.0f);
        case 12: return run(0.0);
    }
    return -1;
}

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
