"""window_attention: reference, fast path, ONNX Runtime and onnx's ReferenceEvaluator agree."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from edgeglocal.errors import InputError
from edgeglocal.ops import window_attention, window_attention_ref
from edgeglocal.ops._registry import DOMAIN, OPSET_VERSION, PLUGIN_ATTRS, registered_ops

# (batch, h, w, window, shift, heads, head_dim, bias table, global query)
CASES = {
    "swin_shifted": (2, 14, 21, (7, 7), (3, 3), 3, 8, True, False),
    "swin_plain_no_table": (1, 14, 14, (7, 7), (0, 0), 2, 8, False, False),
    "non_square_odd_windows": (2, 12, 18, (4, 6), (2, 3), 2, 4, True, False),
    "shift_one_axis": (1, 9, 15, (3, 5), (0, 2), 4, 4, True, False),
    "single_head": (3, 6, 6, (3, 3), (1, 1), 1, 6, True, False),
    "one_window_shifted": (1, 7, 7, (7, 7), (3, 3), 2, 4, True, False),
    "global_query": (2, 8, 12, (4, 4), (0, 0), 2, 8, True, True),
    "global_query_shifted_no_table": (2, 8, 12, (4, 4), (2, 1), 2, 4, False, True),
}


def make_inputs(case, dtype=torch.float32, seed=0, b=None, h=None, w=None):
    b0, h0, w0, ws, shift, heads, hd, with_table, with_q = case
    b, h, w = b or b0, h or h0, w or w0
    g = torch.Generator().manual_seed(seed)
    c = heads * hd
    qkv = torch.randn(b, h, w, (2 if with_q else 3) * c, generator=g).to(dtype)
    table = torch.randn((2 * ws[0] - 1) * (2 * ws[1] - 1), heads, generator=g).to(dtype) if with_table else None
    q_global = torch.randn(b, ws[0] * ws[1], c, generator=g).to(dtype) if with_q else None
    kwargs = dict(num_heads=heads, window_size=ws, shift=shift, q_global=q_global)
    return qkv, table, kwargs


def node_model(case, elem_type=TensorProto.FLOAT, opset=18) -> onnx.ModelProto:
    """One WindowAttention node with symbolic batch/h/w, its body attached, as the exporter leaves it."""
    _, _, _, ws, shift, heads, hd, _, with_q = case
    c = heads * hd
    node = helper.make_node(
        "WindowAttention", ["qkv", "table", "q_global"], ["out"], domain=DOMAIN,
        num_heads=heads, window_size=list(ws), shift=list(shift), scale=hd**-0.5,
        global_query=int(with_q), **PLUGIN_ATTRS,
    )
    graph = helper.make_graph(
        [node], "wa",
        [helper.make_tensor_value_info("qkv", elem_type, ["b", "h", "w", (2 if with_q else 3) * c]),
         helper.make_tensor_value_info("table", elem_type, [(2 * ws[0] - 1) * (2 * ws[1] - 1), heads]),
         helper.make_tensor_value_info("q_global", elem_type, ["bq", "n", c])],
        [helper.make_tensor_value_info("out", elem_type, None)],
    )
    model = helper.make_model(
        graph, functions=[registered_ops()["WindowAttention"].function(opset)],
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(DOMAIN, OPSET_VERSION)],
    )
    return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def onnx_feeds(qkv, table, kwargs, case):
    """What the translation passes: zeros for a missing table, a (1, 1, c) placeholder for q_global."""
    _, _, _, ws, _, heads, hd, _, _ = case
    dtype = qkv.numpy().dtype
    if table is None:
        table = torch.zeros((2 * ws[0] - 1) * (2 * ws[1] - 1), heads)
    q = kwargs["q_global"] if kwargs["q_global"] is not None else torch.zeros(1, 1, heads * hd)
    return {"qkv": qkv.numpy(), "table": table.numpy().astype(dtype), "q_global": q.numpy().astype(dtype)}


@pytest.mark.parametrize("name", list(CASES))
def test_four_implementations_agree_fp32(name):
    case = CASES[name]
    model = node_model(case)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    evaluator = ReferenceEvaluator(model)
    # the exported-size inputs and a batch/spatial size the graph never saw
    for size in ({}, {"b": 1, "h": case[1] + case[3][0], "w": case[2] + 2 * case[3][1]}):
        qkv, table, kwargs = make_inputs(case, seed=len(size), **size)
        ref = window_attention_ref(qkv, table, **kwargs).numpy()
        fast = window_attention(qkv, table, **kwargs).numpy()
        feeds = onnx_feeds(qkv, table, kwargs, case)
        (on_ort,) = session.run(None, feeds)
        (on_eval,) = evaluator.run(None, feeds)
        assert ref.shape == (qkv.shape[0], qkv.shape[1], qkv.shape[2], case[5] * case[6])
        np.testing.assert_allclose(fast, ref, atol=2e-5, rtol=1e-4)
        np.testing.assert_allclose(on_ort, ref, atol=2e-5, rtol=1e-4)
        np.testing.assert_allclose(on_eval, ref, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["swin_shifted", "global_query_shifted_no_table"])
def test_fp16_inputs_compute_in_fp32(name):
    case = CASES[name]
    qkv, table, kwargs = make_inputs(case, dtype=torch.float16)
    ref32 = window_attention_ref(qkv.float(), None if table is None else table.float(),
                                 **{**kwargs, "q_global": None if kwargs["q_global"] is None
                                    else kwargs["q_global"].float()})
    ref = window_attention_ref(qkv, table, **kwargs)
    fast = window_attention(qkv, table, **kwargs)
    assert ref.dtype == fast.dtype == torch.float16
    model = node_model(case, TensorProto.FLOAT16)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = onnx_feeds(qkv, table, kwargs, case)
    (on_ort,) = session.run(None, feeds)
    (on_eval,) = ReferenceEvaluator(model).run(None, feeds)
    assert on_ort.dtype == on_eval.dtype == np.float16
    # every path rounds only the fp16 output: all within fp16 resolution of the fp32 computation
    for out in (ref.float().numpy(), fast.float().numpy(), on_ort.astype(np.float32), on_eval.astype(np.float32)):
        np.testing.assert_allclose(out, ref32.numpy(), atol=2e-3, rtol=2e-3)


def test_shift_mask_changes_the_result_only_across_region_borders():
    """A shifted window must not mix tokens that were far apart before the roll."""
    case = CASES["swin_shifted"]
    qkv, table, kwargs = make_inputs(case)
    shifted = window_attention_ref(qkv, table, **kwargs)
    unmasked = torch.roll(
        window_attention_ref(torch.roll(qkv, (-3, -3), (1, 2)), table, **{**kwargs, "shift": (0, 0)}),
        (3, 3), (1, 2),
    )
    # rolled windows in rows 0..6, cols 0..13 hold one region each: rows 3..9, cols 3..16 before the roll
    interior = (slice(None), slice(3, 10), slice(3, 17))
    torch.testing.assert_close(shifted[interior], unmasked[interior])
    assert (shifted[:, -3:] - unmasked[:, -3:]).abs().max() > 1e-2


def test_gradients_match_reference():
    case = CASES["non_square_odd_windows"]
    qkv, table, kwargs = make_inputs(case)
    grads = []
    for fn in (window_attention, window_attention_ref):
        x, t = qkv.clone().requires_grad_(), table.clone().requires_grad_()
        (fn(x, t, **kwargs) * torch.linspace(-1, 1, x.shape[-1] // 3)).sum().backward()
        grads.append((x.grad, t.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(grads[0][1], grads[1][1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "change, argument",
    [
        (lambda a: {**a, "qkv": a["qkv"][0]}, "qkv"),
        (lambda a: {**a, "qkv": a["qkv"][:, :13]}, "qkv"),
        (lambda a: {**a, "qkv": a["qkv"][..., :-1]}, "qkv"),
        (lambda a: {**a, "qkv": a["qkv"].long()}, "qkv"),
        (lambda a: {**a, "rel_bias_table": a["rel_bias_table"][:-1]}, "rel_bias_table"),
        (lambda a: {**a, "num_heads": 0}, "num_heads"),
        (lambda a: {**a, "shift": (7, 0)}, "shift"),
        (lambda a: {**a, "window_size": (7, 7, 7)}, "window_size"),
        (lambda a: {**a, "qkv": a["qkv"][..., :45], "q_global": torch.zeros(2, 49, 24)}, "qkv"),
        (lambda a: {**a, "qkv": a["qkv"][..., :48], "q_global": torch.zeros(2, 48, 24)}, "q_global"),
        (lambda a: {**a, "qkv": a["qkv"][..., :48], "q_global": torch.zeros(3, 49, 24)}, "q_global"),
    ],
)
def test_bad_arguments_fail_naming_the_argument(change, argument):
    qkv, table, kwargs = make_inputs(CASES["swin_shifted"])
    args = change({"qkv": qkv, "rel_bias_table": table, **kwargs})
    for fn in (window_attention, window_attention_ref):
        with pytest.raises(InputError, match=f"'{argument}'"):
            fn(**args)


def test_schema_infers_output_shape():
    for name in ("swin_shifted", "global_query"):
        case = CASES[name]
        out = node_model(case).graph.output[0].type.tensor_type
        dims = [d.dim_param or d.dim_value for d in out.shape.dim]
        assert dims == ["b", "h", "w", case[5] * case[6]]
    schema = onnx.defs.get_schema("WindowAttention", OPSET_VERSION, DOMAIN)
    assert {"num_heads", "window_size", "shift", "scale", "global_query", *PLUGIN_ATTRS} <= set(schema.attributes)
