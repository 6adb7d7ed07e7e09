/*
 * What every edgeglocal TensorRT plugin shares, so that each op's plugin only states its fields,
 * output shape, checks and launch:
 *   - FieldReader: typed access to a PluginFieldCollection (ONNX attributes arrive as INT32/INT64
 *     and FLOAT32/FLOAT64 fields, serialized ones the same way);
 *   - PluginBase<Derived>: IPluginV3 with OneCore/OneBuild/OneRuntime boilerplate (capabilities,
 *     clone, attachToContext, one output of the first input's type, linear fp32/fp16 with
 *     matching types, serialization of the fields the op declares);
 *   - PluginCreator<Plugin>: the IPluginCreatorV3One for it (name = ONNX op_type, namespace
 *     "edgeglocal", version "1").
 */
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace egl {

constexpr char kPluginNamespace[] = "edgeglocal";
constexpr char kPluginVersion[] = "1";

/* Report through the logger TensorRT handed us (setLoggerFinder), else stderr. */
void logError(std::string const& message) noexcept;

/* The dtype code of the kernels' C API for a TensorRT type (-1 if unsupported). */
inline int kernelDtype(nvinfer1::DataType type) noexcept {
    return type == nvinfer1::DataType::kFLOAT ? 0 : type == nvinfer1::DataType::kHALF ? 1 : -1;
}

class FieldReader {
public:
    explicit FieldReader(nvinfer1::PluginFieldCollection const* fc) : mFc(fc) {}

    std::vector<int64_t> ints(char const* name) const {
        nvinfer1::PluginField const* f = find(name);
        std::vector<int64_t> out;
        if (!f) return out;
        for (int32_t i = 0; i < f->length; ++i) {
            if (f->type == nvinfer1::PluginFieldType::kINT32) out.push_back(static_cast<int32_t const*>(f->data)[i]);
            else if (f->type == nvinfer1::PluginFieldType::kINT64) out.push_back(static_cast<int64_t const*>(f->data)[i]);
            else throw std::invalid_argument(std::string("field '") + name + "' must be an integer");
        }
        return out;
    }
    int64_t integer(char const* name, int64_t fallback) const {
        std::vector<int64_t> v = ints(name);
        return v.empty() ? fallback : v[0];
    }
    double real(char const* name, double fallback) const {
        nvinfer1::PluginField const* f = find(name);
        if (!f || f->length < 1) return fallback;
        if (f->type == nvinfer1::PluginFieldType::kFLOAT32) return static_cast<float const*>(f->data)[0];
        if (f->type == nvinfer1::PluginFieldType::kFLOAT64) return static_cast<double const*>(f->data)[0];
        throw std::invalid_argument(std::string("field '") + name + "' must be a float");
    }

private:
    nvinfer1::PluginField const* find(char const* name) const {
        if (!mFc) return nullptr;
        for (int32_t i = 0; i < mFc->nbFields; ++i)
            if (mFc->fields[i].name && std::strcmp(mFc->fields[i].name, name) == 0 && mFc->fields[i].data)
                return &mFc->fields[i];
        return nullptr;
    }
    nvinfer1::PluginFieldCollection const* mFc;
};

template <class Derived>
class PluginBase : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime {
public:
    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override {
        switch (type) {
            case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
            case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
            case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }
    nvinfer1::IPluginV3* clone() noexcept override { return new (std::nothrow) Derived(self()); }

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override { return Derived::kName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override { return 1; }
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
                               nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override {
        if (nbOutputs != 1 || nbInputs < 1) return 1;
        outputTypes[0] = inputTypes[0];
        return 0;
    }
    /* Linear fp32 or fp16, every tensor of the first one's type. */
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override {
        if (pos < 0 || pos >= nbInputs + nbOutputs) return false;
        nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
        if (desc.format != nvinfer1::TensorFormat::kLINEAR) return false;
        if (pos == 0) return kernelDtype(desc.type) >= 0;
        return desc.type == inOut[0].desc.type;
    }
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const*, int32_t nbOutputs) noexcept override {
        mNbInputs = nbInputs;
        std::vector<nvinfer1::Dims> dims;
        for (int32_t i = 0; i < nbInputs; ++i) dims.push_back(in[i].desc.dims);
        return nbOutputs == 1 ? check(dims) : 1;
    }

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const*,
                          int32_t nbOutputs) noexcept override {
        mNbInputs = nbInputs;
        std::vector<nvinfer1::Dims> dims;
        for (int32_t i = 0; i < nbInputs; ++i) dims.push_back(in[i].dims);
        return nbOutputs == 1 ? check(dims) : 1;
    }
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext*) noexcept override { return clone(); }
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override {
        mSerialized = self().fields();
        mCollection.nbFields = static_cast<int32_t>(mSerialized.size());
        mCollection.fields = mSerialized.data();
        return &mCollection;
    }

protected:
    PluginBase() = default;
    PluginBase(PluginBase const& other) : mNbInputs(other.mNbInputs) {}  // fields are rebuilt, never shared
    PluginBase& operator=(PluginBase const&) = delete;

    /* Let Derived::checkInputs reject a shape; logs its message and returns non-zero. */
    int32_t check(std::vector<nvinfer1::Dims> const& dims) const noexcept {
        try {
            self().checkInputs(dims);
            return 0;
        } catch (std::exception const& e) {
            logError(std::string(Derived::kName) + ": " + e.what());
            return 1;
        }
    }
    int32_t launchStatus(int status) const noexcept {
        if (status == 0) return 0;
        logError(std::string(Derived::kName) + ": kernel launch failed (status " + std::to_string(status) + ")");
        return status;
    }

    int32_t mNbInputs = -1;  // set by configurePlugin / onShapeChange; optional inputs may be absent

private:
    Derived& self() noexcept { return static_cast<Derived&>(*this); }
    Derived const& self() const noexcept { return static_cast<Derived const&>(*this); }
    std::vector<nvinfer1::PluginField> mSerialized;
    nvinfer1::PluginFieldCollection mCollection{};
};

template <class Plugin>
class PluginCreator : public nvinfer1::IPluginCreatorV3One {
public:
    PluginCreator() : mFields(Plugin::fieldNames()) {
        mCollection.nbFields = static_cast<int32_t>(mFields.size());
        mCollection.fields = mFields.data();
    }
    char const* getPluginName() const noexcept override { return Plugin::kName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return &mCollection; }
    nvinfer1::IPluginV3* createPlugin(char const*, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase) noexcept override {
        try {
            return new Plugin(FieldReader(fc));
        } catch (std::exception const& e) {
            logError(std::string(Plugin::kName) + ": " + e.what());
            return nullptr;
        }
    }

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

/* Throw std::invalid_argument with `message` unless `ok`. */
inline void require(bool ok, std::string const& message) {
    if (!ok) throw std::invalid_argument(message);
}

/* Equal, or one of them is a build-time wildcard (-1). */
inline bool sameDim(int64_t a, int64_t b) { return a < 0 || b < 0 || a == b; }

inline std::string shapeString(nvinfer1::Dims const& d) {
    std::string s = "(";
    for (int32_t i = 0; i < d.nbDims; ++i) s += (i ? ", " : "") + std::to_string(d.d[i]);
    return s + ")";
}

}  // namespace egl
