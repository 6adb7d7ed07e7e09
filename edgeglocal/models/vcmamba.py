"""VCMamba (Munir et al., "VCMamba: Bridging Convolutions with Multi-Directional Mamba for Efficient
Visual Representation", ICCV 2025 workshops; github.com/Wertyuui345/VCMamba).

EfficientFormer-style conv stem and conv FFN stages, with PlainMamba-style multi-directional Mamba
blocks replacing the last ``mamba_blocks`` blocks of the last stage. Parameter names follow the
official ``EfficientFormer`` class of ``model/mambacnn.py`` (``patch_embed.N``, ``network.I.J``,
``pos_embed``, ``norm``, ``head``, ``dist_head``; Mamba blocks ``network.6.J.{norm,norm2,mlp,
mamba.{in_conv,conv2d,x_proj,dt_proj,A_log,D,norm,out_conv,direction_Bs}}``) so its checkpoints
load with strict matching.

The scan differs from VMamba's: each of the four directions is a *zigzag* (snake) path over the
map (rows from the top, rows from the bottom, columns from the left, columns from the right), only
the input x is re-ordered along that path, while dt, B and C stay in raster order (step t uses the
projections of raster position t, i.e. ``params_follow_scan=False`` semantics), and B gets a learned
per-step direction embedding (``direction_Bs``, indexed by the move that led to the step). The
2-D op only visits raster / column orders, so the four paths are one grouped
``edgeglocal::SelectiveScan`` node over the gathered sequences (4 groups of B/C, one per path).
As in the official code, ``dt_proj``'s bias is applied twice (in ``dt_proj`` and as ``delta_bias``).
The output is the mean of the class and distillation heads (the official eval output; there is no
separate training-mode tuple, since this code is for inference and export).
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeglocal import ops
from edgeglocal.models._registry import register_model
from edgeglocal.nn import DropPath
from edgeglocal.nn.ss2d import dt_bias_init, s4d_real_a_log

__all__ = ["VCMamba", "zigzag_orders", "vcmamba_b", "vcmamba_m", "vcmamba_s"]

#: Moves between consecutive steps of a path, as indices into ``direction_Bs``.
_MOVES = {(0, 1): 1, (0, -1): 2, (-1, 0): 3, (1, 0): 4}  # right, left, up, down; 0 = start


def _snake(outer: int, inner: int, outer_rev: bool, first_rev: bool) -> list[tuple[int, int]]:
    """(outer, inner) coordinates of a snake path; the inner direction flips on every outer step."""
    path = []
    for n, o in enumerate(reversed(range(outer)) if outer_rev else range(outer)):
        rev = first_rev ^ (n % 2 == 1)
        path += [(o, i) for i in (reversed(range(inner)) if rev else range(inner))]
    return path


@functools.lru_cache(maxsize=16)
def _zigzag_lists(h: int, w: int) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    paths = [
        _snake(h, w, outer_rev=False, first_rev=False),
        _snake(h, w, outer_rev=True, first_rev=h % 2 == 1),
        [(i, j) for j, i in _snake(w, h, outer_rev=False, first_rev=False)],
        [(i, j) for j, i in _snake(w, h, outer_rev=True, first_rev=w % 2 == 1)],
    ]
    orders = [[i * w + j for i, j in p] for p in paths]
    inverse = [sorted(range(h * w), key=o.__getitem__) for o in orders]
    moves = [[0] + [_MOVES[(b[0] - a[0], b[1] - a[1])] for a, b in zip(p, p[1:])] for p in paths]
    return orders, inverse, moves


def zigzag_orders(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PlainMamba's four zigzag paths over an h x w map.

    Returns (orders (4, L): raster index visited at step t, inverse (4, L): step at which each
    raster index is visited, moves (4, L): move code into step t). Only Python lists are cached:
    tensors made while exporting must not leak into eager calls.
    """
    return tuple(torch.tensor(v) for v in _zigzag_lists(h, w))  # type: ignore[return-value]


class ConvMlp(nn.Module):
    """1x1 conv -> BN -> GELU -> depthwise 3x3 -> BN -> GELU -> 1x1 conv -> BN (EfficientFormerV2 FFN)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)
        self.mid = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.mid_norm = nn.BatchNorm2d(hidden)
        self.norm1 = nn.BatchNorm2d(hidden)
        self.norm2 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.fc1(x)))
        x = self.drop(self.act(self.mid_norm(self.mid(x))))
        return self.drop(self.norm2(self.fc2(x)))


class FFNBlock(nn.Module):
    """Residual conv FFN with layer scale (the official ``FFN``, which replaced Meta4D)."""

    def __init__(self, dim: int, mlp_ratio: float, drop_path: float, layer_scale: float = 1e-5) -> None:
        super().__init__()
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)
        self.layer_scale_2 = nn.Parameter(layer_scale * torch.ones(dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.layer_scale_2 * self.mlp(x))


class MultiDirMamba(nn.Module):
    """The official ``PlainMamba2D`` mixer on an NCHW map: four zigzag selective scans, summed."""

    def __init__(self, d_model: int, d_state: int = 16, expand: int = 2, conv_size: int = 7) -> None:
        super().__init__()
        d_inner = expand * d_model
        self.d_inner, self.d_state = d_inner, d_state
        self.dt_rank = math.ceil(d_model / 16)
        self.in_conv = nn.Sequential(nn.Conv2d(d_model, d_inner, 1), nn.BatchNorm2d(d_inner))
        self.conv2d = nn.Conv2d(d_inner, d_inner, conv_size, padding=conv_size // 2, groups=d_inner)
        self.act = nn.SiLU()
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner)
        nn.init.uniform_(self.dt_proj.weight, -self.dt_rank**-0.5, self.dt_rank**-0.5)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt_bias_init(d_inner))
        self.A_log = nn.Parameter(s4d_real_a_log(d_inner, d_state))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.norm = nn.LayerNorm(d_inner)
        self.out_conv = nn.Sequential(nn.ReLU(), nn.Conv2d(d_inner, d_model, 1), nn.BatchNorm2d(d_model))
        self.direction_Bs = nn.Parameter(torch.zeros(5, d_state))
        nn.init.trunc_normal_(self.direction_Bs, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        e, n, k = self.d_inner, self.d_state, 4
        orders, inverse, moves = zigzag_orders(h, w)
        x = self.act(self.conv2d(self.in_conv(x))).flatten(2)  # (b, e, L) raster order
        dt, B, C = self.x_proj(x.transpose(1, 2)).split([self.dt_rank, n, n], dim=-1)
        dt = self.dt_proj(dt).transpose(1, 2)  # (b, e, L), bias included as in the official code
        u = x[:, :, orders.flatten()].view(b, e, k, -1).transpose(1, 2).reshape(b, k * e, -1)
        Bk = B.transpose(1, 2).unsqueeze(1) + self.direction_Bs[moves].transpose(1, 2)  # (b, 4, n, L)
        Ck = C.transpose(1, 2).unsqueeze(1).expand(-1, k, -1, -1)
        y = ops.selective_scan(
            u, dt.repeat(1, k, 1), (-torch.exp(self.A_log.float())).repeat(k, 1), Bk, Ck,
            self.D.repeat(k), delta_bias=self.dt_proj.bias.repeat(k), delta_softplus=True,
        )
        y = y.view(b, k, e, -1).gather(3, inverse.view(1, k, 1, -1).expand(b, k, e, -1)).sum(1)
        y = self.norm(y.transpose(1, 2)).transpose(1, 2).reshape(b, e, h, w)
        return self.out_conv(y)


class MambaBlock(nn.Module):
    """BN -> multi-directional Mamba -> residual; BN -> conv FFN -> residual (``PlainMambaLayer``)."""

    def __init__(self, dim: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mamba = MultiDirMamba(dim)
        self.drop_path = DropPath(drop_path)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.mamba(self.norm(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Embedding(nn.Module):
    """Stride-2 3x3 conv + BN between stages."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 3, 2, 1)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


def _stem(cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, cout // 2, 3, 2, 1), nn.BatchNorm2d(cout // 2), nn.ReLU(),
        nn.Conv2d(cout // 2, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.ReLU(),
    )


class VCMamba(nn.Module):
    """VCMamba classifier (official ``EfficientFormer`` with ``vit_num`` Mamba blocks, abs pos-embed)."""

    def __init__(self, layers: Sequence[int], embed_dims: Sequence[int], mamba_blocks: int = 4,
                 mlp_ratio: float = 4.0, num_classes: int = 1000, img_size: int | tuple[int, int] = 224,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.patch_embed = _stem(embed_dims[0])
        total, network = sum(layers), []
        for i, depth in enumerate(layers):
            blocks = []
            for j in range(depth):
                dpr = drop_path_rate * (j + sum(layers[:i])) / max(total - 1, 1)
                is_mamba = i == len(layers) - 1 and depth - j <= mamba_blocks
                blocks.append(MambaBlock(embed_dims[i], mlp_ratio, dpr) if is_mamba
                              else FFNBlock(embed_dims[i], mlp_ratio, dpr))
            network.append(nn.ModuleList(blocks))
            if i < len(layers) - 1:
                network.append(Embedding(embed_dims[i], embed_dims[i + 1]))
        self.network = nn.ModuleList(network)
        self.first_mamba = max(layers[-1] - mamba_blocks, 0)  # pos_embed is added before this block
        h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
        stride = 2 ** (len(layers) + 1)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dims[-1], h // stride, w // stride))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.norm = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes)
        self.dist_head = nn.Linear(embed_dims[-1], num_classes)

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        pos = self.pos_embed
        if pos.shape[-2:] != x.shape[-2:]:
            pos = F.interpolate(pos, size=x.shape[-2:], mode="bicubic", align_corners=False)
        return x + pos

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for stage in self.network[:-1]:
            x = stage(x) if isinstance(stage, Embedding) else _run(stage, x)
        last = self.network[-1]
        x = _run(last[: self.first_mamba], x)
        return _run(last[self.first_mamba :], self._pos_embed(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.forward_features(x).flatten(2).transpose(1, 2)).mean(1)
        return (self.head(x) + self.dist_head(x)) / 2


def _run(blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for blk in blocks:
        x = blk(x)
    return x


_VCMAMBA = dict(task="classify", input_size=(224, 224), hw_multiple=32, dynamic=("batch",), size_kwarg="img_size")


@register_model(**_VCMAMBA, description="VCMamba-S (EfficientFormer-S2 widths), ImageNet-1k classifier")
def vcmamba_s(**kw) -> VCMamba:
    return VCMamba(**{"layers": (4, 4, 12, 8), "embed_dims": (32, 64, 144, 288), **kw})


@register_model(**_VCMAMBA, description="VCMamba-M (EfficientFormer-L1 widths, L3 depths), ImageNet-1k classifier")
def vcmamba_m(**kw) -> VCMamba:
    return VCMamba(**{"layers": (4, 4, 12, 6), "embed_dims": (48, 96, 224, 448), **kw})


@register_model(**_VCMAMBA, description="VCMamba-B (EfficientFormer-L3), ImageNet-1k classifier")
def vcmamba_b(**kw) -> VCMamba:
    return VCMamba(**{"layers": (4, 4, 12, 6), "embed_dims": (64, 128, 320, 512), **kw})
