#include "selective_scan_2d_plugin.h"

#include "selective_scan_2d_kernel.h"

using namespace nvinfer1;

namespace egl {

namespace {
constexpr int64_t kDirections = 4;
}

SelectiveScan2DPlugin::SelectiveScan2DPlugin(FieldReader const& fields)
    : mDeltaSoftplus(static_cast<int32_t>(fields.integer("delta_softplus", 1)))
    , mParamsFollowScan(static_cast<int32_t>(fields.integer("params_follow_scan", 1))) {}

std::vector<PluginField> SelectiveScan2DPlugin::fieldNames() {
    return {PluginField("delta_softplus", nullptr, PluginFieldType::kINT32, 1),
            PluginField("params_follow_scan", nullptr, PluginFieldType::kINT32, 1)};
}

std::vector<PluginField> SelectiveScan2DPlugin::fields() const {
    return {PluginField("delta_softplus", &mDeltaSoftplus, PluginFieldType::kINT32, 1),
            PluginField("params_follow_scan", &mParamsFollowScan, PluginFieldType::kINT32, 1)};
}

void SelectiveScan2DPlugin::checkInputs(std::vector<Dims> const& in) const {
    require(in.size() >= 5 && in.size() <= 7, "expected inputs x, delta, A, B, C[, D, delta_bias]");
    Dims const &x = in[0], &delta = in[1], &A = in[2], &B = in[3], &C = in[4];
    require(x.nbDims == 4, "x must be (b, d, h, w), got " + shapeString(x));
    int64_t const L = x.d[2] < 0 || x.d[3] < 0 ? -1 : x.d[2] * x.d[3];
    int64_t const K = kDirections;
    require(delta.nbDims == 4 && sameDim(delta.d[0], x.d[0]) && delta.d[1] == K && sameDim(delta.d[2], x.d[1]) &&
                sameDim(delta.d[3], L),
            "delta must be (b, 4, d, h*w), got " + shapeString(delta));
    require(A.nbDims == 2 && (A.d[0] < 0 || x.d[1] < 0 || A.d[0] == K * x.d[1]), "A must be (4*d, n), got " + shapeString(A));
    require(A.d[1] < 0 || (A.d[1] >= 1 && A.d[1] <= 64), "the state size n must be in [1, 64]");
    for (Dims const* bc : {&B, &C}) {
        require(bc->nbDims == 4 && sameDim(bc->d[0], x.d[0]) && bc->d[1] == K && sameDim(bc->d[2], A.d[1]) &&
                    sameDim(bc->d[3], L),
                "B and C must be (b, 4, n, h*w), got " + shapeString(*bc));
    }
    for (size_t i = 5; i < in.size(); ++i)
        require(in[i].nbDims == 1 && sameDim(in[i].d[0], A.d[0]), "D and delta_bias must be (4*d,)");
}

int32_t SelectiveScan2DPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const*, int32_t,
                                               DimsExprs* outputs, int32_t nbOutputs, IExprBuilder&) noexcept {
    if (nbInputs < 5 || nbOutputs != 1 || inputs[0].nbDims != 4) return 1;
    outputs[0] = inputs[0];
    return 0;
}

size_t SelectiveScan2DPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t, DynamicPluginTensorDesc const*,
                                               int32_t) const noexcept {
    Dims const& x = inputs[0].max;
    return egl_selective_scan_2d_workspace_size(static_cast<int>(x.d[0]), static_cast<int>(x.d[1]),
                                                static_cast<int>(x.d[2]), static_cast<int>(x.d[3]),
                                                kernelDtype(inputs[0].desc.type));
}

int32_t SelectiveScan2DPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*,
                                       void const* const* inputs, void* const* outputs, void* workspace,
                                       cudaStream_t stream) noexcept {
    Dims const &x = inputDesc[0].dims, &A = inputDesc[2].dims;
    int32_t const nb = mNbInputs < 0 ? 7 : mNbInputs;
    return launchStatus(egl_selective_scan_2d_fwd(
        inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], nb > 5 ? inputs[5] : nullptr,
        nb > 6 ? inputs[6] : nullptr, outputs[0], workspace, static_cast<int>(x.d[0]), static_cast<int>(x.d[1]),
        static_cast<int>(x.d[2]), static_cast<int>(x.d[3]), static_cast<int>(A.d[1]), kernelDtype(inputDesc[0].type),
        mDeltaSoftplus, mParamsFollowScan, stream));
}

}  // namespace egl
