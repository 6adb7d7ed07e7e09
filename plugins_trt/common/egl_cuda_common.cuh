/*
 * Device helpers shared by every edgeglocal kernel: typed loads/stores that compute in fp32,
 * softplus, and the dtype dispatch used by the C launchers. fp16 tensors are read and written
 * as __half and everything in between is fp32.
 */
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "egl_kernels.h"

namespace egl {

__device__ __forceinline__ float load(const float* p, int64_t i) { return __ldg(p + i); }
__device__ __forceinline__ float load(const __half* p, int64_t i) { return __half2float(__ldg(p + i)); }

__device__ __forceinline__ void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }

/* softplus(x) = log(1 + e^x), computed without overflow (PyTorch returns x above 20). */
__device__ __forceinline__ float softplus(float x) { return x > 20.f ? x : log1pf(__expf(x)); }

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Call f(float{}) or f(__half{}) for the dtype code; EGL_ERR_INVALID_ARGUMENT for anything else. */
template <class F>
inline int dispatch_dtype(int dtype, F&& f) {
    if (dtype == EGL_FP32) return f(float{});
    if (dtype == EGL_FP16) return f(__half{});
    return EGL_ERR_INVALID_ARGUMENT;
}

/* Map the sticky CUDA error state after a launch to an EglStatus. */
inline int launch_status() { return cudaGetLastError() == cudaSuccess ? EGL_OK : EGL_ERR_CUDA; }

/* Allow `bytes` of dynamic shared memory for `kernel` (needed above 48 KiB); false if the device can't. */
template <class Kernel>
inline bool reserve_shared_memory(Kernel kernel, size_t bytes) {
    int device = 0, limit = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) return false;
    if (bytes > static_cast<size_t>(limit)) return false;
    if (bytes <= 48 * 1024) return true;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)) ==
           cudaSuccess;
}

}  // namespace egl
