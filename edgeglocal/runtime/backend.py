"""The interface every runtime backend implements, so that ``Session`` does not care which one runs.

A backend module exposes ``create_backend(path, manifest, device, providers) -> Backend``.
``edgeglocal.runtime.ort`` serves ``.onnx`` files; ``edgeglocal.runtime.trt`` (TensorRT) serves
``.engine`` files and raises :class:`~edgeglocal.errors.BackendUnavailable` when tensorrt is not
installed.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edgeglocal.bundle import TensorSpec


class Backend(Protocol):
    """A loaded model that maps named numpy feeds to named numpy outputs."""

    #: What runs the model, e.g. ``"onnxruntime:CPUExecutionProvider"`` or ``"tensorrt"``.
    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; ``feeds`` are already validated against ``inputs``."""
