// gs_reduce.cu - one pass over a tensor: moments, non-finite counts and histogram counts.
// (gs_multi_ladder, below: many tensors in one launch; gs_flight: the flight recorder's step.)
//
// gs_reduce<T, MODE> reads every element of a strided tensor of storage type T once.
//   MODE 0 (stats):  moments only.
//   MODE 1 (ladder): moments + counts over TensorBoard's GS_LADDER_SIZE ladder limits
//                    (GS_LADDER_VALUES, defined by gpu_summary/_backend/cuda_kernels/
//                    sources.py), bucket by log closed form with an exact correction.
//   MODE 2 (edges):  moments + counts over `n_limits` sorted float64 limits ending with DBL_MAX
//                    (binary search).
//   MODE 3 (even):   counts only, over `bins` even buckets spanning [min, max] of the finite
//                    values, read from `stats` (written by an earlier MODE 0 launch on the same
//                    stream): the range never visits the host.
//   MODE 4 (probe):  MODE 1 accumulated into a probe's accumulator: counts added, the grid's
//                    stats combined with those already in `stats`, and `blocks_done` set back
//                    to zero by the last block, so the next launch (or replay of a captured CUDA
//                    graph holding this one) needs no memset in between.
//
// Launch: 1-D grid of any size, GS_THREADS threads per block; dynamic shared memory holds the
// limits (ladder, and edges when they fit) as double, then the block's private uint32 counts
// when `shared_counts` is set (otherwise blocks add to global memory directly).
//
// Reads: data (layout n, ndim, shape, strides: see gs::Layout), limits.
// Writes: counts[n_buckets] (uint64, must be zero on entry, incremented atomically; MODE 4:
//   added to), stats (MODE 0-2, 4): u64 count, nan, posinf, neginf, then double min, max, sum,
//   sum_squares (MODE 4: combined with the stats there, +Inf/-Inf min/max when empty);
//   block_stats[gridDim.x * 8] scratch; blocks_done (uint32, zero on entry; MODE 4 leaves it
//   zero): the last block to finish reduces every block's partial stats in a fixed order, so
//   the result is the same on every run with the same grid.
#include "gs_common.cuh"

#define GS_THREADS 256

__constant__ double gs_ladder[gs::LADDER_SIZE] = {GS_LADDER_VALUES};

namespace {

struct Partial {
    gs::u64 count, nan, posinf, neginf;
    double min, max, sum, sum_squares;
};

__device__ void combine(Partial& a, const Partial& b) {
    a.count += b.count;
    a.nan += b.nan;
    a.posinf += b.posinf;
    a.neginf += b.neginf;
    a.min = fmin(a.min, b.min);
    a.max = fmax(a.max, b.max);
    a.sum += b.sum;
    a.sum_squares += b.sum_squares;
}

__device__ Partial shuffle_down(const Partial& p, int offset) {
    Partial q;
    q.count = __shfl_down_sync(0xffffffffu, p.count, offset);
    q.nan = __shfl_down_sync(0xffffffffu, p.nan, offset);
    q.posinf = __shfl_down_sync(0xffffffffu, p.posinf, offset);
    q.neginf = __shfl_down_sync(0xffffffffu, p.neginf, offset);
    q.min = __shfl_down_sync(0xffffffffu, p.min, offset);
    q.max = __shfl_down_sync(0xffffffffu, p.max, offset);
    q.sum = __shfl_down_sync(0xffffffffu, p.sum, offset);
    q.sum_squares = __shfl_down_sync(0xffffffffu, p.sum_squares, offset);
    return q;
}

__device__ Partial empty_partial() {
    Partial p;
    p.count = p.nan = p.posinf = p.neginf = 0;
    p.min = gs::positive_infinity();
    p.max = -gs::positive_infinity();
    p.sum = p.sum_squares = 0.0;
    return p;
}

// Reduce one Partial per thread to thread 0's, in a fixed order (warps, then warp 0).
__device__ Partial block_reduce(Partial p) {
    __shared__ Partial per_warp[GS_THREADS / 32];
    for (int offset = 16; offset > 0; offset >>= 1) {
        combine(p, shuffle_down(p, offset));
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        per_warp[warp] = p;
    }
    __syncthreads();
    if (warp == 0) {
        p = lane < GS_THREADS / 32 ? per_warp[lane] : empty_partial();
        for (int offset = 16; offset > 0; offset >>= 1) {
            combine(p, shuffle_down(p, offset));
        }
    }
    __syncthreads();  // per_warp may be reused by the caller's next reduction
    return p;
}

__device__ void store_partial(gs::u64* slot, const Partial& p) {
    slot[0] = p.count;
    slot[1] = p.nan;
    slot[2] = p.posinf;
    slot[3] = p.neginf;
    slot[4] = (gs::u64)__double_as_longlong(p.min);
    slot[5] = (gs::u64)__double_as_longlong(p.max);
    slot[6] = (gs::u64)__double_as_longlong(p.sum);
    slot[7] = (gs::u64)__double_as_longlong(p.sum_squares);
}

__device__ Partial load_partial(const gs::u64* slot) {  // bypasses L1: written by other blocks
    Partial p;
    p.count = __ldcg(slot + 0);
    p.nan = __ldcg(slot + 1);
    p.posinf = __ldcg(slot + 2);
    p.neginf = __ldcg(slot + 3);
    p.min = __longlong_as_double((long long)__ldcg(slot + 4));
    p.max = __longlong_as_double((long long)__ldcg(slot + 5));
    p.sum = __longlong_as_double((long long)__ldcg(slot + 6));
    p.sum_squares = __longlong_as_double((long long)__ldcg(slot + 7));
    return p;
}

// The tensor of a multi-tensor launch that chunk `chunk` belongs to: the last t with
// first_chunk[t] <= chunk (first_chunk: n_tensors + 1 increasing chunk offsets).
__device__ int tensor_of_chunk(const long long* first_chunk, int n_tensors, long long chunk) {
    int lo = 0, hi = n_tensors - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (first_chunk[mid] <= chunk) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

// One value of storage type T: NaN and +-Inf counted apart, a finite one added to the moments;
// whether it was finite.
template <typename T>
__device__ bool add_value(Partial& p, const double x) {
    if (gs::can_be_nonfinite<T>::value) {
        if (gs::is_nan(x)) {
            ++p.nan;
            return false;
        }
        if (x > GS_DBL_MAX) {
            ++p.posinf;
            return false;
        }
        if (x < -GS_DBL_MAX) {
            ++p.neginf;
            return false;
        }
    }
    ++p.count;
    p.min = fmin(p.min, x);
    p.max = fmax(p.max, x);
    p.sum += x;
    p.sum_squares += x * x;
    return true;
}

}  // namespace

template <typename T, int MODE>
__global__ void __launch_bounds__(GS_THREADS)
    gs_reduce(const T* __restrict__ data, long long n, int ndim, long long shape1,
              long long shape2, long long shape3, long long shape4, long long shape5,
              long long stride0, long long stride1, long long stride2, long long stride3,
              long long stride4, long long stride5, const double* __restrict__ limits,
              int n_limits, int shared_limits, int shared_counts, int bins,
              unsigned long long* counts, unsigned long long* stats,
              unsigned long long* block_stats, unsigned int* blocks_done) {
    extern __shared__ double shared[];
    // MODE 4 counts and reduces as MODE 1 does; only the last block's store differs.
    constexpr bool ACCUMULATE = MODE == 4;
    constexpr int KIND = ACCUMULATE ? 1 : MODE;
    const gs::Layout layout = {ndim,
                               {0, shape1, shape2, shape3, shape4, shape5},
                               {stride0, stride1, stride2, stride3, stride4, stride5}};

    // The bucket limits this block searches, and where its counts go.
    const double* lim = limits;
    int n_buckets = KIND == 3 ? bins : n_limits;
    if (KIND == 1) {
        n_buckets = gs::LADDER_SIZE;
        for (int i = threadIdx.x; i < gs::LADDER_SIZE; i += blockDim.x) {
            shared[i] = gs_ladder[i];
        }
        lim = shared;
    } else if (KIND == 2 && shared_limits) {
        for (int i = threadIdx.x; i < n_limits; i += blockDim.x) {
            shared[i] = limits[i];
        }
        lim = shared;
    }
    const int limits_in_shared = KIND == 1 || (KIND == 2 && shared_limits);
    unsigned int* block_counts =
        reinterpret_cast<unsigned int*>(shared + (limits_in_shared ? n_buckets : 0));
    if (KIND != 0 && shared_counts) {
        for (int i = threadIdx.x; i < n_buckets; i += blockDim.x) {
            block_counts[i] = 0;
        }
    }

    gs::EvenBins even;
    if (KIND == 3) {
        if (stats[0] == 0) {
            return;  // no finite values: every count stays 0
        }
        even = gs::even_bins(__longlong_as_double((long long)stats[4]),
                             __longlong_as_double((long long)stats[5]), bins);
    }
    __syncthreads();

    Partial p = empty_partial();
    // One element: non-finite counts, moments, bucket.
    const auto visit = [&](const double x) {
        if (gs::can_be_nonfinite<T>::value) {
            if (gs::is_nan(x)) {
                ++p.nan;
                return;
            }
            if (x > GS_DBL_MAX) {
                ++p.posinf;
                return;
            }
            if (x < -GS_DBL_MAX) {
                ++p.neginf;
                return;
            }
        }
        if (KIND != 3) {
            ++p.count;
            p.min = fmin(p.min, x);
            p.max = fmax(p.max, x);
            p.sum += x;
            p.sum_squares += x * x;
        }
        if (KIND == 0) {
            return;
        }
        int bucket;
        if (KIND == 1) {
            bucket = gs::ladder_bucket(x, lim);
        } else if (KIND == 2) {
            bucket = gs::first_greater(x, lim, n_limits);
        } else {
            bucket = gs::even_bucket(x, even);
        }
        if (shared_counts) {
            atomicAdd(block_counts + bucket, 1u);
        } else {
            atomicAdd(counts + bucket, 1ull);
        }
    };
    const long long step = (long long)gridDim.x * blockDim.x;
    const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (ndim == 1) {  // most tensors: one run of memory, its stride in a register
        for (long long i = first; i < n; i += step) {
            visit(gs::to_double(data[i * stride0]));
        }
    } else {
        for (long long i = first; i < n; i += step) {
            visit(gs::to_double(data[gs::element_offset(i, layout)]));
        }
    }

    if (KIND != 0 && shared_counts) {
        __syncthreads();
        for (int i = threadIdx.x; i < n_buckets; i += blockDim.x) {
            if (block_counts[i]) {
                atomicAdd(counts + i, (unsigned long long)block_counts[i]);
            }
        }
    }
    if (KIND == 3) {
        return;
    }

    // Moments: this block's partial, then the last block to finish combines them all.
    p = block_reduce(p);
    __shared__ bool last_block;
    if (threadIdx.x == 0) {
        store_partial(block_stats + 8 * blockIdx.x, p);
        __threadfence();
        last_block = atomicAdd(blocks_done, 1u) == gridDim.x - 1;
        if (ACCUMULATE && last_block) {
            __threadfence();  // the acquire half of the other blocks' fences, made explicit
        }
    }
    __syncthreads();
    if (!last_block) {
        return;
    }
    Partial total = empty_partial();
    for (unsigned int b = threadIdx.x; b < gridDim.x; b += blockDim.x) {
        combine(total, load_partial(block_stats + 8 * b));
    }
    total = block_reduce(total);
    if (threadIdx.x == 0) {
        if (ACCUMULATE) {  // written by earlier launches, which finished before this one began
            Partial sum = load_partial(stats);
            combine(sum, total);
            total = sum;
            *blocks_done = 0u;  // every other block has counted itself: none reads it again
        }
        store_partial(stats, total);
    }
}

// gs_multi_ladder<T>: the ladder histogram and moments of many tensors of storage type T in one
// launch (the multi-tensor pattern of PyTorch's _foreach kernels). Tensor t has `lengths[t]`
// elements at `pointers[t]`, `strides[t]` elements apart; it is cut into chunks of GS_CHUNK
// elements, chunks first_chunk[t] .. first_chunk[t + 1] - 1, and blocks take chunks in a
// grid-stride loop. A chunk's counts go to a shared histogram, then to counts[t][LADDER_SIZE]
// (uint64, zero on entry); its moments to chunk_stats[chunk][8]; the block that finishes a
// tensor's last chunk (chunks_done[t], uint32, zero on entry) reduces that tensor's chunk
// moments in chunk order into stats[t][8] (gs_reduce's layout): results repeat run to run.
// Dynamic shared memory: the ladder (double) and the block's counts (uint32), as MODE 1.
#define GS_CHUNK (1 << 16)

template <typename T>
__global__ void __launch_bounds__(GS_THREADS)
    gs_multi_ladder(const unsigned long long* __restrict__ pointers,
                    const long long* __restrict__ lengths, const long long* __restrict__ strides,
                    const long long* __restrict__ first_chunk, int n_tensors,
                    unsigned long long* counts, unsigned long long* stats,
                    unsigned long long* chunk_stats, unsigned int* chunks_done) {
    extern __shared__ double shared[];
    for (int i = threadIdx.x; i < gs::LADDER_SIZE; i += blockDim.x) {
        shared[i] = gs_ladder[i];
    }
    unsigned int* block_counts = reinterpret_cast<unsigned int*>(shared + gs::LADDER_SIZE);
    __shared__ bool last_chunk;
    const long long n_chunks = first_chunk[n_tensors];
    for (long long chunk = blockIdx.x; chunk < n_chunks; chunk += gridDim.x) {
        const int t = tensor_of_chunk(first_chunk, n_tensors, chunk);
        for (int i = threadIdx.x; i < gs::LADDER_SIZE; i += blockDim.x) {
            block_counts[i] = 0;
        }
        __syncthreads();
        const T* data = reinterpret_cast<const T*>(pointers[t]);
        const long long stride = strides[t];
        const long long start = (chunk - first_chunk[t]) * GS_CHUNK;
        const long long end = gs::min_i64(start + GS_CHUNK, lengths[t]);
        Partial p = empty_partial();
        for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
            const double x = gs::to_double(data[i * stride]);
            if (add_value<T>(p, x)) {
                atomicAdd(block_counts + gs::ladder_bucket(x, shared), 1u);
            }
        }
        __syncthreads();
        for (int i = threadIdx.x; i < gs::LADDER_SIZE; i += blockDim.x) {
            if (block_counts[i]) {
                atomicAdd(counts + (long long)t * gs::LADDER_SIZE + i,
                          (unsigned long long)block_counts[i]);
            }
        }
        p = block_reduce(p);  // ends with a barrier: block_counts may be reset next chunk
        if (threadIdx.x == 0) {
            store_partial(chunk_stats + 8 * chunk, p);
            __threadfence();
            const unsigned int tensor_chunks = (unsigned int)(first_chunk[t + 1] - first_chunk[t]);
            last_chunk = atomicAdd(chunks_done + t, 1u) == tensor_chunks - 1;
        }
        __syncthreads();
        if (last_chunk) {
            Partial total = empty_partial();
            for (long long c = first_chunk[t] + threadIdx.x; c < first_chunk[t + 1];
                 c += blockDim.x) {
                combine(total, load_partial(chunk_stats + 8 * c));
            }
            total = block_reduce(total);
            if (threadIdx.x == 0) {
                store_partial(stats + 8 * t, total);
            }
        }
        __syncthreads();  // last_chunk is rewritten by the next chunk
    }
}

// gs_flight<T>: one step of the flight recorder (gpu_summary/_core/flight.py holds the ring's
// layout) for many tensors of storage type T, in gs_multi_ladder's multi-tensor pattern: tensor
// t has `lengths[t]` elements at `pointers[t]`, `strides[t]` elements apart, cut into chunks of
// GS_CHUNK elements, chunks first_chunk[t] .. first_chunk[t + 1] - 1 (one at least, even for an
// empty tensor). A chunk's moments and non-finite counts go to scratch[chunk][9] with its count
// of zeros (values equal to 0, of either sign) in word 8; the block that finishes a tensor's
// last chunk (chunks_done[t], uint32, zero on entry and left zero for the next step) reduces
// them in chunk order and writes the record of column columns[t] of ring slot `slot`: step,
// orders[t], count, nan, posinf, neginf, zeros, min, max, sum, sum_squares (min and max 0.0
// without a finite value). A tensor holding NaN/±Inf lowers ring[0] (the first such step) to
// `step`; a launch whose step is after ring[0] writes nothing, so the ring keeps the steps up
// to the first one that held NaN/±Inf. No dynamic shared memory.
template <typename T>
__global__ void __launch_bounds__(GS_THREADS)
    gs_flight(const unsigned long long* __restrict__ pointers,
              const long long* __restrict__ lengths, const long long* __restrict__ strides,
              const long long* __restrict__ first_chunk, const long long* __restrict__ columns,
              const long long* __restrict__ orders, int n_tensors, long long n_columns,
              long long slot, long long step, unsigned long long* ring,
              unsigned long long* scratch, unsigned int* chunks_done) {
    if ((unsigned long long)step > __ldcg(ring)) {
        return;  // the ring stopped at an earlier step (the same value for the whole block)
    }
    __shared__ bool last_chunk;
    __shared__ gs::u64 per_warp_zeros[GS_THREADS / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    // The zeros of one value per thread, summed in a fixed order; thread 0's is the total.
    const auto block_sum = [&](gs::u64 v) {
        for (int offset = 16; offset > 0; offset >>= 1) {
            v += __shfl_down_sync(0xffffffffu, v, offset);
        }
        if (lane == 0) {
            per_warp_zeros[warp] = v;
        }
        __syncthreads();
        if (warp == 0) {
            v = lane < GS_THREADS / 32 ? per_warp_zeros[lane] : 0;
            for (int offset = 16; offset > 0; offset >>= 1) {
                v += __shfl_down_sync(0xffffffffu, v, offset);
            }
        }
        __syncthreads();
        return v;
    };
    const long long n_chunks = first_chunk[n_tensors];
    for (long long chunk = blockIdx.x; chunk < n_chunks; chunk += gridDim.x) {
        const int t = tensor_of_chunk(first_chunk, n_tensors, chunk);
        const T* data = reinterpret_cast<const T*>(pointers[t]);
        const long long stride = strides[t];
        const long long start = (chunk - first_chunk[t]) * GS_CHUNK;
        const long long end = gs::min_i64(start + GS_CHUNK, lengths[t]);
        Partial p = empty_partial();
        gs::u64 zeros = 0;
        for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
            const double x = gs::to_double(data[i * stride]);
            if (gs::can_be_nonfinite<T>::value) {
                if (gs::is_nan(x)) {
                    ++p.nan;
                    continue;
                }
                if (x > GS_DBL_MAX) {
                    ++p.posinf;
                    continue;
                }
                if (x < -GS_DBL_MAX) {
                    ++p.neginf;
                    continue;
                }
            }
            zeros += x == 0.0;
            ++p.count;
            p.min = fmin(p.min, x);
            p.max = fmax(p.max, x);
            p.sum += x;
            p.sum_squares += x * x;
        }
        p = block_reduce(p);
        zeros = block_sum(zeros);
        if (threadIdx.x == 0) {
            store_partial(scratch + 9 * chunk, p);
            scratch[9 * chunk + 8] = zeros;
            __threadfence();
            const unsigned int tensor_chunks = (unsigned int)(first_chunk[t + 1] - first_chunk[t]);
            last_chunk = atomicAdd(chunks_done + t, 1u) == tensor_chunks - 1;
        }
        __syncthreads();
        if (last_chunk) {
            Partial total = empty_partial();
            gs::u64 total_zeros = 0;
            for (long long c = first_chunk[t] + threadIdx.x; c < first_chunk[t + 1];
                 c += blockDim.x) {
                combine(total, load_partial(scratch + 9 * c));
                total_zeros += __ldcg(scratch + 9 * c + 8);
            }
            total = block_reduce(total);
            total_zeros = block_sum(total_zeros);
            if (threadIdx.x == 0) {
                gs::u64* record = ring + 1 + (slot * n_columns + columns[t]) * 11;
                record[0] = (gs::u64)step;
                record[1] = (gs::u64)orders[t];
                record[2] = total.count;
                record[3] = total.nan;
                record[4] = total.posinf;
                record[5] = total.neginf;
                record[6] = total_zeros;
                record[7] = (gs::u64)__double_as_longlong(total.count ? total.min : 0.0);
                record[8] = (gs::u64)__double_as_longlong(total.count ? total.max : 0.0);
                record[9] = (gs::u64)__double_as_longlong(total.sum);
                record[10] = (gs::u64)__double_as_longlong(total.sum_squares);
                if (total.nan + total.posinf + total.neginf) {
                    atomicMin(ring, (unsigned long long)step);
                }
                chunks_done[t] = 0;  // every chunk of t is in: ready for the next step
            }
        }
        __syncthreads();  // last_chunk is rewritten by the next chunk
    }
}
