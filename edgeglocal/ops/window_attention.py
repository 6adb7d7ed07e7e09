"""Window attention: Swin's (shifted) windows with relative-position bias, and GC ViT's global query.

``window_attention`` is the public entry point. It validates its arguments and calls
``torch.ops.edgeglocal.window_attention`` so that ``torch.onnx.export`` sees one node
(``edgeglocal::WindowAttention``, see :mod:`edgeglocal.ops._window_onnx`). In eager mode that op
runs :func:`_window_attention_fast`; :func:`window_attention_ref` is the explicit per-window loop
the fast path and the ONNX body are tested against.

All paths compute in fp32 and return the dtype of ``qkv`` (fp16 scores overflow easily).
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import torch
from torch._subclasses.fake_tensor import is_fake

from edgeglocal.errors import InputError
from edgeglocal.ops._registry import register_op
from edgeglocal.ops._validate import check_same_device, check_tensor
from edgeglocal.ops._window_onnx import MASK_VALUE, make_op_def

_OP = "window_attention"


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise InputError(f"{_OP}: argument {name!r} must be an int or a pair of ints, got {value!r}.")
    return pair  # type: ignore[return-value]


def _check_args(
    qkv: torch.Tensor,
    rel_bias_table: torch.Tensor | None,
    q_global: torch.Tensor | None,
    num_heads: int,
    window_size: tuple[int, int],
    shift: tuple[int, int],
) -> None:
    """Fail early, naming the argument, instead of deep inside a reshape."""
    if not isinstance(num_heads, int) or num_heads < 1:
        raise InputError(f"{_OP}: argument 'num_heads' must be a positive int, got {num_heads!r}.")
    if min(window_size) < 1:
        raise InputError(f"{_OP}: argument 'window_size' must be positive, got {window_size}.")
    if any(not 0 <= s < w for s, w in zip(shift, window_size)):
        raise InputError(
            f"{_OP}: argument 'shift' must lie in [0, window_size) = [0, {window_size}), got {shift}."
        )
    dims = check_tensor("qkv", qkv, ("b", "h", "w", "3c" if q_global is None else "2c"), op=_OP)
    wh, ww = window_size
    if dims["h"] % wh or dims["w"] % ww:
        raise InputError(
            f"{_OP}: argument 'qkv' must have h, w divisible by window_size {window_size} "
            f"(pad first), got h={dims['h']}, w={dims['w']}."
        )
    parts = 3 if q_global is None else 2
    what = "q, k, v" if q_global is None else "k, v (q_global is given)"
    channels = qkv.shape[-1]
    if channels % (parts * num_heads):
        raise InputError(
            f"{_OP}: argument 'qkv' must end in {parts} * c channels ({what}) with c divisible by "
            f"num_heads={num_heads}, got {channels}."
        )
    c = channels // parts
    if q_global is not None:
        check_tensor("q_global", q_global, (None, wh * ww, c), op=_OP)
        if q_global.shape[0] not in (1, dims["b"]):
            raise InputError(
                f"{_OP}: argument 'q_global' must have batch 1 or {dims['b']} (that of qkv), "
                f"got {q_global.shape[0]}."
            )
    if rel_bias_table is not None:
        check_tensor("rel_bias_table", rel_bias_table, ((2 * wh - 1) * (2 * ww - 1), num_heads), op=_OP)
    check_same_device(_OP, qkv=qkv, rel_bias_table=rel_bias_table, q_global=q_global)


def window_attention(
    qkv: torch.Tensor,
    rel_bias_table: torch.Tensor | None = None,
    *,
    num_heads: int,
    window_size: int | Sequence[int] = (7, 7),
    shift: int | Sequence[int] = (0, 0),
    scale: float | None = None,
    q_global: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multi-head self-attention inside non-overlapping windows of a channels-last feature map.

    Args:
        qkv: (b, h, w, 3c) -- q, k, v concatenated on the last axis; (b, h, w, 2c) -- k, v --
            when ``q_global`` is given. h and w must be multiples of the window.
        rel_bias_table: ((2wh-1)(2ww-1), num_heads) Swin relative-position bias table, or None.
        num_heads: heads split c as (num_heads, c // num_heads).
        window_size: (wh, ww) or one int.
        shift: cyclic shift (Swin's shifted windows): the map is rolled by -shift before the
            partition and back after; tokens that came from different regions are masked.
        scale: q multiplier, default head_dim ** -0.5.
        q_global: (b or 1, wh*ww, c) GC ViT global query, shared by every window of an image.

    Returns:
        (b, h, w, c) attention output before the output projection, dtype of ``qkv``.
    """
    window_size = _pair(window_size, "window_size")
    shift = _pair(shift, "shift")
    _check_args(qkv, rel_bias_table, q_global, num_heads, window_size, shift)
    c = qkv.shape[-1] // (3 if q_global is None else 2)
    scale = float(scale) if scale is not None else (c // num_heads) ** -0.5
    return torch.ops.edgeglocal.window_attention(
        qkv, rel_bias_table, q_global, num_heads, list(window_size), list(shift), scale
    )


# --------------------------------------------------------------------------------------------
# Reference: one window at a time, masks and indices built the way Swin describes them.
# --------------------------------------------------------------------------------------------


def _region_labels(h: int, w: int, window_size: tuple[int, int], shift: tuple[int, int]) -> torch.Tensor:
    """(h, w) label of the region each (rolled) position came from; one region when not shifted."""
    labels = torch.zeros(h, w, dtype=torch.long)
    (wh, ww), (sh, sw) = window_size, shift
    rows = [slice(0, h - wh), slice(h - wh, h - sh), slice(h - sh, h)] if sh else [slice(0, h)]
    cols = [slice(0, w - ww), slice(w - ww, w - sw), slice(w - sw, w)] if sw else [slice(0, w)]
    label = 0
    for r in rows:
        for cc in cols:
            labels[r, cc] = label
            label += 1
    return labels


def window_attention_ref(
    qkv: torch.Tensor,
    rel_bias_table: torch.Tensor | None = None,
    *,
    num_heads: int,
    window_size: int | Sequence[int] = (7, 7),
    shift: int | Sequence[int] = (0, 0),
    scale: float | None = None,
    q_global: torch.Tensor | None = None,
) -> torch.Tensor:
    """The obvious implementation: roll, loop over windows and heads, softmax, roll back."""
    (wh, ww), (sh, sw) = _pair(window_size, "window_size"), _pair(shift, "shift")
    _check_args(qkv, rel_bias_table, q_global, num_heads, (wh, ww), (sh, sw))
    b, h, w, channels = qkv.shape
    x = torch.roll(qkv.float(), shifts=(-sh, -sw), dims=(1, 2))
    if q_global is None:
        q_all, k_all, v_all = x.chunk(3, dim=-1)
    else:
        k_all, v_all = x.chunk(2, dim=-1)
    c = k_all.shape[-1]
    hd = c // num_heads
    scale = scale if scale is not None else hd**-0.5
    labels = _region_labels(h, w, (wh, ww), (sh, sw))
    tokens = [(i, j) for i in range(wh) for j in range(ww)]
    bias = torch.zeros(num_heads, wh * ww, wh * ww)
    if rel_bias_table is not None:
        for m, (i1, j1) in enumerate(tokens):
            for n, (i2, j2) in enumerate(tokens):
                bias[:, m, n] = rel_bias_table[(i1 - i2 + wh - 1) * (2 * ww - 1) + (j1 - j2 + ww - 1)]
    out = torch.zeros(b, h, w, c)
    for bi in range(b):
        for y0 in range(0, h, wh):
            for x0 in range(0, w, ww):
                win = (bi, slice(y0, y0 + wh), slice(x0, x0 + ww))
                k, v = k_all[win].reshape(-1, c), v_all[win].reshape(-1, c)
                if q_global is None:
                    q = q_all[win].reshape(-1, c)
                else:
                    q = q_global[bi if q_global.shape[0] > 1 else 0].float()
                lab = labels[y0 : y0 + wh, x0 : x0 + ww].reshape(-1)
                mask = (lab[:, None] != lab[None, :]).float() * MASK_VALUE
                for head in range(num_heads):
                    hs = slice(head * hd, (head + 1) * hd)
                    scores = (q[:, hs] * scale) @ k[:, hs].T + bias[head] + mask
                    out[win][..., hs] = (scores.softmax(-1) @ v[:, hs]).reshape(wh, ww, hd)
    return torch.roll(out, shifts=(sh, sw), dims=(1, 2)).to(qkv.dtype)


# --------------------------------------------------------------------------------------------
# Fast eager path: reshape/permute partition, one fused attention call, cached index and mask.
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _relative_position_index(wh: int, ww: int, device: torch.device) -> torch.Tensor:
    """(N*N,) row of the bias table for each (query, key) pair of a window, Swin's layout."""
    ys, xs = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
    coords = torch.stack([ys.reshape(-1), xs.reshape(-1)])  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :]
    index = (rel[0] + wh - 1) * (2 * ww - 1) + (rel[1] + ww - 1)
    return index.reshape(-1).to(device)


@functools.lru_cache(maxsize=32)
def _shift_mask(
    h: int, w: int, window_size: tuple[int, int], shift: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """(nW, 1, N, N) additive mask: MASK_VALUE between tokens of different regions."""
    (wh, ww) = window_size
    labels = _region_labels(h, w, window_size, shift)
    windows = labels.view(h // wh, wh, w // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)
    mask = (windows[:, :, None] != windows[:, None, :]).float() * MASK_VALUE
    return mask[:, None].to(device)


def _window_attention_fast(
    qkv: torch.Tensor,
    rel_bias_table: Optional[torch.Tensor],
    q_global: Optional[torch.Tensor],
    num_heads: int,
    window_size: Sequence[int],
    shift: Sequence[int],
    scale: float,
) -> torch.Tensor:
    (wh, ww), (sh, sw) = window_size, shift
    b, h, w, channels = qkv.shape
    parts = 3 if q_global is None else 2
    c = channels // parts
    n_tok, n_win = wh * ww, (h // wh) * (w // ww)
    x = qkv.float()
    if sh or sw:
        x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
    # (b, nh, wh, nw, ww, parts, heads, hd) -> (parts, b, nW, heads, N, hd)
    x = x.view(b, h // wh, wh, w // ww, ww, parts, num_heads, c // num_heads)
    x = x.permute(5, 0, 1, 3, 6, 2, 4, 7).reshape(parts, b, n_win, num_heads, n_tok, -1)
    k, v = x[-2], x[-1]
    if q_global is None:
        q = x[0]
    else:
        q = q_global.float().view(-1, 1, n_tok, num_heads, c // num_heads).transpose(2, 3)
        q = q.expand(b, n_win, -1, -1, -1)
    # cached real tensors must not leak into fake-tensor tracing (AOT autograd, torch.compile)
    cached = (lambda fn: fn.__wrapped__) if is_fake(qkv) else (lambda fn: fn)
    bias = None
    if rel_bias_table is not None:
        index = cached(_relative_position_index)(wh, ww, qkv.device)
        bias = rel_bias_table.float()[index].view(n_tok, n_tok, num_heads).permute(2, 0, 1)
    if sh or sw:
        mask = cached(_shift_mask)(h, w, (wh, ww), (sh, sw), qkv.device)
        bias = mask if bias is None else bias + mask
    # plain batched matmuls: on CPU they beat scaled_dot_product_attention with 5-D inputs and a mask
    scores = torch.matmul(q * scale, k.transpose(-2, -1))
    if bias is not None:
        scores = scores + bias
    y = torch.matmul(scores.softmax(-1), v)
    # (b, nW, heads, N, hd) -> (b, h, w, c)
    y = y.view(b, h // wh, w // ww, num_heads, wh, ww, -1).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, h, w, c)
    if sh or sw:
        y = torch.roll(y, shifts=(sh, sw), dims=(1, 2))
    return y.to(qkv.dtype)


# --------------------------------------------------------------------------------------------
# torch.library op: one opaque node for export, the fast path in eager mode.
# --------------------------------------------------------------------------------------------


@torch.library.custom_op("edgeglocal::window_attention", mutates_args=())
def _window_attention_op(
    qkv: torch.Tensor,
    rel_bias_table: Optional[torch.Tensor],
    q_global: Optional[torch.Tensor],
    num_heads: int,
    window_size: list[int],
    shift: list[int],
    scale: float,
) -> torch.Tensor:
    return _window_attention_fast(qkv, rel_bias_table, q_global, num_heads, window_size, shift, scale)


@_window_attention_op.register_fake
def _(qkv, rel_bias_table, q_global, num_heads, window_size, shift, scale):
    parts = 3 if q_global is None else 2
    return qkv.new_empty((*qkv.shape[:-1], qkv.shape[-1] // parts))


def _setup_context(ctx, inputs, output) -> None:
    qkv, rel_bias_table, q_global, *attrs = inputs
    ctx.save_for_backward(qkv, rel_bias_table, q_global)
    ctx.attrs = attrs


def _backward(ctx, grad):
    """Differentiate by recomputing the (differentiable) fast path, so models can be fine-tuned."""
    saved = ctx.saved_tensors
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_() if t is not None else None for t in saved]
        out = _window_attention_fast(*leaves, *ctx.attrs)
        wanted = [t for t in leaves if t is not None]
        grads = iter(torch.autograd.grad(out, wanted, grad, allow_unused=True))
    return (*(next(grads) if t is not None else None for t in leaves), None, None, None, None)


_window_attention_op.register_autograd(_backward, setup_context=_setup_context)


register_op(make_op_def(torch.ops.edgeglocal.window_attention.default))
