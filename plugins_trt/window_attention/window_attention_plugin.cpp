#include "window_attention_plugin.h"

#include <cmath>

#include "window_attention_kernel.h"

using namespace nvinfer1;

namespace egl {

namespace {
void readPair(FieldReader const& fields, char const* name, int32_t fallback, int32_t out[2]) {
    std::vector<int64_t> v = fields.ints(name);
    require(v.size() <= 2, std::string(name) + " must have 1 or 2 values");
    out[0] = static_cast<int32_t>(v.empty() ? fallback : v[0]);
    out[1] = static_cast<int32_t>(v.size() == 2 ? v[1] : out[0]);
}
}  // namespace

WindowAttentionPlugin::WindowAttentionPlugin(FieldReader const& fields)
    : mNumHeads(static_cast<int32_t>(fields.integer("num_heads", 0)))
    , mScale(static_cast<float>(fields.real("scale", 0.0)))
    , mGlobalQuery(static_cast<int32_t>(fields.integer("global_query", 0))) {
    readPair(fields, "window_size", 7, mWindow);
    readPair(fields, "shift", 0, mShift);
    require(mNumHeads >= 1, "num_heads must be a positive integer");
    require(mWindow[0] >= 1 && mWindow[1] >= 1, "window_size must be positive");
    require(mShift[0] >= 0 && mShift[0] < mWindow[0] && mShift[1] >= 0 && mShift[1] < mWindow[1],
            "shift must lie in [0, window_size)");
}

std::vector<PluginField> WindowAttentionPlugin::fieldNames() {
    return {PluginField("num_heads", nullptr, PluginFieldType::kINT32, 1),
            PluginField("window_size", nullptr, PluginFieldType::kINT32, 2),
            PluginField("shift", nullptr, PluginFieldType::kINT32, 2),
            PluginField("scale", nullptr, PluginFieldType::kFLOAT32, 1),
            PluginField("global_query", nullptr, PluginFieldType::kINT32, 1)};
}

std::vector<PluginField> WindowAttentionPlugin::fields() const {
    return {PluginField("num_heads", &mNumHeads, PluginFieldType::kINT32, 1),
            PluginField("window_size", mWindow, PluginFieldType::kINT32, 2),
            PluginField("shift", mShift, PluginFieldType::kINT32, 2),
            PluginField("scale", &mScale, PluginFieldType::kFLOAT32, 1),
            PluginField("global_query", &mGlobalQuery, PluginFieldType::kINT32, 1)};
}

void WindowAttentionPlugin::checkInputs(std::vector<Dims> const& in) const {
    require(!in.empty() && in.size() <= 3 && (!mGlobalQuery || in.size() == 3),
            "expected inputs qkv[, rel_bias_table[, q_global]] (q_global required when global_query=1)");
    Dims const& qkv = in[0];
    require(qkv.nbDims == 4, "qkv must be (b, h, w, 3c) or (b, h, w, 2c), got " + shapeString(qkv));
    int64_t const parts = mGlobalQuery ? 2 : 3, N = int64_t{mWindow[0]} * mWindow[1];
    require(qkv.d[1] < 0 || qkv.d[1] % mWindow[0] == 0, "qkv height must be a multiple of window_size[0]");
    require(qkv.d[2] < 0 || qkv.d[2] % mWindow[1] == 0, "qkv width must be a multiple of window_size[1]");
    require(qkv.d[3] < 0 || qkv.d[3] % (parts * mNumHeads) == 0,
            "qkv channels must be a multiple of " + std::to_string(parts) + " * num_heads");
    require(qkv.d[3] < 0 || qkv.d[3] / (parts * mNumHeads) <= 128, "head_dim must be at most 128");
    if (in.size() > 1) {
        Dims const& t = in[1];
        require(t.nbDims == 2 && sameDim(t.d[0], int64_t{2 * mWindow[0] - 1} * (2 * mWindow[1] - 1)) && sameDim(t.d[1], mNumHeads),
                "rel_bias_table must be ((2wh-1)(2ww-1), num_heads), got " + shapeString(t));
    }
    if (mGlobalQuery) {
        Dims const& q = in[2];
        require((q.d[0] < 0 || q.d[0] == 1 || sameDim(q.d[0], qkv.d[0])) && sameDim(q.d[1], N) &&
                    (q.d[2] < 0 || qkv.d[3] < 0 || q.d[2] * 2 == qkv.d[3]),
                "q_global must be (1 or b, wh*ww, c), got " + shapeString(q));
    }
}

int32_t WindowAttentionPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const*, int32_t,
                                               DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept {
    if (nbInputs < 1 || nbOutputs != 1 || inputs[0].nbDims != 4) return 1;
    int32_t const parts = mGlobalQuery ? 2 : 3;
    outputs[0] = inputs[0];
    outputs[0].d[3] = exprBuilder.operation(DimensionOperation::kFLOOR_DIV, *inputs[0].d[3], *exprBuilder.constant(parts));
    return 0;
}

int32_t WindowAttentionPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*,
                                       void const* const* inputs, void* const* outputs, void*,
                                       cudaStream_t stream) noexcept {
    int32_t const nb = mNbInputs < 0 ? 3 : mNbInputs;
    Dims const& qkv = inputDesc[0].dims;
    int const channels = static_cast<int>(qkv.d[3] / (mGlobalQuery ? 2 : 3));
    float const scale = mScale > 0.f ? mScale : 1.f / std::sqrt(static_cast<float>(channels / mNumHeads));
    return launchStatus(egl_window_attention_fwd(
        inputs[0], nb > 1 ? inputs[1] : nullptr, mGlobalQuery ? inputs[2] : nullptr, outputs[0],
        static_cast<int>(qkv.d[0]), static_cast<int>(qkv.d[1]), static_cast<int>(qkv.d[2]), channels, mNumHeads,
        mWindow[0], mWindow[1], mShift[0], mShift[1], scale,
        mGlobalQuery ? static_cast<int>(inputDesc[2].dims.d[0]) : 0, kernelDtype(inputDesc[0].type), stream));
}

}  // namespace egl
