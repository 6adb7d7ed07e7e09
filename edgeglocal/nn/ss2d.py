"""VMamba's SS2D block over ``edgeglocal.ops.selective_scan_2d``: four scan directions, one node.

Parameter names and shapes follow VMamba's ``SS2D`` (``in_proj``, ``conv2d``, ``x_proj_weight``,
``dt_projs_weight``, ``dt_projs_bias``, ``A_logs``, ``Ds``, ``out_norm``, ``out_proj``). VMamba
computes the x/dt/B/C projections on each re-ordered sequence; projections are per-position, so
computing them once in raster order and letting the op visit them in scan order
(``params_follow_scan=True``) gives the same numbers without four gathers in the graph.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgeglocal import ops

__all__ = ["SS2D", "dt_bias_init", "s4d_real_a_log"]

K_DIRECTIONS = 4


def s4d_real_a_log(d_inner: int, d_state: int, copies: int = 1) -> torch.Tensor:
    """log(A) of the S4D-real initialisation, A[i, n] = n + 1: shape (copies * d_inner, d_state)."""
    a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(copies * d_inner, 1)
    return torch.log(a)


def dt_bias_init(size: int, dt_min: float = 1e-3, dt_max: float = 0.1, floor: float = 1e-4) -> torch.Tensor:
    """A bias whose softplus is log-uniform in [dt_min, dt_max] (Mamba's dt initialisation)."""
    dt = torch.exp(torch.rand(size) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))


class SS2D(nn.Module):
    """2D selective scan mixer on a channels-last (b, h, w, c) map.

    in_proj -> (x, z); x: depthwise conv + SiLU -> 4-direction selective scan -> out_norm;
    y * SiLU(z) -> out_proj.
    """

    def __init__(self, d_model: int, d_state: int = 16, ssm_ratio: float = 2.0, dt_rank: int | str = "auto",
                 d_conv: int = 3, conv_bias: bool = True, bias: bool = False) -> None:
        super().__init__()
        d_inner = int(ssm_ratio * d_model)
        self.d_inner, self.d_state = d_inner, d_state
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.in_proj = nn.Linear(d_model, d_inner * 2, bias=bias)
        self.act = nn.SiLU()
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=d_conv // 2, groups=d_inner, bias=conv_bias)
        k, r, n = K_DIRECTIONS, self.dt_rank, d_state
        self.x_proj_weight = nn.Parameter(torch.empty(k, r + 2 * n, d_inner).uniform_(-d_inner**-0.5, d_inner**-0.5))
        self.dt_projs_weight = nn.Parameter(torch.empty(k, d_inner, r).uniform_(-r**-0.5, r**-0.5))
        self.dt_projs_bias = nn.Parameter(dt_bias_init(k * d_inner).view(k, d_inner))
        self.A_logs = nn.Parameter(s4d_real_a_log(d_inner, d_state, copies=k))
        self.Ds = nn.Parameter(torch.ones(k * d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = self.act(self.conv2d(x.permute(0, 3, 1, 2)))  # (b, d, h, w)
        x_dbl = torch.einsum("bdl,kcd->bkcl", x.flatten(2), self.x_proj_weight)
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)
        y = ops.selective_scan_2d(
            x, dts, -torch.exp(self.A_logs.float()), Bs.contiguous(), Cs.contiguous(), self.Ds,
            delta_bias=self.dt_projs_bias.reshape(-1), delta_softplus=True, params_follow_scan=True,
        )
        y = self.out_norm(y.permute(0, 2, 3, 1))
        return self.out_proj(y * self.act(z))
