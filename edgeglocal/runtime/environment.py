"""What this machine can run: library versions, ONNX Runtime providers, TensorRT, plugins, CUDA, ops.

Each probe imports its library on its own and turns a failure into a reason, so ``edgeglocal
doctor`` always finishes and says why something is missing.
"""

from __future__ import annotations

import importlib
import os
import platform
from dataclasses import dataclass

from edgeglocal._version import __version__
from edgeglocal.errors import BackendUnavailable
from edgeglocal.runtime.cudart import CudaError, CudaRuntime
from edgeglocal.runtime.trt import plugin_library_status, plugin_tensorrt_major


@dataclass
class Check:
    """One line of the report: ``ok`` is None for purely informational rows."""

    group: str
    name: str
    ok: bool | None
    detail: str


def _version(module: str, label: str | None = None, group: str = "versions", required: bool = True) -> Check:
    label = label or module
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        return Check(group, label, False if required else None, f"not installed ({exc})")
    except Exception as exc:  # a broken install raises anything
        return Check(group, label, False, f"import error: {type(exc).__name__}: {exc}")
    return Check(group, label, True, str(getattr(mod, "__version__", "?")))


def _versions() -> list[Check]:
    checks = [
        Check("versions", "edgeglocal", True, __version__),
        Check("versions", "python", True, f"{platform.python_version()} ({platform.machine()})"),
    ]
    checks += [_version(m) for m in ("numpy", "onnx", "onnxruntime")]
    checks.append(_version("cv2", "opencv"))
    checks.append(_version("torch", required=False))  # export only; deployed apps may not have it
    return checks


def _providers() -> list[Check]:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return [Check("onnxruntime", "providers", False, f"onnxruntime is not installed ({exc})")]
    available = ort.get_available_providers()
    gpu = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
    detail = ", ".join(available) + ("" if gpu else " (CPU only: install onnxruntime-gpu for CUDA/TensorRT)")
    return [Check("onnxruntime", "providers", True, detail)]


def _tensorrt() -> list[Check]:
    trt = _version("tensorrt", group="tensorrt", required=False)
    path, how = plugin_library_status()
    if path is None:
        return [trt, Check("tensorrt", "plugin library", None, how)]
    built_for = plugin_tensorrt_major(path)
    detail = f"{path} ({how}; built for TensorRT {built_for if built_for is not None else 'unknown'})"
    installed = trt.detail.split(".")[0] if trt.ok else None
    if built_for is not None and installed is not None and installed != str(built_for):
        return [trt, Check("tensorrt", "plugin library", False,
                           f"{detail}: does not match the installed TensorRT {trt.detail}; rebuild it")]
    return [trt, Check("tensorrt", "plugin library", True, detail)]


def _cuda() -> Check:
    """The GPU as the TensorRT backend will see it: through libcudart, with CUDA's own reason if not."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return Check("cuda", "devices", None, "CUDA_VISIBLE_DEVICES hides all GPUs")
    try:
        cuda = CudaRuntime()
    except BackendUnavailable as exc:
        return Check("cuda", "devices", None, str(exc))
    try:
        return Check("cuda", "devices", True, f"{cuda.device_name()} (compute capability {cuda.compute_capability()})")
    except CudaError as exc:
        return Check("cuda", "devices", False, str(exc))
    finally:
        cuda.close()


def _ops() -> Check:
    try:
        importlib.import_module("edgeglocal.ops")  # registers every op
        from edgeglocal.ops._registry import registered_ops
    except Exception as exc:
        return Check("ops", "edgeglocal ops", False, f"could not import edgeglocal.ops ({type(exc).__name__}: {exc})")
    names = sorted(registered_ops())
    return Check("ops", "edgeglocal ops", bool(names), ", ".join(names) or "none registered")


def environment_report() -> list[Check]:
    """Every check, in display order."""
    return [*_versions(), *_providers(), *_tensorrt(), _cuda(), _ops()]
