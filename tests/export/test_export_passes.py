"""The graph pass attaches bodies and plugin attributes wherever edgeglocal nodes sit."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from edgeglocal.errors import ExportError
from edgeglocal.export.passes import attach_edgeglocal_functions
from edgeglocal.ops import window_attention_ref
from edgeglocal.ops._registry import DOMAIN, PLUGIN_ATTRS


def _wa_node(name: str, src: str, out: str, shift: int) -> onnx.NodeProto:
    # as a third-party producer might write it: no plugin attributes
    return helper.make_node("WindowAttention", [src, "table", "q_global"], [out], name=name, domain=DOMAIN,
                            num_heads=2, window_size=[4, 4], shift=[shift, shift], scale=0.25, global_query=0)


def _branch(name: str, shift: int) -> onnx.GraphProto:
    return helper.make_graph([_wa_node(f"wa_{name}", "qkv", f"out_{name}", shift)], name, [],
                             [helper.make_tensor_value_info(f"out_{name}", TensorProto.FLOAT, ["b", "h", "w", 16])])


def nested_model() -> onnx.ModelProto:
    """WindowAttention inside both branches of an If, and no edgeglocal opset import."""
    cond = helper.make_node("If", ["flag"], ["out"], then_branch=_branch("shifted", 2), else_branch=_branch("plain", 0))
    graph = helper.make_graph(
        [cond], "nested",
        [helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
         helper.make_tensor_value_info("qkv", TensorProto.FLOAT, ["b", "h", "w", 48]),
         helper.make_tensor_value_info("table", TensorProto.FLOAT, [49, 2]),
         helper.make_tensor_value_info("q_global", TensorProto.FLOAT, [1, 1, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", "h", "w", 16])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_nested_nodes_get_one_body_plugin_attributes_and_opset():
    model = nested_model()
    assert attach_edgeglocal_functions(model) == ["WindowAttention"]
    assert attach_edgeglocal_functions(model) == ["WindowAttention"]  # idempotent
    assert [(f.domain, f.name) for f in model.functions] == [(DOMAIN, "WindowAttention")]
    assert sum(o.domain == DOMAIN for o in model.opset_import) == 1
    for branch in model.graph.node[0].attribute:
        (node,) = branch.g.node
        attrs = {a.name: a.s.decode() for a in node.attribute if a.name in PLUGIN_ATTRS}
        assert attrs == PLUGIN_ATTRS
    onnx.checker.check_model(model, full_check=True)

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    qkv, table = torch.randn(2, 8, 12, 48), torch.randn(49, 2)
    for flag, shift in ((True, 2), (False, 0)):
        (got,) = session.run(None, {"flag": np.array(flag), "qkv": qkv.numpy(), "table": table.numpy(),
                                    "q_global": np.zeros((1, 1, 16), np.float32)})
        expected = window_attention_ref(qkv, table, num_heads=2, window_size=4, shift=shift, scale=0.25)
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-5, rtol=1e-4)


def test_unknown_edgeglocal_op_is_rejected_by_name():
    model = nested_model()
    model.graph.node.append(helper.make_node("FlashScan", ["out"], ["y"], name="mystery", domain=DOMAIN))
    expected = r"edgeglocal op 'FlashScan' \(node 'mystery'\).*known ops: .*WindowAttention"
    with pytest.raises(ExportError, match=expected):
        attach_edgeglocal_functions(model)


def test_graph_without_edgeglocal_ops_is_left_alone():
    model = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])]),
        opset_imports=[helper.make_opsetid("", 18)])
    before = model.SerializeToString()
    assert attach_edgeglocal_functions(model) == []
    assert model.SerializeToString() == before
