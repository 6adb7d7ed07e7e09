/*
 * WindowAttention (Swin shifted windows with relative-position bias; GC ViT global query)
 * forward: C launch API. See README.md in this folder for semantics.
 */
#ifndef EGL_WINDOW_ATTENTION_KERNEL_H
#define EGL_WINDOW_ATTENTION_KERNEL_H

#include "egl_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * qkv: (batch, height, width, 3*channels) holding q, k, v; or (batch, height, width, 2*channels)
 * holding k, v when q_global (q_global_batch, window_h*window_w, channels) is given, with
 * q_global_batch 1 (shared) or batch. rel_bias_table: ((2*window_h-1)*(2*window_w-1), num_heads)
 * or NULL. out: (batch, height, width, channels). height % window_h == 0, width % window_w == 0,
 * 0 <= shift < window, channels % num_heads == 0, head_dim <= 128. Pass q_global = NULL and
 * q_global_batch = 0 without a global query.
 */
EGL_API int egl_window_attention_fwd(const void* qkv, const void* rel_bias_table, const void* q_global, void* out,
                                     int batch, int height, int width, int channels, int num_heads, int window_h,
                                     int window_w, int shift_h, int shift_w, float scale, int q_global_batch,
                                     int dtype, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* EGL_WINDOW_ATTENTION_KERNEL_H */
