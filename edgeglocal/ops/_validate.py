"""Input checks shared by the ops: fail early with one sentence naming the argument and the expected shape.

Shapes are patterns of ints (fixed sizes), strings (named dims, bound on first use and checked on
every later use, across arguments) or ``None`` (any size)::

    dims = check_tensor("u", u, ("b", "d", "l"), op="selective_scan")
    check_tensor("A", A, ("d", "n"), dims=dims, op="selective_scan")
"""

from __future__ import annotations

from typing import Sequence

import torch

from edgeglocal.errors import InputError

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

DimPattern = Sequence["int | str | None"]


def _fmt(pattern: DimPattern, dims: dict[str, int]) -> str:
    parts = []
    for p in pattern:
        if isinstance(p, str):
            parts.append(f"{p}={dims[p]}" if p in dims else p)
        else:
            parts.append("*" if p is None else str(p))
    return "(" + ", ".join(parts) + ")"


def check_tensor(
    name: str,
    t: object,
    shape: DimPattern,
    dtypes: Sequence[torch.dtype] = FLOAT_DTYPES,
    *,
    dims: dict[str, int] | None = None,
    op: str = "",
) -> dict[str, int]:
    """Check that ``t`` is a tensor of ``shape`` and one of ``dtypes``; return ``dims`` with new bindings.

    Raises :class:`InputError` naming ``name`` (prefixed with ``op``) and the expected shape,
    with the sizes already bound by earlier arguments filled in.
    """
    dims = {} if dims is None else dims
    where = f"{op}: argument {name!r}" if op else f"argument {name!r}"
    if not isinstance(t, torch.Tensor):
        raise InputError(f"{where} must be a torch.Tensor of shape {_fmt(shape, dims)}, got {type(t).__name__}.")
    got = tuple(t.shape)
    bound = dict(dims)
    ok = len(got) == len(shape)
    if ok:
        for p, size in zip(shape, got):
            if isinstance(p, str):
                if bound.setdefault(p, size) != size:
                    ok = False
            elif p is not None and p != size:
                ok = False
    if not ok:
        raise InputError(f"{where} must have shape {_fmt(shape, dims)}, got {got}.")
    if t.dtype not in dtypes:
        names = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise InputError(f"{where} must have dtype in ({names}), got {str(t.dtype).removeprefix('torch.')}.")
    dims.update(bound)
    return dims


def check_same_device(op: str, **tensors: torch.Tensor | None) -> None:
    """All given tensors live on one device (mixing CPU and CUDA fails late and obscurely otherwise)."""
    present = {k: v.device for k, v in tensors.items() if v is not None}
    if len(set(present.values())) > 1:
        listing = ", ".join(f"{k} on {d}" for k, d in present.items())
        raise InputError(f"{op}: all tensors must be on one device, got {listing}.")
