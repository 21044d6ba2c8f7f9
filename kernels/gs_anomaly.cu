// gs_anomaly.cu - anomaly reports: offending values, their first positions, the heat map, and
// exact order statistics by radix selection, without a host sync between the launches.
//
// Tensors are addressed in C order of the caller's tensor (gs::Layout, dimensions merged only
// where that keeps the order), so that flat indices are the tensor's own. A value offends when
// it is NaN or ±Inf, or finite and < lower (has_lower) or > upper (has_upper); all comparisons
// in double.
//
//   gs_anomaly_scan<T>     counts[0..1] += finite values below / above; tile_counts[t] = the
//                          offending values of tile t (GS_TILE consecutive flat indices).
//   gs_anomaly_offsets     tile_offsets = exclusive prefix sum of tile_counts (one block).
//   gs_anomaly_collect<T>  positions/values of the first max_positions offending values, in
//                          flat-index order: each tile with offenders before max_positions
//                          writes them at its offset, in order within the tile (block scan).
//   gs_heatmap<T>          per cell of the near-square grid (gpu_summary/_core/anomaly.py): sum and
//                          count of its finite values, count of its others; one block a cell,
//                          reduced in a fixed order (the same result on every run).
//   gs_select_step         radix selection of the order statistics of the finite values at the
//                          quantiles' ranks (numpy.quantile's linear method): pass -1 reads the
//                          count from `stats` (an earlier gs_reduce STATS launch) and sets the
//                          targets; pass p picks each target's p-th byte from `hist`.
//   gs_select_count<T>     pass p: counts, per group of targets sharing their first p bytes,
//                          the finite values with that prefix by their next byte.
//
// Launch: 1-D grids, GS_THREADS threads per block (gs_select_step: one block). Selection state
// (GS_SELECT_WORDS u64, zero on entry): see the SELECT_* offsets below; `keys` receives the
// order keys of the targets by target index (2 per quantile: floor(h) and floor(h) + 1).
#include "gs_common.cuh"

#define GS_THREADS 256
#define GS_TILE (GS_THREADS * 4)
#define GS_MAX_TARGETS 32
#define GS_RADIX 256

// Selection state layout, in u64 words.
#define SELECT_RANK 0
#define SELECT_PREFIX (SELECT_RANK + GS_MAX_TARGETS)
#define SELECT_GROUP (SELECT_PREFIX + GS_MAX_TARGETS)
#define SELECT_INDEX (SELECT_GROUP + GS_MAX_TARGETS)
#define SELECT_GROUP_PREFIX (SELECT_INDEX + GS_MAX_TARGETS)
#define SELECT_N_GROUPS (SELECT_GROUP_PREFIX + GS_MAX_TARGETS)
#define SELECT_N_TARGETS (SELECT_N_GROUPS + 1)
#define SELECT_HIST (SELECT_N_TARGETS + 1)
#define GS_SELECT_WORDS (SELECT_HIST + GS_MAX_TARGETS * GS_RADIX)

namespace {

__device__ bool is_nonfinite(double x) {
    return gs::is_nan(x) || x > GS_DBL_MAX || x < -GS_DBL_MAX;
}

// 0: fine, 1: non-finite, 2: below, 3: above.
__device__ int classify(double x, double lower, double upper, int has_lower, int has_upper) {
    if (is_nonfinite(x)) {
        return 1;
    }
    if (has_lower && x < lower) {
        return 2;
    }
    if (has_upper && x > upper) {
        return 3;
    }
    return 0;
}

}  // namespace

// The layout parameters (n, ndim, shape1..5, stride0..5) as a gs::Layout.
#define GS_LAYOUT                                                    \
    const gs::Layout layout = {ndim,                                 \
                               {0, shape1, shape2, shape3, shape4, shape5}, \
                               {stride0, stride1, stride2, stride3, stride4, stride5}}

template <typename T>
__global__ void __launch_bounds__(GS_THREADS)
    gs_anomaly_scan(const T* __restrict__ data, long long n, int ndim, long long shape1, long long shape2, long long shape3,
        long long shape4, long long shape5, long long stride0, long long stride1,
        long long stride2, long long stride3, long long stride4, long long stride5, double lower, double upper,
                    int has_lower, int has_upper, unsigned long long* counts,
                    unsigned int* tile_counts, long long n_tiles) {
    GS_LAYOUT;
    __shared__ unsigned int tile_total;
    gs::u64 below = 0, above = 0;
    for (long long tile = blockIdx.x; tile < n_tiles; tile += gridDim.x) {
        if (threadIdx.x == 0) {
            tile_total = 0;
        }
        __syncthreads();
        unsigned int mine = 0;
        const long long end = gs::min_i64(tile * GS_TILE + GS_TILE, n);
        for (long long i = tile * GS_TILE + threadIdx.x; i < end; i += GS_THREADS) {
            const int kind = classify(gs::to_double(data[gs::element_offset(i, layout)]), lower,
                                      upper, has_lower, has_upper);
            mine += kind != 0;
            below += kind == 2;
            above += kind == 3;
        }
        if (mine) {
            atomicAdd(&tile_total, mine);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            tile_counts[tile] = tile_total;
        }
        __syncthreads();  // tile_total is reset for the next tile
    }
    if (below) {
        atomicAdd(counts + 0, below);
    }
    if (above) {
        atomicAdd(counts + 1, above);
    }
}

__global__ void __launch_bounds__(GS_THREADS)
    gs_anomaly_offsets(const unsigned int* __restrict__ tile_counts,
                       unsigned long long* tile_offsets, long long n_tiles) {
    __shared__ unsigned long long run_start[GS_THREADS];
    const long long per_thread = (n_tiles + GS_THREADS - 1) / GS_THREADS;
    const long long first = threadIdx.x * per_thread;
    const long long last = gs::min_i64(first + per_thread, n_tiles);
    gs::u64 sum = 0;
    for (long long t = first; t < last; ++t) {
        sum += tile_counts[t];
    }
    run_start[threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
        gs::u64 total = 0;
        for (int t = 0; t < GS_THREADS; ++t) {
            const gs::u64 run = run_start[t];
            run_start[t] = total;
            total += run;
        }
    }
    __syncthreads();
    gs::u64 offset = run_start[threadIdx.x];
    for (long long t = first; t < last; ++t) {
        tile_offsets[t] = offset;
        offset += tile_counts[t];
    }
}

template <typename T>
__global__ void __launch_bounds__(GS_THREADS)
    gs_anomaly_collect(const T* __restrict__ data, long long n, int ndim, long long shape1, long long shape2, long long shape3,
        long long shape4, long long shape5, long long stride0, long long stride1,
        long long stride2, long long stride3, long long stride4, long long stride5, double lower, double upper,
                       int has_lower, int has_upper, const unsigned int* __restrict__ tile_counts,
                       const unsigned long long* __restrict__ tile_offsets, long long n_tiles,
                       long long max_positions, long long* positions, double* values) {
    GS_LAYOUT;
    __shared__ unsigned int rank[GS_THREADS];
    for (long long tile = blockIdx.x; tile < n_tiles; tile += gridDim.x) {
        gs::u64 written = tile_offsets[tile];
        if (tile_counts[tile] == 0 || written >= (gs::u64)max_positions) {
            continue;  // the same for every thread of the block
        }
        const long long end = gs::min_i64(tile * GS_TILE + GS_TILE, n);
        for (long long round = tile * GS_TILE; round < end; round += GS_THREADS) {
            const long long i = round + threadIdx.x;
            double x = 0.0;
            int hit = 0;
            if (i < end) {
                x = gs::to_double(data[gs::element_offset(i, layout)]);
                hit = classify(x, lower, upper, has_lower, has_upper) != 0;
            }
            rank[threadIdx.x] = hit;
            __syncthreads();
            for (int offset = 1; offset < GS_THREADS; offset <<= 1) {  // inclusive scan
                const unsigned int before = threadIdx.x >= offset ? rank[threadIdx.x - offset] : 0;
                __syncthreads();
                rank[threadIdx.x] += before;
                __syncthreads();
            }
            if (hit) {
                const gs::u64 slot = written + rank[threadIdx.x] - 1;
                if (slot < (gs::u64)max_positions) {
                    positions[slot] = i;
                    values[slot] = x;
                }
            }
            written += rank[GS_THREADS - 1];
            __syncthreads();  // rank is rewritten next round
            if (written >= (gs::u64)max_positions) {
                break;
            }
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(GS_THREADS)
    gs_heatmap(const T* __restrict__ data, long long n, int ndim, long long shape1, long long shape2, long long shape3,
        long long shape4, long long shape5, long long stride0, long long stride1,
        long long stride2, long long stride3, long long stride4, long long stride5, long long rows, long long width,
               long long cell_rows, long long cell_columns, double* heat_sum,
               unsigned long long* heat_count, unsigned long long* heat_nonfinite) {
    GS_LAYOUT;
    __shared__ double sums[GS_THREADS];
    __shared__ unsigned long long finite[GS_THREADS];
    __shared__ unsigned long long others[GS_THREADS];
    for (long long cell = blockIdx.x; cell < cell_rows * cell_columns; cell += gridDim.x) {
        const long long ci = cell / cell_columns, cj = cell - ci * cell_columns;
        const long long r0 = ci * rows / cell_rows, r1 = (ci + 1) * rows / cell_rows;
        const long long c0 = cj * width / cell_columns, c1 = (cj + 1) * width / cell_columns;
        const long long columns = c1 - c0, total = (r1 - r0) * columns;
        double sum = 0.0;
        gs::u64 count = 0, bad = 0;
        for (long long j = threadIdx.x; j < total; j += GS_THREADS) {
            const long long r = r0 + j / columns;
            const long long k = r * width + c0 + (j - (j / columns) * columns);
            if (k >= n) {
                continue;
            }
            const double x = gs::to_double(data[gs::element_offset(k, layout)]);
            if (is_nonfinite(x)) {
                ++bad;
            } else {
                sum += x;
                ++count;
            }
        }
        sums[threadIdx.x] = sum;
        finite[threadIdx.x] = count;
        others[threadIdx.x] = bad;
        __syncthreads();
        for (int half = GS_THREADS / 2; half > 0; half >>= 1) {  // a fixed order
            if ((int)threadIdx.x < half) {
                sums[threadIdx.x] += sums[threadIdx.x + half];
                finite[threadIdx.x] += finite[threadIdx.x + half];
                others[threadIdx.x] += others[threadIdx.x + half];
            }
            __syncthreads();
        }
        if (threadIdx.x == 0) {
            heat_sum[cell] = sums[0];
            heat_count[cell] = finite[0];
            heat_nonfinite[cell] = others[0];
        }
        __syncthreads();
    }
}

// Thread 0 does all the work: at most GS_MAX_TARGETS targets over GS_RADIX counts each.
__global__ void gs_select_step(unsigned long long* state, const unsigned long long* stats,
                               const double* quantiles, int n_quantiles, int pass, int passes,
                               unsigned long long* keys) {
    if (threadIdx.x != 0 || blockIdx.x != 0) {
        return;
    }
    gs::u64* rank = state + SELECT_RANK;
    gs::u64* prefix = state + SELECT_PREFIX;
    gs::u64* group = state + SELECT_GROUP;
    gs::u64* index = state + SELECT_INDEX;
    gs::u64* group_prefix = state + SELECT_GROUP_PREFIX;
    gs::u64* hist = state + SELECT_HIST;
    const int n_targets = 2 * n_quantiles;
    if (pass < 0) {
        const gs::u64 count = stats[0];
        state[SELECT_N_TARGETS] = n_targets;
        if (count == 0) {
            state[SELECT_N_GROUPS] = 0;
            for (int t = 0; t < n_targets; ++t) {
                keys[t] = 0;
            }
            return;
        }
        for (int q = 0; q < n_quantiles; ++q) {  // numpy: h = (n - 1) * q, floor(h), + 1
            const double h = gs::mul_rn((double)(count - 1), quantiles[q]);
            gs::u64 lo = (gs::u64)floor(h);
            lo = lo < count - 1 ? lo : count - 1;
            const gs::u64 hi = lo + 1 < count - 1 ? lo + 1 : count - 1;
            rank[2 * q] = lo;
            rank[2 * q + 1] = hi;
            index[2 * q] = 2 * q;
            index[2 * q + 1] = 2 * q + 1;
        }
        for (int t = 1; t < n_targets; ++t) {  // insertion sort by rank
            for (int u = t; u > 0 && rank[u - 1] > rank[u]; --u) {
                const gs::u64 r = rank[u], i = index[u];
                rank[u] = rank[u - 1];
                index[u] = index[u - 1];
                rank[u - 1] = r;
                index[u - 1] = i;
            }
        }
        for (int t = 0; t < n_targets; ++t) {
            prefix[t] = 0;
            group[t] = 0;
        }
        group_prefix[0] = 0;
        state[SELECT_N_GROUPS] = 1;
        return;
    }
    const gs::u64 n_groups = state[SELECT_N_GROUPS];
    if (n_groups == 0) {
        return;
    }
    for (int t = 0; t < n_targets; ++t) {
        const gs::u64* counts = hist + group[t] * GS_RADIX;
        gs::u64 below = 0;
        int digit = 0;
        while (digit < GS_RADIX - 1 && below + counts[digit] <= rank[t]) {
            below += counts[digit];
            ++digit;
        }
        rank[t] -= below;
        prefix[t] = (prefix[t] << 8) | (gs::u64)digit;
    }
    for (gs::u64 i = 0; i < n_groups * GS_RADIX; ++i) {
        hist[i] = 0;
    }
    gs::u64 groups = 0;
    for (int t = 0; t < n_targets; ++t) {  // targets sorted by rank: equal prefixes adjacent
        if (groups == 0 || group_prefix[groups - 1] != prefix[t]) {
            group_prefix[groups++] = prefix[t];
        }
        group[t] = groups - 1;
    }
    state[SELECT_N_GROUPS] = groups;
    if (pass == passes - 1) {
        for (int t = 0; t < n_targets; ++t) {
            keys[index[t]] = prefix[t];
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(GS_THREADS)
    gs_select_count(const T* __restrict__ data, long long n, int ndim, long long shape1, long long shape2, long long shape3,
        long long shape4, long long shape5, long long stride0, long long stride1,
        long long stride2, long long stride3, long long stride4, long long stride5, unsigned long long* state,
                    int pass) {
    GS_LAYOUT;
    __shared__ unsigned int counts[GS_MAX_TARGETS * GS_RADIX];
    __shared__ unsigned long long prefixes[GS_MAX_TARGETS];
    const int n_groups = (int)state[SELECT_N_GROUPS];
    if (n_groups == 0) {
        return;  // no finite value
    }
    for (int i = threadIdx.x; i < n_groups * GS_RADIX; i += blockDim.x) {
        counts[i] = 0;
    }
    for (int i = threadIdx.x; i < n_groups; i += blockDim.x) {
        prefixes[i] = state[SELECT_GROUP_PREFIX + i];
    }
    __syncthreads();
    const int shift = gs::order_key_bits<T>::value - 8 * (pass + 1);
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        const T v = data[gs::element_offset(i, layout)];
        if (gs::can_be_nonfinite<T>::value && is_nonfinite(gs::to_double(v))) {
            continue;
        }
        const gs::u64 key = gs::order_key(v);
        const gs::u64 head = pass == 0 ? 0 : key >> (shift + 8);
        int lo = 0, hi = n_groups - 1;  // group prefixes are sorted: binary search
        while (lo < hi) {
            const int mid = (lo + hi) / 2;
            if (prefixes[mid] < head) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if (prefixes[lo] == head) {
            atomicAdd(counts + lo * GS_RADIX + (int)((key >> shift) & 0xff), 1u);
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < n_groups * GS_RADIX; i += blockDim.x) {
        if (counts[i]) {
            atomicAdd(state + SELECT_HIST + i, (unsigned long long)counts[i]);
        }
    }
}
