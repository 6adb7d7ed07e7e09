// Run one image through an edgeglocal TensorRT engine from C++.
//
//   egl_trt_infer MODEL.engine libedgeglocal_trt_plugins.so IMAGE [HEIGHT WIDTH]
//
// Registers the plugins (dlopen + initEdgeglocalPlugins), deserializes the plan, preprocesses the
// image with OpenCV the way edgeglocal's default manifest does (RGB, /255, stretch to the input
// size: the profile's opt shape for dynamic inputs unless HEIGHT WIDTH are given), runs it on a
// CUDA stream and prints each output's shape and value range.
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

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

int64_t volume(nvinfer1::Dims const& d) {
    int64_t v = 1;
    for (int32_t i = 0; i < d.nbDims; ++i) v *= d.d[i];
    return v;
}

std::string shapeString(nvinfer1::Dims const& d) {
    std::string s = "(";
    for (int32_t i = 0; i < d.nbDims; ++i) s += (i ? ", " : "") + std::to_string(d.d[i]);
    return s + ")";
}

/* BGR uint8 image -> NCHW float32 RGB in [0, 1], stretched to height x width. */
std::vector<float> preprocess(cv::Mat const& bgr, int height, int width) {
    cv::Mat rgb, resized, scaled;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    cv::resize(rgb, resized, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
    resized.convertTo(scaled, CV_32FC3, 1.0 / 255.0);
    std::vector<float> chw(static_cast<size_t>(3) * height * width);
    std::vector<cv::Mat> planes;
    for (int c = 0; c < 3; ++c) planes.emplace_back(height, width, CV_32F, chw.data() + static_cast<size_t>(c) * height * width);
    cv::split(scaled, planes);
    return chw;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4 && argc != 6) {
        std::fprintf(stderr, "usage: %s MODEL.engine libedgeglocal_trt_plugins.so IMAGE [HEIGHT WIDTH]\n", argv[0]);
        return 2;
    }
    void* plugins = dlopen(argv[2], RTLD_NOW | RTLD_GLOBAL);
    auto init = plugins ? reinterpret_cast<bool (*)()>(dlsym(plugins, "initEdgeglocalPlugins")) : nullptr;
    if (!init || !init()) {
        std::fprintf(stderr, "cannot register plugins from %s: %s\n", argv[2], plugins ? "initEdgeglocalPlugins failed" : dlerror());
        return 1;
    }
    std::ifstream file(argv[1], std::ios::binary);
    std::vector<char> plan((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (plan.empty()) {
        std::fprintf(stderr, "cannot read engine %s\n", argv[1]);
        return 1;
    }
    cv::Mat image = cv::imread(argv[3], cv::IMREAD_COLOR);
    if (image.empty()) {
        std::fprintf(stderr, "cannot read image %s\n", argv[3]);
        return 1;
    }

    Logger logger;
    std::unique_ptr<nvinfer1::IRuntime> runtime(nvinfer1::createInferRuntime(logger));
    std::unique_ptr<nvinfer1::ICudaEngine> engine(runtime->deserializeCudaEngine(plan.data(), plan.size()));
    if (!engine) return 1;  // TensorRT logged why (version, GPU, missing plugin)
    std::unique_ptr<nvinfer1::IExecutionContext> context(engine->createExecutionContext());

    cudaStream_t stream;
    if (!check(cudaStreamCreate(&stream), "cudaStreamCreate")) return 1;
    std::vector<void*> buffers;
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
        if (std::any_of(dims.d, dims.d + dims.nbDims, [](int64_t d) { return d < 0; }))
            dims = engine->getProfileShape(name, 0, nvinfer1::OptProfileSelector::kOPT);
        dims.d[0] = 1;
        if (argc == 6) {
            dims.d[2] = std::stoi(argv[4]);
            dims.d[3] = std::stoi(argv[5]);
        }
        std::vector<float> input = preprocess(image, static_cast<int>(dims.d[2]), static_cast<int>(dims.d[3]));
        void* device = nullptr;
        if (!check(cudaMalloc(&device, input.size() * sizeof(float)), "cudaMalloc")) return 1;
        buffers.push_back(device);
        check(cudaMemcpyAsync(device, input.data(), input.size() * sizeof(float), cudaMemcpyHostToDevice, stream),
              "cudaMemcpyAsync");
        if (!context->setInputShape(name, dims) || !context->setTensorAddress(name, device)) {
            std::fprintf(stderr, "input %s %s is outside the engine's profile\n", name, shapeString(dims).c_str());
            return 1;
        }
        std::printf("input  %-12s %s\n", name, shapeString(dims).c_str());
    }
    std::vector<std::vector<float>> host(outputs.size());
    for (size_t i = 0; i < outputs.size(); ++i) {
        nvinfer1::Dims dims = context->getTensorShape(outputs[i].c_str());
        void* device = nullptr;
        if (!check(cudaMalloc(&device, volume(dims) * sizeof(float)), "cudaMalloc")) return 1;
        buffers.push_back(device);
        context->setTensorAddress(outputs[i].c_str(), device);
        host[i].resize(volume(dims));
    }
    if (!context->enqueueV3(stream)) {
        std::fprintf(stderr, "enqueueV3 failed\n");
        return 1;
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
        check(cudaMemcpyAsync(host[i].data(), context->getTensorAddress(outputs[i].c_str()),
                              host[i].size() * sizeof(float), cudaMemcpyDeviceToHost, stream),
              "cudaMemcpyAsync");
    }
    if (!check(cudaStreamSynchronize(stream), "cudaStreamSynchronize")) return 1;
    for (size_t i = 0; i < outputs.size(); ++i) {
        auto [lo, hi] = std::minmax_element(host[i].begin(), host[i].end());
        std::printf("output %-12s %s  min %.4g  max %.4g\n", outputs[i].c_str(),
                    shapeString(context->getTensorShape(outputs[i].c_str())).c_str(), host[i].empty() ? 0.f : *lo,
                    host[i].empty() ? 0.f : *hi);
    }
    for (void* b : buffers) cudaFree(b);
    cudaStreamDestroy(stream);
    return 0;
}
