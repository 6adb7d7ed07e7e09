"""Swap recognised third-party kernels in a model for edgeglocal ops with the same outputs.

``patch(model)`` lets a model trained with someone else's code export through edgeglocal without
editing that code. It recognises modules by class name and attribute structure (timm and
mamba_ssm need not be installed here):

- mamba_ssm's ``selective_scan_fn``: the name is rebound in every module a submodule of the model
  was defined in (the name the model's code calls), so the call becomes ``edgeglocal::SelectiveScan``;
- timm Swin ``WindowAttention`` (``qkv``, ``proj``, ``relative_position_bias_table``) called on
  windows without a mask, and timm ``SwinTransformerBlock._attn`` (roll + partition + masked
  attention) when the map is a window multiple -> one ``edgeglocal::WindowAttention`` node;
- timm GC ViT ``WindowAttentionGlobal`` (``qkv``, ``proj``, ``rel_pos.relative_position_bias_table``)
  local and global -> ``edgeglocal::WindowAttention``, with timm's tiling of the global query.

Modules keep their parameters and state-dict keys: only their class is swapped for a subclass
whose forward calls the op, falling back to the original forward for cases the op does not cover
(e.g. a padded shifted window, where timm rolls before padding).
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import torch
from torch import nn

from edgeglocal import ops
from edgeglocal.errors import ExportError

__all__ = ["patch"]


def _mamba_selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                             return_last_state=False):
    """mamba_ssm's signature over ``edgeglocal.ops.selective_scan`` (no final state in a graph)."""
    if return_last_state:
        raise ExportError("selective_scan_fn(..., return_last_state=True) cannot be exported; call it with False.")
    return ops.selective_scan(u, delta, A, B, C, D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus)


def _window_op(attn: nn.Module, x: torch.Tensor, table: torch.Tensor, q_global: torch.Tensor | None = None,
               image_hw: tuple[int, int] | None = None, shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Run ``attn``'s qkv -> op -> proj; ``x`` is windows (B_, N, C) unless ``image_hw`` is given."""
    wh, ww = attn.window_size
    qkv = attn.qkv(x)
    if image_hw is None:  # each window is its own one-window "image"
        qkv = qkv.reshape(qkv.shape[0], wh, ww, qkv.shape[-1])
    out = ops.window_attention(qkv, table, num_heads=attn.num_heads, window_size=(wh, ww), shift=shift,
                               scale=float(attn.scale), q_global=q_global)
    out = attn.proj(out)
    return out if image_hw is not None else out.reshape(x.shape[0], wh * ww, -1)


class _SwinWindowAttention:
    """timm ``WindowAttention.forward(x, mask)`` on windows; masked calls keep timm's code."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            return super().forward(x, mask)  # type: ignore[misc]
        return _window_op(self, x, self.relative_position_bias_table)


class _SwinBlock:
    """timm ``SwinTransformerBlock._attn(x)`` on a (B, H, W, C) map as one op (shift and mask inside)."""

    def _attn(self, x: torch.Tensor) -> torch.Tensor:
        wh, ww = self.window_size
        if x.shape[1] % wh or x.shape[2] % ww:
            return super()._attn(x)  # type: ignore[misc]
        shift = tuple(int(s) for s in self.shift_size)
        return _window_op(self.attn, x, self.attn.relative_position_bias_table, image_hw=x.shape[1:3], shift=shift)


class _GCViTWindowAttention:
    """timm ``WindowAttentionGlobal.forward(x, q_global)`` on windows.

    timm repeats the (B, wh, ww, C) global query over the B_ windows (window i uses image i % B);
    the op gets exactly that per-window query.
    """

    def forward(self, x: torch.Tensor, q_global: torch.Tensor | None = None) -> torch.Tensor:
        q = None
        if self.use_global and q_global is not None:
            q = q_global.repeat(x.shape[0] // q_global.shape[0], 1, 1, 1).reshape(x.shape[0], -1, x.shape[-1])
        return _window_op(self, x, self.rel_pos.relative_position_bias_table, q_global=q)


def _has(module: nn.Module, *names: str) -> bool:
    return all(hasattr(module, n) for n in names)


#: (class name, structural check, mixin) of the modules patch() recognises.
_MODULE_RULES: list[tuple[str, Callable[[nn.Module], bool], type]] = [
    ("WindowAttention", lambda m: _has(m, "qkv", "proj", "relative_position_bias_table", "num_heads",
                                       "window_size", "scale"), _SwinWindowAttention),
    ("SwinTransformerBlock", lambda m: _has(m, "_attn", "attn", "window_size", "shift_size")
     and _has(m.attn, "qkv", "proj", "relative_position_bias_table"), _SwinBlock),
    ("WindowAttentionGlobal", lambda m: _has(m, "qkv", "proj", "rel_pos", "use_global", "num_heads",
                                             "window_size", "scale"), _GCViTWindowAttention),
]


def _swap_class(module: nn.Module, mixin: type) -> None:
    cls = type(module)
    module.__class__ = type(f"Patched{cls.__name__}", (mixin, cls), {"__module__": cls.__module__})


def _patch_scan_functions(model: nn.Module) -> int:
    """Rebind mamba_ssm's selective_scan_fn in the modules that define the model's submodules."""
    count = 0
    for name in {type(m).__module__ for m in model.modules()}:
        module = sys.modules.get(name)
        fn = getattr(module, "selective_scan_fn", None)
        if callable(fn) and getattr(fn, "__module__", "").startswith("mamba_ssm"):
            module.selective_scan_fn = _mamba_selective_scan_fn
            count += 1
    return count


def patch(model: Any) -> Any:
    """Return ``model`` with recognised third-party attention / scan kernels calling edgeglocal ops.

    The model is changed in place (parameters and state-dict keys untouched) and returned, so
    ``to_onnx(patch(model), ...)`` exports ``edgeglocal`` nodes; outputs are unchanged.
    """
    if not isinstance(model, nn.Module):
        raise ExportError(f"patch() expects a torch.nn.Module, got {type(model).__name__}.")
    _patch_scan_functions(model)
    for module in model.modules():
        for class_name, matches, mixin in _MODULE_RULES:
            if type(module).__name__ == class_name and matches(module):
                _swap_class(module, mixin)
                break
    return model
