/*
 * TensorRT IPluginV3 for the ONNX node edgeglocal::SelectiveScan (Mamba's S6 scan).
 * Inputs u(b,d,l), delta(b,d,l), A(d,n), B(b,g,n,l), C(b,g,n,l), D(d), delta_bias(d);
 * field delta_softplus. Output y(b,d,l).
 */
#pragma once

#include "egl_plugin_common.h"

namespace egl {

class SelectiveScanPlugin : public PluginBase<SelectiveScanPlugin> {
public:
    static constexpr char kName[] = "SelectiveScan";

    explicit SelectiveScanPlugin(FieldReader const& fields);
    static std::vector<nvinfer1::PluginField> fieldNames();
    std::vector<nvinfer1::PluginField> fields() const;
    void checkInputs(std::vector<nvinfer1::Dims> const& dims) const;

    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
                            int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;

private:
    int32_t mDeltaSoftplus;
};

}  // namespace egl
