/*
 * Kernel harness: runs each edgeglocal kernel on random inputs against a plain CPU reference, in
 * fp32 and fp16, and prints one line per case. Exit 0 all passed, 1 a case failed, 77 no GPU
 * (CTest's skip code). Python's GPU tests compare the same kernels with edgeglocal.ops as well.
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <vector>

#include "selective_scan_2d_kernel.h"
#include "selective_scan_kernel.h"
#include "window_attention_kernel.h"

namespace {

using Vec = std::vector<float>;

float uniform(uint32_t& state, float lo, float hi) {
    state = state * 1664525u + 1013904223u;
    return lo + (hi - lo) * static_cast<float>(state >> 8) / static_cast<float>(1u << 24);
}

Vec random(size_t count, float lo, float hi, uint32_t seed) {
    Vec v(count);
    for (auto& x : v) x = uniform(seed, lo, hi);
    return v;
}

/* A host tensor mirrored on the device in fp32 or fp16; fp16 rounds the host copy too, so the
 * reference sees exactly the values the kernel reads. */
struct DeviceTensor {
    void* ptr = nullptr;
    size_t count = 0;
    int dtype = EGL_FP32;
    DeviceTensor(Vec& host, int dt) : count(host.size()), dtype(dt) {
        if (dtype == EGL_FP16) {
            std::vector<__half> h(count);
            for (size_t i = 0; i < count; ++i) {
                h[i] = __float2half(host[i]);
                host[i] = __half2float(h[i]);
            }
            cudaMalloc(&ptr, count * sizeof(__half));
            cudaMemcpy(ptr, h.data(), count * sizeof(__half), cudaMemcpyHostToDevice);
        } else {
            cudaMalloc(&ptr, count * sizeof(float));
            cudaMemcpy(ptr, host.data(), count * sizeof(float), cudaMemcpyHostToDevice);
        }
    }
    explicit DeviceTensor(size_t n, int dt) : count(n), dtype(dt) {
        cudaMalloc(&ptr, n * (dt == EGL_FP16 ? sizeof(__half) : sizeof(float)));
    }
    Vec download() const {
        Vec out(count);
        if (dtype == EGL_FP16) {
            std::vector<__half> h(count);
            cudaMemcpy(h.data(), ptr, count * sizeof(__half), cudaMemcpyDeviceToHost);
            for (size_t i = 0; i < count; ++i) out[i] = __half2float(h[i]);
        } else {
            cudaMemcpy(out.data(), ptr, count * sizeof(float), cudaMemcpyDeviceToHost);
        }
        return out;
    }
    ~DeviceTensor() { cudaFree(ptr); }
};

int failures = 0;

void report(const char* name, int dtype, int status, const Vec& got, const Vec& want) {
    double scale = 1.0, worst = 0.0;
    bool finite = true;
    for (float w : want) {
        finite = finite && std::isfinite(w);
        scale = std::fmax(scale, std::fabs(static_cast<double>(w)));
    }
    const double tolerance = (dtype == EGL_FP16 ? 1e-2 : 1e-4) * scale;
    bool close = finite;
    for (size_t i = 0; i < want.size(); ++i) {
        const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
        close = close && err <= tolerance;  // false for NaN too
        worst = std::isnan(err) || err > worst ? err : worst;
    }
    const bool ok = status == EGL_OK && cudaDeviceSynchronize() == cudaSuccess && close;
    failures += !ok;
    std::printf("%s %-44s %s max|err| %.3g (tol %.3g) status %s\n", ok ? "PASS" : "FAIL", name,
                dtype == EGL_FP16 ? "fp16" : "fp32", worst, tolerance, egl_status_string(status));
}

float softplus(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }

/* One direction of a selective scan over `L` steps; idx maps step -> offsets. */
template <class Index>
void scan_ref(int L, int n, const float* A, float Dv, float bias, bool sp, const Vec& u, const Vec& delta,
              const Vec& B, const Vec& C, Vec& y, Index idx, bool accumulate) {
    std::vector<double> h(n, 0.0);
    for (int t = 0; t < L; ++t) {
        int64_t ui, di, bi, oi;
        idx(t, ui, di, bi, oi);
        const double raw = delta[di] + bias, dt = sp ? softplus(static_cast<float>(raw)) : raw;
        double out = Dv * u[ui];
        for (int s = 0; s < n; ++s) {
            h[s] = std::exp(dt * A[s]) * h[s] + dt * B[bi + static_cast<int64_t>(s) * L] * u[ui];
            out += h[s] * C[bi + static_cast<int64_t>(s) * L];
        }
        y[oi] = static_cast<float>(accumulate ? y[oi] + out : out);
    }
}

void check_selective_scan(int dtype, int b, int d, int L, int n, int g, bool sp) {
    // Without softplus, dt = delta + bias must stay positive for a decaying (finite) state.
    Vec u = random(size_t(b) * d * L, -1, 1, 1), delta = random(size_t(b) * d * L, sp ? -2.f : 0.6f, 1, 2);
    Vec A = random(size_t(d) * n, -2, -0.1f, 3), B = random(size_t(b) * g * n * L, -1, 1, 4);
    Vec C = random(size_t(b) * g * n * L, -1, 1, 5), D = random(d, -1, 1, 6), bias = random(d, -0.5f, 0.5f, 7);
    DeviceTensor du(u, dtype), ddelta(delta, dtype), dA(A, dtype), dB(B, dtype), dC(C, dtype), dD(D, dtype),
        dbias(bias, dtype), dy(size_t(b) * d * L, dtype);
    const int status = egl_selective_scan_fwd(du.ptr, ddelta.ptr, dA.ptr, dB.ptr, dC.ptr, dD.ptr, dbias.ptr, dy.ptr,
                                              b, d, L, n, g, dtype, sp, nullptr);
    Vec want(size_t(b) * d * L, 0.f);
    for (int bi = 0; bi < b; ++bi)
        for (int c = 0; c < d; ++c) {
            const int64_t row = (int64_t(bi) * d + c) * L, bc = (int64_t(bi) * g + c / (d / g)) * n * L;
            scan_ref(L, n, &A[size_t(c) * n], D[c], bias[c], sp, u, delta, B, C, want,
                     [&](int t, int64_t& ui, int64_t& di, int64_t& bi_, int64_t& oi) {
                         ui = di = oi = row + t;
                         bi_ = bc + t;
                     }, false);
        }
    char name[96];
    std::snprintf(name, sizeof name, "SelectiveScan b%d d%d l%d n%d g%d softplus%d", b, d, L, n, g, sp);
    report(name, dtype, status, dy.download(), want);
}

void check_selective_scan_2d(int dtype, int b, int d, int H, int W, int n, bool follow) {
    const int L = H * W, K = 4;
    Vec x = random(size_t(b) * d * L, -1, 1, 11), delta = random(size_t(b) * K * d * L, -2, 1, 12);
    Vec A = random(size_t(K) * d * n, -2, -0.1f, 13), B = random(size_t(b) * K * n * L, -1, 1, 14);
    Vec C = random(size_t(b) * K * n * L, -1, 1, 15), D = random(size_t(K) * d, -1, 1, 16);
    Vec bias = random(size_t(K) * d, -0.5f, 0.5f, 17);
    DeviceTensor dx(x, dtype), ddelta(delta, dtype), dA(A, dtype), dB(B, dtype), dC(C, dtype), dD(D, dtype),
        dbias(bias, dtype), dy(size_t(b) * d * L, dtype);
    void* workspace = nullptr;
    const size_t ws = egl_selective_scan_2d_workspace_size(b, d, H, W, dtype);
    if (ws) cudaMalloc(&workspace, ws);
    const int status = egl_selective_scan_2d_fwd(dx.ptr, ddelta.ptr, dA.ptr, dB.ptr, dC.ptr, dD.ptr, dbias.ptr,
                                                 dy.ptr, workspace, b, d, H, W, n, dtype, 1, follow, nullptr);
    Vec want(size_t(b) * d * L, 0.f);
    auto position = [&](int k, int t) {
        const int s = k >= 2 ? L - 1 - t : t;
        return (k & 1) ? (s % H) * W + s / H : s;
    };
    for (int bi = 0; bi < b; ++bi)
        for (int k = 0; k < K; ++k)
            for (int c = 0; c < d; ++c) {
                const int p = k * d + c;
                scan_ref(L, n, &A[size_t(p) * n], D[p], bias[p], true, x, delta, B, C, want,
                         [&](int t, int64_t& ui, int64_t& di, int64_t& bi_, int64_t& oi) {
                             const int pos = position(k, t), q = follow ? pos : t;
                             ui = oi = (int64_t(bi) * d + c) * L + pos;
                             di = ((int64_t(bi) * K + k) * d + c) * L + q;
                             bi_ = (int64_t(bi) * K + k) * n * L + q;
                         }, true);
            }
    char name[96];
    std::snprintf(name, sizeof name, "SelectiveScan2D b%d d%d %dx%d n%d follow%d", b, d, H, W, n, follow);
    report(name, dtype, status, dy.download(), want);
    cudaFree(workspace);
}

void check_window_attention(int dtype, int b, int H, int W, int c, int heads, int wh, int ww, int sh, int sw,
                            bool with_bias, int qg_batch) {
    const int N = wh * ww, hd = c / heads, parts = qg_batch ? 2 : 3, R = (2 * wh - 1) * (2 * ww - 1);
    const float scale = 1.f / std::sqrt(static_cast<float>(hd));
    Vec qkv = random(size_t(b) * H * W * parts * c, -1, 1, 21), table = random(size_t(R) * heads, -1, 1, 22);
    Vec qg = random(size_t(qg_batch ? qg_batch : 1) * N * c, -1, 1, 23);
    DeviceTensor dqkv(qkv, dtype), dtable(table, dtype), dqg(qg, dtype), dout(size_t(b) * H * W * c, dtype);
    const int status = egl_window_attention_fwd(dqkv.ptr, with_bias ? dtable.ptr : nullptr, qg_batch ? dqg.ptr : nullptr,
                                                dout.ptr, b, H, W, c, heads, wh, ww, sh, sw, scale, qg_batch, dtype,
                                                nullptr);
    // Reference: roll by -shift, attend inside each window, roll back (Swin's definition).
    auto region = [](int pos, int size, int window, int shift) {
        return !shift ? 0 : pos < size - window ? 0 : pos < size - shift ? 1 : 2;
    };
    Vec want(size_t(b) * H * W * c, 0.f);
    std::vector<double> scores(N);
    for (int bi = 0; bi < b; ++bi)
        for (int y0 = 0; y0 < H; y0 += wh)
            for (int x0 = 0; x0 < W; x0 += ww)
                for (int h = 0; h < heads; ++h)
                    for (int i = 0; i < N; ++i) {
                        auto pix = [&](int t) {  // offset of rolled-window token t in the original map
                            const int sy = y0 + t / ww, sx = x0 + t % ww;
                            return ((int64_t(bi) * H + (sy + sh) % H) * W + (sx + sw) % W);
                        };
                        auto label = [&](int t) {
                            return region(y0 + t / ww, H, wh, sh) * 3 + region(x0 + t % ww, W, ww, sw);
                        };
                        double top = -1e300;
                        for (int j = 0; j < N; ++j) {
                            double s = 0;
                            for (int e = 0; e < hd; ++e) {
                                const double q = qg_batch ? qg[(int64_t(qg_batch == 1 ? 0 : bi) * N + i) * c + h * hd + e]
                                                          : qkv[pix(i) * parts * c + h * hd + e];
                                s += q * scale * qkv[pix(j) * parts * c + (parts - 2) * c + h * hd + e];
                            }
                            const int rel = (i / ww - j / ww + wh - 1) * (2 * ww - 1) + (i % ww - j % ww + ww - 1);
                            if (with_bias) s += table[size_t(rel) * heads + h];
                            if (label(i) != label(j)) s += -100.0;
                            scores[j] = s;
                            top = std::fmax(top, s);
                        }
                        double total = 0;
                        for (int j = 0; j < N; ++j) total += scores[j] = std::exp(scores[j] - top);
                        for (int e = 0; e < hd; ++e) {
                            double acc = 0;
                            for (int j = 0; j < N; ++j)
                                acc += scores[j] * qkv[pix(j) * parts * c + (parts - 1) * c + h * hd + e];
                            want[pix(i) * c + h * hd + e] = static_cast<float>(acc / total);
                        }
                    }
    char name[96];
    std::snprintf(name, sizeof name, "WindowAttention %dx%d c%d h%d win%dx%d shift%d,%d bias%d qg%d", H, W, c, heads,
                  wh, ww, sh, sw, with_bias, qg_batch);
    report(name, dtype, status, dout.download(), want);
}

}  // namespace

int main() {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::printf("SKIP: no CUDA device\n");
        return 77;
    }
    for (int dtype : {EGL_FP32, EGL_FP16}) {
        check_selective_scan(dtype, 2, 8, 100, 16, 1, true);
        check_selective_scan(dtype, 2, 8, 77, 5, 2, false);
        check_selective_scan(dtype, 1, 4, 1, 16, 1, true);
        check_selective_scan(dtype, 1, 6, 3000, 33, 3, true);
        check_selective_scan_2d(dtype, 2, 4, 5, 7, 8, true);
        check_selective_scan_2d(dtype, 1, 6, 14, 14, 16, false);
        check_window_attention(dtype, 2, 14, 14, 32, 2, 7, 7, 0, 0, true, 0);
        check_window_attention(dtype, 1, 14, 21, 48, 3, 7, 7, 3, 3, true, 0);
        check_window_attention(dtype, 2, 8, 8, 64, 1, 4, 4, 2, 0, false, 0);
        check_window_attention(dtype, 2, 14, 14, 32, 4, 7, 7, 0, 0, true, 1);
        check_window_attention(dtype, 2, 12, 12, 256, 2, 6, 6, 0, 0, true, 2);
        check_window_attention(dtype, 1, 18, 36, 32, 2, 18, 18, 9, 5, true, 0);  // more queries than threads
    }
    std::printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
