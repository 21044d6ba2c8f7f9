// gs_formats.cu - how many values of a tensor overflow and underflow each low-precision format
// of `formats=`, the specification being gpu_summary/_backend/numpy/formats.py.
//
// gs_format_counts<T> reads every element of a strided tensor of storage type T once (the
// layout of gs_reduce: gs::Layout) and compares the bits of |x| as an unsigned integer with each
// format's thresholds: format f counts an overflow where over_f <= bits < the bits of Inf, an
// underflow where 0 < bits <= under_f. NaN and Inf are never counted. The magnitudes are
// float32 bits (u32) for float, half16 and bfloat16 (both widened exactly), float64 bits (u64)
// for double and the integer types (by their double value: exact against these thresholds).
// The thresholds arrive as arguments, in that width, from gpu_summary/_core/formats.py (through
// gpu_summary/_backend/cuda_kernels/formats.py): this file holds no copy of them.
//
// Launch: 1-D grid of any size, GS_THREADS threads a block, no dynamic shared memory;
// 1 <= n_formats <= GS_MAX_FORMATS (the slots past n_formats are ignored).
// Reads: data (n, ndim, shape, strides). Writes: out[2 * n_formats] (u64), adding to it:
// out[2f] the overflow count of format f, out[2f + 1] its underflow count, one atomicAdd per
// non-zero counter per block (a block's counts are gathered in shared memory first). out is
// never zeroed here: zeroed first it receives one tensor's counts; left as it is, it
// accumulates launch after launch (a probe's buffer). Nothing is allocated and nothing waits
// for the host, so a launch can be captured in a CUDA graph.
// Flush-to-zero: data is moved and compared as integers only; -ftz=true changes nothing.
#include "gs_common.cuh"

#define GS_THREADS 256
#define GS_MAX_FORMATS 4

namespace gs_fmt {

// The magnitude of a value as the integer its counts compare.
GS_HD gs::u32 magnitude(float v) { return gs::float_to_bits(v) & 0x7fffffffu; }
GS_HD gs::u32 magnitude(gs::half16 v) { return gs::half_to_float_bits(v.bits) & 0x7fffffffu; }
GS_HD gs::u32 magnitude(gs::bfloat16 v) {
    return gs::bfloat16_to_float_bits(v.bits) & 0x7fffffffu;
}
GS_HD gs::u64 magnitude(double v) { return gs::double_to_bits(v) & 0x7fffffffffffffffULL; }
template <typename T>
GS_HD gs::u64 magnitude(T v) {  // bool and the integers, by their double value
    return gs::double_to_bits(gs::to_double(v)) & 0x7fffffffffffffffULL;
}

}  // namespace gs_fmt

template <typename T>
__global__ void __launch_bounds__(GS_THREADS)
    gs_format_counts(const T* __restrict__ data, long long n, int ndim, long long shape1,
                     long long shape2, long long shape3, long long shape4, long long shape5,
                     long long stride0, long long stride1, long long stride2, long long stride3,
                     long long stride4, long long stride5, int n_formats,
                     unsigned long long over0, unsigned long long over1,
                     unsigned long long over2, unsigned long long over3,
                     unsigned long long under0, unsigned long long under1,
                     unsigned long long under2, unsigned long long under3,
                     unsigned long long* out) {
    typedef decltype(gs_fmt::magnitude(T{})) M;
    const M infinity = sizeof(M) == 4 ? (M)0x7f800000u : (M)0x7ff0000000000000ULL;
    const gs::Layout layout = {ndim,
                               {0, shape1, shape2, shape3, shape4, shape5},
                               {stride0, stride1, stride2, stride3, stride4, stride5}};
    const M over[GS_MAX_FORMATS] = {(M)over0, (M)over1, (M)over2, (M)over3};
    const M under[GS_MAX_FORMATS] = {(M)under0, (M)under1, (M)under2, (M)under3};
    __shared__ unsigned long long block_counts[2 * GS_MAX_FORMATS];
    if (threadIdx.x < 2 * GS_MAX_FORMATS) {
        block_counts[threadIdx.x] = 0;
    }
    // A screen every value passes through: only a magnitude from the lowest overflow
    // threshold up (finite) or non-zero up to the highest underflow threshold is counted.
    M near_top = infinity, near_zero = 0;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (int f = 0; f < GS_MAX_FORMATS; ++f) {
        if (f < n_formats) {
            near_top = over[f] < near_top ? over[f] : near_top;
            near_zero = under[f] > near_zero ? under[f] : near_zero;
        }
    }
    __syncthreads();

    unsigned int counts[2 * GS_MAX_FORMATS] = {0, 0, 0, 0, 0, 0, 0, 0};
    unsigned long long seen = 0;  // values since the counts were last added to the block's
    const auto visit = [&](const M m) {
        // m - 1 wraps for 0: a zero never passes the first test.
        if ((M)(m - 1) < near_zero || (m >= near_top && m < infinity)) {
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
            for (int f = 0; f < GS_MAX_FORMATS; ++f) {
                if (f < n_formats) {
                    counts[2 * f] += m >= over[f] && m < infinity;
                    counts[2 * f + 1] += m != 0 && m <= under[f];
                }
            }
        }
    };
    const auto add_to_block = [&]() {
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
        for (int k = 0; k < 2 * GS_MAX_FORMATS; ++k) {
            if (counts[k]) {
                atomicAdd(block_counts + k, (unsigned long long)counts[k]);
                counts[k] = 0;
            }
        }
    };
    const long long step = (long long)gridDim.x * blockDim.x;
    const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    for (long long i = first; i < n; i += step) {
        const long long offset = ndim == 1 ? i * stride0 : gs::element_offset(i, layout);
        visit(gs_fmt::magnitude(data[offset]));
        if (++seen == 0x80000000ULL) {  // 32-bit counters: emptied before they could wrap
            add_to_block();
            seen = 0;
        }
    }
    add_to_block();
    __syncthreads();
    if (threadIdx.x < 2 * n_formats && block_counts[threadIdx.x]) {
        atomicAdd(out + threadIdx.x, block_counts[threadIdx.x]);
    }
}
