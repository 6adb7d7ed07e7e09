"""Helpers for the op tests: export a module through the real exporter, or build a one-node model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper
from onnx.reference import ReferenceEvaluator

from edgeglocal.export.passes import attach_edgeglocal_functions
from edgeglocal.ops._registry import DOMAIN, PLUGIN_ATTRS, custom_translation_table

OPSET = 18


def export_module(module: torch.nn.Module, args: tuple, dynamic_shapes=None) -> onnx.ModelProto:
    """In memory, with any dynamic dims (``to_onnx`` names only batch/H/W): dynamo export with the
    translation table, then the exporter's own graph pass."""
    program = torch.onnx.export(
        module.eval(), args, dynamo=True, opset_version=OPSET, dynamic_shapes=dynamic_shapes,
        custom_translation_table=custom_translation_table(), verbose=False,
    )
    model = program.model_proto
    attach_edgeglocal_functions(model)
    return model


def node_model(op_type: str, inputs: list[str], elem_type: int, **attrs) -> onnx.ModelProto:
    """One edgeglocal node with inputs of unknown shape (every dimension dynamic) and its body."""
    node = helper.make_node(op_type, inputs, ["y"], domain=DOMAIN, **attrs, **PLUGIN_ATTRS)
    graph = helper.make_graph(
        [node], op_type,
        [helper.make_tensor_value_info(name, elem_type, None) for name in inputs],
        [helper.make_tensor_value_info("y", elem_type, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    attach_edgeglocal_functions(model)
    return model


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def run_reference_evaluator(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return ReferenceEvaluator(model).run(None, feeds)[0]


@pytest.fixture(scope="session")
def onnx_kit() -> SimpleNamespace:
    """The helpers above for test modules (a conftest is not importable by name)."""
    return SimpleNamespace(
        export=export_module, node_model=node_model, ort=run_ort, reference_evaluator=run_reference_evaluator
    )
