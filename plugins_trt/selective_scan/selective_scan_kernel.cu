/*
 * SelectiveScan forward: the 1-D geometry over the shared scan engine (common/egl_scan_core.cuh).
 */
#include "egl_scan_core.cuh"
#include "selective_scan_kernel.h"

namespace {

/* Rows are (batch, group); the sequences of a row are the group's channels, in raster order. */
struct Scan1D {
    static constexpr bool kAccumulate = false;
    int dim, seqlen, dstate, groups, per_group;

    __host__ __device__ int channels() const { return per_group; }
    __host__ __device__ int channel(int row, int ch) const { return (row % groups) * per_group + ch; }
    __host__ __device__ int64_t u_index(int row, int ch, int t) const {
        return (static_cast<int64_t>(row / groups) * dim + channel(row, ch)) * seqlen + t;
    }
    __host__ __device__ int64_t delta_index(int row, int ch, int t) const { return u_index(row, ch, t); }
    __host__ __device__ int64_t out_index(int row, int ch, int t) const { return u_index(row, ch, t); }
    __host__ __device__ int64_t bc_index(int row, int s, int t) const {
        return (static_cast<int64_t>(row) * dstate + s) * seqlen + t;
    }
    __host__ __device__ int param_index(int row, int ch) const { return channel(row, ch); }
};

}  // namespace

extern "C" int egl_selective_scan_fwd(const void* u, const void* delta, const void* A, const void* B, const void* C,
                                      const void* D, const void* delta_bias, void* y, int batch, int dim, int seqlen,
                                      int dstate, int groups, int dtype, int delta_softplus, cudaStream_t stream) {
    if (!u || !delta || !A || !B || !C || !y) return EGL_ERR_INVALID_ARGUMENT;
    if (batch < 1 || dim < 1 || seqlen < 1 || dstate < 1 || groups < 1 || dim % groups) return EGL_ERR_INVALID_ARGUMENT;
    if (static_cast<int64_t>(batch) * groups > 65535) return EGL_ERR_UNSUPPORTED;
    const egl::ScanArgs args{u, delta, A, B, C, D, delta_bias, y, nullptr, dstate, seqlen, delta_softplus};
    const Scan1D geo{dim, seqlen, dstate, groups, dim / groups};
    return egl::dispatch_dtype(dtype, [&](auto tag) {
        return egl::launch_scan<decltype(tag)>(args, geo, batch * groups, stream);
    });
}
