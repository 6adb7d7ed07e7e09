"""Dehazing: the packaged dark-channel-prior model by default, or any ``dehaze`` bundle (e.g. MCAF-Net).

A dehaze bundle takes an RGB image in [0, 1] (N, 3, H, W) and returns the dehazed image of the same
size; its manifest says how to prepare the frame (resize / pad). The default DCP bundle also
returns the transmission map and the atmospheric light, reported as per-frame stats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeglocal.assets import DCP_DEHAZE
from edgeglocal.errors import BundleError
from edgeglocal.io.frame import Frame
from edgeglocal.runtime import load
from edgeglocal.runtime.preprocess import PrepMeta, prepare, restore
from edgeglocal.tasks.base import Feeds, Outputs, Task
from edgeglocal.tasks.render import side_by_side, to_bgr_uint8

#: Output names recognised as "the dehazed image", in order of preference.
IMAGE_OUTPUTS = ("dehazed", "image", "output")


@dataclass
class DehazeResult:
    """The dehazed frame (BGR uint8, frame size) and, when the model reports them, its DCP stats."""

    image: np.ndarray
    mean_transmission: float | None = None
    atmosphere: list[float] | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"brightness": round(float(self.image.mean()) / 255.0, 4)}
        if self.mean_transmission is not None:
            record["mean_transmission"] = round(self.mean_transmission, 4)
        if self.atmosphere is not None:
            record["atmosphere_rgb"] = [round(a, 4) for a in self.atmosphere]
        return record


class DehazeTask(Task):
    """``model=None`` runs the packaged DCP dehazer; a path runs that dehaze bundle."""

    name = "dehaze"

    def __init__(self, model: str | Path | None = None, side_by_side: bool = False, device: str = "auto"):
        self.session = load(model or DCP_DEHAZE, device=device)
        manifest = self.session.manifest
        if manifest is not None and manifest.task != "dehaze":
            raise BundleError(f"Bundle {self.session.path} is a {manifest.task!r} model; expected a dehaze model.")
        names = [o.name for o in self.session.outputs]
        self.output = next((n for n in IMAGE_OUTPUTS if n in names), names[0])
        self.input = self.session.inputs[0]
        self.side_by_side = side_by_side
        self._meta: dict[tuple[int, int], PrepMeta] = {}  # per frame size; thread-safe to share

    def preprocess(self, frame: Frame) -> Feeds:
        x, meta = prepare(frame.image, self.input)
        self._meta[meta.frame_hw] = meta
        return {self.input.name: x}

    def infer(self, feeds: Feeds) -> Outputs:
        return self.session.run(feeds)

    def postprocess(self, outputs: Outputs, frame: Frame) -> DehazeResult:
        meta = self._meta[frame.image.shape[:2]]
        dehazed = outputs[self.output][0]
        if dehazed.ndim != 3 or dehazed.shape[0] != 3:
            raise BundleError(
                f"Output {self.output!r} of {self.session.path.name} has shape {outputs[self.output].shape}; "
                "expected a (1, 3, H, W) RGB image."
            )
        result = DehazeResult(to_bgr_uint8(restore(dehazed, meta)))
        if "transmission" in outputs:
            result.mean_transmission = float(restore(outputs["transmission"][0], meta).mean())
        if "atmosphere" in outputs:
            result.atmosphere = [float(a) for a in outputs["atmosphere"][0]]
        return result

    def render(self, result: DehazeResult, frame: Frame) -> np.ndarray:
        if not self.side_by_side:
            return result.image
        return side_by_side(frame.image, result.image, labels=("input", "dehazed"))
