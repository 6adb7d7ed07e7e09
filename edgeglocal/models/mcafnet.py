"""MCAF-Net-style single-image dehazing (design: docs/models/mcafnet.md). Task "dehaze".

Input: RGB in [0, 1], (b, 3, H, W) with any H and W (padded internally to a multiple of
``window * 2 ** (levels - 1)`` and cropped back). Output: the dehazed image, same shape,
``K * x - B + x`` with per-pixel maps K and B predicted by the network (AOD-Net's reformulation
of the scattering model, kept as a residual so the network only learns the correction).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeglocal.errors import InputError
from edgeglocal.models._registry import register_model
from edgeglocal.nn.basic import LayerNorm2d
from edgeglocal.nn.channel_attention import ColorCalibratedChannelAttention, color_statistics
from edgeglocal.nn.window_attention import WindowAttention

__all__ = ["MCAFNet", "mcafnet"]


class MultiBranch(nn.Module):
    """Parallel depthwise 3x3 convs at several dilations (receptive fields 3, 5, 7, ...) on a shared
    pointwise projection, integrated by a 1x1 conv: multi-scale local context at depthwise cost."""

    def __init__(self, dim: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.pw = nn.Conv2d(dim, dim, 1)
        self.branches = nn.ModuleList(nn.Conv2d(dim, dim, 3, padding=d, dilation=d, groups=dim) for d in dilations)
        self.act = nn.GELU()
        self.fuse = nn.Conv2d(dim * len(dilations), dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pw(x)
        return self.fuse(self.act(torch.cat([branch(x) for branch in self.branches], dim=1)))


class FeedForward(nn.Module):
    """Gated depthwise feed-forward: GELU(a) * b with a, b from a 1x1 + depthwise 3x3 expansion."""

    def __init__(self, dim: int, expand: float = 2.0) -> None:
        super().__init__()
        hidden = int(dim * expand)
        self.fc1 = nn.Conv2d(dim, hidden * 2, 1)
        self.dw = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dw(self.fc1(x)).chunk(2, dim=1)
        return self.fc2(F.gelu(a) * b)


class FeatureIntegrationBlock(nn.Module):
    """MFIB: multi-branch dilated convs (local), colour-calibrated channel attention (global,
    linear in pixels), feed-forward; each pre-normed and residual."""

    def __init__(self, dim: int, heads: int, dilations: Sequence[int], ffn_expand: float = 2.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.local = MultiBranch(dim, dilations)
        self.norm2 = LayerNorm2d(dim)
        self.attn = ColorCalibratedChannelAttention(dim, heads)
        self.norm3 = LayerNorm2d(dim)
        self.ffn = FeedForward(dim, ffn_expand)

    def forward(self, x: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
        x = x + self.local(self.norm1(x))
        x = x + self.attn(self.norm2(x), color)
        return x + self.ffn(self.norm3(x))


class AdaptiveFusion(nn.Module):
    """MSAF: fuse features from every encoder scale into one decoder scale.

    Each input is resized to the target scale and projected to ``dim``; per-channel softmax weights
    over the inputs come from their pooled sum (selective-kernel style, per sample); a window
    attention block then mixes the fused map spatially within ``window`` x ``window`` tiles.
    """

    def __init__(self, in_dims: Sequence[int], in_levels: Sequence[int], level: int, dim: int, heads: int,
                 window: int) -> None:
        super().__init__()
        #: log2 of each input's scale relative to the target: > 0 downsample, < 0 upsample.
        self.shifts = tuple(level - j for j in in_levels)
        self.proj = nn.ModuleList(nn.Conv2d(c, dim, 1) if c != dim else nn.Identity() for c in in_dims)
        hidden = max(dim // 4, 8)
        self.select = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim * len(in_dims)))
        self.norm = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window_size=window)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        resized = []
        for proj, shift, f in zip(self.proj, self.shifts, feats):
            if shift > 0:
                f = F.avg_pool2d(f, 2 ** shift)
            elif shift < 0:
                f = F.interpolate(f, scale_factor=2 ** -shift, mode="bilinear", align_corners=False)
            resized.append(proj(f))
        stack = torch.stack(resized, dim=1)  # (b, n, c, h, w)
        b, n, c = stack.shape[:3]
        weights = self.select(stack.sum(dim=1).mean(dim=(-2, -1))).reshape(b, n, c, 1, 1).softmax(dim=1)
        fused = (stack * weights).sum(dim=1).permute(0, 2, 3, 1)  # (b, h, w, c)
        return (fused + self.attn(self.norm(fused))).permute(0, 3, 1, 2)


class MCAFNet(nn.Module):
    """U-shaped dehazer: MFIB encoder, MSAF + MFIB decoder, K/B head (docs/models/mcafnet.md)."""

    def __init__(self, dims: Sequence[int] = (32, 64, 128), depths: Sequence[int] = (2, 2, 4),
                 decoder_depths: Sequence[int] = (2, 2), heads: Sequence[int] = (1, 2, 4),
                 dilations: Sequence[int] = (1, 2, 3), window: int = 8, ffn_expand: float = 2.0) -> None:
        super().__init__()
        levels = len(dims)
        if not (len(depths) == len(heads) == levels and len(decoder_depths) == levels - 1):
            raise InputError(
                f"mcafnet needs dims, depths and heads with one entry per level and decoder_depths with one "
                f"fewer, got {len(dims)}, {len(depths)}, {len(heads)} and {len(decoder_depths)}."
            )
        self.multiple = window * 2 ** (levels - 1)
        self.stem = nn.Conv2d(3, dims[0], 3, padding=1)
        self.encoder = nn.ModuleList(
            nn.ModuleList(FeatureIntegrationBlock(dims[i], heads[i], dilations, ffn_expand) for _ in range(depths[i]))
            for i in range(levels)
        )
        self.down = nn.ModuleList(nn.Conv2d(dims[i], dims[i + 1], 3, 2, 1) for i in range(levels - 1))
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(dims[i + 1], dims[i] * 4, 1), nn.PixelShuffle(2)) for i in range(levels - 1)
        )
        self.fusion = nn.ModuleList(
            AdaptiveFusion([dims[i]] + list(dims[: levels - 1]), [i] + list(range(levels - 1)), i, dims[i], heads[i],
                           window)
            for i in range(levels - 1)
        )
        self.decoder = nn.ModuleList(
            nn.ModuleList(FeatureIntegrationBlock(dims[i], heads[i], dilations, ffn_expand)
                          for _ in range(decoder_depths[i]))
            for i in range(levels - 1)
        )
        self.head = nn.Conv2d(dims[0], 6, 3, padding=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        color = color_statistics(images)
        pad_h = (self.multiple - h % self.multiple) % self.multiple
        pad_w = (self.multiple - w % self.multiple) % self.multiple
        x = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")

        skips = []
        feat = self.stem(x)
        for i, blocks in enumerate(self.encoder):
            for block in blocks:
                feat = block(feat, color)
            if i < len(self.down):
                skips.append(feat)
                feat = self.down[i](feat)
        for i in reversed(range(len(self.decoder))):
            feat = self.up[i](feat)
            feat = self.fusion[i]([feat] + skips)
            for block in self.decoder[i]:
                feat = block(feat, color)

        k, b = self.head(feat).chunk(2, dim=1)
        out = k * x - b + x
        return out[:, :, :h, :w]


@register_model(
    task="dehaze",
    input_size=(256, 256),
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    resize="none",
    hw_multiple=1,
    dynamic=("batch", "hw", "all"),
    outputs=(("dehazed", "dehazed RGB image in [0, 1] (clip before display), input resolution"),),
    description="MCAF-Net-style dehazer: dilated multi-branch blocks, colour-calibrated channel attention, "
    "window-attention multi-scale fusion, K*x - B + x output",
)
def mcafnet(**kwargs) -> MCAFNet:
    return MCAFNet(**kwargs)
