"""Standard-ONNX function bodies of ``SelectiveScan`` and ``SelectiveScan2D`` (what ONNX Runtime CPU runs).

The body mirrors the eager fast path: a ``Loop`` over chunks of ``CHUNK`` steps; per chunk, the
decay ``exp(delta * A)`` (every exponent <= 0 for a decaying ``A``) and the input term
``delta * B * u`` for all its steps at once, in a time-major layout; a ``Scan`` whose body is two
nodes (``h = dA_t * h + dBu_t``) runs the recurrence; one batched ``MatMul`` contracts the states
with ``C``. Measured on ONNX Runtime CPU at (b=1, d=192, n=16, l=3136) this is 6-15x faster than
chunked log-depth doubling scans and 1.5x faster than doing all per-step work inside one ``Scan``
body; chunking (vs materialising all l steps) cut the peak memory from 217 to 29 MB there, and
from 906 to 157 MB for the 2-D op on a 56x56 map with d=192 (see BENCHMARKS.md, "Ops (CPU)").
Every size is read with ``Shape`` at run time, so batch, length and map size stay dynamic. fp16
inputs are cast to fp32 inside and the output is cast back.

The 2-D body builds VMamba's four cross-scan sequences with Transpose and reversed Slice, runs
one grouped 1-D scan over the 4*d channels and folds the outputs back onto the map.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeglocal.ops._onnx_builder import GraphBuilder
from edgeglocal.ops._registry import DOMAIN, PLUGIN_ATTRS

SCAN_INPUTS = ("u", "delta", "A", "B", "C", "D", "delta_bias")
SCAN_2D_INPUTS = ("x", "delta", "A", "B", "C", "D", "delta_bias")
_INT64_MIN = np.iinfo(np.int64).min


def _reverse_last(g: GraphBuilder, x: str) -> str:
    return g("Slice", x, g.const([-1]), g.const([_INT64_MIN]), g.const([-1]), g.const([-1]))


def _recurrence_body() -> onnx.GraphProto:
    """Scan body: (h, dA_t, dBu_t) -> (h', h') with h' = dA_t * h + dBu_t; all (b, g, d/g, n)."""
    g = GraphBuilder("step")
    g.nodes.append(helper.make_node("Add", [g("Mul", "dA_t", "h"), "dBu_t"], ["h_out"]))
    g.nodes.append(helper.make_node("Identity", ["h_out"], ["h_seq"]))  # one name cannot be two outputs
    return g.subgraph("selective_scan_step", ["h", "dA_t", "dBu_t"], ["h_out", "h_seq"], rank=4)


def _softplus(g: GraphBuilder, x: str) -> str:
    """relu(x) + log(1 + exp(-|x|)): exact softplus that never exponentiates a positive number."""
    one = g.const(1.0, np.float32)
    return g("Add", g("Relu", x), g("Log", g("Add", one, g("Exp", g("Neg", g("Abs", x))))))


def _effective_delta(g: GraphBuilder, delta: str, delta_bias: str) -> str:
    """delta' (b, d, l) = softplus(delta + bias) if the delta_softplus attribute is set, else delta + bias."""
    pre = g("Add", delta, g("Unsqueeze", delta_bias, g.const([1])))
    return g("Where", g.flag("delta_softplus"), _softplus(g, pre), pre)


#: Steps per Loop iteration: bounds the intermediates to (chunk, b, d, n) instead of (l, b, d, n).
#: 64 measured fastest of 32..256 at (d=192, n=16) and (4*192, 16) and keeps them cache-sized.
CHUNK = 64


def _chunk_body(dt_c: str, dtu_c: str, A_g: str, B_c: str, C_c: str) -> onnx.GraphProto:
    """Loop body: (i, cond, h) -> (cond, h after chunk i, y of chunk i).

    Per chunk: the decay and input terms of all its steps at once, the two-node ``Scan`` over the
    steps, one batched ``MatMul`` with C. The chunked time-major tensors come from the outer scope.
    """
    g = GraphBuilder("chunk")
    pick = lambda t: g("Gather", t, "chunk_i", axis=0)  # noqa: E731
    dA = g("Exp", g("Mul", pick(dt_c), A_g))
    dBu = g("Mul", pick(dtu_c), pick(B_c))
    h_end, states = g("Scan", "chunk_h", dA, dBu, n_out=2, body=_recurrence_body(), num_scan_inputs=2)
    g.nodes += [
        helper.make_node("Identity", ["chunk_cond"], ["chunk_cond_out"]),
        helper.make_node("Identity", [h_end], ["chunk_h_out"]),
        helper.make_node("MatMul", [states, pick(C_c)], ["chunk_y"]),  # (T, b, g, d/g, 1)
    ]
    info = helper.make_tensor_value_info
    return helper.make_graph(
        g.nodes, "selective_scan_chunk",
        [info("chunk_i", TensorProto.INT64, []), info("chunk_cond", TensorProto.BOOL, []),
         info("chunk_h", TensorProto.FLOAT, [None] * 4)],
        [info("chunk_cond_out", TensorProto.BOOL, []), info("chunk_h_out", TensorProto.FLOAT, [None] * 4),
         info("chunk_y", TensorProto.FLOAT, [None] * 5)],
    )


def _grouped_scan(g: GraphBuilder, u: str, dt: str, A: str, B: str, C: str, D: str) -> str:
    """y (b, d, l) float of the scan with delta' already applied; B, C are grouped (b, g, n, l).

    The steps are padded to whole chunks with delta' = 0 (decay 1, input 0: the state passes
    through unchanged) and the padded outputs are cut off.
    """
    b, d, l = g.dim(u, 0), g.dim(u, 1), g.dim(u, 2)
    groups, n = g.dim(B, 1), g.dim(A, 1)
    chunk = g.const([CHUNK])
    chunks = g("Div", g("Add", l, g.const([CHUNK - 1])), chunk)
    pad = g("Sub", g("Mul", chunks, chunk), l)

    def chunked(t: str, perm: list[int], unit_axis: int) -> str:
        """(b, ..., l) -> time-major (chunks, T, b, g, rest) with a unit axis inserted at ``unit_axis``."""
        t = g("Transpose", t, perm=perm)
        t = g("Pad", t, g.shape(*[0] * len(perm), pad, *[0] * (len(perm) - 1)))  # zeros after the last step
        return g("Unsqueeze", g("Reshape", t, g.shape(chunks, chunk, b, groups, -1)), g.const([unit_axis]))

    body = _chunk_body(
        chunked(dt, [2, 0, 1], 5),  # (chunks, T, b, g, d/g, 1)
        chunked(g("Mul", dt, u), [2, 0, 1], 5),
        g("Reshape", A, g.shape(groups, -1, n)),  # (g, d/g, n)
        chunked(B, [3, 0, 1, 2], 4),  # (chunks, T, b, g, 1, n)
        chunked(C, [3, 0, 1, 2], 5),  # (chunks, T, b, g, n, 1)
    )
    state = g.shape(b, groups, g("Div", d, groups), n)
    h0 = g("ConstantOfShape", state, value=numpy_helper.from_array(np.zeros(1, np.float32)))
    run = g.const(True, np.bool_)  # an explicit condition: onnx's ReferenceEvaluator runs no step without one
    _, y = g("Loop", g("Squeeze", chunks, g.const([0])), run, h0, n_out=2, body=body)
    # y stacks the chunks' (T, b, g, d/g, 1) outputs; as steps: (chunks * T, b, d), cut to (l, b, d)
    y = g("Slice", g("Reshape", y, g.shape(-1, b, d)), g.const([0]), l, g.const([0]))
    return g("Add", g("Transpose", y, perm=[1, 2, 0]), g("Mul", g("Unsqueeze", D, g.const([1])), u))


def _as_float(g: GraphBuilder, names: tuple[str, ...]) -> list[str]:
    return [g("Cast", name, to=TensorProto.FLOAT) for name in names]


def _function(
    op_type: str, inputs: tuple[str, ...], attributes: list[str], g: GraphBuilder, y: str, like: str, opset: int
) -> onnx.FunctionProto:
    """Close ``g`` into the FunctionProto of ``op_type``, casting ``y`` back to the type of input ``like``."""
    g.nodes.append(helper.make_node("CastLike", [y, like], ["y"]))
    return helper.make_function(
        DOMAIN, op_type, list(inputs), ["y"], g.nodes,
        opset_imports=[helper.make_opsetid("", opset)],
        attributes=attributes + list(PLUGIN_ATTRS),
    )


def selective_scan_function(opset: int) -> onnx.FunctionProto:
    """Body of ``edgeglocal::SelectiveScan(u, delta, A, B, C, D, delta_bias) -> y``."""
    g = GraphBuilder("ss")
    u, delta, A, B, C, D, bias = _as_float(g, SCAN_INPUTS)
    y = _grouped_scan(g, u, _effective_delta(g, delta, bias), A, B, C, D)
    return _function("SelectiveScan", SCAN_INPUTS, ["delta_softplus"], g, y, "u", opset)


def _scan_order(g: GraphBuilder, t: str, hw: tuple[str, str], reverse: bool, transpose: bool) -> str:
    """Re-order the last (raster) axis of ``t`` (..., c, h*w) into one cross-scan direction.

    Used both ways: a column-major sequence read back with ``hw`` swapped is a row-major map.
    """
    if transpose:
        lead = g("Shape", t, end=-1)
        grid = g("Reshape", t, g.shape(lead, *hw))
        t = g("Reshape", g("Transpose", grid, perm=[0, 1, 2, 4, 3]), g.shape(lead, -1))
    return _reverse_last(g, t) if reverse else t


_DIRECTIONS = ((False, False), (True, False), (False, True), (True, True))  # (transpose, reverse) of k=0..3


def _cross_scan(g: GraphBuilder, t: str, h: str, w: str) -> str:
    """(b, 4, c, h*w) raster -> (b, 4, c, h*w) with slice k in direction k's visiting order."""
    parts = g("Split", t, axis=1, num_outputs=4, n_out=4)
    return g("Concat", *[_scan_order(g, p, (h, w), rev, tr) for p, (tr, rev) in zip(parts, _DIRECTIONS)], axis=1)


def _cross_merge(g: GraphBuilder, y: str, h: str, w: str) -> str:
    """(b, 4, d, h*w) in visiting orders -> sum over directions, back in raster order (b, d, h*w)."""
    parts = g("Split", y, axis=1, num_outputs=4, n_out=4)
    # Undo the reversal first, then a column-major sequence is a (w, h) grid to transpose back.
    raster = [_scan_order(g, _reverse_last(g, p) if rev else p, (w, h), False, tr) for p, (tr, rev) in zip(parts, _DIRECTIONS)]
    return g("Sum", *raster)


def selective_scan_2d_function(opset: int) -> onnx.FunctionProto:
    """Body of ``edgeglocal::SelectiveScan2D(x, delta, A, B, C, D, delta_bias) -> y``."""
    g = GraphBuilder("ss2d")
    x, delta, A, B, C, D, bias = _as_float(g, SCAN_2D_INPUTS)
    b, d, h, w = (g.dim(x, i) for i in range(4))
    raster = g("Reshape", x, g.shape(b, 1, d, -1))
    u = _cross_scan(g, g("Concat", raster, raster, raster, raster, axis=1), h, w)  # (b, 4, d, l)

    follow = GraphBuilder("follow")  # params_follow_scan=1: delta, B, C are re-ordered like x
    follow_outs = [_cross_scan(follow, t, h, w) for t in (delta, B, C)]
    keep = GraphBuilder("raster")  # params_follow_scan=0 (VCMamba): delta, B, C stay in raster order
    keep_outs = [keep("Identity", t) for t in (delta, B, C)]
    delta, B, C = g(
        "If", g.flag("params_follow_scan"), n_out=3,
        then_branch=follow.subgraph("params_follow_scan", [], follow_outs),
        else_branch=keep.subgraph("params_in_raster_order", [], keep_outs),
    )
    channels = g.shape(b, -1, g("Shape", u, start=-1))  # (b, 4*d, l)
    u_flat = g("Reshape", u, channels)
    dt = _effective_delta(g, g("Reshape", delta, channels), bias)
    y = _grouped_scan(g, u_flat, dt, A, B, C, D)
    y = _cross_merge(g, g("Reshape", y, g.shape(b, 4, d, -1)), h, w)
    y = g("Reshape", y, g.shape(b, d, h, w))
    return _function("SelectiveScan2D", SCAN_2D_INPUTS, ["delta_softplus", "params_follow_scan"], g, y, "x", opset)


def node_inputs(first, *others):
    """For translations: the node's inputs, absent D / delta_bias (None) as zeros, all of ``first``'s type.

    The schema has one type T: a half model that keeps ``A = -exp(A_log.float())`` in fp32 would
    otherwise give a node with mixed fp16/fp32 inputs.
    """
    from onnxscript import opset18 as op

    A = others[1]
    values = [first]
    for value in others:
        if value is None:  # D or delta_bias: zeros of shape (rows of A,)
            value = op.ConstantOfShape(op.Shape(A, start=0, end=1))
        values.append(value if getattr(value, "dtype", None) == first.dtype else op.CastLike(value, first))
    return values


def infer_like_first_input(op_type: str, name: str, dims: str) -> Callable[[Any], None]:
    """Shape inference for the scans: the output has the type and shape of input 0, of rank len(dims)."""

    def infer(ctx: Any) -> None:
        in_type = ctx.get_input_type(0)
        if in_type is None or not in_type.tensor_type.HasField("elem_type"):
            return
        rank = len(in_type.tensor_type.shape.dim)
        if in_type.tensor_type.HasField("shape") and rank != len(dims.split(",")):
            raise onnx.shape_inference.InferenceError(
                f"{op_type}: input '{name}' must have rank {len(dims.split(','))} ({dims}), got rank {rank}."
            )
        out = onnx.TypeProto()
        out.CopyFrom(in_type)
        ctx.set_output_type(0, out)

    return infer

