"""The bundle manifest: everything needed to run an exported model without its training code.

A bundle is ``NAME.onnx`` (or ``NAME.engine``) plus ``NAME.json``. This module only reads and
writes the JSON; it imports neither torch nor onnx so that deployed apps can use it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeglocal._version import __version__
from edgeglocal.errors import BundleError
from edgeglocal.fsutil import write_text_atomic

FORMAT_VERSION = 1
MODEL_SUFFIXES = (".onnx", ".engine")


@dataclass
class Preprocess:
    """How a BGR uint8 frame becomes the model input.

    ``resize``: ``"stretch"`` to ``size``, ``"letterbox"`` (keep aspect, pad), ``"pad_multiple"``
    (keep the frame size, pad H and W up to ``multiple``) or ``"none"``.
    Pixel values: ``(rgb_or_bgr * scale - mean) / std``.
    """

    color: str = "RGB"
    scale: float = 1.0 / 255.0
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    resize: str = "stretch"
    size: list[int] | None = None
    multiple: int = 1
    pad_value: float = 0.0


@dataclass
class TensorSpec:
    """One graph input or output. Dynamic dims are named strings (``"batch"``, ``"height"``)."""

    name: str
    shape: list[int | str]
    dtype: str = "float32"
    layout: str | None = None
    meaning: str = ""
    preprocess: Preprocess | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TensorSpec":
        d = dict(d)
        pre = d.pop("preprocess", None)
        return cls(**d, preprocess=Preprocess(**pre) if pre else None)


@dataclass
class Manifest:
    """The ``NAME.json`` beside a model file. See shared/design.md, "The bundle"."""

    task: str
    arch: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    custom_ops: list[str] = field(default_factory=list)
    precision: dict[str, Any] = field(default_factory=lambda: {"mode": "fp32"})
    parity: dict[str, Any] | None = None
    engine: dict[str, Any] | None = None
    opset: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    edgeglocal_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "manifest") -> "Manifest":
        try:
            d = dict(d)
            if d.get("format_version", 0) > FORMAT_VERSION:
                raise BundleError(
                    f"{source} has manifest format {d['format_version']}; this edgeglocal reads "
                    f"format {FORMAT_VERSION} or older, so upgrade edgeglocal."
                )
            d["inputs"] = [TensorSpec.from_dict(t) for t in d["inputs"]]
            d["outputs"] = [TensorSpec.from_dict(t) for t in d["outputs"]]
            return cls(**d)
        except (KeyError, TypeError) as exc:
            raise BundleError(f"{source} is not an edgeglocal manifest ({exc}).") from exc

    def save(self, path: str | Path) -> Path:
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Manifest":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise BundleError(f"Manifest {path} does not exist.") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"Manifest {path} is not valid JSON ({exc}).") from exc
        return cls.from_dict(data, source=str(path))


def manifest_path(model_path: str | Path) -> Path:
    """The manifest that travels with a model file: same folder, same stem, ``.json``."""
    return Path(model_path).with_suffix(".json")


def find_manifest(model_path: str | Path) -> Manifest | None:
    """The manifest beside ``model_path``, or None for a bare model file (e.g. a YOLO .onnx)."""
    p = manifest_path(model_path)
    return Manifest.load(p) if p.exists() else None
