// The kernels' shared helpers (kernels/gs_common.cuh) compiled for the CPU, with a C interface
// over arrays for tests/test_kernel_helpers.py to call through ctypes. Each wrapper applies one
// helper to every element, exactly as a kernel thread would to its own. The test puts the
// ladder's macros (sources.ladder_prologue()) ahead of this file with -include.
#include "gs_common.cuh"

extern "C" {

void ladder_buckets(const double* x, long long n, const double* ladder, int* out) {
    for (long long i = 0; i < n; ++i) out[i] = gs::ladder_bucket(x[i], ladder);
}

void ladder_estimates(const double* x, long long n, int* out) {
    for (long long i = 0; i < n; ++i) out[i] = gs::ladder_estimate(x[i]);
}

void edge_buckets(const double* x, long long n, const double* limits, int n_limits, int* out) {
    for (long long i = 0; i < n; ++i) out[i] = gs::first_greater(x[i], limits, n_limits);
}

void even_edges(double lo, double hi, int bins, double* out) {
    const gs::EvenBins e = gs::even_bins(lo, hi, bins);
    for (int i = 0; i <= bins; ++i) out[i] = gs::even_edge(i, e);
}

void even_buckets(const double* x, long long n, double lo, double hi, int bins, int* out) {
    const gs::EvenBins e = gs::even_bins(lo, hi, bins);
    for (long long i = 0; i < n; ++i) out[i] = gs::even_bucket(x[i], e);
}

void float_to_double(const unsigned int* bits, long long n, double* out) {
    for (long long i = 0; i < n; ++i) {
        float f;
        memcpy(&f, &bits[i], sizeof f);
        out[i] = gs::to_double(f);
    }
}

void half_to_double(const unsigned short* h, long long n, double* out) {
    for (long long i = 0; i < n; ++i) out[i] = gs::to_double(gs::half16{h[i]});
}

void bfloat16_to_double(const unsigned short* b, long long n, double* out) {
    for (long long i = 0; i < n; ++i) out[i] = gs::to_double(gs::bfloat16{b[i]});
}

void int64_to_double(const long long* v, long long n, double* out) {
    for (long long i = 0; i < n; ++i) out[i] = gs::to_double(v[i]);
}

void uint64_to_double(const unsigned long long* v, long long n, double* out) {
    for (long long i = 0; i < n; ++i) out[i] = gs::to_double(v[i]);
}

void unit_to_u8(const double* x, long long n, unsigned char* out) {
    for (long long i = 0; i < n; ++i) out[i] = gs::unit_to_u8(x[i]);
}

void unit_to_u8_truncated(const double* x, long long n, unsigned char* out) {
    for (long long i = 0; i < n; ++i) out[i] = gs::unit_to_u8_truncated(x[i]);
}

// Order keys (gs::order_key) of arrays of each storage kind.
#define GS_ORDER_KEYS(NAME, T, MAKE)                                              \
    void NAME(const T* v, long long n, unsigned long long* out) {                 \
        for (long long i = 0; i < n; ++i) out[i] = gs::order_key(MAKE(v[i]));     \
    }
#define GS_AS_IS(x) (x)
#define GS_HALF(x) (gs::half16{x})
#define GS_BFLOAT16(x) (gs::bfloat16{x})
GS_ORDER_KEYS(order_keys_f32, float, GS_AS_IS)
GS_ORDER_KEYS(order_keys_f64, double, GS_AS_IS)
GS_ORDER_KEYS(order_keys_i8, signed char, GS_AS_IS)
GS_ORDER_KEYS(order_keys_i32, int, GS_AS_IS)
GS_ORDER_KEYS(order_keys_i64, long long, GS_AS_IS)
GS_ORDER_KEYS(order_keys_u32, unsigned int, GS_AS_IS)
GS_ORDER_KEYS(order_keys_u64, unsigned long long, GS_AS_IS)
GS_ORDER_KEYS(order_keys_half, unsigned short, GS_HALF)
GS_ORDER_KEYS(order_keys_bfloat16, unsigned short, GS_BFLOAT16)

// Storage offsets of every element of a collapsed layout, in kernel order.
void element_offsets(long long n, int ndim, const long long* shape, const long long* stride,
                     long long* out) {
    gs::Layout layout;
    layout.ndim = ndim;
    for (int d = 0; d < ndim; ++d) {
        layout.shape[d] = shape[d];
        layout.stride[d] = stride[d];
    }
    for (long long i = 0; i < n; ++i) out[i] = gs::element_offset(i, layout);
}

// gs_thumbnails' body for uint8 and float64 sources: out is (n, out_h, out_w, c) uint8.
#define GS_THUMBNAILS(NAME, T)                                                                \
    void NAME(const T* src, long long n, long long h, long long w, long long c,               \
              long long stride_n, long long stride_h, long long stride_w, long long stride_c, \
              long long out_h, long long out_w, unsigned char* out, int truncate) {           \
        long long k = 0;                                                                      \
        for (long long image = 0; image < n; ++image)                                         \
            for (long long i = 0; i < out_h; ++i)                                             \
                for (long long j = 0; j < out_w; ++j)                                         \
                    for (long long ch = 0; ch < c; ++ch)                                      \
                        out[k++] = gs::thumbnail_sample(src, stride_n, stride_h, stride_w,    \
                                                        stride_c, h, w, out_h, out_w, image,  \
                                                        i, j, ch, truncate != 0);             \
    }
GS_THUMBNAILS(thumbnails_u8, unsigned char)
GS_THUMBNAILS(thumbnails_f64, double)
GS_THUMBNAILS(thumbnails_bool, bool)

}  // extern "C"
