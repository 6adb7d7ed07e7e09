/*
 * TensorRT IPluginV3 for the ONNX node edgeglocal::WindowAttention (Swin shifted-window attention
 * with relative-position bias; GC ViT global query). Inputs qkv(b,h,w,3c), rel_bias_table
 * ((2wh-1)(2ww-1), heads), q_global(1 or b, wh*ww, c); fields num_heads, window_size[2], shift[2],
 * scale, global_query. With global_query=1 qkv is (b,h,w,2c) holding k, v and q comes from
 * q_global; with 0 the exporter's q_global placeholder is ignored. Output (b,h,w,c).
 */
#pragma once

#include "egl_plugin_common.h"

namespace egl {

class WindowAttentionPlugin : public PluginBase<WindowAttentionPlugin> {
public:
    static constexpr char kName[] = "WindowAttention";

    explicit WindowAttentionPlugin(FieldReader const& fields);
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
    int32_t mNumHeads;
    int32_t mWindow[2];
    int32_t mShift[2];
    float mScale;          // <= 0: head_dim ** -0.5
    int32_t mGlobalQuery;  // 1: q comes from q_global and qkv holds only k, v
};

}  // namespace egl
