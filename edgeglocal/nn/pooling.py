"""Generalized-mean pooling for retrieval: GeM and the SuperGlobal variants (GeM+, Regional-GeM,
Scale-GeM, ReLU+).

All powers are taken in float32 inside the module: ``x ** 3`` overflows fp16 once activations pass
~40 and ``x ** 4.6`` once they pass ~11, so an fp16 export must still pool in fp32. The result is
cast back to the input dtype.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeglocal.errors import InputError

__all__ = ["GeM", "GeMPlus", "RegionalGeM", "ScaleGeM", "gem"]


def gem(x: torch.Tensor, p: float | torch.Tensor = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """(mean over H, W of clamp(x, eps) ** p) ** (1 / p): (b, c, h, w) -> (b, c), in fp32."""
    dtype = x.dtype
    x = x.float().clamp(min=eps)
    p = p.float() if isinstance(p, torch.Tensor) else p
    return x.pow(p).mean(dim=(-2, -1)).pow(1.0 / p).to(dtype)


class GeM(nn.Module):
    """GeM pooling (Radenovic et al.) with a learnable or fixed exponent ``p``."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True) -> None:
        super().__init__()
        self.eps = eps
        if learnable:
            self.p = nn.Parameter(torch.full((1,), float(p)))
        else:
            self.register_buffer("p", torch.full((1,), float(p)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gem(x, self.p, self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.2f}, eps={self.eps}"


class GeMPlus(GeM):
    """SuperGlobal's GeM+: GeM with the fixed, larger exponent the paper found best (p=4.6)."""

    def __init__(self, p: float = 4.6, eps: float = 1e-8) -> None:
        super().__init__(p=p, eps=eps, learnable=False)


class RegionalGeM(nn.Module):
    """SuperGlobal's Regional-GeM: each position becomes the mean of itself and the local GeM
    (exponent ``p``) of its ``size`` x ``size`` neighbourhood (reflection-padded), which lets
    regional evidence reach the global descriptor. Shape-preserving: (b, c, h, w) -> same."""

    def __init__(self, p: float = 2.5, size: int = 5) -> None:
        super().__init__()
        if size % 2 == 0:
            raise InputError(f"RegionalGeM size must be odd, got {size}.")
        self.p, self.size = p, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        r = self.size // 2
        padded = F.pad(x.clamp(min=0).pow(self.p), (r, r, r, r), mode="reflect")
        local = F.avg_pool2d(padded, self.size, stride=1).pow(1.0 / self.p)
        return (0.5 * local + 0.5 * x).to(dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}, size={self.size}"


class ScaleGeM(nn.Module):
    """SuperGlobal's Scale-GeM: merge one descriptor per input scale into one.

    ``p=None`` is the paper's p -> infinity limit: the element-wise max of the L2-normalised
    descriptors. A finite ``p`` is a generalized mean shifted by the per-sample minimum (the
    official code shifts by the batch minimum; per sample keeps samples independent).
    """

    def __init__(self, p: float | None = None) -> None:
        super().__init__()
        self.p = p

    def forward(self, descriptors: Sequence[torch.Tensor]) -> torch.Tensor:
        dtype = descriptors[0].dtype
        x = torch.stack([d.float() for d in descriptors], dim=0)  # (scales, b, c)
        if self.p is None:
            out = F.normalize(x, dim=-1).amax(dim=0)
        else:
            gamma = x.amin(dim=(0, 2), keepdim=True)
            out = (x - gamma).pow(self.p).mean(dim=0).pow(1.0 / self.p) + gamma[0]
        return out.to(dtype)

    def extra_repr(self) -> str:
        return f"p={'inf' if self.p is None else self.p}"
