/*
 * WindowAttention forward, fused: cyclic roll + window partition (index arithmetic on load),
 * q k^T * scale + relative-position bias + Swin shift mask, softmax in fp32 (online, one pass),
 * times V, and un-partition + roll back (index arithmetic on store).
 *
 * One block per (window, head, batch). The window's Q, K and V for that head and the head's
 * slice of the bias table are staged in shared memory; each thread owns one query token and keeps
 * its accumulator in registers (head_dim <= kMaxHd).
 */
#include <math.h>

#include "egl_cuda_common.cuh"
#include "window_attention_kernel.h"

namespace {

constexpr float kMaskValue = -100.f;  // Swin's additive mask between regions of a shifted window
constexpr int kMaxThreads = 256;

struct WinArgs {
    const void* qkv;
    const void* bias;
    const void* q_global;
    void* out;
    int H, W, c, heads, hd, wh, ww, sh, sw, qg_batch;
    float scale;
};

/* Region of a position of the rolled map along one axis (Swin's three slices; one if unshifted). */
__device__ __forceinline__ int region(int pos, int size, int window, int shift) {
    if (!shift) return 0;
    return pos < size - window ? 0 : (pos < size - shift ? 1 : 2);
}

template <int kMaxHd, typename T>
__global__ void __launch_bounds__(kMaxThreads) window_attention_kernel(WinArgs a) {
    extern __shared__ float smem[];
    const int N = a.wh * a.ww, hd = a.hd, qs = hd + 1;  // +1: query rows on distinct banks
    const int R = (2 * a.wh - 1) * (2 * a.ww - 1);
    const int win = blockIdx.x, head = blockIdx.y, b = blockIdx.z;
    const int wy = win / (a.W / a.ww), wx = win % (a.W / a.ww);
    float* sQ = smem;            // [N][hd + 1]
    float* sK = sQ + N * qs;     // [N][hd]
    float* sV = sK + N * hd;     // [N][hd]
    float* sBias = sV + N * hd;  // [R]
    int* sRegion = reinterpret_cast<int*>(sBias + R);

    const T* qkv = static_cast<const T*>(a.qkv);
    const int parts = a.q_global ? 2 : 3;
    const int k_off = (parts - 2) * a.c + head * hd;
    // Stage the window: token j of the rolled map sits at (y, x) of the original one.
    for (int e = threadIdx.x; e < N * hd; e += blockDim.x) {
        const int j = e / hd, d = e % hd;
        const int sy = wy * a.wh + j / a.ww, sx = wx * a.ww + j % a.ww;
        const int y = (sy + a.sh) % a.H, x = (sx + a.sw) % a.W;
        const int64_t pix = ((static_cast<int64_t>(b) * a.H + y) * a.W + x) * parts * a.c;
        sK[e] = egl::load(qkv, pix + k_off + d);
        sV[e] = egl::load(qkv, pix + k_off + a.c + d);
        sQ[j * qs + d] = a.q_global
            ? egl::load(static_cast<const T*>(a.q_global),
                        (static_cast<int64_t>(a.qg_batch == 1 ? 0 : b) * N + j) * a.c + head * hd + d)
            : egl::load(qkv, pix + head * hd + d);
        if (d == 0) sRegion[j] = region(sy, a.H, a.wh, a.sh) * 3 + region(sx, a.W, a.ww, a.sw);
    }
    for (int r = threadIdx.x; r < R; r += blockDim.x)
        sBias[r] = a.bias ? egl::load(static_cast<const T*>(a.bias), static_cast<int64_t>(r) * a.heads + head) : 0.f;
    __syncthreads();

    for (int i = threadIdx.x; i < N; i += blockDim.x) {
        const int iy = i / a.ww, ix = i % a.ww;
        float q[kMaxHd], acc[kMaxHd];
#pragma unroll
        for (int d = 0; d < kMaxHd; ++d) {
            q[d] = d < hd ? sQ[i * qs + d] * a.scale : 0.f;
            acc[d] = 0.f;
        }
        float m = -INFINITY, l = 0.f;
        for (int j = 0; j < N; ++j) {
            float s = sBias[(iy - j / a.ww + a.wh - 1) * (2 * a.ww - 1) + (ix - j % a.ww + a.ww - 1)];
            if (sRegion[i] != sRegion[j]) s += kMaskValue;
#pragma unroll
            for (int d = 0; d < kMaxHd; ++d)
                if (d < hd) s += q[d] * sK[j * hd + d];
            const float m_new = fmaxf(m, s);
            const float correction = __expf(m - m_new), p = __expf(s - m_new);
            l = l * correction + p;
#pragma unroll
            for (int d = 0; d < kMaxHd; ++d)
                if (d < hd) acc[d] = acc[d] * correction + p * sV[j * hd + d];
            m = m_new;
        }
        const int sy = wy * a.wh + iy, sx = wx * a.ww + ix;
        const int y = (sy + a.sh) % a.H, x = (sx + a.sw) % a.W;
        const int64_t o = ((static_cast<int64_t>(b) * a.H + y) * a.W + x) * a.c + head * hd;
        const float inv = 1.f / l;
#pragma unroll
        for (int d = 0; d < kMaxHd; ++d)
            if (d < hd) egl::store(static_cast<T*>(a.out), o + d, acc[d] * inv);
    }
}

template <typename T>
int launch(const WinArgs& a, int batch, cudaStream_t stream) {
    const int N = a.wh * a.ww, R = (2 * a.wh - 1) * (2 * a.ww - 1);
    const size_t shared = (static_cast<size_t>(N) * (3 * a.hd + 1) + R) * sizeof(float) + N * sizeof(int);
    const dim3 grid((a.H / a.wh) * (a.W / a.ww), a.heads, batch);
    const int threads = static_cast<int>(egl::ceil_div(N, 32) * 32 < kMaxThreads ? egl::ceil_div(N, 32) * 32 : kMaxThreads);
    auto run = [&](auto kernel) {
        if (!egl::reserve_shared_memory(kernel, shared)) return static_cast<int>(EGL_ERR_UNSUPPORTED);
        kernel<<<grid, threads, shared, stream>>>(a);
        return egl::launch_status();
    };
    if (a.hd <= 32) return run(window_attention_kernel<32, T>);
    if (a.hd <= 64) return run(window_attention_kernel<64, T>);
    return run(window_attention_kernel<128, T>);
}

}  // namespace

extern "C" int egl_window_attention_fwd(const void* qkv, const void* rel_bias_table, const void* q_global, void* out,
                                        int batch, int height, int width, int channels, int num_heads, int window_h,
                                        int window_w, int shift_h, int shift_w, float scale, int q_global_batch,
                                        int dtype, cudaStream_t stream) {
    if (!qkv || !out || batch < 1 || channels < 1 || num_heads < 1 || window_h < 1 || window_w < 1)
        return EGL_ERR_INVALID_ARGUMENT;
    if (height < window_h || width < window_w || height % window_h || width % window_w || channels % num_heads)
        return EGL_ERR_INVALID_ARGUMENT;
    if (shift_h < 0 || shift_h >= window_h || shift_w < 0 || shift_w >= window_w) return EGL_ERR_INVALID_ARGUMENT;
    if (q_global ? (q_global_batch != 1 && q_global_batch != batch) : q_global_batch != 0)
        return EGL_ERR_INVALID_ARGUMENT;
    const int hd = channels / num_heads;
    const int64_t windows = static_cast<int64_t>(height / window_h) * (width / window_w);
    if (hd > 128 || windows > 0x7fffffff || num_heads > 65535 || batch > 65535) return EGL_ERR_UNSUPPORTED;
    const WinArgs args{qkv,      rel_bias_table, q_global, out,     height,  width,          channels, num_heads, hd,
                       window_h, window_w,       shift_h,  shift_w, q_global_batch, scale};
    return egl::dispatch_dtype(dtype, [&](auto tag) { return launch<decltype(tag)>(args, batch, stream); });
}
