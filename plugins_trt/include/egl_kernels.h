/*
 * edgeglocal CUDA kernels: the shared part of the plain C launch API.
 *
 * Every launcher takes device pointers, sizes, a dtype code and a stream, enqueues work and
 * returns an EglStatus without synchronising. The same functions serve the TensorRT plugins,
 * the C test harness and Python (ctypes), so nothing here depends on TensorRT or C++.
 */
#ifndef EGL_KERNELS_H
#define EGL_KERNELS_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define EGL_API __declspec(dllexport)
#else
#define EGL_API __attribute__((visibility("default")))
#endif

/* Element type of every floating-point tensor of one call (inputs and output share it). */
typedef enum EglDtype { EGL_FP32 = 0, EGL_FP16 = 1 } EglDtype;

typedef enum EglStatus {
    EGL_OK = 0,
    EGL_ERR_INVALID_ARGUMENT = 1, /* a size, pointer or dtype is out of range */
    EGL_ERR_UNSUPPORTED = 2,      /* valid, but beyond what these kernels implement (see README) */
    EGL_ERR_CUDA = 3              /* a CUDA launch failed; cudaGetLastError() tells why */
} EglStatus;

/* A short English description of a status, for logs. */
EGL_API const char* egl_status_string(int status);

#ifdef __cplusplus
}
#endif

#endif /* EGL_KERNELS_H */
