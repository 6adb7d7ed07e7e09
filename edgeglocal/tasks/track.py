"""Tracking task: detector -> (optional ReID embeddings) -> ByteTrack; ids and trails drawn, MOT txt saved.

``infer`` runs the detector and embeds the crops (stateless, so it may run on the pipeline's
inference thread); ``postprocess`` advances the tracker in frame order.
"""

from __future__ import annotations

import colorsys
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeglocal.io.frame import Frame
from edgeglocal.tasks.base import Feeds, Outputs, Task
from edgeglocal.tasks.bytetrack import ByteTracker
from edgeglocal.tasks.detectors import load_detector
from edgeglocal.tasks.mot import write_mot

#: Person-shaped input for the default ReID embedder (MobileNetV2 + GeM on crops).
REID_CROP_SIZE = (256, 128)


@dataclass
class TrackedObject:
    track_id: int
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
    score: float
    cls: int


@dataclass
class TrackResult:
    frame_index: int
    objects: list[TrackedObject]

    def to_record(self) -> dict[str, Any]:
        return {
            "frame": self.frame_index,
            "tracks": [
                {"id": o.track_id, "box": [round(v, 2) for v in o.box], "score": round(o.score, 4), "class": o.cls}
                for o in self.objects
            ],
        }


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour per id (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


class TrackTask(Task):
    """Multi-object tracking with ByteTrack.

    ``model``: None / "hog" (OpenCV people detector), a YOLO-style .onnx or a detect bundle.
    ``reid``: None (motion only), "default" (MobileNetV2 + GeM on crops) or an embedding bundle.
    ``save_mot``: a path (or True: ``runs/track/expN/tracks.txt``) for MOTChallenge results, written
    at :meth:`close`. ``conf`` is the lowest detection score kept (ByteTrack's low-score stage);
    ``threshold`` splits high from low scores. A lost track is kept ``track_buffer`` frames at
    30 FPS, i.e. ``track_buffer / 30`` seconds of a ``frame_rate`` stream.
    """

    name = "track"

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        reid: str | os.PathLike | None = None,
        save_mot: str | os.PathLike | bool | None = None,
        conf: float = 0.1,
        threshold: float = 0.5,
        new_track_thresh: float = 0.6,
        iou: float = 0.45,
        classes: list[int] | None = None,
        track_buffer: int = 30,
        frame_rate: float = 30.0,
        trail: int = 30,
        device: str = "auto",
    ) -> None:
        self.detector = load_detector(model, conf=conf, iou=iou, classes=classes, device=device)
        self.embedder = None
        if reid is not None:
            from edgeglocal.tasks.gallery import Embedder

            default = str(reid) == "default"
            self.embedder = Embedder(None if default else reid, device=device, size=REID_CROP_SIZE if default else None)
        self.tracker = ByteTracker(
            high_thresh=threshold, low_thresh=conf, new_track_thresh=max(new_track_thresh, threshold),
            track_buffer=track_buffer, frame_rate=frame_rate,
        )
        if save_mot is True:
            from edgeglocal.fsutil import next_run_dir

            save_mot = next_run_dir(Path("runs") / "track", "exp") / "tracks.txt"
        self.save_mot = Path(save_mot) if save_mot else None
        self.trail = trail
        self._trails: dict[int, deque[tuple[int, int]]] = {}
        self._rows: list[list[float]] = []

    def preprocess(self, frame: Frame) -> Feeds:
        return {"image": frame.image}

    def infer(self, feeds: Feeds) -> Outputs:
        image = feeds["image"]
        det = self.detector(image)
        outputs = {"boxes": det.boxes, "scores": det.scores, "classes": det.classes}
        if self.embedder is not None and len(det):
            outputs["embeddings"] = self.embedder(crops(image, det.boxes))
        return outputs

    def postprocess(self, outputs: Outputs, frame: Frame) -> TrackResult:
        tracks = self.tracker.update(
            outputs["boxes"], outputs["scores"], outputs["classes"], outputs.get("embeddings")
        )
        objects = [TrackedObject(t.track_id, tuple(float(v) for v in t.box), t.score, t.cls) for t in tracks]
        live = {t.track_id for t in self.tracker.tracks}
        for tid in [tid for tid in self._trails if tid not in live]:
            del self._trails[tid]
        for o in objects:
            x1, y1, x2, y2 = o.box
            self._trails.setdefault(o.track_id, deque(maxlen=self.trail)).append((int((x1 + x2) / 2), int(y2)))
            if self.save_mot is not None:
                self._rows.append([frame.index + 1, o.track_id, x1, y1, x2 - x1, y2 - y1, o.score])
        return TrackResult(frame.index, objects)

    def render(self, result: TrackResult, frame: Frame) -> np.ndarray:
        """Boxes with ``id:score`` labels and each track's recent foot-point trail."""
        img = frame.image.copy()
        for o in result.objects:
            color = track_color(o.track_id)
            points = self._trails.get(o.track_id)
            if points and len(points) > 1:
                cv2.polylines(img, [np.array(points, np.int32)], False, color, 2, cv2.LINE_AA)
            x1, y1, x2, y2 = (int(round(v)) for v in o.box)
            cv2.rectangle(img, (x1, y1), (x2, y2), color, 2)
            label = f"{o.track_id}:{o.score:.2f}"
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
            cv2.rectangle(img, (x1, max(0, y1 - th - 6)), (x1 + tw + 4, y1), color, -1)
            cv2.putText(img, label, (x1 + 2, max(th, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        return img

    def close(self) -> None:
        """Write the MOT file (atomically) if one was asked for."""
        if self.save_mot is not None:
            write_mot(self.save_mot, np.asarray(self._rows, np.float64).reshape(-1, 7))


def crops(image: np.ndarray, boxes: np.ndarray, min_size: int = 4) -> list[np.ndarray]:
    """Crops of ``boxes`` clipped to the image; degenerate boxes give a tiny grey patch, not an error."""
    h, w = image.shape[:2]
    out = []
    for x1, y1, x2, y2 in np.asarray(boxes).reshape(-1, 4):
        x1, x2 = int(np.clip(x1, 0, w - 1)), int(np.clip(np.ceil(x2), 1, w))
        y1, y2 = int(np.clip(y1, 0, h - 1)), int(np.clip(np.ceil(y2), 1, h))
        if x2 - x1 < min_size or y2 - y1 < min_size:
            out.append(np.full((min_size * 2, min_size, 3), 127, np.uint8))
        else:
            out.append(image[y1:y2, x1:x2])
    return out
