/*
 * SelectiveScan2D forward: the cross-scan geometry over the shared scan engine.
 *
 * Directions are index arithmetic on the raster map, never flipped or transposed copies. The four
 * directions of a (batch, channel) run in different blocks and add their outputs into an fp32
 * accumulator with atomicAdd (the output itself for fp32, the workspace for fp16, then cast).
 */
#include "egl_scan_core.cuh"
#include "selective_scan_2d_kernel.h"

namespace {

constexpr int kDirections = 4;

/* Rows are (batch, direction); the sequences of a row are all channels. */
struct Scan2D {
    static constexpr bool kAccumulate = true;
    int dim, height, width, dstate, follow;

    __host__ __device__ int channels() const { return dim; }
    __host__ __device__ int length() const { return height * width; }
    /* Raster position visited at step t of direction k. */
    __host__ __device__ int position(int k, int t) const {
        const int s = k >= 2 ? length() - 1 - t : t;
        return (k & 1) ? (s % height) * width + s / height : s;
    }
    __host__ __device__ int param_step(int k, int t) const { return follow ? position(k, t) : t; }
    __host__ __device__ int64_t u_index(int row, int ch, int t) const {
        return (static_cast<int64_t>(row / kDirections) * dim + ch) * length() + position(row % kDirections, t);
    }
    __host__ __device__ int64_t out_index(int row, int ch, int t) const { return u_index(row, ch, t); }
    __host__ __device__ int64_t delta_index(int row, int ch, int t) const {
        return (static_cast<int64_t>(row) * dim + ch) * length() + param_step(row % kDirections, t);
    }
    __host__ __device__ int64_t bc_index(int row, int s, int t) const {
        return (static_cast<int64_t>(row) * dstate + s) * length() + param_step(row % kDirections, t);
    }
    __host__ __device__ int param_index(int row, int ch) const { return (row % kDirections) * dim + ch; }
};

template <typename T>
__global__ void cast_from_f32(const float* __restrict__ src, T* __restrict__ dst, int64_t count) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        egl::store(dst, i, src[i]);
    }
}

}  // namespace

extern "C" size_t egl_selective_scan_2d_workspace_size(int batch, int dim, int height, int width, int dtype) {
    if (dtype != EGL_FP16) return 0;
    return static_cast<size_t>(batch) * dim * height * width * sizeof(float);
}

extern "C" int egl_selective_scan_2d_fwd(const void* x, const void* delta, const void* A, const void* B,
                                         const void* C, const void* D, const void* delta_bias, void* y,
                                         void* workspace, int batch, int dim, int height, int width, int dstate,
                                         int dtype, int delta_softplus, int params_follow_scan, cudaStream_t stream) {
    if (!x || !delta || !A || !B || !C || !y) return EGL_ERR_INVALID_ARGUMENT;
    if (batch < 1 || dim < 1 || height < 1 || width < 1 || dstate < 1) return EGL_ERR_INVALID_ARGUMENT;
    if (static_cast<int64_t>(height) * width > (1 << 30) || static_cast<int64_t>(batch) * kDirections > 65535)
        return EGL_ERR_UNSUPPORTED;
    if (dtype == EGL_FP16 && !workspace) return EGL_ERR_INVALID_ARGUMENT;
    const int64_t count = static_cast<int64_t>(batch) * dim * height * width;
    float* acc = dtype == EGL_FP32 ? static_cast<float*>(y) : static_cast<float*>(workspace);
    const Scan2D geo{dim, height, width, dstate, params_follow_scan};
    const egl::ScanArgs args{x, delta, A, B, C, D, delta_bias, y, acc, dstate, height * width, delta_softplus};
    return egl::dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        if (cudaMemsetAsync(acc, 0, count * sizeof(float), stream) != cudaSuccess) return static_cast<int>(EGL_ERR_CUDA);
        const int status = egl::launch_scan<T>(args, geo, batch * kDirections, stream);
        if (status != EGL_OK || dtype == EGL_FP32) return status;
        const unsigned blocks = static_cast<unsigned>(egl::ceil_div(count, 256) < 4096 ? egl::ceil_div(count, 256) : 4096);
        cast_from_f32<T><<<blocks, 256, 0, stream>>>(acc, static_cast<T*>(y), count);
        return egl::launch_status();
    });
}
