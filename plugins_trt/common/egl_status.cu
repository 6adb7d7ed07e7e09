#include "egl_kernels.h"

extern "C" const char* egl_status_string(int status) {
    switch (status) {
        case EGL_OK: return "ok";
        case EGL_ERR_INVALID_ARGUMENT: return "invalid argument (size, pointer or dtype)";
        case EGL_ERR_UNSUPPORTED: return "unsupported size for these kernels (see plugins_trt README)";
        case EGL_ERR_CUDA: return "CUDA launch failed";
        default: return "unknown status";
    }
}
