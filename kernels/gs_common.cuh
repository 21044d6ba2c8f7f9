// gs_common.cuh - pure arithmetic shared by the gpu_summary kernels.
//
// Every function here is __host__ __device__: the kernels call them on the GPU, and
// tests/native/host_helpers.cpp compiles this same file with the host C++ compiler so that the
// test suite checks their results against the NumPy backend on every CI run, without a GPU.
//
// Exactness rules (the NumPy backend is the specification):
//  * values are converted to double before any comparison or sum (exact for bool, every float
//    type and integers up to 2**53; larger int64 magnitudes round to nearest, as NumPy does);
//  * no float32 arithmetic, comparison or conversion instruction touches data: CuPy compiles
//    every RawModule with -ftz=true, which makes those flush subnormals to zero. 16- and 32-bit
//    floats are widened from their bits with integer and float64 operations (never flushed),
//    and tests/test_cupy_path.py fails on any .ftz instruction in the PTX of these modules;
//  * bucket limits are compared exactly, in double; estimates from logarithms or divisions are
//    only a starting point that an exact correction loop then fixes;
//  * formulas that must reproduce NumPy's rounding (even-bin edges, pixel scaling) use
//    explicitly rounded operations, so the device compiler cannot contract them into FMAs.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define GS_HD __host__ __device__ __forceinline__
#else
#include <math.h>
#include <string.h>
#define GS_HD inline
#endif

namespace gs {

typedef long long i64;
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

// Storage types for the 16-bit floats, so that kernels can be templated on them without any
// CUDA header; each holds the raw IEEE bits.
struct half16 {
    u16 bits;
};
struct bfloat16 {
    u16 bits;
};

// ---- exactly rounded double arithmetic ----------------------------------------------------

GS_HD double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
    return __dmul_rn(a, b);
#else
    return a * b;
#endif
}

GS_HD double add_rn(double a, double b) {
#ifdef __CUDA_ARCH__
    return __dadd_rn(a, b);
#else
    return a + b;
#endif
}

GS_HD double sub_rn(double a, double b) {
#ifdef __CUDA_ARCH__
    return __dsub_rn(a, b);
#else
    return a - b;
#endif
}

GS_HD double div_rn(double a, double b) {
#ifdef __CUDA_ARCH__
    return __ddiv_rn(a, b);
#else
    return a / b;
#endif
}

GS_HD double bits_to_double(u64 bits) {
#ifdef __CUDA_ARCH__
    return __longlong_as_double((long long)bits);
#else
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
#endif
}

GS_HD u64 double_to_bits(double d) {
#ifdef __CUDA_ARCH__
    return (u64)__double_as_longlong(d);
#else
    u64 bits;
    memcpy(&bits, &d, sizeof bits);
    return bits;
#endif
}

GS_HD u32 float_to_bits(float f) {  // a move, not a conversion: nothing is flushed
#ifdef __CUDA_ARCH__
    return (u32)__float_as_int(f);
#else
    u32 bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
#endif
}

#define GS_DBL_MAX 1.7976931348623157e308

GS_HD double positive_infinity() { return bits_to_double(0x7ff0000000000000ULL); }

GS_HD bool is_nan(double x) { return x != x; }

GS_HD i64 min_i64(i64 a, i64 b) { return a < b ? a : b; }

// ---- element decoding ---------------------------------------------------------------------

// IEEE binary32 bits to double, exactly (normals, subnormals, signed zeros, infinities, NaN
// with its payload), in integer and float64 operations only.
GS_HD double float_bits_to_double(u32 bits) {
    const u64 sign = (u64)(bits >> 31) << 63;
    const u32 exponent = (bits >> 23) & 0xffu;
    const u64 mantissa = bits & 0x7fffffu;
    if (exponent == 0) {  // zero or subnormal: mantissa * 2**-149, exact in double
        const double magnitude = (double)mantissa * 0x1p-149;
        return sign ? -magnitude : magnitude;
    }
    const u64 biased = exponent == 0xffu ? 0x7ffu : exponent - 127u + 1023u;
    return bits_to_double(sign | (biased << 52) | (mantissa << 29));
}

// IEEE binary16 bits to the bits of the same value as binary32 (every half value is exact in
// float: half subnormals are float normals), in integers.
GS_HD u32 half_to_float_bits(u16 h) {
    const u32 sign = (u32)(h >> 15) << 31;
    const u32 exponent = (h >> 10) & 0x1fu;
    u32 mantissa = h & 0x3ffu;
    if (exponent == 0x1f) {  // infinity (mantissa 0) or NaN
        return sign | 0x7f800000u | (mantissa << 13);
    }
    if (exponent != 0) {
        return sign | ((exponent - 15u + 127u) << 23) | (mantissa << 13);
    }
    if (mantissa == 0) {
        return sign;  // signed zero
    }
    u32 shift = 0;  // subnormal mantissa * 2**-24: normalise the leading 1 to bit 10
    while (!(mantissa & 0x400u)) {
        mantissa <<= 1;
        ++shift;
    }
    return sign | ((113u - shift) << 23) | ((mantissa & 0x3ffu) << 13);
}

// bfloat16 is the top half of a float32.
GS_HD u32 bfloat16_to_float_bits(u16 b) { return (u32)b << 16; }

GS_HD double to_double(bool v) { return v ? 1.0 : 0.0; }
GS_HD double to_double(signed char v) { return (double)v; }
GS_HD double to_double(short v) { return (double)v; }
GS_HD double to_double(int v) { return (double)v; }
GS_HD double to_double(long long v) { return (double)v; }
GS_HD double to_double(unsigned char v) { return (double)v; }
GS_HD double to_double(unsigned short v) { return (double)v; }
GS_HD double to_double(unsigned int v) { return (double)v; }
GS_HD double to_double(unsigned long long v) { return (double)v; }
GS_HD double to_double(half16 v) { return float_bits_to_double(half_to_float_bits(v.bits)); }
GS_HD double to_double(bfloat16 v) { return float_bits_to_double(bfloat16_to_float_bits(v.bits)); }
GS_HD double to_double(float v) { return float_bits_to_double(float_to_bits(v)); }
GS_HD double to_double(double v) { return v; }

// Whether a storage type can hold NaN or infinities (integers and bool skip those checks).
template <typename T>
struct can_be_nonfinite {
    static const bool value = false;
};
template <>
struct can_be_nonfinite<half16> {
    static const bool value = true;
};
template <>
struct can_be_nonfinite<bfloat16> {
    static const bool value = true;
};
template <>
struct can_be_nonfinite<float> {
    static const bool value = true;
};
template <>
struct can_be_nonfinite<double> {
    static const bool value = true;
};

// ---- order keys ---------------------------------------------------------------------------

// Unsigned integers that sort as the values do (finite values; -0.0 just below +0.0), so that
// order statistics can be selected by radix, 8 bits at a time. Keys of 32-bit-or-narrower types
// use the low 32 bits (order_key_bits), the others all 64.
GS_HD u64 float_order_key(u32 bits) {  // of float32 bits
    return (bits & 0x80000000u) ? (u64)(~bits) : (u64)(bits | 0x80000000u);
}

GS_HD u64 double_order_key(double d) {
    const u64 bits = double_to_bits(d);
    return (bits & 0x8000000000000000ULL) ? ~bits : (bits | 0x8000000000000000ULL);
}

GS_HD u64 order_key(bool v) { return v ? 1u : 0u; }
GS_HD u64 order_key(signed char v) { return (u32)(int)v ^ 0x80000000u; }
GS_HD u64 order_key(short v) { return (u32)(int)v ^ 0x80000000u; }
GS_HD u64 order_key(int v) { return (u32)v ^ 0x80000000u; }
GS_HD u64 order_key(long long v) { return (u64)v ^ 0x8000000000000000ULL; }
GS_HD u64 order_key(unsigned char v) { return v; }
GS_HD u64 order_key(unsigned short v) { return v; }
GS_HD u64 order_key(unsigned int v) { return v; }
GS_HD u64 order_key(unsigned long long v) { return v; }
GS_HD u64 order_key(half16 v) { return float_order_key(half_to_float_bits(v.bits)); }
GS_HD u64 order_key(bfloat16 v) { return float_order_key(bfloat16_to_float_bits(v.bits)); }
GS_HD u64 order_key(float v) { return float_order_key(float_to_bits(v)); }
GS_HD u64 order_key(double v) { return double_order_key(v); }

template <typename T>
struct order_key_bits {
    static const int value = sizeof(T) > 4 ? 64 : 32;
};

// ---- element addressing -------------------------------------------------------------------

// A strided tensor, its dimensions merged and ordered by the host (gpu_summary/_backend/
// cuda_kernels/layout.py) so that most tensors have ndim == 1. Strides are in elements and may be negative
// only through the base pointer's offset, which the host has already applied.
enum { MAX_DIMS = 6 };

struct Layout {
    int ndim;
    i64 shape[MAX_DIMS];
    i64 stride[MAX_DIMS];
};

// The storage offset, in elements, of the i-th element in row-major order of the layout.
// Every index into the layout is a constant once the loop is unrolled, so the struct stays in
// registers (a loop over ndim would index it at run time and put it in local memory).
GS_HD i64 element_offset(i64 i, const Layout& layout) {
    if (layout.ndim == 1) {
        return i * layout.stride[0];
    }
    i64 offset = 0;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (int d = MAX_DIMS - 1; d > 0; --d) {
        if (d < layout.ndim) {
            const i64 q = i / layout.shape[d];
            offset += (i - q * layout.shape[d]) * layout.stride[d];
            i = q;
        }
    }
    return offset + i * layout.stride[0];
}

// ---- bucket search --------------------------------------------------------------------------

// Move estimate i to the first index whose limit exceeds x (clamped to last): the exact
// definition of a bucket, given nondecreasing limits[0..last]. Any start in [0, last] works;
// a good estimate makes it one or two comparisons.
GS_HD int correct_first_greater(int i, double x, const double* limits, int last) {
    while (i > 0 && limits[i - 1] > x) {
        --i;
    }
    while (i < last && limits[i] <= x) {
        ++i;
    }
    return i;
}

// Binary search: the first i with limits[i] > x, or n - 1 if there is none.
GS_HD int first_greater(double x, const double* limits, int n) {
    int lo = 0, hi = n - 1;  // answer in [lo, hi]
    while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        if (limits[mid] > x) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

// TensorBoard's ladder, defined once in gpu_summary/_core/ladder.py: GS_LADDER_SIZE limits,
// [-DBL_MAX, -v_top .. -v_0, 0, v_0 .. v_top, DBL_MAX], v_k ~ GS_LADDER_SMALLEST * growth**k,
// all below GS_LADDER_CEILING. gpu_summary/_backend/cuda_kernels/sources.py defines these
// macros (and GS_LADDER_VALUES, the limits) ahead of this header; there is no copy here.
#if !defined(GS_LADDER_SIZE) || !defined(GS_LADDER_ZERO) || !defined(GS_LADDER_SMALLEST) || \
    !defined(GS_LADDER_CEILING) || !defined(GS_LADDER_BUCKETS_PER_OCTAVE)
#error "no ladder macros: compile sources.kernel_source(), or put sources.ladder_prologue() first"
#endif
enum {
    LADDER_SIZE = GS_LADDER_SIZE,
    LADDER_ZERO = GS_LADDER_ZERO,  // index of the limit 0.0
    LADDER_LAST = LADDER_SIZE - 1,
    LADDER_POSITIVE = LADDER_ZERO - 1,  // positive finite limits: v_0 .. v_top, top = this - 1
};
static_assert(LADDER_SIZE == 2 * LADDER_ZERO + 1, "the ladder is symmetric about 0");

// Closed-form guess of a finite x's ladder bucket from log2(|x|), within a bucket or two, in
// float64 and integers (no float32 log: -ftz=true would flush it).
GS_HD int ladder_estimate(double x) {
    const double magnitude = x < 0 ? -x : x;
    if (magnitude < GS_LADDER_SMALLEST) {
        return x < 0 ? LADDER_ZERO : LADDER_ZERO + 1;
    }
    if (magnitude >= GS_LADDER_CEILING) {
        return x < 0 ? 1 : LADDER_LAST;
    }
    // log2(|x| / smallest) >= 0: the exponent plus log2(1 + f) ~ f + c f (1 - f) for the
    // mantissa fraction f (|error| < 0.008, a twentieth of a bucket); 1 / smallest is folded
    // into one double when compiled.
    const u64 bits = double_to_bits(magnitude * (1.0 / GS_LADDER_SMALLEST));
    const int exponent = (int)((bits >> 52) & 0x7ff) - 1023;
    const double f = bits_to_double((bits & 0xfffffffffffffULL) | 0x3ff0000000000000ULL) - 1.0;
    const double log2_value = (double)exponent + f * (1.0 + 0.3465735902799727 * (1.0 - f));
    // k: index of the positive limit just at or below |x| (1 / log2(growth) buckets an octave)
    int k = (int)floor(log2_value * GS_LADDER_BUCKETS_PER_OCTAVE);
    k = k < 0 ? 0 : (k > LADDER_POSITIVE - 1 ? LADDER_POSITIVE - 1 : k);
    // |x| in [v_k, v_k+1): x > 0 belongs under v_k+1, x < 0 under -v_k.
    return x < 0 ? LADDER_ZERO - 1 - k : LADDER_ZERO + 2 + k;
}

// The ladder bucket of a finite x: first i with ladder[i] > x (the last bucket for DBL_MAX).
GS_HD int ladder_bucket(double x, const double* ladder) {
    int i = ladder_estimate(x);
    i = i < 0 ? 0 : (i > LADDER_LAST ? LADDER_LAST : i);
    return correct_first_greater(i, x, ladder, LADDER_LAST);
}

// ---- even bins ----------------------------------------------------------------------------

// `bins` even buckets over [lo, hi], the edges of numpy_backend.even_edges:
//   edge(i) = i * step + lo, edge(bins) = hi; lo == hi widens to [lo - 0.5, hi + 0.5];
//   a span beyond DBL_MAX uses the same formula at half scale.
struct EvenBins {
    double lo, hi, step;
    int bins;
    bool half_scale;
};

GS_HD EvenBins even_bins(double lo, double hi, int bins) {
    EvenBins e;
    if (lo == hi) {
        lo = sub_rn(lo, 0.5);
        hi = add_rn(hi, 0.5);
    }
    const double span = sub_rn(hi, lo);
    e.lo = lo;
    e.hi = hi;
    e.bins = bins;
    e.half_scale = !(span <= GS_DBL_MAX);
    if (e.half_scale) {
        e.step = sub_rn(div_rn(div_rn(hi, 2.0), (double)bins), div_rn(div_rn(lo, 2.0), (double)bins));
    } else {
        e.step = div_rn(span, (double)bins);
    }
    return e;
}

GS_HD double even_edge(int i, const EvenBins& e) {
    if (i >= e.bins) {
        return e.hi;
    }
    if (e.half_scale) {
        return mul_rn(add_rn(mul_rn((double)i, e.step), div_rn(e.lo, 2.0)), 2.0);
    }
    return add_rn(mul_rn((double)i, e.step), e.lo);
}

// The bucket b of a finite x in [lo, hi] with edge(b) <= x < edge(b + 1) (the last bucket
// closed at hi), as numpy.histogram counts it.
GS_HD int even_bucket(double x, const EvenBins& e) {
    const int last = e.bins - 1;
    int i = 0;
    if (e.step > 0) {
        double estimate = e.half_scale ? (x / 2 - e.lo / 2) / e.step : (x - e.lo) / e.step;
        estimate = estimate < 0 ? 0 : estimate;  // also maps NaN (never here) to 0
        i = estimate >= (double)last ? last : (int)estimate;
    }
    while (i > 0 && even_edge(i, e) > x) {
        --i;
    }
    while (i < last && even_edge(i + 1, e) <= x) {
        ++i;
    }
    return i;
}

// ---- images -------------------------------------------------------------------------------

// A float pixel in [0, 1] to uint8: floor(clip(x, 0, 1) * 255 + 0.5), NaN to 0.
GS_HD u8 unit_to_u8(double x) {
    x = fmax(x, 0.0);  // fmax/fmin return the other operand for NaN
    x = fmin(x, 1.0);
    return (u8)floor(add_rn(mul_rn(x, 255.0), 0.5));
}

// x rounded to the nearest float32 (ties to even), as a double: the 52-bit significand
// rounded at bit 29 in integers (a carry ripples into the exponent, as it should). Exact for
// every finite x in float32's normal range; beyond it (overflow, float32 subnormals) the result
// keeps 24 bits where float32 would give ±inf or fewer bits — which no pixel below tells apart.
GS_HD double round_to_float(double x) {
    const u64 bits = double_to_bits(x);
    const u64 half = (1ULL << 28) - 1 + ((bits >> 29) & 1);  // just below half, +1 if odd
    return bits_to_double((bits + half) & ~((1ULL << 29) - 1));
}

// A float pixel as torch's writer converts it: float32(x) * 255 in float32, clipped to
// [0, 255], truncated; NaN to 0 (torch's cast leaves NaN undefined; 0 on x86). The float32
// product is the exact double product (24 by 8 bits) rounded to float32, so no float
// instruction (nor a flushed one) is involved.
GS_HD u8 unit_to_u8_truncated(double x) {
    if (is_nan(x)) {
        return 0;
    }
    const double scaled = round_to_float(mul_rn(round_to_float(x), 255.0));
    return (u8)fmin(fmax(scaled, 0.0), 255.0);  // the conversion truncates toward zero
}

// A float pixel by the rule asked for: torch's truncation or rounding half up.
GS_HD u8 float_pixel_u8(double x, bool truncate) {
    return truncate ? unit_to_u8_truncated(x) : unit_to_u8(x);
}

GS_HD u8 pixel_u8(u8 v, bool) { return v; }
GS_HD u8 pixel_u8(bool v, bool) { return v ? 255 : 0; }
GS_HD u8 pixel_u8(half16 v, bool truncate) { return float_pixel_u8(to_double(v), truncate); }
GS_HD u8 pixel_u8(bfloat16 v, bool truncate) { return float_pixel_u8(to_double(v), truncate); }
GS_HD u8 pixel_u8(float v, bool truncate) { return float_pixel_u8(to_double(v), truncate); }
GS_HD u8 pixel_u8(double v, bool truncate) { return float_pixel_u8(v, truncate); }

// Area averaging from n_in samples to n_out <= n_in, in integers: in units of 1/n_out of an
// input pixel, input y spans [y * n_out, (y + 1) * n_out) and output i spans
// [i * n_in, (i + 1) * n_in); y's weight in i is the length of the overlap. Weights of one
// output sum to n_in.
GS_HD i64 area_weight(i64 y, i64 i, i64 n_in, i64 n_out) {
    const i64 a = i * n_in, b = a + n_in;
    const i64 lo = a > y * n_out ? a : y * n_out;
    const i64 hi = b < (y + 1) * n_out ? b : (y + 1) * n_out;
    return hi > lo ? hi - lo : 0;
}

// The first and last input samples with a nonzero weight in output i.
GS_HD i64 area_first(i64 i, i64 n_in, i64 n_out) { return (i * n_in) / n_out; }
GS_HD i64 area_last(i64 i, i64 n_in, i64 n_out) {
    const i64 last = ((i + 1) * n_in + n_out - 1) / n_out - 1;
    return last < n_in - 1 ? last : n_in - 1;
}

// One thumbnail sample: output (i, j) of channel `channel` of image `image`, from an (h, w)
// image addressed by element strides. sum(w_y * w_x * pixel) / (h * w), rounded half up;
// float pixels converted by torch's truncation (`truncate`) or rounded half up.
template <typename T>
GS_HD u8 thumbnail_sample(const T* src, i64 stride_n, i64 stride_h, i64 stride_w,
                          i64 stride_c, i64 h, i64 w, i64 out_h, i64 out_w, i64 image, i64 i,
                          i64 j, i64 channel, bool truncate) {
    const T* base = src + image * stride_n + channel * stride_c;
    if (out_h == h && out_w == w) {
        return pixel_u8(base[i * stride_h + j * stride_w], truncate);
    }
    const i64 y_first = area_first(i, h, out_h), y_last = area_last(i, h, out_h);
    const i64 x_first = area_first(j, w, out_w), x_last = area_last(j, w, out_w);
    u64 total = 0;
    for (i64 y = y_first; y <= y_last; ++y) {
        const i64 wy = area_weight(y, i, h, out_h);
        u64 row = 0;
        for (i64 x = x_first; x <= x_last; ++x) {
            row += (u64)area_weight(x, j, w, out_w) *
                   pixel_u8(base[y * stride_h + x * stride_w], truncate);
        }
        total += (u64)wy * row;
    }
    const u64 area = (u64)h * (u64)w;
    return (u8)((2 * total + area) / (2 * area));
}

}  // namespace gs
