"""Dark channel prior dehazing (He, Sun and Tang, CVPR 2009 / TPAMI 2011) as an exportable module.

Every step is a tensor op with no data-dependent Python control flow, so the module exports to a
small ONNX graph with dynamic height and width: the packaged default dehazer
(``edgeglocal/assets/dcp_dehaze.onnx``) that runs without torch; ``edgeglocal.export.packaged``
regenerates it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: ITU-R BT.601 luma weights: the grayscale guide of the guided filter.
LUMA = (0.299, 0.587, 0.114)


def min_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Min over a ``size`` x ``size`` window (same size out); separable, so O(size) per pixel."""
    r = size // 2
    x = -F.max_pool2d(-x, (1, size), stride=1, padding=(0, r))
    return -F.max_pool2d(-x, (size, 1), stride=1, padding=(r, 0))


def _window_sum(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Sum over [i - radius, i + radius] along ``dim``, clipped to the image: two cumsum lookups,
    so the cost does not grow with the radius (He's guided filter uses radii of ~60 px)."""
    n = x.shape[dim]
    c = torch.cumsum(x, dim)
    c = torch.cat([torch.zeros_like(c.narrow(dim, 0, 1)), c], dim)
    idx = torch.arange(n, device=x.device)
    hi = torch.clamp(idx + radius + 1, max=n)
    lo = torch.clamp(idx - radius, min=0)
    return c.index_select(dim, hi) - c.index_select(dim, lo)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2r+1)^2 window clipped to the image, for (N, C, H, W) tensors."""
    rows = _window_sum(torch.ones_like(x[:1, :1, :, :1]), radius, 2)  # window heights, (1, 1, H, 1)
    cols = _window_sum(torch.ones_like(x[:1, :1, :1, :]), radius, 3)  # window widths, (1, 1, 1, W)
    return _window_sum(_window_sum(x, radius, 2), radius, 3) / (rows * cols)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """He et al.'s guided filter (gray guide): edge-preserving smoothing of ``src`` along ``guide``."""
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(src, radius)
    cov_ip = box_mean(guide * src, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


class DarkChannelDehaze(nn.Module):
    """RGB image in [0, 1], (N, 3, H, W) -> (dehazed, transmission, atmosphere).

    ``atmosphere`` A (N, 3) is the mean colour of the brightest 1 / ``top_divisor`` of the dark
    channel (averaging, rather than He's single brightest pixel, is robust to one white object);
    transmission t = 1 - omega * dark(I / A), refined by the guided filter with the grayscale image
    as guide and clamped at ``t0``; J = (I - A) / t + A, clipped to [0, 1].
    """

    def __init__(
        self,
        patch: int = 15,
        omega: float = 0.95,
        t0: float = 0.1,
        radius: int = 40,
        eps: float = 1e-3,
        top_divisor: int = 1000,
    ):
        super().__init__()
        self.patch, self.omega, self.t0 = patch, omega, t0
        self.radius, self.eps, self.top_divisor = radius, eps, top_divisor
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def atmosphere(self, image: torch.Tensor, dark: torch.Tensor) -> torch.Tensor:
        n, _, h, w = image.shape
        k = torch.sym_max(1, (h * w) // self.top_divisor)  # symbolic under export: dynamic H, W
        idx = torch.topk(dark.reshape(n, -1), k, dim=1).indices  # (N, k)
        pixels = torch.gather(image.reshape(n, 3, -1), 2, idx.unsqueeze(1).expand(n, 3, -1))
        return pixels.mean(2).clamp(min=1e-3)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dark = min_filter(image.amin(1, keepdim=True), self.patch)
        a = self.atmosphere(image, dark)
        a4 = a[:, :, None, None]
        raw_t = 1.0 - self.omega * min_filter((image / a4).amin(1, keepdim=True), self.patch)
        gray = (image * self.luma).sum(1, keepdim=True)
        t = guided_filter(gray, raw_t, self.radius, self.eps).clamp(self.t0, 1.0)
        dehazed = ((image - a4) / t + a4).clamp(0.0, 1.0)
        return dehazed, t, a
