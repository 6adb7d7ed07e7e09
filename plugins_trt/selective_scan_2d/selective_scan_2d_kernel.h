/*
 * SelectiveScan2D (VMamba cross scan: 4 directions, summed) forward: C launch API.
 * See README.md in this folder for semantics.
 */
#ifndef EGL_SELECTIVE_SCAN_2D_KERNEL_H
#define EGL_SELECTIVE_SCAN_2D_KERNEL_H

#include "egl_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of scratch that egl_selective_scan_2d_fwd needs (an fp32 accumulator for fp16 outputs, else 0). */
EGL_API size_t egl_selective_scan_2d_workspace_size(int batch, int dim, int height, int width, int dtype);

/*
 * x, y: (batch, dim, height, width); delta: (batch, 4, dim, height*width); A: (4*dim, dstate);
 * B, C: (batch, 4, dstate, height*width); D, delta_bias: (4*dim,) or NULL. delta/B/C are in raster
 * order. Direction k visits raster positions row-major (0), column-major (1), and those reversed
 * (2, 3). params_follow_scan != 0: step t of direction k reads delta/B/C at the position it visits
 * (VMamba); == 0: at raster index t (VCMamba). y = sum over directions. 1 <= dstate <= 64.
 * `workspace` must hold egl_selective_scan_2d_workspace_size() bytes (may be NULL when that is 0).
 */
EGL_API int egl_selective_scan_2d_fwd(const void* x, const void* delta, const void* A, const void* B, const void* C,
                                      const void* D, const void* delta_bias, void* y, void* workspace, int batch,
                                      int dim, int height, int width, int dstate, int dtype, int delta_softplus,
                                      int params_follow_scan, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* EGL_SELECTIVE_SCAN_2D_KERNEL_H */
