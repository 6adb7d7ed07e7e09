/*
 * Entry points of libedgeglocal_trt_plugins.so:
 *   - getCreators / setLoggerFinder: what IPluginRegistry::loadLibrary (Python
 *     trt.get_plugin_registry().load_library, trtexec --dynamicPlugins) looks up;
 *   - initEdgeglocalPlugins: registers the creators with the process-wide registry, for hosts that
 *     dlopen the library themselves (the C++ sample, ctypes).
 * Use one of the two per process: both would register every creator twice.
 */
#include <cstdio>

#include "egl_plugin_common.h"
#include "selective_scan_2d_plugin.h"
#include "selective_scan_plugin.h"
#include "window_attention_plugin.h"

#define EGL_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

nvinfer1::ILoggerFinder* gLoggerFinder = nullptr;

egl::PluginCreator<egl::SelectiveScanPlugin> gSelectiveScan;
egl::PluginCreator<egl::SelectiveScan2DPlugin> gSelectiveScan2D;
egl::PluginCreator<egl::WindowAttentionPlugin> gWindowAttention;
nvinfer1::IPluginCreatorInterface* const gCreators[] = {&gSelectiveScan, &gSelectiveScan2D, &gWindowAttention};

}  // namespace

void egl::logError(std::string const& message) noexcept {
    nvinfer1::ILogger* logger = gLoggerFinder ? gLoggerFinder->findLogger() : nullptr;
    if (logger) logger->log(nvinfer1::ILogger::Severity::kERROR, message.c_str());
    else std::fprintf(stderr, "[edgeglocal] %s\n", message.c_str());
}

EGL_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder) { gLoggerFinder = finder; }

EGL_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    nbCreators = static_cast<int32_t>(sizeof(gCreators) / sizeof(gCreators[0]));
    return gCreators;
}

EGL_EXPORT bool initEdgeglocalPlugins() {
    nvinfer1::IPluginRegistry* registry = getPluginRegistry();
    if (!registry) return false;
    bool ok = true;
    for (nvinfer1::IPluginCreatorInterface* creator : gCreators)
        ok = registry->registerCreator(*creator, egl::kPluginNamespace) && ok;
    return ok;
}
