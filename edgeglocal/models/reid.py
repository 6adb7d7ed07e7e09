"""A small person re-identification embedder for tracking crops. Task "reid".

A tracker calls it on every detection of every frame, so it must be cheap: an inverted-residual
(MobileNetV2-style) backbone to stride 16, then PCB-style features: one global descriptor plus
one per horizontal stripe (head, torso, legs, ... are roughly stripes of an upright person crop),
concatenated and L2-normalised so cosine distance is a dot product.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeglocal.errors import InputError
from edgeglocal.models._registry import register_model
from edgeglocal.nn.pooling import GeM

__all__ = ["ReIDNet", "reid_small"]


def _conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> project (1x1), residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.block = nn.Sequential(
            _conv_bn(cin, hidden), _conv_bn(hidden, hidden, 3, stride, groups=hidden),
            _conv_bn(hidden, cout, act=False),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class ReIDNet(nn.Module):
    """Global + part-level ReID embedder.

    ``stages``: (channels, blocks, stride) per stage after a stride-2 stem; the default reaches
    stride 16, i.e. a 16 x 8 map for a 256 x 128 crop. Each of ``parts`` stripes and the global
    map are GeM-pooled, reduced by a BN-ed linear layer, and concatenated:
    ``global_dim + parts * part_dim`` values, L2-normalised.
    """

    def __init__(self, stages: Sequence[tuple[int, int, int]] = ((24, 2, 2), (48, 3, 2), (96, 3, 2), (160, 2, 1)),
                 stem: int = 16, expand: int = 4, feat_dim: int = 512, global_dim: int = 256,
                 parts: int = 4, part_dim: int = 64) -> None:
        super().__init__()
        blocks: list[nn.Module] = [_conv_bn(3, stem, 3, 2)]
        cin = stem
        for cout, n, stride in stages:
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
        blocks.append(_conv_bn(cin, feat_dim))
        self.features = nn.Sequential(*blocks)
        self.stride = 2 * math.prod(s for _, _, s in stages)
        self.parts = parts
        self.pool = GeM(p=3.0)
        self.global_head = nn.Sequential(nn.Linear(feat_dim, global_dim, bias=False), nn.BatchNorm1d(global_dim))
        self.part_heads = nn.ModuleList(
            nn.Sequential(nn.Linear(feat_dim, part_dim, bias=False), nn.BatchNorm1d(part_dim)) for _ in range(parts)
        )

    @property
    def embed_dim(self) -> int:
        return self.global_head[0].out_features + sum(h[0].out_features for h in self.part_heads)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = images.shape[-2]
        if h % (self.stride * self.parts):
            raise InputError(
                f"ReID input height {h} must be a multiple of {self.stride * self.parts} "
                f"(stride {self.stride} x {self.parts} stripes)."
            )
        x = self.features(images)
        b, c, fh, fw = x.shape
        stripes = x.reshape(b, c, self.parts, fh // self.parts, fw).transpose(1, 2)  # (b, parts, c, h', w)
        feats = [self.global_head(self.pool(x))]
        feats += [head(self.pool(stripes[:, i])) for i, head in enumerate(self.part_heads)]
        return F.normalize(torch.cat(feats, dim=1), dim=-1)


@register_model(
    task="reid",
    input_size=(256, 128),
    hw_multiple=64,
    dynamic=("batch",),
    input_name="crops",
    outputs=(("embedding", "L2-normalised appearance descriptor (global + 4 stripes)"),),
    resize="stretch",
    description="Small ReID embedder for tracking crops: inverted residuals, GeM global + stripe parts",
)
def reid_small(**kwargs) -> ReIDNet:
    return ReIDNet(**kwargs)
