"""One runner per benchmark backend: it either returns a zero-argument callable that runs one batch,
or raises :class:`Unavailable` with the sentence the table shows (what is missing, or why not)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeglocal.errors import BackendUnavailable

BACKENDS = ("torch", "ort-cpu", "ort-cuda", "ort-trt", "trt")
PRECISIONS = ("fp32", "fp16", "int8")
ORT_PROVIDERS = {
    "ort-cpu": ["CPUExecutionProvider"],
    "ort-cuda": ["CUDAExecutionProvider"],
    "ort-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider"],
}


class Unavailable(Exception):
    """This backend x precision cannot run here; the message says why, in one sentence."""


def torch_runner(model: Any, x: np.ndarray, precision: str) -> Callable[[], object]:
    """PyTorch eager; fp16 only on CUDA (CPU half kernels are slower emulations), no eager int8."""
    import torch

    if precision == "int8":
        raise Unavailable("PyTorch eager has no int8 path; int8 is measured on ONNX Runtime and TensorRT.")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if precision == "fp16" and device == "cpu":
        raise Unavailable("PyTorch fp16 is measured on CUDA only, and CUDA is not available.")
    dtype = torch.float16 if precision == "fp16" else torch.float32
    model = model.to(device=device, dtype=dtype).eval()
    xt = torch.from_numpy(x).to(device=device, dtype=dtype)

    def run() -> object:
        with torch.inference_mode():
            y = model(xt)
        if device == "cuda":
            torch.cuda.synchronize()
        return y

    return run


def ort_runner(bundle: Path, backend: str, x: np.ndarray) -> Callable[[], object]:
    """ONNX Runtime with exactly the backend's providers (no silent fallback to CPU)."""
    import onnxruntime as ort

    from edgeglocal.runtime import load

    wanted = ORT_PROVIDERS[backend][0]
    if wanted not in ort.get_available_providers():
        what = "CUDA" if backend == "ort-cuda" else "TensorRT"
        raise Unavailable(f"onnxruntime {what} provider not installed (this onnxruntime has "
                          f"{', '.join(ort.get_available_providers())}; install onnxruntime-gpu).")
    try:
        session = load(bundle, providers=[p for p in ORT_PROVIDERS[backend] if p in ort.get_available_providers()])
    except BackendUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    if not session.backend.endswith(wanted):
        raise Unavailable(f"ONNX Runtime fell back to {session.backend} instead of {wanted}.")
    feeds = {session.inputs[0].name: x}
    return lambda: session.run(feeds)


def trt_runner(bundle: Path, x: np.ndarray) -> Callable[[], object]:
    """A TensorRT engine built from the bundle with edgeglocal's builder, run through the runtime."""
    if importlib.util.find_spec("tensorrt") is None:
        raise Unavailable("TensorRT is not installed (pip install tensorrt on a machine with an NVIDIA GPU).")
    from edgeglocal.export.trt_build import build_engine
    from edgeglocal.runtime import load

    try:
        session = load(build_engine(bundle).engine, device="tensorrt")  # precision comes from the bundle
    except BackendUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    feeds = {session.inputs[0].name: x}
    return lambda: session.run(feeds)
