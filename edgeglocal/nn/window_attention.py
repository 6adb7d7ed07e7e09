"""Window attention blocks over ``edgeglocal.ops.window_attention``: one ONNX node per block.

The op does partition, cyclic shift, Swin mask, relative-position bias, softmax and merge; the
blocks own the parameters (``qkv``, ``proj``, the bias table) with timm's names and pad the map
to window multiples, so any H x W works and dynamic-shape exports stay exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeglocal import ops

__all__ = ["GlobalWindowAttention", "RelPosBias", "WindowAttention", "pad_to_windows"]


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def pad_to_windows(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """Zero-pad a (b, h, w, c) map on the bottom/right up to multiples of ``window``."""
    h, w = x.shape[1], x.shape[2]
    pad_h = (window[0] - h % window[0]) % window[0]
    pad_w = (window[1] - w % window[1]) % window[1]
    return F.pad(x, (0, 0, 0, pad_w, 0, pad_h))


class RelPosBias(nn.Module):
    """Holds a Swin relative-position bias table ``((2wh-1)(2ww-1), heads)``; the op indexes it.

    A module of its own so that GC ViT's checkpoint names (``attn.rel_pos.relative_position_bias_table``)
    load unchanged.
    """

    def __init__(self, window_size: tuple[int, int], num_heads: int) -> None:
        super().__init__()
        wh, ww = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)


class WindowAttention(nn.Module):
    """(Shifted) window self-attention on a (b, h, w, c) map (Swin; timm parameter names).

    ``shift`` is the cyclic shift of a Swin "SW-MSA" block; the map is padded to window multiples
    first and cropped after, so the mask handles the padded border like any other region.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int | tuple[int, int] = 7,
                 shift: int | tuple[int, int] = 0, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_size = _pair(window_size)
        self.shift = _pair(shift)
        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1], x.shape[2]
        qkv = pad_to_windows(self.qkv(x), self.window_size)
        out = ops.window_attention(
            qkv, self.relative_position_bias_table, num_heads=self.num_heads,
            window_size=self.window_size, shift=self.shift,
        )
        return self.proj(out[:, :h, :w])


class GlobalWindowAttention(nn.Module):
    """GC ViT window attention: local (q, k, v from the window) or global (q from the image's
    global query, k and v from the window). timm ``WindowAttentionGlobal`` parameter names.

    The global query is the same for every window of an image (NVlabs' GC ViT; timm tiles it
    across the batch instead, which only agrees at batch size 1).
    """

    def __init__(self, dim: int, num_heads: int, window_size: int | tuple[int, int],
                 use_global: bool = True, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_size = _pair(window_size)
        self.use_global = use_global
        self.rel_pos = RelPosBias(self.window_size, num_heads)
        self.qkv = nn.Linear(dim, dim * (2 if use_global else 3), bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, q_global: torch.Tensor | None = None) -> torch.Tensor:
        """x: (b, h, w, c) with h, w window multiples; q_global: (b, wh, ww, c)."""
        q = None
        if self.use_global and q_global is not None:
            q = q_global.reshape(q_global.shape[0], -1, q_global.shape[-1])
        out = ops.window_attention(
            self.qkv(x), self.rel_pos.relative_position_bias_table, num_heads=self.num_heads,
            window_size=self.window_size, q_global=q,
        )
        return self.proj(out)
