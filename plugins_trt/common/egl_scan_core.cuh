/*
 * The selective-scan engine shared by SelectiveScan (1-D) and SelectiveScan2D (4 directions).
 *
 *   h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t,   y_t = <C_t, h_t> + D * u_t,
 *   dt_t = softplus(delta_t + delta_bias) or delta_t + delta_bias.
 *
 * One warp runs one sequence (batch, channel[, direction]); its 32 lanes each own a contiguous
 * segment of the sequence and keep the n state values in registers. Two passes:
 *   1. every lane scans its segment from h = 0 and records the segment's end state and sum(dt)
 *      (the segment's decay is exp(A * sum(dt)), so one scalar describes it);
 *   2. a warp-shuffle scan over lanes turns those into each segment's true incoming state, and
 *      the lanes rescan their segments from it, emitting y.
 * The warps of a block share one B/C row (same batch and group or direction), so each chunk's
 * B/C tile is loaded once into shared memory for all of them; u/delta tiles are staged there too
 * so that global loads are coalesced whatever order the lanes walk in.
 *
 * A Geometry type maps (row, channel, step) to tensor offsets, which is all that differs between
 * the 1-D op and the 2-D cross scan (whose directions are pure index arithmetic, no copies).
 */
#pragma once

#include "egl_cuda_common.cuh"

namespace egl {

constexpr int kScanLanes = 32;                 // segments per sequence: one per lane
constexpr int kScanWarps = 4;                  // sequences per block, sharing one B/C row
constexpr int kScanChunk = 8;                  // steps of each segment staged per round
constexpr int kTileStride = kScanChunk + 1;    // +1 keeps lanes on distinct shared-memory banks
constexpr int kTileFloats = kScanLanes * kTileStride;

struct ScanArgs {
    const void* u;
    const void* delta;
    const void* A;           // (rows of A, n)
    const void* B;           // B/C rows indexed by the geometry
    const void* C;
    const void* D;           // may be null
    const void* delta_bias;  // may be null
    void* y;                 // output for geometries that store
    float* y_acc;            // fp32 accumulator for geometries that accumulate (must be zeroed)
    int n;
    int L;
    int softplus;
};

/* Dynamic shared memory of one block for state size n. */
inline size_t scan_shared_bytes(int n) {
    return static_cast<size_t>(2 * n + 2 * kScanWarps) * kTileFloats * sizeof(float);
}

template <int kMaxN, typename T, class Geo>
__global__ void __launch_bounds__(kScanWarps * 32) scan_kernel(ScanArgs a, Geo geo) {
    extern __shared__ float smem[];
    const int n = a.n, L = a.L;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int row = blockIdx.y;
    const int ch = blockIdx.x * kScanWarps + warp;
    const bool active = ch < geo.channels();  // uniform within a warp
    float* sB = smem;                         // [n][lane][step]
    float* sC = sB + n * kTileFloats;
    float* sU = sC + n * kTileFloats;         // [warp][lane][step]
    float* sDelta = sU + kScanWarps * kTileFloats;

    const T* u = static_cast<const T*>(a.u);
    const T* delta = static_cast<const T*>(a.delta);
    const T* Bp = static_cast<const T*>(a.B);
    const T* Cp = static_cast<const T*>(a.C);
    const int seg = static_cast<int>(ceil_div(L, kScanLanes));
    const int chunks = static_cast<int>(ceil_div(seg, kScanChunk));

    const int param = geo.param_index(row, active ? ch : 0);
    float A[kMaxN], h[kMaxN];
#pragma unroll
    for (int s = 0; s < kMaxN; ++s) {
        A[s] = s < n ? load(static_cast<const T*>(a.A), static_cast<int64_t>(param) * n + s) : 0.f;
        h[s] = 0.f;
    }
    const float Dv = a.D ? load(static_cast<const T*>(a.D), param) : 0.f;
    const float bias = a.delta_bias ? load(static_cast<const T*>(a.delta_bias), param) : 0.f;
    float dsum = 0.f;

    for (int pass = 0; pass < 2; ++pass) {
        const bool emit = pass == 1;
        for (int j = 0; j < chunks; ++j) {
            const int base = j * kScanChunk;
            __syncthreads();  // the previous tile has been consumed
            for (int e = threadIdx.x; e < kScanWarps * kScanLanes * kScanChunk; e += blockDim.x) {
                const int i = e % kScanChunk, r = (e / kScanChunk) % kScanLanes;
                const int w = e / (kScanChunk * kScanLanes);
                const int cw = blockIdx.x * kScanWarps + w;
                const int t = r * seg + base + i;
                const bool ok = base + i < seg && t < L && cw < geo.channels();
                const int slot = (w * kScanLanes + r) * kTileStride + i;
                sU[slot] = ok ? load(u, geo.u_index(row, cw, t)) : 0.f;
                sDelta[slot] = ok ? load(delta, geo.delta_index(row, cw, t)) : 0.f;
            }
            for (int e = threadIdx.x; e < n * kScanLanes * kScanChunk; e += blockDim.x) {
                const int i = e % kScanChunk, r = (e / kScanChunk) % kScanLanes;
                const int s = e / (kScanChunk * kScanLanes);
                const int t = r * seg + base + i;
                const bool ok = base + i < seg && t < L;
                const int64_t idx = ok ? geo.bc_index(row, s, t) : 0;
                const int slot = (s * kScanLanes + r) * kTileStride + i;
                sB[slot] = ok ? load(Bp, idx) : 0.f;
                if (emit) sC[slot] = ok ? load(Cp, idx) : 0.f;
            }
            __syncthreads();
            if (!active) continue;
            for (int i = 0; i < kScanChunk; ++i) {
                const int t = lane * seg + base + i;
                if (base + i >= seg || t >= L) break;
                const int slot = (warp * kScanLanes + lane) * kTileStride + i;
                const float uu = sU[slot];
                const float raw = sDelta[slot] + bias;
                const float dt = a.softplus ? softplus(raw) : raw;
                const float du = dt * uu;
                float y = 0.f;
#pragma unroll
                for (int s = 0; s < kMaxN; ++s) {
                    if (s < n) {
                        const int bs = (s * kScanLanes + lane) * kTileStride + i;
                        h[s] = __expf(dt * A[s]) * h[s] + du * sB[bs];
                        if (emit) y += h[s] * sC[bs];
                    }
                }
                if (!emit) {
                    dsum += dt;
                } else if constexpr (Geo::kAccumulate) {
                    atomicAdd(a.y_acc + geo.out_index(row, ch, t), y + Dv * uu);
                } else {
                    store(static_cast<T*>(a.y), geo.out_index(row, ch, t), y + Dv * uu);
                }
            }
        }
        if (emit || !active) continue;
        // Inclusive scan over lanes of (sum dt, end state): a later segment sees an earlier one's
        // state decayed by exp(A * its own sum dt). Then shift by one lane: the incoming state.
        constexpr unsigned kFull = 0xffffffffu;
        for (int off = 1; off < kScanLanes; off <<= 1) {
            const float dprev = __shfl_up_sync(kFull, dsum, off);
#pragma unroll
            for (int s = 0; s < kMaxN; ++s) {
                const float hp = __shfl_up_sync(kFull, h[s], off);
                if (lane >= off && s < n) h[s] += hp * __expf(A[s] * dsum);
            }
            if (lane >= off) dsum += dprev;
        }
#pragma unroll
        for (int s = 0; s < kMaxN; ++s) {
            const float hp = __shfl_up_sync(kFull, h[s], 1);
            h[s] = lane == 0 ? 0.f : hp;
        }
    }
}

/* Launch scan_kernel for a geometry with `rows` B/C rows; picks the register budget from n. */
template <typename T, class Geo>
int launch_scan(const ScanArgs& a, const Geo& geo, int rows, cudaStream_t stream) {
    if (a.n < 1 || a.n > 64) return EGL_ERR_UNSUPPORTED;
    const size_t shared = scan_shared_bytes(a.n);
    const dim3 grid(static_cast<unsigned>(ceil_div(geo.channels(), kScanWarps)), static_cast<unsigned>(rows));
    const dim3 block(kScanWarps * 32);
    auto run = [&](auto kernel) {
        if (!reserve_shared_memory(kernel, shared)) return static_cast<int>(EGL_ERR_UNSUPPORTED);
        kernel<<<grid, block, shared, stream>>>(a, geo);
        return launch_status();
    };
    if (a.n <= 16) return run(scan_kernel<16, T, Geo>);
    if (a.n <= 32) return run(scan_kernel<32, T, Geo>);
    return run(scan_kernel<64, T, Geo>);
}

}  // namespace egl
