/*
 * TensorRT IPluginV3 for the ONNX node edgeglocal::SelectiveScan2D (VMamba's 4-direction cross
 * scan, summed). Inputs x(b,d,h,w), delta(b,4,d,h*w), A(4d,n), B(b,4,n,h*w), C(b,4,n,h*w),
 * D(4d), delta_bias(4d); fields delta_softplus, params_follow_scan. Output y(b,d,h,w).
 */
#pragma once

#include "egl_plugin_common.h"

namespace egl {

class SelectiveScan2DPlugin : public PluginBase<SelectiveScan2DPlugin> {
public:
    static constexpr char kName[] = "SelectiveScan2D";

    explicit SelectiveScan2DPlugin(FieldReader const& fields);
    static std::vector<nvinfer1::PluginField> fieldNames();
    std::vector<nvinfer1::PluginField> fields() const;
    void checkInputs(std::vector<nvinfer1::Dims> const& dims) const;

    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
                            int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;

private:
    int32_t mDeltaSoftplus;
    int32_t mParamsFollowScan;
};

}  // namespace egl
