// Run one image through an edgeglocal TensorRT engine from C++.
//
//   egl_trt_infer MODEL.engine libedgeglocal_trt_plugins.so IMAGE [HEIGHT WIDTH]
//
// Registers the plugins (dlopen + initEdgeglocalPlugins), deserializes the plan, preprocesses the
// image with OpenCV the way edgeglocal's default manifest does (RGB, /255, stretch to the input
// size: the profile's opt shape for dynamic inputs unless HEIGHT WIDTH are given), runs it on a
// CUDA stream and prints each output's shape and value range. Every failure prints one sentence
// and exits non-zero.
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <type_traits>
#include <vector>

// The name-based I/O API used here (setInputShape, setTensorAddress, enqueueV3, delete) is TensorRT 10's.
static_assert(NV_TENSORRT_MAJOR >= 10, "egl_trt_infer needs TensorRT 10 or newer");

namespace {

class Logger : public nvinfer1::ILogger {
    void log(Severity severity, char const* msg) noexcept override {
        if (severity <= Severity::kWARNING) std::fprintf(stderr, "[TensorRT] %s\n", msg);
    }
};

bool check(cudaError_t err, char const* what) {
    if (err != cudaSuccess) std::fprintf(stderr, "%s failed: %s\n", what, cudaGetErrorString(err));
    return err == cudaSuccess;
}

// Owners for the CUDA resources, so that every early return releases them.
struct CudaFree {
    void operator()(void* p) const { cudaFree(p); }
};
using DeviceBuffer = std::unique_ptr<void, CudaFree>;
struct StreamDestroy {
    void operator()(cudaStream_t s) const { cudaStreamDestroy(s); }
};
using Stream = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamDestroy>;

// Element count, or -1 while a dimension is still unknown (-1).
int64_t volume(nvinfer1::Dims const& d) {
    int64_t v = 1;
    for (int32_t i = 0; i < d.nbDims; ++i) {
        if (d.d[i] < 0) return -1;
        v *= d.d[i];
    }
    return v;
}

std::string shapeString(nvinfer1::Dims const& d) {
    std::string s = "(";
    for (int32_t i = 0; i < d.nbDims; ++i) s += (i ? ", " : "") + std::to_string(d.d[i]);
    return s + ")";
}

bool parsePositive(char const* text, int& value) {
    char* end = nullptr;
    long v = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || v <= 0 || v > 65536) return false;
    value = static_cast<int>(v);
    return true;
}

/* BGR uint8 image -> NCHW float32 RGB in [0, 1], stretched to height x width. */
std::vector<float> preprocess(cv::Mat const& bgr, int height, int width) {
    cv::Mat rgb, resized, scaled;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    cv::resize(rgb, resized, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
    resized.convertTo(scaled, CV_32FC3, 1.0 / 255.0);
    size_t const plane = static_cast<size_t>(height) * static_cast<size_t>(width);
    std::vector<float> chw(3 * plane);
    // split() writes straight into chw because each plane Mat wraps its slice.
    std::vector<cv::Mat> planes;
    for (size_t c = 0; c < 3; ++c) planes.emplace_back(height, width, CV_32F, chw.data() + c * plane);
    cv::split(scaled, planes);
    return chw;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4 && argc != 6) {
        std::fprintf(stderr, "usage: %s MODEL.engine libedgeglocal_trt_plugins.so IMAGE [HEIGHT WIDTH]\n", argv[0]);
        return 2;
    }
    int height = 0, width = 0;  // 0: use the engine's (or its profile's) input size
    if (argc == 6 && (!parsePositive(argv[4], height) || !parsePositive(argv[5], width))) {
        std::fprintf(stderr, "HEIGHT and WIDTH must be integers in 1..65536, got '%s' and '%s'\n", argv[4], argv[5]);
        return 2;
    }

    // The creators must be registered before deserializing. The library is never dlclose'd: the
    // engine's plugin objects and their code live in it until the process exits.
    void* plugins = dlopen(argv[2], RTLD_NOW | RTLD_GLOBAL);
    if (!plugins) {
        std::fprintf(stderr, "cannot load the plugin library: %s\n", dlerror());
        return 1;
    }
    auto init = reinterpret_cast<bool (*)()>(dlsym(plugins, "initEdgeglocalPlugins"));
    if (!init) {
        std::fprintf(stderr, "%s is not the edgeglocal plugin library: %s\n", argv[2], dlerror());
        return 1;
    }
    if (!init()) {
        std::fprintf(stderr, "initEdgeglocalPlugins() in %s could not register the plugin creators\n", argv[2]);
        return 1;
    }

    std::ifstream file(argv[1], std::ios::binary);
    if (!file) {
        std::fprintf(stderr, "cannot open engine file %s\n", argv[1]);
        return 1;
    }
    std::vector<char> plan((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (plan.empty()) {
        std::fprintf(stderr, "engine file %s is empty or unreadable\n", argv[1]);
        return 1;
    }
    cv::Mat image = cv::imread(argv[3], cv::IMREAD_COLOR);
    if (image.empty()) {
        std::fprintf(stderr, "cannot read image %s\n", argv[3]);
        return 1;
    }

    // Declared in this order so they are destroyed context -> engine -> runtime (TensorRT 10: delete).
    Logger logger;
    std::unique_ptr<nvinfer1::IRuntime> runtime(nvinfer1::createInferRuntime(logger));
    if (!runtime) {
        int32_t const lib = getInferLibVersion();
        std::fprintf(stderr, "cannot create a TensorRT runtime (built against TensorRT %d.%d, libnvinfer is %d.%d)\n",
                     NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR, lib / 10000, lib / 100 % 100);
        return 1;
    }
    std::unique_ptr<nvinfer1::ICudaEngine> engine(runtime->deserializeCudaEngine(plan.data(), plan.size()));
    if (!engine) {
        std::fprintf(stderr, "cannot deserialize %s (see the TensorRT error above: other TensorRT version or GPU, "
                             "or a plugin that is not registered)\n", argv[1]);
        return 1;
    }
    std::unique_ptr<nvinfer1::IExecutionContext> context(engine->createExecutionContext());
    if (!context) {
        std::fprintf(stderr, "cannot create an execution context for %s\n", argv[1]);
        return 1;
    }

    cudaStream_t rawStream = nullptr;
    if (!check(cudaStreamCreate(&rawStream), "cudaStreamCreate")) return 1;
    Stream stream(rawStream);
    std::vector<DeviceBuffer> buffers;
    std::vector<std::vector<float>> inputs;  // kept alive until the stream is synchronized
    std::vector<std::string> outputs;
    for (int32_t i = 0; i < engine->getNbIOTensors(); ++i) {
        char const* name = engine->getIOTensorName(i);
        if (engine->getTensorDataType(name) != nvinfer1::DataType::kFLOAT) {
            std::fprintf(stderr, "tensor %s is not float32; this sample only handles float32 I/O\n", name);
            return 1;
        }
        if (engine->getTensorIOMode(name) != nvinfer1::TensorIOMode::kINPUT) {
            outputs.emplace_back(name);
            continue;
        }
        nvinfer1::Dims dims = engine->getTensorShape(name);
        if (dims.nbDims != 4 || dims.d[1] != 3) {
            std::fprintf(stderr, "input %s has shape %s; this sample feeds an RGB image as (N, 3, H, W)\n", name,
                         shapeString(dims).c_str());
            return 1;
        }
        if (volume(dims) < 0) dims = engine->getProfileShape(name, 0, nvinfer1::OptProfileSelector::kOPT);
        dims.d[0] = 1;
        if (height > 0) {
            dims.d[2] = height;
            dims.d[3] = width;
        }
        if (!context->setInputShape(name, dims)) {
            std::fprintf(stderr, "input %s %s is outside the engine's profile\n", name, shapeString(dims).c_str());
            return 1;
        }
        inputs.push_back(preprocess(image, static_cast<int>(dims.d[2]), static_cast<int>(dims.d[3])));
        size_t const bytes = inputs.back().size() * sizeof(float);
        void* device = nullptr;
        if (!check(cudaMalloc(&device, bytes), "cudaMalloc")) return 1;
        buffers.emplace_back(device);
        if (!check(cudaMemcpyAsync(device, inputs.back().data(), bytes, cudaMemcpyHostToDevice, stream.get()),
                   "cudaMemcpyAsync")) {
            return 1;
        }
        if (!context->setTensorAddress(name, device)) {
            std::fprintf(stderr, "TensorRT rejected the buffer for input %s\n", name);
            return 1;
        }
        std::printf("input  %-12s %s\n", name, shapeString(dims).c_str());
    }

    std::vector<std::vector<float>> host(outputs.size());
    std::vector<void*> outputBuffers;
    for (size_t i = 0; i < outputs.size(); ++i) {
        char const* name = outputs[i].c_str();
        nvinfer1::Dims dims = context->getTensorShape(name);
        int64_t const count = volume(dims);
        if (count < 0) {
            std::fprintf(stderr, "output %s has shape %s, known only while running; this sample needs static output "
                                 "shapes\n", name, shapeString(dims).c_str());
            return 1;
        }
        host[i].resize(static_cast<size_t>(count));
        void* device = nullptr;
        if (!check(cudaMalloc(&device, host[i].size() * sizeof(float)), "cudaMalloc")) return 1;
        buffers.emplace_back(device);
        outputBuffers.push_back(device);
        if (!context->setTensorAddress(name, device)) {
            std::fprintf(stderr, "TensorRT rejected the buffer for output %s\n", name);
            return 1;
        }
    }

    if (!context->enqueueV3(stream.get())) {
        std::fprintf(stderr, "enqueueV3 failed (see the TensorRT error above)\n");
        return 1;
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
        if (!check(cudaMemcpyAsync(host[i].data(), outputBuffers[i], host[i].size() * sizeof(float),
                                   cudaMemcpyDeviceToHost, stream.get()),
                   "cudaMemcpyAsync")) {
            return 1;
        }
    }
    if (!check(cudaStreamSynchronize(stream.get()), "cudaStreamSynchronize")) return 1;
    for (size_t i = 0; i < outputs.size(); ++i) {
        auto [lo, hi] = std::minmax_element(host[i].begin(), host[i].end());
        std::printf("output %-12s %s  min %.4g  max %.4g\n", outputs[i].c_str(),
                    shapeString(context->getTensorShape(outputs[i].c_str())).c_str(), host[i].empty() ? 0.f : *lo,
                    host[i].empty() ? 0.f : *hi);
    }
    return 0;
}
