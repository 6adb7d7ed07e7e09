/*
 * SelectiveScan (Mamba S6) forward: C launch API. See README.md in this folder for semantics.
 */
#ifndef EGL_SELECTIVE_SCAN_KERNEL_H
#define EGL_SELECTIVE_SCAN_KERNEL_H

#include "egl_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * u, delta, y: (batch, dim, seqlen); A: (dim, dstate); B, C: (batch, groups, dstate, seqlen);
 * D, delta_bias: (dim,) or NULL. Every tensor is contiguous and of `dtype` (EglDtype).
 * dim % groups == 0; channel i reads group i / (dim / groups). 1 <= dstate <= 64.
 */
EGL_API int egl_selective_scan_fwd(const void* u, const void* delta, const void* A, const void* B, const void* C,
                                   const void* D, const void* delta_bias, void* y, int batch, int dim, int seqlen,
                                   int dstate, int groups, int dtype, int delta_softplus, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* EGL_SELECTIVE_SCAN_KERNEL_H */
