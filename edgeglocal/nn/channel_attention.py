"""Channel ("transposed") attention: a C x C attention map per head, linear in the pixel count.

Attending across channels instead of pixels (Restormer's MDTA) gives every output pixel a global
receptive field at O(H*W*C^2) cost and never forms an (H*W) x (H*W) matrix, which is what lets a
dehazing network run on full-resolution edge video. :class:`ColorCalibratedChannelAttention` adds
MCAF-Net's colour calibration: per-image colour statistics of the hazy input modulate the values,
so the attention can undo the global colour cast that haze adds (docs/models/mcafnet.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeglocal.errors import InputError

__all__ = ["ChannelAttention", "ColorCalibratedChannelAttention", "color_statistics"]


def color_statistics(image: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-sample colour statistics of an RGB batch: channel means and standard deviations, (b, 6)."""
    mean = image.mean(dim=(-2, -1))
    std = (image.var(dim=(-2, -1), unbiased=False) + eps).sqrt()
    return torch.cat([mean, std], dim=1)


class ChannelAttention(nn.Module):
    """Multi-head C x C attention over a (b, c, h, w) map (Restormer MDTA).

    q, k, v come from a pointwise conv followed by a depthwise 3x3 (local context); q and k are
    L2-normalised over pixels so the logits are cosines scaled by a learned per-head temperature.
    """

    def __init__(self, dim: int, num_heads: int = 1, bias: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise InputError(f"Channel attention dim {dim} must be divisible by num_heads {num_heads}.")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dw = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.proj = nn.Conv2d(dim, dim, 1, bias=bias)

    def attend(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (attention (b, heads, c/h, c/h), values (b, heads, c/h, h*w))."""
        b, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w).unbind(1)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return attn, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        attn, v = self.attend(x)
        return self.proj((attn @ v).reshape(b, c, h, w))


class ColorCalibratedChannelAttention(ChannelAttention):
    """Channel attention whose values are modulated by the hazy image's colour statistics.

    A two-layer MLP maps :func:`color_statistics` (b, 6) to a per-channel scale and shift,
    ``v * (1 + gamma) + beta``; the MLP's last layer starts at zero so the block starts as
    plain channel attention.
    """

    def __init__(self, dim: int, num_heads: int = 1, bias: bool = False, hidden: int = 32) -> None:
        super().__init__(dim, num_heads, bias)
        self.calib = nn.Sequential(nn.Linear(6, hidden), nn.GELU(), nn.Linear(hidden, 2 * dim))
        nn.init.zeros_(self.calib[-1].weight)
        nn.init.zeros_(self.calib[-1].bias)

    def forward(self, x: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        attn, v = self.attend(x)
        gamma, beta = self.calib(color).reshape(b, 2, self.num_heads, c // self.num_heads, 1).unbind(1)
        v = v * (1 + gamma) + beta
        return self.proj((attn @ v).reshape(b, c, h, w))
