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

from edgeglocal.ops._registry import DOMAIN, OPSET_VERSION, PLUGIN_ATTRS, custom_translation_table, registered_ops

OPSET = 18


def _attach_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """The export graph pass in miniature: append each used op's body and import the edgeglocal opset."""
    opset = next(o.version for o in model.opset_import if o.domain == "")
    used = {n.op_type for n in model.graph.node if n.domain == DOMAIN}
    model.functions.extend(registered_ops()[op].function(opset) for op in sorted(used))
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, OPSET_VERSION))
    return model


def export_module(module: torch.nn.Module, args: tuple, dynamic_shapes=None) -> onnx.ModelProto:
    """torch.onnx.export(dynamo=True) with edgeglocal's translation table, then attach the bodies."""
    program = torch.onnx.export(
        module.eval(), args, dynamo=True, opset_version=OPSET, dynamic_shapes=dynamic_shapes,
        custom_translation_table=custom_translation_table(), verbose=False,
    )
    return _attach_functions(program.model_proto)


def node_model(op_type: str, inputs: list[str], elem_type: int, **attrs) -> onnx.ModelProto:
    """One edgeglocal node with inputs of unknown shape (every dimension dynamic) and its body."""
    node = helper.make_node(op_type, inputs, ["y"], domain=DOMAIN, **attrs, **PLUGIN_ATTRS)
    graph = helper.make_graph(
        [node], op_type,
        [helper.make_tensor_value_info(name, elem_type, None) for name in inputs],
        [helper.make_tensor_value_info("y", elem_type, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return _attach_functions(model)


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
