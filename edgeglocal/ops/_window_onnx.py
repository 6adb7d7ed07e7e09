"""``edgeglocal::WindowAttention`` as ONNX sees it: schema, standard-ONNX body, export translation.

One op type covers Swin windows, shifted windows and GC ViT's global query. A function body
cannot ask whether an optional input is present, so the node always has three inputs:

- ``qkv`` (b, h, w, 3c), or (b, h, w, 2c) holding k, v when ``global_query=1``;
- ``rel_bias_table`` ((2wh-1)(2ww-1), heads): the translation passes zeros when the model has none;
- ``q_global`` (b or 1, wh*ww, c) when ``global_query=1``, else a (1, 1, c) zeros placeholder that
  nothing reads.

The attribute ``global_query`` picks, through an ``If`` on a constant, where q comes from; another
``If`` on "any shift != 0" skips the roll and the mask for unshifted windows. Everything that depends
on the attributes (relative-position index, region mask) is computed in the body from the attribute
values and the runtime h, w, so one body serves every layer and every input size; ONNX Runtime
folds the index to a constant.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeglocal.ops._onnx_builder import GraphBuilder
from edgeglocal.ops._registry import (
    DOMAIN,
    EDGEGLOCAL_OPSET,
    PLUGIN_ATTRS,
    OnnxOpDef,
    make_schema,
)

OP_TYPE = "WindowAttention"
#: Added between tokens of different regions of a shifted window, as in Swin.
MASK_VALUE = -100.0
INT64_MAX = np.iinfo(np.int64).max
_INPUTS = ("qkv", "rel_bias_table", "q_global")
_ATTRS = {
    "num_heads": onnx.AttributeProto.INT,
    "window_size": onnx.AttributeProto.INTS,
    "shift": onnx.AttributeProto.INTS,
    "scale": onnx.AttributeProto.FLOAT,
    "global_query": onnx.AttributeProto.INT,
}


def _attr(g: GraphBuilder, name: str) -> str:
    """The WindowAttention attribute ``name`` as a tensor."""
    return g.attr(name, _ATTRS[name])


def _roll(g: GraphBuilder, x: str, amounts: list[str], sizes: list[str], sign: int) -> str:
    """Cyclic roll of axes 1 and 2 by ``sign * amount`` (Slice + Concat; amount 0 is a copy)."""
    for axis, amount, size in zip((1, 2), amounts, sizes):
        cut = amount if sign < 0 else g("Sub", size, amount)
        axes = g.const([axis])
        head = g("Slice", x, cut, g.const([INT64_MAX]), axes)
        tail = g("Slice", x, g.const([0]), cut, axes)
        x = g("Concat", head, tail, axis=axis)
    return x


def _roll_branches(x: str, shift: list[str], hw: list[str], sign: int) -> tuple[onnx.GraphProto, onnx.GraphProto]:
    """If-branches: roll ``x`` by ``sign * shift`` / leave it as it is."""
    g = GraphBuilder("roll")
    return g.subgraph("roll", [], [_roll(g, x, shift, hw, sign)]), _identity_graph("no_roll", x)


def _mask_branches(
    bias: str, shift: list[str], hw: list[str], window: list[str], n_win: str, n_tok: str
) -> tuple[onnx.GraphProto, onnx.GraphProto]:
    """If-branches: bias + Swin shift mask (nW, heads, N, N) / bias alone (1, heads, N, N).

    Along each axis of the rolled map, label 0 is the bulk, 1 the last window's part that stayed,
    2 the ``shift`` rows that wrapped around (an unshifted axis is all 0), as in Swin's img_mask.
    """
    g = GraphBuilder("mask")
    labels = []
    for size, win, amount in zip(hw, window, shift):
        pos = g("Range", g.const(0), g("Squeeze", size), g.const(1))
        in_last_window = g("GreaterOrEqual", pos, g("Squeeze", g("Sub", size, win)))
        wrapped = g("GreaterOrEqual", pos, g("Squeeze", g("Sub", size, amount)))
        axis_shifted = g("Greater", g("Squeeze", amount), g.const(0))
        labels.append(g("Add", g("Cast", g("And", in_last_window, axis_shifted), to=TensorProto.INT64),
                        g("Cast", wrapped, to=TensorProto.INT64)))
    region = g("Add", g("Mul", g("Unsqueeze", labels[0], g.const([1])), g.const(3)),
               g("Unsqueeze", labels[1], g.const([0])))  # (h, w)
    grid = g("Concat", g("Div", hw[0], window[0]), window[0], g("Div", hw[1], window[1]), window[1], axis=0)
    region = g("Reshape", g("Transpose", g("Reshape", region, grid), perm=[0, 2, 1, 3]),
               g("Concat", n_win, n_tok, axis=0))  # (nW, N)
    same = g("Equal", g("Unsqueeze", region, g.const([2])), g("Unsqueeze", region, g.const([1])))
    mask = g("Where", same, g.const(0.0, np.float32), g.const(MASK_VALUE, np.float32))
    addend = g("Add", g("Unsqueeze", bias, g.const([0])), g("Unsqueeze", mask, g.const([1])))
    plain = GraphBuilder("no_mask")
    return g.subgraph("mask", [], [addend]), plain.subgraph("no_mask", [], [plain("Unsqueeze", bias, plain.const([0]))])


def _identity_graph(name: str, x: str) -> onnx.GraphProto:
    g = GraphBuilder(name)
    return g.subgraph(name, [], [g("Identity", x)])


def window_attention_function(opset: int) -> onnx.FunctionProto:
    """The standard-ONNX body of ``edgeglocal::WindowAttention`` (default domain version ``opset``)."""
    g = GraphBuilder("wa")
    qkv_in, table_in, q_global_in = _INPUTS
    heads = g("Unsqueeze", _attr(g, "num_heads"), g.const([0]))
    window, shift = _attr(g, "window_size"), _attr(g, "shift")
    wh, ww = g.item(window, 0), g.item(window, 1)
    shifts = [g.item(shift, 0), g.item(shift, 1)]
    global_query = _attr(g, "global_query")
    parts = g("Unsqueeze", g("Sub", g.const(3), global_query), g.const([0]))
    any_shift = g("Greater", g("ReduceMax", g("Abs", shift), keepdims=0), g.const(0))

    x = g("Cast", qkv_in, to=TensorProto.FLOAT)
    shape = g("Shape", x)
    b, h, w, channels = (g.item(shape, i) for i in range(4))
    nh, nw = g("Div", h, wh), g("Div", w, ww)
    n_tok, n_win = g("Mul", wh, ww), g("Mul", nh, nw)
    c = g("Div", channels, parts)
    head_dim = g("Div", c, heads)

    # relative-position bias (heads, N, N): Gather on the table with Swin's index
    tok = g("Range", g.const(0), g("Squeeze", n_tok), g.const(1))
    ww_s = g("Squeeze", ww)
    rows, cols = g("Div", tok, ww_s), g("Mod", tok, ww_s)

    def pairwise(v: str) -> str:
        return g("Sub", g("Unsqueeze", v, g.const([1])), g("Unsqueeze", v, g.const([0])))

    index = g("Add", g("Mul", g("Add", pairwise(rows), g("Sub", wh, g.const([1]))),
                       g("Sub", g("Mul", ww, g.const([2])), g.const([1]))),
              g("Add", pairwise(cols), g("Sub", ww, g.const([1]))))
    table = g("Cast", table_in, to=TensorProto.FLOAT)
    bias = g("Transpose", g("Gather", table, index, axis=0), perm=[2, 0, 1])

    # roll, partition: (b, nh, wh, nw, ww, parts, heads, hd) -> (parts, b, nW, heads, N, hd)
    roll_in = _roll_branches(x, shifts, [h, w], -1)
    x = g("If", any_shift, then_branch=roll_in[0], else_branch=roll_in[1])
    x = g("Reshape", x, g("Concat", b, nh, wh, nw, ww, parts, heads, head_dim, axis=0))
    x = g("Transpose", x, perm=[5, 0, 1, 3, 6, 2, 4, 7])
    x = g("Reshape", x, g("Concat", parts, b, n_win, heads, n_tok, head_dim, axis=0))
    parts_s = g("Squeeze", parts)
    k = g("Gather", x, g("Sub", parts_s, g.const(2)), axis=0)
    v = g("Gather", x, g("Sub", parts_s, g.const(1)), axis=0)

    gq = GraphBuilder("gq")
    q_global = gq("Cast", q_global_in, to=TensorProto.FLOAT)
    q_global = gq("Reshape", q_global, gq("Concat", gq.const([0, 0]), heads, gq.const([-1]), axis=0))
    q_global = gq("Unsqueeze", gq("Transpose", q_global, perm=[0, 2, 1, 3]), gq.const([1]))
    lq = GraphBuilder("lq")
    q_local = lq("Gather", x, lq.const(0), axis=0)
    q = g("If", g("Cast", global_query, to=TensorProto.BOOL),
          then_branch=gq.subgraph("global_q", [], [q_global]), else_branch=lq.subgraph("local_q", [], [q_local]))

    scores = g("MatMul", g("Mul", q, _attr(g, "scale")), g("Transpose", k, perm=[0, 1, 2, 4, 3]))
    mask = _mask_branches(bias, shifts, [h, w], [wh, ww], n_win, n_tok)
    addend = g("If", any_shift, then_branch=mask[0], else_branch=mask[1])
    attn = g("Softmax", g("Add", scores, addend), axis=-1)
    y = g("MatMul", attn, v)  # (b, nW, heads, N, hd)

    # un-partition, roll back
    y = g("Reshape", y, g("Concat", b, nh, nw, heads, wh, ww, head_dim, axis=0))
    y = g("Transpose", y, perm=[0, 1, 4, 2, 5, 3, 6])
    y = g("Reshape", y, g("Concat", b, h, w, c, axis=0))
    roll_out = _roll_branches(y, shifts, [h, w], +1)
    y = g("If", any_shift, then_branch=roll_out[0], else_branch=roll_out[1])
    g.nodes.append(helper.make_node("CastLike", [y, qkv_in], ["out"]))
    return helper.make_function(
        DOMAIN, OP_TYPE, list(_INPUTS), ["out"], g.nodes,
        opset_imports=[helper.make_opsetid("", opset)],
        attributes=list(_ATTRS) + list(PLUGIN_ATTRS),
    )


def _infer(ctx) -> None:
    """Output (b, h, w, c) with c = qkv channels / (3 - global_query), element type of qkv."""
    in_type = ctx.get_input_type(0)
    if in_type is None or not in_type.tensor_type.HasField("elem_type"):
        return
    global_query = ctx.get_attribute("global_query")
    parts = 3 - (global_query.i if global_query is not None else 0)
    out = onnx.TypeProto()
    out.tensor_type.elem_type = in_type.tensor_type.elem_type
    if in_type.tensor_type.HasField("shape"):
        dims = list(in_type.tensor_type.shape.dim)
        if len(dims) != 4:
            raise onnx.shape_inference.InferenceError(
                f"{OP_TYPE}: input 'qkv' must have rank 4 (b, h, w, channels), got rank {len(dims)}."
            )
        for i, dim in enumerate(dims):
            new = out.tensor_type.shape.dim.add()
            if i == 3 and dim.HasField("dim_value"):
                new.dim_value = dim.dim_value // parts
            elif i < 3:
                new.CopyFrom(dim)
    ctx.set_output_type(0, out)


SCHEMA = make_schema(
    OP_TYPE,
    "Multi-head attention inside (shifted) windows of a channels-last map, with a relative-position "
    "bias table and an optional GC ViT global query; see edgeglocal.ops.window_attention.",
    inputs=[(name, "T", False) for name in _INPUTS],
    outputs=[("out", "T")],
    attributes=[("num_heads", 1), ("window_size", [7, 7]), ("shift", [0, 0]), ("scale", 1.0),
                ("global_query", 0)],
    infer=_infer,
)


def translate(qkv, rel_bias_table, q_global, num_heads, window_size, shift, scale):
    """torch.onnx (dynamo) translation of ``torch.ops.edgeglocal.window_attention``."""
    from onnxscript import opset18 as op

    global_query = int(q_global is not None)
    channels = qkv.shape[-1]
    if not isinstance(channels, int):
        raise ValueError("WindowAttention needs a static channel count (the last axis of qkv).")
    c = channels // (3 - global_query)
    wh, ww = window_size
    if rel_bias_table is None:
        zeros = np.zeros(((2 * wh - 1) * (2 * ww - 1), num_heads), np.float32)
        rel_bias_table = op.CastLike(op.Constant(value=numpy_helper.from_array(zeros)), qkv)
    if q_global is None:
        placeholder = np.zeros((1, 1, c), np.float32)
        q_global = op.CastLike(op.Constant(value=numpy_helper.from_array(placeholder)), qkv)
    return EDGEGLOCAL_OPSET.WindowAttention(
        qkv, rel_bias_table, q_global,
        num_heads=num_heads, window_size=list(window_size), shift=list(shift), scale=float(scale),
        global_query=global_query, **PLUGIN_ATTRS,
    )


def make_op_def(torch_op) -> OnnxOpDef:
    return OnnxOpDef(OP_TYPE, SCHEMA, window_attention_function, torch_op, translate)
