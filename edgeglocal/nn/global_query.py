"""GC ViT's global query generator: fused-MBConv blocks that pool a stage's map down to one window.

The result, (b, wh, ww, c), is the query every window of the image attends with in GC ViT's
global blocks (``GlobalWindowAttention``). timm ``gcvit`` parameter names.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["GlobalQueryGen", "MbConvBlock", "SqueezeExcite"]


class SqueezeExcite(nn.Module):
    """Channel gate from the global mean (timm ``SEModule`` names: ``fc1``, ``bn``, ``fc2``)."""

    def __init__(self, channels: int, rd_ratio: float = 0.25, bias: bool = False) -> None:
        super().__init__()
        rd = max(8, int(channels * rd_ratio + 4) // 8 * 8)
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=bias)
        self.bn = nn.Identity()
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc2(self.act(self.bn(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * s.sigmoid()


class MbConvBlock(nn.Module):
    """Depthwise 3x3 -> GELU -> SE -> pointwise, plus the input (GC ViT's fused MBConv)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim, bias=False)
        self.act = nn.GELU()
        self.se = SqueezeExcite(dim)
        self.conv_pw = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_pw(self.se(self.act(self.conv_dw(x))))


class GlobalQueryGen(nn.Module):
    """Reduce an NCHW map of ``feat_size`` to ``window_size`` with log2(ratio) MBConv + max-pool
    levels (at least one MBConv); timm's ``FeatureBlock`` (``blocks.conv1``, ``blocks.pool1``...)."""

    def __init__(self, dim: int, feat_size: tuple[int, int], window_size: tuple[int, int]) -> None:
        super().__init__()
        reductions = int(math.log2(min(feat_size) / min(window_size)))
        self.blocks = nn.Sequential()
        for i in range(max(1, reductions)):
            self.blocks.add_module(f"conv{i + 1}", MbConvBlock(dim))
            if i < reductions:
                self.blocks.add_module(f"pool{i + 1}", nn.MaxPool2d(3, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c, H, W) -> (b, wh, ww, c)."""
        return self.blocks(x).permute(0, 2, 3, 1)
