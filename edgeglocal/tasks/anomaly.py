"""Anomaly detection: a PatchCore normal bank over MobileNetV2 patch features by default, or a
zero-shot ``anomaly`` bundle (e.g. CRANE) whose manifest lists ``anomaly_map`` and ``score`` outputs.

Without a bank file the task learns what normal looks like from the first ``fit_frames`` frames of
the stream, then detects; ``edgeglocal fit anomaly`` builds a reusable bank from images or a video.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import cv2
import numpy as np

from edgeglocal.errors import BundleError, InputError
from edgeglocal.io.frame import Frame
from edgeglocal.runtime import Session, load
from edgeglocal.runtime.preprocess import PrepMeta, prepare, restore
from edgeglocal.tasks.backbones import feature_session
from edgeglocal.tasks.base import Feeds, Outputs, Task
from edgeglocal.tasks.patchcore import PatchBank, fit_bank
from edgeglocal.tasks.render import GREEN, RED, overlay_heatmap, put_label

ZERO_SHOT_OUTPUTS = ("anomaly_map", "score")
DEFAULT_FIT_FRAMES = 30


@dataclass
class AnomalyResult:
    """One frame's verdict. While the bank is being fitted, ``score`` and ``map`` are None."""

    score: float | None
    threshold: float | None
    map: np.ndarray | None = None  # (H, W) float32 at the frame's size
    fitted: int = 0
    fit_frames: int = 0

    @property
    def is_anomaly(self) -> bool | None:
        return None if self.score is None else self.score > self.threshold

    def to_record(self) -> dict[str, Any]:
        if self.score is None:
            return {"state": "fitting", "fitted": self.fitted, "fit_frames": self.fit_frames}
        y, x = np.unravel_index(int(np.argmax(self.map)), self.map.shape)
        return {
            "state": "detect",
            "score": round(self.score, 5),
            "threshold": round(self.threshold, 5),
            "anomaly": bool(self.is_anomaly),
            "peak_xy": [int(x), int(y)],
        }


def _patch_info(session: Session) -> dict[str, Any]:
    """What a bank must agree on with the features it is used with."""
    extra = session.manifest.extra if session.manifest else {}
    return {
        "features": session.manifest.arch if session.manifest else session.path.stem,
        "weights_sha256": extra.get("weights_sha256"),
        "stride": extra.get("stride", 8),
        "input_size": session.inputs[0].preprocess.size,
    }


def patch_features(session: Session, image_bgr: np.ndarray) -> np.ndarray:
    """One BGR image -> its (C, h, w) patch feature map."""
    spec = session.inputs[0]
    return next(iter(session.run({spec.name: prepare(image_bgr, spec)[0]}).values()))[0]


def fit_normal_bank(
    images_bgr: Iterable[np.ndarray],
    coreset: float = 0.1,
    threshold: float | None = None,
    session: Session | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> PatchBank:
    """Fit a PatchCore bank on normal BGR images (e.g. the frames of a video, in order).

    ``progress(stage, done, total)`` is called while features are extracted (``total`` 0 when
    unknown) and while the coreset is chosen.
    """
    session = session or feature_session("patch")
    maps = []
    for i, image in enumerate(images_bgr, 1):
        maps.append(patch_features(session, image))
        if progress:
            progress("features", i, 0)
    coreset_progress = (lambda done, total: progress("coreset", done, total)) if progress else None
    return fit_bank(maps, coreset=coreset, threshold=threshold, info=_patch_info(session), progress=coreset_progress)


class AnomalyTask(Task):
    """PatchCore over a bank (``bank=`` file, or fitted on the first ``fit_frames`` frames), or a
    zero-shot bundle (``model=``) that needs no bank. ``threshold`` overrides the stored one."""

    name = "anomaly"

    def __init__(
        self,
        model: str | Path | None = None,
        bank: str | Path | None = None,
        threshold: float | None = None,
        fit_frames: int = DEFAULT_FIT_FRAMES,
        coreset: float = 0.1,
        device: str = "auto",
    ):
        if not 0.0 < coreset <= 1.0:
            raise InputError(f"coreset={coreset} is not a fraction in (0, 1].")
        if model is None and bank is None and fit_frames < (1 if threshold is not None else 2):
            raise InputError(f"fit_frames={fit_frames} is too few to fit a threshold; use 2 or more, or pass threshold.")
        self.threshold = threshold
        self.fit_frames, self.coreset = fit_frames, coreset
        self.bank: PatchBank | None = None
        self._fitting: list[np.ndarray] = []
        self._meta: dict[tuple[int, int], PrepMeta] = {}  # per frame size; thread-safe to share
        self.zero_shot = model is not None
        if model is not None:
            if bank is not None:
                raise InputError(f"Bank {bank} is for the default PatchCore model; {model} is zero-shot and needs none.")
            self.session = load(model, device=device)
            self._check_zero_shot()
            extra = self.session.manifest.extra if self.session.manifest else {}
            self.threshold = threshold if threshold is not None else float(extra.get("threshold", 0.5))
            return
        self.bank = PatchBank.load(bank) if bank is not None else None  # before the (slower) model
        self.session = feature_session("patch", device=device)
        if self.bank is not None:
            self._check_bank(Path(bank))
            self.threshold = threshold if threshold is not None else self.bank.threshold

    def _check_zero_shot(self) -> None:
        manifest = self.session.manifest
        names = {o.name for o in self.session.outputs}
        if manifest is None or manifest.task != "anomaly" or not set(ZERO_SHOT_OUTPUTS) <= names:
            raise BundleError(
                f"Bundle {self.session.path} is not a zero-shot anomaly model; expected task 'anomaly' "
                f"with outputs {', '.join(ZERO_SHOT_OUTPUTS)} (got {sorted(names)})."
            )

    def _check_bank(self, path: Path) -> None:
        want, got = _patch_info(self.session), self.bank.info
        for key in ("weights_sha256", "input_size"):
            if got.get(key) != want[key]:
                raise InputError(
                    f"Anomaly bank {path} was fitted with {key}={got.get(key)} but the feature model "
                    f"has {want[key]}; refit it with `edgeglocal fit anomaly`."
                )

    def preprocess(self, frame: Frame) -> Feeds:
        spec = self.session.inputs[0]
        x, meta = prepare(frame.image, spec)
        self._meta[meta.frame_hw] = meta
        return {spec.name: x}

    def infer(self, feeds: Feeds) -> Outputs:
        return self.session.run(feeds)

    def postprocess(self, outputs: Outputs, frame: Frame) -> AnomalyResult:
        meta = self._meta[frame.image.shape[:2]]
        if self.zero_shot:
            amap = np.asarray(outputs["anomaly_map"], np.float32).squeeze()
            if amap.ndim != 2:
                raise BundleError(
                    f"Output 'anomaly_map' of {self.session.path.name} has shape {outputs['anomaly_map'].shape}; "
                    "expected one (H, W) map per frame."
                )
            amap = cv2.resize(amap, meta.input_hw[::-1], interpolation=cv2.INTER_LINEAR)
            score = float(np.asarray(outputs["score"]).ravel()[0])
            return AnomalyResult(score, self.threshold, restore(amap, meta))
        features = next(iter(outputs.values()))[0]
        if self.bank is None:
            return self._collect(features)
        amap = self.bank.anomaly_map(features, meta.input_hw)
        return AnomalyResult(float(amap.max()), self.threshold, restore(amap, meta))

    def _collect(self, features: np.ndarray) -> AnomalyResult:
        """Fitting phase: keep the frame's features; fit the bank once ``fit_frames`` are in."""
        self._fitting.append(features)
        fitted = len(self._fitting)
        if fitted == self.fit_frames:
            self.bank = fit_bank(self._fitting, self.coreset, threshold=self.threshold,
                                 info=_patch_info(self.session))
            self.threshold = self.bank.threshold
            self._fitting = []
        return AnomalyResult(None, self.threshold, fitted=fitted, fit_frames=self.fit_frames)

    def render(self, result: AnomalyResult, frame: Frame) -> np.ndarray:
        if result.score is None:
            return put_label(frame.image, f"fitting normal bank {result.fitted}/{result.fit_frames}")
        thr = result.threshold
        view = overlay_heatmap(frame.image, result.map, vmin=0.5 * thr, vmax=1.5 * thr)
        verdict, color = ("ANOMALY", RED) if result.is_anomaly else ("normal", GREEN)
        return put_label(view, f"{verdict}  score {result.score:.3g} / {thr:.3g}", color=color)
