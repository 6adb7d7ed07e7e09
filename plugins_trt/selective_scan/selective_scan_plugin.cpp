#include "selective_scan_plugin.h"

#include "selective_scan_kernel.h"

using namespace nvinfer1;

namespace egl {

SelectiveScanPlugin::SelectiveScanPlugin(FieldReader const& fields)
    : mDeltaSoftplus(static_cast<int32_t>(fields.integer("delta_softplus", 0))) {}

std::vector<PluginField> SelectiveScanPlugin::fieldNames() {
    return {PluginField("delta_softplus", nullptr, PluginFieldType::kINT32, 1)};
}

std::vector<PluginField> SelectiveScanPlugin::fields() const {
    return {PluginField("delta_softplus", &mDeltaSoftplus, PluginFieldType::kINT32, 1)};
}

void SelectiveScanPlugin::checkInputs(std::vector<Dims> const& in) const {
    require(in.size() >= 5 && in.size() <= 7, "expected inputs u, delta, A, B, C[, D, delta_bias]");
    Dims const &u = in[0], &delta = in[1], &A = in[2], &B = in[3], &C = in[4];
    require(u.nbDims == 3, "u must be (b, d, l), got " + shapeString(u));
    require(delta.nbDims == 3 && sameDim(delta.d[0], u.d[0]) && sameDim(delta.d[1], u.d[1]) &&
                sameDim(delta.d[2], u.d[2]),
            "delta must match u " + shapeString(u) + ", got " + shapeString(delta));
    require(A.nbDims == 2 && sameDim(A.d[0], u.d[1]), "A must be (d, n), got " + shapeString(A));
    require(A.d[1] < 0 || (A.d[1] >= 1 && A.d[1] <= 64), "the state size n must be in [1, 64]");
    for (Dims const* bc : {&B, &C}) {
        require(bc->nbDims == 4 && sameDim(bc->d[0], u.d[0]) && sameDim(bc->d[2], A.d[1]) && sameDim(bc->d[3], u.d[2]),
                "B and C must be (b, g, n, l), got " + shapeString(*bc));
    }
    require(B.d[1] < 0 || u.d[1] < 0 || (B.d[1] >= 1 && u.d[1] % B.d[1] == 0), "d must be a multiple of groups g");
    for (size_t i = 5; i < in.size(); ++i)
        require(in[i].nbDims == 1 && sameDim(in[i].d[0], u.d[1]), "D and delta_bias must be (d,)");
}

int32_t SelectiveScanPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const*, int32_t,
                                             DimsExprs* outputs, int32_t nbOutputs, IExprBuilder&) noexcept {
    if (nbInputs < 5 || nbOutputs != 1 || inputs[0].nbDims != 3) return 1;
    outputs[0] = inputs[0];
    return 0;
}

int32_t SelectiveScanPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*,
                                     void const* const* inputs, void* const* outputs, void*,
                                     cudaStream_t stream) noexcept {
    Dims const &u = inputDesc[0].dims, &B = inputDesc[3].dims;
    int32_t const nb = mNbInputs < 0 ? 7 : mNbInputs;
    return launchStatus(egl_selective_scan_fwd(
        inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], nb > 5 ? inputs[5] : nullptr,
        nb > 6 ? inputs[6] : nullptr, outputs[0], static_cast<int>(u.d[0]), static_cast<int>(u.d[1]),
        static_cast<int>(u.d[2]), static_cast<int>(B.d[2]), static_cast<int>(B.d[1]), kernelDtype(inputDesc[0].type),
        mDeltaSoftplus, stream));
}

}  // namespace egl
