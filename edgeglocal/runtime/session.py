"""``load(path) -> Session``: one front over ONNX Runtime and TensorRT, picked from the file."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeglocal.bundle import Manifest, TensorSpec, find_manifest
from edgeglocal.errors import BackendUnavailable, BundleError, InputError
from edgeglocal.runtime.backend import Backend

DEVICES = ("auto", "cpu", "cuda", "tensorrt")
#: File suffix -> (backend module exposing ``create_backend(path, manifest, device, providers)``,
#: the package it needs).
BACKENDS = {
    ".onnx": ("edgeglocal.runtime.ort", "onnxruntime"),
    ".engine": ("edgeglocal.runtime.trt", "tensorrt"),
}
_TORCH_SUFFIXES = (".pt", ".pth", ".safetensors")


class Session:
    """A loaded model: ``inputs``/``outputs`` specs, ``run(feeds)``, and which ``backend`` runs it."""

    def __init__(self, backend: Backend, path: Path, manifest: Manifest | None) -> None:
        self._backend = backend
        self.path = path
        self.manifest = manifest

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._backend.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._backend.outputs

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate ``feeds`` against :attr:`inputs` (names, rank, dtype, fixed dims), then run."""
        for spec in self.inputs:
            if spec.name not in feeds:
                raise InputError(
                    f"Input {spec.name!r} is missing from the feeds (got {sorted(feeds)}); "
                    f"{self.path.name} expects {[s.name for s in self.inputs]}."
                )
            _check_feed(spec, np.asarray(feeds[spec.name]))
        unknown = set(feeds) - {s.name for s in self.inputs}
        if unknown:
            raise InputError(
                f"Feed {sorted(unknown)[0]!r} is not an input of {self.path.name}; "
                f"expected {[s.name for s in self.inputs]}."
            )
        return self._backend.run({s.name: np.asarray(feeds[s.name]) for s in self.inputs})

    def __repr__(self) -> str:
        return f"Session({self.path.name!r}, backend={self.backend!r})"


def _check_feed(spec: TensorSpec, value: np.ndarray) -> None:
    if value.ndim != len(spec.shape):
        raise InputError(
            f"Input {spec.name!r} has shape {tuple(value.shape)} but rank {len(spec.shape)} "
            f"{_fmt(spec.shape)} was expected."
        )
    if str(value.dtype) != spec.dtype:
        raise InputError(f"Input {spec.name!r} is {value.dtype} but {spec.dtype} was expected.")
    for axis, (want, got) in enumerate(zip(spec.shape, value.shape)):
        if isinstance(want, int) and want > 0 and want != got:
            raise InputError(
                f"Input {spec.name!r} has shape {tuple(value.shape)} but {_fmt(spec.shape)} was "
                f"expected (axis {axis} must be {want})."
            )


def _fmt(shape: list[int | str]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def load(
    path: str | os.PathLike,
    device: str = "auto",
    providers: Sequence[str] | None = None,
) -> Session:
    """Load a model file (``.onnx`` or ``.engine``) and its manifest, if any, into a Session.

    ``device="auto"`` prefers TensorRT > CUDA > CPU among what is installed; ``Session.backend``
    says which one was chosen. ``providers`` (ONNX Runtime names) overrides ``device`` for .onnx.
    """
    path = Path(path)
    if device not in DEVICES:
        raise InputError(f"Device {device!r} is not one of {', '.join(DEVICES)}.")
    if path.is_dir():
        path = _model_in_dir(path)
    if not path.exists():
        raise BundleError(f"Model file {path} does not exist.")
    if path.suffix in _TORCH_SUFFIXES:
        raise BackendUnavailable(
            f"{path} is a PyTorch checkpoint; export it first with `edgeglocal export` and load the .onnx."
        )
    if path.suffix not in BACKENDS:
        raise BundleError(f"Model file {path} has suffix {path.suffix!r}; expected .onnx or .engine.")
    if path.suffix == ".engine" and device == "cpu":
        raise InputError(f"{path} is a TensorRT engine and cannot run with device='cpu'; load the .onnx.")
    module_name, package = BACKENDS[path.suffix]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise BackendUnavailable(
            f"Running {path.name} needs the {package} backend, which is not available here "
            f"(no module named {exc.name!r}); install {package}."
        ) from exc
    manifest = find_manifest(path)
    return Session(module.create_backend(path, manifest, device, providers), path, manifest)


def _model_in_dir(folder: Path) -> Path:
    """A bundle folder holding exactly one model file."""
    models = sorted(p for suffix in BACKENDS for p in folder.glob(f"*{suffix}"))
    if len(models) != 1:
        raise BundleError(
            f"Folder {folder} holds {len(models)} model files; pass the .onnx or .engine file itself."
        )
    return models[0]
