"""Detectors: YOLO v5/v8 heads and detect bundles through ONNX Runtime, box mapping through the letterbox."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeglocal.bundle import Manifest, Preprocess, TensorSpec
from edgeglocal.errors import InputError
from edgeglocal.tasks.detectors import Detections, OnnxDetector, decode_yolo, load_detector, nms


def constant_head_onnx(path: Path, outputs: dict[str, np.ndarray], size: int = 64) -> Path:
    """A real ONNX graph: image (1, 3, size, size) -> fixed predictions (+ 0 * mean(image))."""
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"])]
    inits = [numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    graph_outputs = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_const"))
        nodes.append(helper.make_node("Add", [f"{name}_const", "z"], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes, "head", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        graph_outputs, inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


# frame 128 (h) x 256 (w) letterboxed into 64 x 64: scale 0.25, 16 px grey bands top and bottom
FRAME = np.full((128, 256, 3), 90, np.uint8)


def frame_box(cx, cy, w, h):
    """Where a box given in 64x64 input pixels lands in FRAME (hand-derived: undo pad, then scale)."""
    return [(cx - w / 2) / 0.25, (cy - h / 2 - 16) / 0.25, (cx + w / 2) / 0.25, (cy + h / 2 - 16) / 0.25]


def v8_predictions() -> np.ndarray:
    pred = np.zeros((8, 4 + 3), np.float32)  # anchors x (cx, cy, w, h, p0, p1, p2)
    pred[:, :4] = [32, 32, 4, 4]
    pred[0] = [32, 32, 16, 8, 0.0, 0.9, 0.0]  # person-like class 1
    pred[1] = [33, 32, 16, 8, 0.0, 0.8, 0.0]  # duplicate of 0: NMS removes it
    pred[2] = [10, 40, 8, 8, 0.0, 0.0, 0.7]  # class 2
    return pred


def test_yolov8_head_boxes_map_back_to_frame(tmp_path):
    path = constant_head_onnx(tmp_path / "v8.onnx", {"output0": v8_predictions().T[None]})
    det = OnnxDetector(path, conf=0.25)
    out = det(FRAME)
    assert len(out) == 2
    np.testing.assert_allclose(out.boxes[0], frame_box(32, 32, 16, 8), atol=1e-4)
    np.testing.assert_allclose(out.boxes[1], frame_box(10, 40, 8, 8), atol=1e-4)
    np.testing.assert_allclose(out.scores, [0.9, 0.7], atol=1e-6)
    assert out.classes.tolist() == [1, 2]
    only_people = OnnxDetector(path, conf=0.25, classes=[1])(FRAME)
    assert only_people.classes.tolist() == [1]


def test_yolov5_head_multiplies_objectness(tmp_path):
    v8 = v8_predictions()
    obj = np.array([0.5, 0.5, 1.0, 0, 0, 0, 0, 0], np.float32)[:, None]
    v5 = np.c_[v8[:, :4], obj, v8[:, 4:]]  # (8, 5 + 3)
    out = OnnxDetector(constant_head_onnx(tmp_path / "v5.onnx", {"output0": v5[None]}), conf=0.25)(FRAME)
    np.testing.assert_allclose(out.scores, [0.7, 0.45], atol=1e-6)  # 1.0 * 0.7 and 0.5 * 0.9
    assert out.classes.tolist() == [2, 1]


def test_detect_bundle_uses_its_manifest(tmp_path):
    boxes = np.array([[8, 24, 24, 40], [40, 20, 56, 44]], np.float32)  # x1 y1 x2 y2 in input pixels
    path = constant_head_onnx(
        tmp_path / "det.onnx",
        {"boxes": boxes, "scores": np.array([0.95, 0.3]), "classes": np.array([0, 0])},
    )
    Manifest(
        task="detect", arch="test-head",
        inputs=[TensorSpec("images", [1, 3, 64, 64], preprocess=Preprocess(resize="letterbox", size=[64, 64]))],
        outputs=[TensorSpec("boxes", ["n", 4]), TensorSpec("scores", ["n"]), TensorSpec("classes", ["n"])],
    ).save(path.with_suffix(".json"))
    out = load_detector(path, conf=0.2)(FRAME)
    assert len(out) == 2
    np.testing.assert_allclose(out.boxes[0], frame_box(16, 32, 16, 16), atol=1e-4)
    np.testing.assert_allclose(out.scores, [0.95, 0.3], atol=1e-6)


def test_onnx_with_unknown_outputs_is_rejected(tmp_path):
    path = constant_head_onnx(tmp_path / "cls.onnx", {"logits": np.zeros((1, 10))})
    with pytest.raises(InputError, match="YOLO"):
        OnnxDetector(path)
    with pytest.raises(InputError, match="YOLO"):
        decode_yolo(np.zeros((1, 3, 3)))


def test_wrong_task_bundle_is_rejected(tmp_path):
    path = constant_head_onnx(tmp_path / "dehaze.onnx", {"out": np.zeros((1, 3, 64, 64))})
    Manifest(task="dehaze", arch="x", inputs=[TensorSpec("images", [1, 3, 64, 64])],
             outputs=[TensorSpec("out", [1, 3, 64, 64])]).save(path.with_suffix(".json"))
    with pytest.raises(InputError, match="detector"):
        OnnxDetector(path)


def test_nms_is_class_aware():
    det = Detections(
        np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10]], np.float32),
        np.array([0.6, 0.9, 0.8], np.float32),
        np.array([0, 0, 1]),
    )
    kept = nms(det, iou=0.5)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.8])
    assert kept.classes.tolist() == [0, 1]
