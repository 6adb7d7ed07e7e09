"""Detectors for tracking: OpenCV's HOG people detector, YOLO-style ONNX files, edgeglocal detect bundles.

Each detector maps a BGR frame to :class:`Detections` in frame pixels with scores in [0, 1], so that
the tracker's thresholds mean the same thing whichever detector feeds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Protocol

import cv2
import numpy as np

from edgeglocal.bundle import Preprocess
from edgeglocal.errors import InputError

#: The HOG people detector's window height: smaller people are found only after upscaling.
HOG_WINDOW_HEIGHT = 128
#: Ultralytics' letterbox: RGB, /255, grey (114) padding.
YOLO_PREPROCESS = Preprocess(color="RGB", scale=1.0 / 255.0, resize="letterbox", pad_value=114.0)


@dataclass
class Detections:
    """``boxes`` (N, 4) x1, y1, x2, y2 in frame pixels; ``scores`` (N,) in [0, 1]; ``classes`` (N,)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int64))

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, keep: np.ndarray) -> "Detections":
        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep])


class Detector(Protocol):
    name: str

    def __call__(self, image_bgr: np.ndarray) -> Detections: ...


def nms(det: Detections, iou: float) -> Detections:
    """Class-aware non-maximum suppression (OpenCV's batched NMS), highest score first."""
    if len(det) == 0:
        return det
    xywh = np.c_[det.boxes[:, :2], det.boxes[:, 2:] - det.boxes[:, :2]].astype(np.float64)
    keep = cv2.dnn.NMSBoxesBatched(
        xywh.tolist(), det.scores.astype(float).tolist(), det.classes.astype(int).tolist(), 0.0, iou
    )
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    return det.select(keep[np.argsort(-det.scores[keep], kind="stable")])


class HogPeopleDetector:
    """OpenCV's default HOG + linear SVM pedestrian detector; no weights file needed.

    Scores are the SVM margins squashed with a sigmoid (margin 0 -> 0.5), so the tracker's default
    split at 0.5 separates the SVM's positives from the near-misses that ``hit_threshold`` keeps for
    ByteTrack's low-score stage. ``min_height`` is the smallest person to find in pixels: frames are
    upscaled so that such a person fills the detector's 128-pixel window.
    """

    name = "hog"

    def __init__(
        self,
        min_height: int = 96,
        scale: float = 1.1,
        hit_threshold: float = -0.5,
        nms_iou: float = 0.45,
        win_stride: int = 8,
    ) -> None:
        if min_height <= 0 or scale <= 1.0:
            raise InputError(f"HOG min_height={min_height}, scale={scale} are invalid; expected min_height > 0 and scale > 1.")
        self.upscale = max(1.0, HOG_WINDOW_HEIGHT / min_height)
        self.scale = scale
        self.hit_threshold = hit_threshold
        self.nms_iou = nms_iou
        self.win_stride = win_stride
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        img = image_bgr
        if self.upscale > 1.0:
            img = cv2.resize(image_bgr, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_LINEAR)
        rects, margins = self._hog.detectMultiScale(
            img,
            hitThreshold=self.hit_threshold,
            winStride=(self.win_stride, self.win_stride),
            padding=(8, 8),
            scale=self.scale,
        )
        if len(rects) == 0:
            return Detections.empty()
        rects = np.asarray(rects, np.float32).reshape(-1, 4) / self.upscale
        boxes = np.c_[rects[:, :2], rects[:, :2] + rects[:, 2:]]
        h, w = image_bgr.shape[:2]
        boxes = boxes.clip(0, [w, h, w, h]).astype(np.float32)
        scores = (1.0 / (1.0 + np.exp(-np.asarray(margins, np.float64).reshape(-1)))).astype(np.float32)
        return nms(Detections(boxes, scores, np.zeros(len(boxes), np.int64)), self.nms_iou)


def decode_yolo(raw: np.ndarray, source: str = "model") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One YOLO output -> (boxes cx, cy, w, h; best-class scores; class ids).

    Ultralytics v8/v11 emit (1, 4 + nc, N) with class probabilities; YOLOv5/v7 emit
    (1, N, 5 + nc) with an objectness column that multiplies the class probabilities.
    The anchor axis is the long one, which tells the two apart.
    """
    if raw.ndim != 3 or raw.shape[0] != 1 or min(raw.shape[1:]) < 5:
        raise InputError(
            f"{source} outputs shape {tuple(raw.shape)}; expected a YOLO head (1, 4+nc, N) "
            "or (1, N, 5+nc), or an edgeglocal detect bundle with boxes/scores/classes."
        )
    pred = raw[0].astype(np.float32)
    if pred.shape[0] < pred.shape[1]:  # v8: channels first
        pred = pred.T
        cls_prob = pred[:, 4:]
    else:  # v5: objectness * class probability
        cls_prob = pred[:, 5:] * pred[:, 4:5] if pred.shape[1] > 5 else pred[:, 4:5]
    classes = cls_prob.argmax(axis=1)
    return pred[:, :4], cls_prob[np.arange(len(pred)), classes], classes.astype(np.int64)


class OnnxDetector:
    """A YOLO-style .onnx (v5 or v8 head) or an edgeglocal bundle whose manifest says task "detect".

    A detect bundle outputs ``boxes`` (x1, y1, x2, y2 in input pixels), ``scores`` and ``classes``,
    with or without a leading batch axis, and its manifest's preprocess; a bare YOLO file gets
    Ultralytics' letterbox. Boxes are mapped back through the letterbox to frame pixels.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        conf: float = 0.1,
        iou: float = 0.45,
        classes: list[int] | None = None,
        device: str = "auto",
    ) -> None:
        from edgeglocal.runtime import load

        self.session = load(path, device=device)
        self.name = os.path.basename(os.fspath(path))
        self.conf, self.iou = conf, iou
        self.classes = None if classes is None else np.asarray(classes, np.int64)
        manifest = self.session.manifest
        if manifest is not None and manifest.task != "detect":
            raise InputError(f"{self.name} is a {manifest.task!r} bundle; tracking needs a detector (task 'detect').")
        if len(self.session.inputs) != 1:
            raise InputError(f"{self.name} has {len(self.session.inputs)} inputs; a detector takes one image.")
        spec = self.session.inputs[0]
        self.bundle = manifest is not None
        self.spec = spec if self.bundle and spec.preprocess else replace(spec, preprocess=YOLO_PREPROCESS)
        names = {o.name for o in self.session.outputs}
        if self.bundle and not {"boxes", "scores", "classes"} <= names:
            raise InputError(f"Detect bundle {self.name} outputs {sorted(names)}; expected boxes, scores and classes.")
        if not self.bundle:
            self._check_yolo_outputs()

    def _check_yolo_outputs(self) -> None:
        out = self.session.outputs[0]
        fixed = [d for d in out.shape if isinstance(d, int) and d > 0]
        if len(out.shape) != 3 or (len(fixed) == 3 and min(out.shape[1:]) < 5):
            raise InputError(
                f"{self.name} outputs {out.name!r} with shape {out.shape}; expected a YOLO head "
                "(1, 4+nc, N) or (1, N, 5+nc), or an edgeglocal detect bundle with boxes/scores/classes."
            )

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        from edgeglocal.runtime.preprocess import boxes_to_frame, prepare

        x, meta = prepare(image_bgr, self.spec)
        outputs = self.session.run({self.spec.name: x})
        if self.bundle:
            boxes = np.asarray(outputs["boxes"], np.float32).reshape(-1, 4)
            scores = np.asarray(outputs["scores"], np.float32).reshape(-1)
            classes = np.asarray(outputs["classes"]).reshape(-1).astype(np.int64)
        else:
            cxcywh, scores, classes = decode_yolo(next(iter(outputs.values())), self.name)
            boxes = np.c_[cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2]
        keep = scores >= self.conf
        if self.classes is not None:
            keep &= np.isin(classes, self.classes)
        det = Detections(boxes[keep], scores[keep], classes[keep])
        if not self.bundle:
            det = nms(det, self.iou)
        det.boxes = boxes_to_frame(det.boxes, meta) if len(det) else det.boxes
        return det


def load_detector(
    model: str | os.PathLike | None = None,
    *,
    conf: float = 0.1,
    iou: float = 0.45,
    classes: list[int] | None = None,
    device: str = "auto",
) -> Detector:
    """``None`` or ``"hog"`` -> the HOG people detector; a path -> :class:`OnnxDetector`."""
    if model is None or str(model).lower() == "hog":
        return HogPeopleDetector(nms_iou=iou)
    return OnnxDetector(model, conf=conf, iou=iou, classes=classes, device=device)
