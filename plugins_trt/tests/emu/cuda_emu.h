/*
 * A CPU stand-in for the parts of the CUDA execution model the edgeglocal kernels use, so that the
 * kernel sources and tests/harness.cu run on a machine without a GPU (tests/trt/test_kernels_emulated.py).
 *
 * Every CUDA thread is an OS thread; blocks run one after another, each with one shared-memory
 * buffer, a block barrier for __syncthreads and a barrier per warp for shuffles. "Device" memory
 * is host memory. It checks the kernels' indexing, staging and synchronisation logic, not their
 * speed, nor anything about real GPUs (memory model, occupancy, fp16 hardware). Force-included
 * (-include) into sources whose `<<<...>>>` launches and `extern __shared__` were rewritten to
 * emu::launch(...)(...) and emu::shared_memory() (see the test).
 */
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define threadIdx emu::tl_thread
#define blockIdx emu::tl_block
#define blockDim emu::tl_block_dim
#define gridDim emu::tl_grid_dim
#define __syncthreads() emu::tl_ctx->block_barrier.arrive_and_wait()
#define __shfl_up_sync(mask, value, offset) emu::shfl_up(value, offset)
#define __expf expf

namespace emu {

constexpr size_t kSharedBytes = 256 * 1024;

struct Warp {
    float lanes[32];
    std::barrier<> barrier{32};
};

struct BlockContext {
    explicit BlockContext(int threads) : block_barrier(threads), warps((threads + 31) / 32) {}
    std::barrier<> block_barrier;
    std::vector<Warp> warps;
    alignas(16) unsigned char shared[kSharedBytes];
};

inline thread_local uint3 tl_thread, tl_block;
inline thread_local dim3 tl_block_dim, tl_grid_dim;
inline thread_local BlockContext* tl_ctx = nullptr;

inline float* shared_memory() { return reinterpret_cast<float*>(tl_ctx->shared); }

inline float shfl_up(float value, int offset) {
    const int lane = static_cast<int>(tl_thread.x % 32);
    Warp& warp = tl_ctx->warps[tl_thread.x / 32];
    warp.lanes[lane] = value;
    warp.barrier.arrive_and_wait();
    const float out = lane >= offset ? warp.lanes[lane - offset] : value;
    warp.barrier.arrive_and_wait();
    return out;
}

/* emu::launch(kernel, grid, block, shared_bytes, stream)(args...): runs the grid block by block. */
template <class Kernel>
auto launch(Kernel kernel, dim3 grid, dim3 block, size_t shared = 0, cudaStream_t = nullptr) {
    return [=](auto... args) {
        if (shared > kSharedBytes || block.y != 1 || block.z != 1 || block.x % 32) std::abort();
        for (unsigned z = 0; z < grid.z; ++z)
            for (unsigned y = 0; y < grid.y; ++y)
                for (unsigned x = 0; x < grid.x; ++x) {
                    auto ctx = std::make_unique<BlockContext>(static_cast<int>(block.x));
                    std::vector<std::thread> threads;
                    for (unsigned t = 0; t < block.x; ++t)
                        threads.emplace_back([&, t] {
                            tl_thread = {t, 0, 0};
                            tl_block = {x, y, z};
                            tl_block_dim = block;
                            tl_grid_dim = grid;
                            tl_ctx = ctx.get();
                            kernel(args...);
                        });
                    for (auto& th : threads) th.join();
                }
    };
}

}  // namespace emu

template <class T>
inline T __ldg(const T* p) { return *p; }

template <class Kernel>
inline cudaError_t cudaFuncSetAttribute(Kernel*, cudaFuncAttribute, int) { return cudaSuccess; }

inline float atomicAdd(float* address, float value) {
    return std::atomic_ref<float>(*address).fetch_add(value);
}

// The runtime calls the kernels and the harness make, on host memory.
extern "C" {
inline cudaError_t cudaMalloc(void** ptr, size_t size) { *ptr = std::calloc(size ? size : 1, 1); return cudaSuccess; }
inline cudaError_t cudaFree(void* ptr) { std::free(ptr); return cudaSuccess; }
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind) {
    std::memcpy(dst, src, count);
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t) {
    std::memset(ptr, value, count);
    return cudaSuccess;
}
inline cudaError_t cudaGetDeviceCount(int* count) { *count = 1; return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* device) { *device = 0; return cudaSuccess; }
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr, int) {
    *value = static_cast<int>(emu::kSharedBytes);
    return cudaSuccess;
}
inline cudaError_t cudaGetLastError(void) { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
}
