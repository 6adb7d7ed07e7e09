"""Small real ONNX models for the runtime tests, exported from PyTorch or built with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper


def export_conv_net(folder: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """A torch conv -> relu -> 1x1 conv net exported to ONNX; returns (path, w1, b1, w2) for a numpy reference."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 1, bias=False)
    ).eval()
    path = folder / "convnet.onnx"
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, 16, 16),),
        str(path),
        dynamo=False,
        input_names=["image"],
        output_names=["map"],
        dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "map": {0: "batch", 2: "height", 3: "width"}},
    )
    return path, net[0].weight.detach().numpy(), net[0].bias.detach().numpy(), net[2].weight.detach().numpy()


def numpy_conv_net(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """The same net in numpy (3x3 same-padding conv, ReLU, 1x1 conv), independent of ORT and torch."""
    n, _, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    y = np.zeros((n, w1.shape[0], h, w), np.float64)
    for dy in range(3):
        for dx in range(3):
            y += np.einsum("oc,nchw->nohw", w1[:, :, dy, dx], xp[:, :, dy : dy + h, dx : dx + w])
    y = np.maximum(y + b1[None, :, None, None], 0)
    return np.einsum("oc,nchw->nohw", w2[:, :, 0, 0], y)


def save_model(graph: onnx.GraphProto, path: Path, functions=(), domains=()) -> Path:
    opsets = [helper.make_opsetid("", 18)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=opsets, functions=list(functions))
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def unary_graph(domain: str, op_type: str) -> onnx.GraphProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])
    return helper.make_graph([helper.make_node(op_type, ["x"], ["y"], domain=domain)], "g", [x], [y])


def double_function(domain: str, op_type: str) -> onnx.FunctionProto:
    """A model-local function ``y = x + x`` written with standard ops."""
    return helper.make_function(
        domain, op_type, ["x"], ["y"], [helper.make_node("Add", ["x", "x"], ["y"])],
        [helper.make_opsetid("", 18)],
    )
