"""Helpers for the TensorRT tests: a small real ONNX bundle and availability marks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeglocal.bundle import Manifest, Preprocess, TensorSpec

TRT_INSTALLED = importlib.util.find_spec("tensorrt") is not None
requires_no_trt = pytest.mark.skipif(TRT_INSTALLED, reason="TensorRT is installed; this checks the message without it")
requires_trt = pytest.mark.skipif(not TRT_INSTALLED, reason="TensorRT is not installed")


def write_bundle(folder: Path, *, qdq: bool = False, size: list[int] | None = (64, 96)) -> Path:
    """A (batch, 3, height, width) -> same-shape bundle: Conv 3->3 + Relu, optionally behind Q/DQ."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    weight = numpy_helper.from_array(np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1) * 0.5, "w")
    nodes, src = [], "input"
    inits = [weight]
    if qdq:
        inits += [numpy_helper.from_array(np.float32(0.02), "s"), numpy_helper.from_array(np.int8(0), "z")]
        nodes += [helper.make_node("QuantizeLinear", ["input", "s", "z"], ["q"]),
                  helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"])]
        src = "dq"
    nodes += [helper.make_node("Conv", [src, "w"], ["c"]), helper.make_node("Relu", ["c"], ["output"])]
    graph = helper.make_graph(nodes, "tiny", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model, full_check=True)
    path = folder / ("tiny_int8.onnx" if qdq else "tiny.onnx")
    onnx.save(model, path)
    pre = Preprocess(size=list(size) if size else None)
    Manifest(
        task="dehaze",
        arch="tiny",
        inputs=[TensorSpec("input", ["batch", 3, "height", "width"], layout="NCHW", preprocess=pre)],
        outputs=[TensorSpec("output", ["batch", 3, "height", "width"])],
        precision={"mode": "int8" if qdq else "fp32"},
    ).save(path.with_suffix(".json"))
    return path
