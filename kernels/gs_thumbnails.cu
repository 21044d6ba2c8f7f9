// gs_thumbnails.cu - uint8 thumbnails of a batch of images, by exact integer area averaging.
//
// gs_thumbnails<T> writes out[n][out_h][out_w][c] (uint8, C-contiguous) from n images of
// (h, w, c) samples of storage type T (uint8; bool as 0/255; float16, bfloat16, float32 or
// float64 in [0, 1], clipped, NaN as 0) addressed by element strides, so NHWC, NCHW and any
// strided view are read in place. Float pixels become uint8 as round(x * 255) half up, or,
// with truncate != 0, as torch's writer converts them (gs::unit_to_u8_truncated: float32(x)
// * 255 in float32, clipped, truncated) — the NumPy backend's image_to_uint8 either way. Each
// output sample is gs::thumbnail_sample: the overlap-weighted sum of the uint8 input samples
// under it, divided by h * w and rounded half up, the same integers as the NumPy backend's
// _area_resize. out_h == h and out_w == w only converts to uint8.
//
// Launch: 1-D grid of any size, GS_THREADS threads per block; one thread per output sample
// (grid-stride loop), consecutive threads on consecutive channels and columns.
// Reads: src. Writes: out. No shared memory, no atomics.
// Flush-to-zero: a subnormal pixel would round to 0 either way, but pixels are widened from
// their bits like every kernel's values (gs::to_double), so the PTX under CuPy's -ftz=true
// holds no .ftz instruction here either (tests/test_cupy_path.py).
#include "gs_common.cuh"

#define GS_THREADS 256

template <typename T>
__global__ void __launch_bounds__(GS_THREADS)
    gs_thumbnails(const T* __restrict__ src, long long n, long long h, long long w,
                  long long c, long long stride_n, long long stride_h, long long stride_w,
                  long long stride_c, long long out_h, long long out_w,
                  unsigned char* __restrict__ out, int truncate) {
    const long long total = n * out_h * out_w * c;
    const long long step = (long long)gridDim.x * blockDim.x;
    for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += step) {
        long long rest = k;
        const long long channel = rest % c;
        rest /= c;
        const long long j = rest % out_w;
        rest /= out_w;
        const long long i = rest % out_h;
        const long long image = rest / out_h;
        out[k] = gs::thumbnail_sample(src, stride_n, stride_h, stride_w, stride_c, h, w, out_h,
                                      out_w, image, i, j, channel, truncate != 0);
    }
}
