// The storage type of a CUDA_TYPES index (gpu_summary._backend.cuda_kernels.sources), for the
// emulated kernels' C wrappers: run(T{}) for type index `type`, -1 for an unknown index.
// Included by the wrappers, after the kernel source (which defines gs::half16, gs::bfloat16).
#pragma once

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
