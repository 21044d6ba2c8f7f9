// gs_thumbnails launched on the CPU (cuda_on_cpu.h), behind a C interface for ctypes. The
// kernel source is spliced in before this file by tests/support/emulator.py.

#define GS_EMU_PARAMS                                                                        \
    unsigned grid, unsigned long long src, long long n, long long h, long long w, long long c, \
        long long stride_n, long long stride_h, long long stride_w, long long stride_c,       \
        long long out_h, long long out_w, unsigned long long out, int truncate

template <typename T>
int emulate(GS_EMU_PARAMS) {
    gs_emu_launch(grid, GS_THREADS, 0, [&] {
        GS_EMU_SLOTS(gs_thumbnails<T>(reinterpret_cast<const T*>(src), n, h, w, c, stride_n, stride_h,
                         stride_w, stride_c, out_h, out_w, reinterpret_cast<unsigned char*>(out),
                         truncate));
    });
    return (int)sizeof(T);
}

// Storage types in the order of gpu_summary._kernels.CUDA_TYPES (image types only); returns
// sizeof(T), or -1 for a type gs_thumbnails is not instantiated for.
extern "C" int emu_gs_thumbnails(int type, GS_EMU_PARAMS) {
    const auto args = [&](auto tag) {
        return emulate<decltype(tag)>(grid, src, n, h, w, c, stride_n, stride_h, stride_w,
                                      stride_c, out_h, out_w, out, truncate);
    };
    switch (type) {
        case 0: return args(bool{});
        case 5: return args((unsigned char)0);
        case 9: return args(gs::half16{});
        case 10: return args(gs::bfloat16{});
        case 11: return args(0.0f);
        case 12: return args(0.0);
    }
    return -1;
}
