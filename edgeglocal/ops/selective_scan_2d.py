"""VMamba's 2-D selective scan (SS2D core): four cross-scan directions fused into one op.

Direction k visits the raster positions of an (h, w) map in order p_k(t): k=0 row-major, k=1
column-major, k=2 and k=3 the same reversed (VMamba's CrossScan). Each direction runs a selective
scan over its own d channels of the (4*d)-channel parameters; outputs are written back to p_k(t)
and summed (CrossMerge). With ``params_follow_scan=False`` (VCMamba) delta, B and C are read at
raster index t instead of p_k(t). One op instead of scan + 4 gathers keeps the exported graph
one node, which a TensorRT plugin then implements by index arithmetic.
"""

from __future__ import annotations

from typing import Optional

import torch

from edgeglocal.ops._registry import EDGEGLOCAL_OPSET, PLUGIN_ATTRS, OnnxOpDef, make_schema, register_op
from edgeglocal.ops._scan_core import compute_dtype, effective_delta, recompute_backward, scan_fast, scan_reference
from edgeglocal.ops._scan_onnx import SCAN_2D_INPUTS, infer_like_first_input, node_inputs, selective_scan_2d_function
from edgeglocal.ops._validate import check_same_device, check_tensor

__all__ = ["selective_scan_2d", "selective_scan_2d_ref", "scan_positions"]

OP = "selective_scan_2d"
K = 4


def _check(x, delta, A, B, C, D, delta_bias) -> None:
    dims = check_tensor("x", x, ("b", "d", "h", "w"), op=OP)
    dims["l"] = dims["h"] * dims["w"]
    dims["K*d"] = K * dims["d"]
    check_tensor("delta", delta, ("b", K, "d", "l"), dims=dims, op=OP)
    check_tensor("A", A, ("K*d", "n"), dims=dims, op=OP)
    check_tensor("B", B, ("b", K, "n", "l"), dims=dims, op=OP)
    check_tensor("C", C, ("b", K, "n", "l"), dims=dims, op=OP)
    for name, t in (("D", D), ("delta_bias", delta_bias)):
        if t is not None:
            check_tensor(name, t, ("K*d",), dims=dims, op=OP)
    check_same_device(OP, x=x, delta=delta, A=A, B=B, C=C, D=D, delta_bias=delta_bias)


def selective_scan_2d(
    x: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = True,
    params_follow_scan: bool = True,
) -> torch.Tensor:
    """y (b, d, h, w): the sum over the four cross-scan directions of a selective scan.

    x: (b, d, h, w); delta: (b, 4, d, h*w); A: (4*d, n); B, C: (b, 4, n, h*w); D, delta_bias: (4*d,).
    delta/B/C are given in raster order. fp16/bf16 compute in fp32; the output has x's dtype.
    """
    _check(x, delta, A, B, C, D, delta_bias)
    return torch.ops.edgeglocal.selective_scan_2d(
        x, delta, A, B, C, D, delta_bias, bool(delta_softplus), bool(params_follow_scan)
    )


def scan_positions(h: int, w: int, k: int, device: torch.device | None = None) -> torch.Tensor:
    """p_k(t) for t = 0..h*w-1: the raster index direction ``k`` visits at step t."""
    t = torch.arange(h * w, device=device)
    if k >= 2:
        t = h * w - 1 - t
    return t if k % 2 == 0 else (t % h) * w + t // h


def selective_scan_2d_ref(
    x: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = True,
    params_follow_scan: bool = True,
) -> torch.Tensor:
    """Reference: walk each direction's positions one step at a time and accumulate into the map."""
    _check(x, delta, A, B, C, D, delta_bias)
    cd = compute_dtype(x.dtype)
    b, d, h, w = x.shape
    xs = x.to(cd).reshape(b, d, h * w)
    bias = None if delta_bias is None else delta_bias.reshape(K, d)
    y = xs.new_zeros(b, d, h * w)
    for k in range(K):
        dt = effective_delta(delta[:, k], None if bias is None else bias[k], delta_softplus, cd)
        A_k, B_k, C_k = A.to(cd)[k * d : (k + 1) * d], B.to(cd)[:, k], C.to(cd)[:, k]
        D_k = None if D is None else D.to(cd)[k * d : (k + 1) * d]
        state = xs.new_zeros(b, d, A.shape[1])
        for t, pos in enumerate(scan_positions(h, w, k).tolist()):
            i = pos if params_follow_scan else t  # where delta, B, C are read
            step = dt[:, :, i, None]
            state = torch.exp(step * A_k) * state + step * B_k[:, None, :, i] * xs[:, :, pos, None]
            y[:, :, pos] += (state * C_k[:, None, :, i]).sum(-1)
            if D_k is not None:
                y[:, :, pos] += D_k * xs[:, :, pos]
    return y.reshape(b, d, h, w).to(x.dtype)


def _cross_scan(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(b, 4, c, h*w) raster -> slice k re-ordered into direction k's visiting order."""
    b, _, c, l = t.shape
    col = t[:, 1::2].reshape(b, 2, c, h, w).transpose(-1, -2).reshape(b, 2, c, l)
    return torch.stack([t[:, 0], col[:, 0], t[:, 2].flip(-1), col[:, 1].flip(-1)], dim=1)


def _cross_merge(y: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(b, 4, d, h*w) in visiting orders -> (b, d, h*w) raster sum over the directions."""
    b, _, d, l = y.shape
    row = y[:, 0] + y[:, 2].flip(-1)
    col = y[:, 1] + y[:, 3].flip(-1)
    return row + col.reshape(b, d, w, h).transpose(-1, -2).reshape(b, d, l)


def _scan_2d(x, delta, A, B, C, D, delta_bias, delta_softplus, params_follow_scan, scan=scan_fast):
    """Cross-scan, one grouped 1-D ``scan`` over the 4*d channels, cross-merge."""
    b, d, h, w = x.shape
    u = _cross_scan(x.reshape(b, 1, d, h * w).expand(b, K, d, h * w), h, w)
    if params_follow_scan:
        delta, B, C = (_cross_scan(t, h, w) for t in (delta, B, C))
    y = scan(u.reshape(b, K * d, h * w), delta.reshape(b, K * d, h * w), A, B, C, D, None, delta_bias, delta_softplus)
    return _cross_merge(y.reshape(b, K, d, h * w), h, w).reshape(b, d, h, w).to(x.dtype)


@torch.library.custom_op("edgeglocal::selective_scan_2d", mutates_args=())
def _selective_scan_2d_op(
    x: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor],
    delta_bias: Optional[torch.Tensor],
    delta_softplus: bool,
    params_follow_scan: bool,
) -> torch.Tensor:
    return _scan_2d(x, delta, A, B, C, D, delta_bias, delta_softplus, params_follow_scan)


@_selective_scan_2d_op.register_fake
def _(x, delta, A, B, C, D, delta_bias, delta_softplus, params_follow_scan):
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs[:7])
    ctx.flags = inputs[7:]


def _backward(ctx, grad):
    def reference(*tensors):
        return _scan_2d(*tensors, *ctx.flags, scan=scan_reference)

    return (*recompute_backward(reference, ctx.saved_tensors, grad, ctx.needs_input_grad[:7]), None, None)


_selective_scan_2d_op.register_autograd(_backward, setup_context=_setup_context)


# ---------------------------------------------------------------------------------------- ONNX


SCHEMA = make_schema(
    "SelectiveScan2D",
    "VMamba 2-D selective scan: four cross-scan directions (row-major, column-major and both reversed) "
    "of a selective scan over a (b, d, h, w) map, summed; params_follow_scan=0 reads delta/B/C in raster "
    "order (VCMamba); see edgeglocal.ops.selective_scan_2d.",
    inputs=[(name, "T", False) for name in SCAN_2D_INPUTS],
    outputs=[("y", "T")],
    attributes=[("delta_softplus", 1), ("params_follow_scan", 1)],
    infer=infer_like_first_input("SelectiveScan2D", "x", "b, d, h, w"),
)


def translate(x, delta, A, B, C, D, delta_bias, delta_softplus, params_follow_scan):
    """torch.onnx (dynamo) translation: one SelectiveScan2D node with zeros for absent D / delta_bias."""
    return EDGEGLOCAL_OPSET.SelectiveScan2D(
        *node_inputs(x, delta, A, B, C, D, delta_bias),
        delta_softplus=int(delta_softplus), params_follow_scan=int(params_follow_scan), **PLUGIN_ATTRS,
    )


OP_DEF = register_op(
    OnnxOpDef(
        "SelectiveScan2D", SCHEMA, selective_scan_2d_function, torch.ops.edgeglocal.selective_scan_2d.default, translate
    )
)
