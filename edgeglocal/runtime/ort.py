"""ONNX Runtime backend: provider choice, a readable check of custom ops, specs from the graph."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from edgeglocal.bundle import Manifest, TensorSpec
from edgeglocal.errors import BackendUnavailable, BundleError

#: Domains ONNX Runtime implements itself (standard ONNX, ONNX-ML and ORT's contrib ops).
KNOWN_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc"})

#: Provider preference for ``device="auto"``; the first available one wins.
AUTO_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
DEVICE_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def check_custom_ops(path: Path) -> None:
    """Fail with one sentence if a node uses an op that neither ORT nor the file itself defines.

    Custom ops are fine when the model carries a ``FunctionProto`` for them (edgeglocal's
    contract); ORT's own error for the other case ("Could not find an implementation...") does
    not say what to do.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ... for a bad file
        raise BundleError(f"{path} is not a readable ONNX model ({exc}).") from exc
    local = {(f.domain, f.name) for f in model.functions}
    graphs = [model.graph.node] + [f.node for f in model.functions]
    for nodes in graphs:
        for node in nodes:
            if node.domain in KNOWN_DOMAINS or (node.domain, node.op_type) in local:
                continue
            raise BundleError(
                f"{path} uses op {node.domain}::{node.op_type}, which has no function body in the "
                "file; re-export it with this edgeglocal (or build a TensorRT engine with its plugin)."
            )


def choose_providers(device: str, providers: Sequence[str] | None) -> list[str]:
    """The provider list to request; explicit ``providers`` win over ``device``."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if providers:
        missing = [p for p in providers if p not in available]
        if missing:
            raise BackendUnavailable(
                f"ONNX Runtime provider {missing[0]} is not available here (available: "
                f"{', '.join(available)}); install onnxruntime-gpu for CUDA/TensorRT providers."
            )
        return list(providers)
    if device == "auto":
        return [p for p in AUTO_ORDER if p in available]
    wanted = DEVICE_PROVIDERS[device]
    if wanted[0] not in available:
        raise BackendUnavailable(
            f"device={device!r} needs ONNX Runtime's {wanted[0]}, which this onnxruntime lacks "
            f"(available: {', '.join(available)}); install onnxruntime-gpu with CUDA"
            + (" and TensorRT." if device == "tensorrt" else ".")
        )
    return [p for p in wanted if p in available]


def _spec(arg) -> TensorSpec:
    shape = [d if isinstance(d, (int, str)) else f"dim{i}" for i, d in enumerate(arg.shape)]
    return TensorSpec(name=arg.name, shape=shape, dtype=_ORT_TYPES.get(arg.type, arg.type))


def _merge(graph: list[TensorSpec], declared: list[TensorSpec], what: str, path: Path) -> list[TensorSpec]:
    """Manifest specs (with preprocess and meaning) in graph order; they must name the graph's tensors."""
    by_name = {s.name: s for s in declared}
    if set(by_name) != {s.name for s in graph}:
        raise BundleError(
            f"The manifest of {path} lists {what} {sorted(by_name)} but the graph has "
            f"{sorted(s.name for s in graph)}; re-export the bundle."
        )
    return [by_name[s.name] for s in graph]


class OrtBackend:
    """An ``onnxruntime.InferenceSession`` behind the :class:`Backend` interface."""

    def __init__(self, path: Path, manifest: Manifest | None, providers: list[str]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise BundleError(f"ONNX Runtime could not load {path}: {str(exc).strip()}") from exc
        self.name = f"onnxruntime:{self._sess.get_providers()[0]}"
        self.inputs = [_spec(a) for a in self._sess.get_inputs()]
        self.outputs = [_spec(a) for a in self._sess.get_outputs()]
        if manifest is not None:
            self.inputs = _merge(self.inputs, manifest.inputs, "inputs", path)
            self.outputs = _merge(self.outputs, manifest.outputs, "outputs", path)
        self._output_names = [s.name for s in self.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._sess.run(self._output_names, feeds)
        return dict(zip(self._output_names, values))


def create_backend(
    path: Path, manifest: Manifest | None, device: str, providers: Sequence[str] | None
) -> OrtBackend:
    check_custom_ops(path)
    return OrtBackend(path, manifest, choose_providers(device, providers))
