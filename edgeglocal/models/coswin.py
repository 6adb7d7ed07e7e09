"""CoSwin ("CoSwin: Convolution Enhanced Hierarchical Shifted Window Attention For Small-Scale
Vision", arXiv 2509.08959; code github.com/anynomous-user/coswin).

Swin-V1 with a parallel local branch in every block: two 3x3 convolutions on the block input,
added to the window-attention output with a learned gate sigmoid(``convInfluenceWeight``) before
the residual. Parameter names follow the official ``CoSwinTransformer`` (``patch_embed.{proj,norm}``,
``layers.I.blocks.J.{norm1,attn.{qkv,proj,relative_position_bias_table},conv.conv.{0,2},
convInfluenceWeight,norm2,mlp.{fc1,fc2}}``, ``layers.I.downsample.{norm,reduction}``, ``norm``,
``head``); the official persistent ``relative_position_index`` / ``attn_mask`` buffers are rebuilt
by the op and ignored when loading.

Each block's (shifted) window attention is one ``edgeglocal::WindowAttention`` node. Maps are padded
to window multiples inside the block and merges pad odd sizes, so any input that is a multiple of
the patch size exports with dynamic H x W.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeglocal.models._registry import register_model
from edgeglocal.nn import DropPath, Mlp, WindowAttention

__all__ = ["CoSwin", "coswin_cifar", "coswin_tiny"]


class PatchEmbed(nn.Module):
    """Non-overlapping patch conv + LayerNorm; NCHW image -> (b, h, w, c)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat (Swin order x00, x10, x01, x11) -> LayerNorm -> Linear 4c -> 2c."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class ConvBranch(nn.Module):
    """3x3 conv (c -> 1.1c) -> ReLU -> 3x3 conv (-> c) on a channels-last map."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        mid = int(dim * 1.10)
        self.conv = nn.Sequential(nn.Conv2d(dim, mid, 3, padding=1), nn.ReLU(), nn.Conv2d(mid, dim, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class CoSwinBlock(nn.Module):
    """x + DropPath(W-MSA(norm1(x)) + sigmoid(g) * conv(x)); x + DropPath(MLP(norm2(x)))."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift: int, mlp_ratio: float,
                 drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, shift)
        self.conv = ConvBranch(dim)
        self.convInfluenceWeight = nn.Parameter(torch.tensor(0.5))
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = self.attn(self.norm1(x)) + torch.sigmoid(self.convInfluenceWeight) * self.conv(x)
        x = x + self.drop_path(mixed)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CoSwinStage(nn.Module):
    """Blocks alternating regular and shifted windows, then an optional patch merge.

    As in Swin, a stage whose map is no larger than the window uses one window and no shift.
    """

    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, num_heads: int,
                 window_size: int, mlp_ratio: float, drop_path: Sequence[float], downsample: bool) -> None:
        super().__init__()
        if min(resolution) <= window_size:
            window_size, shift = min(resolution), 0
        else:
            shift = window_size // 2
        self.blocks = nn.ModuleList(
            CoSwinBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else shift, mlp_ratio, drop_path[i])
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class CoSwin(nn.Module):
    """CoSwin classifier; ``img_size`` only decides where a stage falls back to a single window."""

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 4, in_chans: int = 3,
                 num_classes: int = 1000,
                 embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
                 window_size: int = 7, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            res = (h // patch_size // 2**i, w // patch_size // 2**i)
            self.layers.append(CoSwinStage(
                embed_dim * 2**i, res, depth, num_heads[i], window_size, mlp_ratio,
                dpr[sum(depths[:i]) : sum(depths[: i + 1])], downsample=i < len(depths) - 1,
            ))
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, H, W) -> (b, h, w, c) after the last stage and norm."""
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x).mean((1, 2)))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


_COSWIN = dict(task="classify", dynamic=("batch", "hw", "all"), size_kwarg="img_size")


@register_model(**_COSWIN, input_size=(224, 224), hw_multiple=32,
                description="CoSwin with Swin-T widths and depths (96, 2-2-6-2, window 7), ImageNet-sized input")
def coswin_tiny(**kw) -> CoSwin:
    return CoSwin(**kw)


@register_model(**_COSWIN, input_size=(32, 32), hw_multiple=8,
                description="CoSwin as released for CIFAR/SVHN (patch 2, window 4, 2-6-4, mlp 2)",
                defaults={"num_classes": 10})
def coswin_cifar(**kw) -> CoSwin:
    cfg = dict(img_size=32, patch_size=2, window_size=4, depths=(2, 6, 4), num_heads=(3, 6, 12), mlp_ratio=2.0)
    return CoSwin(**{**cfg, **kw})
