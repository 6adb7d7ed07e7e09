"""GC ViT (Hatamizadeh et al., "Global Context Vision Transformers", ICML 2023).

Parameter names and shapes follow timm's ``gcvit_*`` models, so timm checkpoints load with strict
matching: ``stem.conv1``, ``stem.down.{norm1,conv_block,reduction,norm2}``,
``stages.N.{downsample,global_block.blocks.convK,blocks.M.{norm1,attn.{qkv,proj,rel_pos.
relative_position_bias_table},norm2,mlp.fc1,mlp.fc2}}``, ``stages.3.norm``, ``head.fc``.

Checkpoints of NVIDIA's own code (NVlabs/GCVit ``models/gc_vit.py``, and its published
``gc_vit_{xxtiny,xtiny,tiny}`` weights) load too, because users fine-tune with that repository.
Its tensors are timm's (same qkv order, head split and bias-table indexing) under other names and
module boundaries, so ``remap_checkpoint`` (spotting the ``levels.*`` keys) renames them with
``nvlabs_to_timm_key``: NVlabs ends each level with the next stage's ``ReduceSize``, writes the
fused MBConv as a ``conv`` Sequential whose SE uses Linear layers (reshaped to 1x1 convs here) and
names the layer scales ``gamma1/2``; its ``relative_position_index`` buffers are rebuilt, so dropped.

Local and global window attention are one ``edgeglocal::WindowAttention`` node each. Windows are
derived from the input size (``img_size // window_ratio``) exactly as in timm, which is why GC ViT
exports with a fixed H x W: the global query must be exactly one window.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import nn

from edgeglocal.models._registry import register_model
from edgeglocal.nn import DropPath, GlobalQueryGen, GlobalWindowAttention, LayerNorm2d, LayerScale, MbConvBlock, Mlp

__all__ = ["GlobalContextVit", "gcvit_tiny", "gcvit_xtiny", "gcvit_xxtiny", "nvlabs_to_timm_key"]


class Downsample2d(nn.Module):
    """LayerNorm2d -> fused MBConv -> stride-2 3x3 conv -> LayerNorm2d."""

    def __init__(self, dim: int, dim_out: int | None = None) -> None:
        super().__init__()
        dim_out = dim_out or dim
        self.norm1 = LayerNorm2d(dim)
        self.conv_block = MbConvBlock(dim)
        self.reduction = nn.Conv2d(dim, dim_out, 3, 2, 1, bias=False)
        self.norm2 = LayerNorm2d(dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm2(self.reduction(self.conv_block(self.norm1(x))))


class Stem(nn.Module):
    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, 2, 1)
        self.down = Downsample2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.conv1(x))


class GCViTBlock(nn.Module):
    """Pre-norm window attention (local, or with the stage's global query) + MLP, channels-last."""

    def __init__(self, dim: int, num_heads: int, window_size: tuple[int, int], mlp_ratio: float,
                 use_global: bool, layer_scale: float | None, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GlobalWindowAttention(dim, num_heads, window_size, use_global=use_global)
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor, q_global: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), q_global)))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class GCViTStage(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int, feat_size: tuple[int, int],
                 window_size: tuple[int, int], downsample: bool, stage_norm: bool, mlp_ratio: float,
                 layer_scale: float | None, drop_path: Sequence[float]) -> None:
        super().__init__()
        if downsample:
            self.downsample = Downsample2d(dim, dim * 2)
            dim, feat_size = dim * 2, (feat_size[0] // 2, feat_size[1] // 2)
        else:
            self.downsample = nn.Identity()
        self.global_block = GlobalQueryGen(dim, feat_size, window_size)
        self.blocks = nn.ModuleList(
            GCViTBlock(dim, num_heads, window_size, mlp_ratio, use_global=i % 2 == 1,
                       layer_scale=layer_scale, drop_path=drop_path[i])
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(dim) if stage_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        q_global = self.global_block(x)
        x = x.permute(0, 2, 3, 1)
        for blk in self.blocks:
            x = blk(x, q_global)
        return self.norm(x).permute(0, 3, 1, 2)


class ClassifierHead(nn.Module):
    """Global average pool -> ``fc`` (timm ``ClassifierHead`` parameter names)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3)))


class GlobalContextVit(nn.Module):
    """GC ViT classifier. ``img_size`` fixes the windows (``img_size // window_ratio`` per stage)."""

    def __init__(self, depths: Sequence[int] = (3, 4, 19, 5), num_heads: Sequence[int] = (2, 4, 8, 16),
                 embed_dim: int = 64, mlp_ratio: float = 3.0, img_size: int | tuple[int, int] = 224,
                 window_ratio: Sequence[int] = (32, 32, 16, 32), layer_scale: float | None = None,
                 num_classes: int = 1000, drop_path_rate: float = 0.0, in_chans: int = 3) -> None:
        super().__init__()
        img = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        feat = (img[0] // 4, img[1] // 4)
        windows = [(img[0] // r, img[1] // r) for r in window_ratio]
        self.stem = Stem(in_chans, embed_dim)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).split(list(depths))
        stages = []
        for i, depth in enumerate(depths):
            scale = 2 ** max(i - 1, 0)
            stages.append(GCViTStage(
                embed_dim * scale, depth, num_heads[i], (feat[0] // scale, feat[1] // scale), windows[i],
                downsample=i != 0, stage_norm=i == len(depths) - 1, mlp_ratio=mlp_ratio,
                layer_scale=layer_scale, drop_path=dpr[i].tolist(),
            ))
        self.stages = nn.Sequential(*stages)
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        self.head = ClassifierHead(self.num_features, num_classes)
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def remap_checkpoint(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename an NVlabs GCVit state dict to timm's layout; a timm one is returned as it is."""
        if not any(key.startswith("levels.") for key in state):
            return state
        out: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            if key.endswith("relative_position_index"):
                continue
            name = nvlabs_to_timm_key(key, len(self.stages))
            if ".se.fc" in name and value.ndim == 2:  # SE Linear (out, in) -> 1x1 conv
                value = value[:, :, None, None]
            out[name] = value
        return out


# NVlabs writes GC ViT's fused MBConv as ``conv = Sequential(dw 3x3, GELU, SE(fc = Sequential(
# Linear, GELU, Linear, Sigmoid)), pw 1x1)``; these are its parameter paths in timm's MbConvBlock.
_NVLABS_MBCONV = {
    "conv.0.": "conv_dw.", "conv.2.fc.0.": "se.fc1.", "conv.2.fc.2.": "se.fc2.", "conv.3.": "conv_pw.",
}
_NVLABS_LEVEL = re.compile(r"levels\.(\d+)\.(.+)")
# ``to_q_global`` sat on the level until NVlabs' 08/2022 update moved it into ``q_global_gen``.
_NVLABS_QUERY = re.compile(r"(?:q_global_gen\.)?to_q_global\.(\d+)\.(.+)")


def _mbconv_key(rest: str) -> str:
    for old, new in _NVLABS_MBCONV.items():
        if rest.startswith(old):
            return new + rest.removeprefix(old)
    return rest


def _reduce_size_key(rest: str) -> str:
    """NVlabs ``ReduceSize`` -> timm ``Downsample2d``: same norms and reduction, MBConv in ``conv_block``."""
    return "conv_block." + _mbconv_key(rest) if rest.startswith("conv.") else rest


def nvlabs_to_timm_key(key: str, num_stages: int = 4) -> str:
    """The timm name of an NVlabs GCVit parameter; names it does not know come back unchanged
    (so that the strict key report shows them)."""
    if key.startswith("patch_embed.proj."):
        return "stem.conv1." + key.removeprefix("patch_embed.proj.")
    if key.startswith("patch_embed.conv_down."):
        return "stem.down." + _reduce_size_key(key.removeprefix("patch_embed.conv_down."))
    if key.startswith("norm."):
        return f"stages.{num_stages - 1}.{key}"
    if key.startswith("head."):
        return "head.fc." + key.removeprefix("head.")
    level = _NVLABS_LEVEL.fullmatch(key)
    if level is None:
        return key
    i, rest = int(level[1]), level[2]
    if rest.startswith("downsample."):  # NVlabs' level i ends with what starts timm's stage i + 1
        return f"stages.{i + 1}.downsample." + _reduce_size_key(rest.removeprefix("downsample."))
    query = _NVLABS_QUERY.fullmatch(rest)
    if query is not None:
        return f"stages.{i}.global_block.blocks.conv{int(query[1]) + 1}." + _mbconv_key(query[2])
    rest = re.sub(r"\.gamma([12])$", r".ls\1.gamma", rest)
    rest = rest.replace("attn.relative_position_bias_table", "attn.rel_pos.relative_position_bias_table")
    return f"stages.{i}.{rest}"


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


_GCVIT = dict(task="classify", input_size=(224, 224), hw_multiple=32, dynamic=("batch",), size_kwarg="img_size")


@register_model(**_GCVIT, description="GC ViT-XXT, 12M params, ImageNet-1k 79.9% top-1 (timm gcvit_xxtiny)")
def gcvit_xxtiny(**kw) -> GlobalContextVit:
    return GlobalContextVit(**{"depths": (2, 2, 6, 2), **kw})


@register_model(**_GCVIT, description="GC ViT-XT, 20M params, ImageNet-1k 82.0% top-1 (timm gcvit_xtiny)")
def gcvit_xtiny(**kw) -> GlobalContextVit:
    return GlobalContextVit(**{"depths": (3, 4, 6, 5), **kw})


@register_model(**_GCVIT, description="GC ViT-T, 28M params, ImageNet-1k 83.4% top-1 (timm gcvit_tiny)")
def gcvit_tiny(**kw) -> GlobalContextVit:
    return GlobalContextVit(**{"depths": (3, 4, 19, 5), **kw})
