"""Mamba's selective scan (S6) as one edgeglocal op.

``selective_scan_fn`` is a drop-in for ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``
(same signature and semantics: grouped B/C, D, z gate, delta_bias, delta_softplus,
return_last_state) and ``selective_scan`` is the same without the state output. Eagerly it runs
the chunked fast path of :mod:`edgeglocal.ops._scan_core`; under ``torch.export`` it is one
``torch.ops.edgeglocal.selective_scan`` node, which ``torch.onnx.export(dynamo=True)`` turns into one
``edgeglocal::SelectiveScan`` node backed by a standard-ONNX function body.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from edgeglocal.errors import InputError
from edgeglocal.ops._registry import EDGEGLOCAL_OPSET, PLUGIN_ATTRS, OnnxOpDef, make_schema, register_op
from edgeglocal.ops._scan_core import recompute_backward, scan_fast, scan_reference
from edgeglocal.ops._scan_onnx import SCAN_INPUTS, infer_like_first_input, node_inputs, selective_scan_function
from edgeglocal.ops._validate import check_same_device, check_tensor

__all__ = ["selective_scan", "selective_scan_fn", "selective_scan_ref"]

OP = "selective_scan"


def _check(u, delta, A, B, C, D, z, delta_bias) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate the arguments and return B, C in grouped (b, g, n, l) form."""
    dims = check_tensor("u", u, ("b", "d", "l"), op=OP)
    check_tensor("delta", delta, ("b", "d", "l"), dims=dims, op=OP)
    check_tensor("A", A, ("d", "n"), dims=dims, op=OP)
    grouped = []
    for name, t in (("B", B), ("C", C)):
        if isinstance(t, torch.Tensor) and t.dim() == 3:
            check_tensor(name, t, ("b", "n", "l"), dims=dims, op=OP)
            t = t.unsqueeze(1)
        dims.pop("g", None)  # B and C may be grouped differently, as in mamba_ssm
        check_tensor(name, t, ("b", "g", "n", "l"), dims=dims, op=OP)
        if dims["d"] % dims["g"]:
            raise InputError(f"{OP}: argument {name!r} has {dims['g']} groups, expected a divisor of d={dims['d']}.")
        grouped.append(t)
    if grouped[0].shape[1] != grouped[1].shape[1]:  # the node takes one group count: refine both to the lcm
        g = math.lcm(grouped[0].shape[1], grouped[1].shape[1])
        grouped = [t.repeat_interleave(g // t.shape[1], dim=1) for t in grouped]
    for name, t, shape in (("D", D, ("d",)), ("z", z, ("b", "d", "l")), ("delta_bias", delta_bias, ("d",))):
        if t is not None:
            check_tensor(name, t, shape, dims=dims, op=OP)
    check_same_device(OP, u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias)
    return grouped[0], grouped[1]


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """y (b, d, l) of the selective scan; see docs/architecture.md ("The ops") for the math.

    u, delta: (b, d, l); A: (d, n); B, C: (b, n, l) or grouped (b, g, n, l); D, delta_bias: (d,);
    z: (b, d, l). fp16/bf16 inputs are computed in fp32; the output has u's dtype.
    """
    B, C = _check(u, delta, A, B, C, D, z, delta_bias)
    return torch.ops.edgeglocal.selective_scan(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus))


def selective_scan_fn(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``.

    ``return_last_state=True`` also returns the final state (b, d, n) in the compute dtype, eagerly
    only: an exported graph has no state output (step-by-step decoding is not an export target).
    """
    if not return_last_state:
        return selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    B, C = _check(u, delta, A, B, C, D, z, delta_bias)
    y, state = scan_fast(u, delta, A, B, C, D, z, delta_bias, delta_softplus, final_state=True)
    return y.to(u.dtype), state


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The sequential reference (one step at a time, fp32 or fp64 accumulation): slow, obviously correct.

    Same signature as mamba_ssm's ``selective_scan_ref``.
    """
    B, C = _check(u, delta, A, B, C, D, z, delta_bias)
    out = scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus, final_state=return_last_state)
    return (out[0].to(u.dtype), out[1]) if return_last_state else out.to(u.dtype)


@torch.library.custom_op("edgeglocal::selective_scan", mutates_args=())
def _selective_scan_op(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor],
    z: Optional[torch.Tensor],
    delta_bias: Optional[torch.Tensor],
    delta_softplus: bool,
) -> torch.Tensor:
    return scan_fast(u, delta, A, B, C, D, z, delta_bias, delta_softplus).to(u.dtype)


@_selective_scan_op.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    return torch.empty_like(u)


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs[:8])
    ctx.delta_softplus = inputs[8]


def _backward(ctx, grad):
    def reference(*tensors):
        return scan_reference(*tensors, delta_softplus=ctx.delta_softplus).to(tensors[0].dtype)

    return (*recompute_backward(reference, ctx.saved_tensors, grad, ctx.needs_input_grad[:8]), None)


_selective_scan_op.register_autograd(_backward, setup_context=_setup_context)


# ---------------------------------------------------------------------------------------- ONNX


SCHEMA = make_schema(
    "SelectiveScan",
    "Mamba selective scan: h_t = exp(delta'_t A) h_{t-1} + delta'_t B_t u_t, y_t = <C_t, h_t> + D u_t, with "
    "grouped B/C (b, g, n, l) and delta' = softplus(delta + delta_bias) if delta_softplus else delta + "
    "delta_bias; see edgeglocal.ops.selective_scan.",
    inputs=[(name, "T", False) for name in SCAN_INPUTS],
    outputs=[("y", "T")],
    attributes=[("delta_softplus", 0)],
    infer=infer_like_first_input("SelectiveScan", "u", "b, d, l"),
)


def translate(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """torch.onnx (dynamo) translation: one SelectiveScan node, then the z gate as standard ops."""
    from onnxscript import opset18 as op

    y = EDGEGLOCAL_OPSET.SelectiveScan(
        *node_inputs(u, delta, A, B, C, D, delta_bias), delta_softplus=int(delta_softplus), **PLUGIN_ATTRS
    )
    return y if z is None else op.Mul(y, op.Mul(z, op.Sigmoid(z)))


OP_DEF = register_op(
    OnnxOpDef("SelectiveScan", SCHEMA, selective_scan_function, torch.ops.edgeglocal.selective_scan.default, translate)
)
