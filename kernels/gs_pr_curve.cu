// gs_pr_curve.cu - the weights of positives and negatives per threshold bucket of a
// precision-recall curve, the specification being gpu_summary/_backend/numpy/curves.py.
//
// gs_pr_counts<P> reads n predictions of storage type P and, at the same flat (C-order)
// index, n labels and n weights of any storage type (a runtime type code: the index of
// gpu_summary._backend.cuda_kernels.sources.CUDA_TYPES; weights may be null, meaning 1), all
// contiguous. A prediction p below 0 or above 1 is counted in skipped[1] or skipped[2]; a NaN
// p, or a non-finite label or weight, in skipped[0]; any other pair goes to bucket
// floor(round(p * (thresholds - 1))), the product rounded to p's own precision (`bits`
// significant bits, quanta no finer than 2**min_exponent: what NumPy computes in p's dtype),
// adding label * weight to out[bucket] and (1 - label) * weight to out[thresholds + bucket].
//
// With integer_sums (integer or bool labels, and integer weights or none) each term is an
// int64 and out holds int64 sums (two's complement in u64 words): integer atomics, which
// every GPU has natively in shared memory, equal to NumPy's float64 sums while those stay
// below 2**53. Otherwise out holds double sums (double atomics: sm_60 and newer), which differ
// from NumPy's by summation order only.
//
// Launch: 1-D grid of any size, GS_THREADS threads a block, 16 * thresholds bytes of dynamic
// shared memory (a block's buckets). out (2 * thresholds 8-byte words) and skipped (3 u64)
// must be zero before the launch. Reads: predictions, labels, weights. Writes: out and
// skipped by atomic additions.
// Flush-to-zero: every value is widened from its bits (gs::to_double) and all arithmetic is
// double, so -ftz=true changes nothing.
#include "gs_common.cuh"

#define GS_THREADS 256

namespace gs_pr {

// A value of storage type `type` (a CUDA_TYPES index) at element i, as double.
GS_HD double load_number(const void* base, int type, gs::i64 i) {
    switch (type) {
        case 0: return gs::to_double(static_cast<const bool*>(base)[i]);
        case 1: return gs::to_double(static_cast<const signed char*>(base)[i]);
        case 2: return gs::to_double(static_cast<const short*>(base)[i]);
        case 3: return gs::to_double(static_cast<const int*>(base)[i]);
        case 4: return gs::to_double(static_cast<const long long*>(base)[i]);
        case 5: return gs::to_double(static_cast<const unsigned char*>(base)[i]);
        case 6: return gs::to_double(static_cast<const unsigned short*>(base)[i]);
        case 7: return gs::to_double(static_cast<const unsigned int*>(base)[i]);
        case 8: return gs::to_double(static_cast<const unsigned long long*>(base)[i]);
        case 9: return gs::to_double(static_cast<const gs::half16*>(base)[i]);
        case 10: return gs::to_double(static_cast<const gs::bfloat16*>(base)[i]);
        case 11: return gs::to_double(static_cast<const float*>(base)[i]);
        default: return static_cast<const double*>(base)[i];
    }
}

GS_HD bool is_finite(double x) { return ((gs::double_to_bits(x) >> 52) & 0x7ff) != 0x7ff; }

// Non-negative x rounded half to even to `bits` significant bits, quanta at least
// 2**min_exponent (bits >= 53: x itself). Exact: scaling by powers of two, then rint.
GS_HD double round_significand(double x, int bits, int min_exponent) {
    if (bits >= 53 || x == 0.0) {
        return x;
    }
    const int exponent = (int)((gs::double_to_bits(x) >> 52) & 0x7ff) - 1022;  // frexp's
    int quantum = exponent - bits;
    quantum = quantum < min_exponent ? min_exponent : quantum;
    const double down = gs::bits_to_double((gs::u64)(1023 - quantum) << 52);
    const double up = gs::bits_to_double((gs::u64)(1023 + quantum) << 52);
    return gs::mul_rn(rint(gs::mul_rn(x, down)), up);
}

}  // namespace gs_pr

template <typename P>
__global__ void __launch_bounds__(GS_THREADS)
    gs_pr_counts(const P* __restrict__ predictions, const void* __restrict__ labels,
                 int label_type, const void* __restrict__ weights, int weight_type, long long n,
                 int thresholds, int bits, int min_exponent, int integer_sums,
                 double* __restrict__ out, unsigned long long* __restrict__ skipped) {
    extern __shared__ double shared[];
    unsigned long long* const counts = reinterpret_cast<unsigned long long*>(shared);
    for (int k = threadIdx.x; k < 2 * thresholds; k += blockDim.x) {
        counts[k] = 0;  // 0.0 too
    }
    __syncthreads();
    const double scale = (double)(thresholds - 1);
    unsigned long long nan = 0, below = 0, above = 0;
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        const double p = gs::to_double(predictions[i]);
        if (p < 0.0) {
            ++below;
            continue;
        }
        if (p > 1.0) {
            ++above;
            continue;
        }
        const double label = gs_pr::load_number(labels, label_type, i);
        const double weight = weights ? gs_pr::load_number(weights, weight_type, i) : 1.0;
        if (gs::is_nan(p) || !gs_pr::is_finite(label) || !gs_pr::is_finite(weight)) {
            ++nan;
            continue;
        }
        const int bucket = (int)floor(gs_pr::round_significand(gs::mul_rn(p, scale), bits,
                                                            min_exponent));
        if (integer_sums) {
            const long long l = (long long)label, w = (long long)weight;
            atomicAdd(&counts[bucket], (unsigned long long)(l * w));
            atomicAdd(&counts[thresholds + bucket], (unsigned long long)((1 - l) * w));
        } else {
            atomicAdd(&shared[bucket], gs::mul_rn(label, weight));
            atomicAdd(&shared[thresholds + bucket], gs::mul_rn(gs::sub_rn(1.0, label), weight));
        }
    }
    __syncthreads();
    unsigned long long* const total = reinterpret_cast<unsigned long long*>(out);
    for (int k = threadIdx.x; k < 2 * thresholds; k += blockDim.x) {
        if (counts[k] == 0) {
            continue;  // nothing added (or only zeros)
        }
        if (integer_sums) {
            atomicAdd(&total[k], counts[k]);
        } else {
            atomicAdd(&out[k], shared[k]);
        }
    }
    if (nan) atomicAdd(&skipped[0], nan);
    if (below) atomicAdd(&skipped[1], below);
    if (above) atomicAdd(&skipped[2], above);
}
