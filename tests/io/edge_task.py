"""A small but real task for the pipeline tests: Sobel edge strength computed by an ONNX model in ORT.

The model folds BGR -> grey into a 3x3 Sobel convolution and returns the gradient magnitude; the
task maps it back to the frame with ``restore`` and reports mean strength and the fraction of strong
edges. Tests check those numbers against OpenCV's own Sobel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeglocal.bundle import Manifest, Preprocess, TensorSpec, manifest_path
from edgeglocal.runtime import load
from edgeglocal.runtime.preprocess import PrepMeta, prepare, restore
from edgeglocal.tasks.base import Task

GREY = np.array([0.114, 0.587, 0.299], np.float32)  # B, G, R weights of cv2's BGR2GRAY
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)


def build_sobel_bundle(folder: Path) -> Path:
    """Write ``sobel.onnx`` + ``sobel.json`` (pad-to-8 preprocessing, BGR, 0..1)."""
    w = np.stack([GREY[:, None, None] * SOBEL_X, GREY[:, None, None] * SOBEL_X.T])  # (2, 3, 3, 3)
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["g"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["g", "g"], ["g2"]),
        helper.make_node("ReduceSum", ["g2", "axis"], ["s"], keepdims=1),
        helper.make_node("Sqrt", ["s"], ["edges"]),
    ]
    graph = helper.make_graph(
        nodes, "sobel",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("edges", TensorProto.FLOAT, [1, 1, "h", "w"])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([1], np.int64), "axis")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sobel.onnx"
    onnx.save(model, str(path))
    pre = Preprocess(color="BGR", scale=1 / 255, resize="pad_multiple", multiple=8)
    Manifest(task="edges", arch="sobel3x3", inputs=[TensorSpec("image", [1, 3, "h", "w"], preprocess=pre)],
             outputs=[TensorSpec("edges", [1, 1, "h", "w"], meaning="gradient magnitude")]).save(manifest_path(path))
    return path


def opencv_edges(image_bgr: np.ndarray) -> np.ndarray:
    """The reference: OpenCV grey + Sobel with a zero border, on 0..1 intensities."""
    grey = (image_bgr.astype(np.float32) / 255) @ GREY
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_CONSTANT)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_CONSTANT)
    return np.sqrt(gx * gx + gy * gy)


@dataclass
class EdgeResult:
    edges: np.ndarray
    threshold: float

    def to_record(self) -> dict[str, Any]:
        return {"edge_mean": float(self.edges.mean()), "strong": float((self.edges > self.threshold).mean())}


class EdgeTask(Task):
    name = "edges"

    def __init__(self, model: str | None = None, threshold: float = 0.5, **_: Any) -> None:
        self.session = load(model, device="cpu")
        self.threshold = threshold
        self.metas: dict[int, PrepMeta] = {}
        self.closed = 0
        self.postprocessed: list[int] = []

    def preprocess(self, frame):
        x, self.metas[frame.index] = prepare(frame.image, self.session.inputs[0])
        return {"image": x}

    def infer(self, feeds):
        return self.session.run(feeds)

    def postprocess(self, outputs, frame):
        self.postprocessed.append(frame.index)
        meta = self.metas.pop(frame.index)
        return EdgeResult(restore(outputs["edges"], meta)[0, 0], self.threshold)

    def render(self, result, frame):
        strength = np.clip(result.edges * 255, 0, 255).astype(np.uint8)
        return cv2.addWeighted(frame.image, 0.5, cv2.cvtColor(strength, cv2.COLOR_GRAY2BGR), 0.5, 0)

    def close(self) -> None:
        self.closed += 1


def count_frames(path: Path) -> int:
    """Frames OpenCV can decode from a written video (what a player would show)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n
