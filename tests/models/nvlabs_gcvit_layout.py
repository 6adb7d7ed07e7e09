"""State dicts in the layout of NVIDIA's GC ViT code (github.com/NVlabs/GCVit, ``models/gc_vit.py``).

Built from that file's module structure (read at commit 709a8c4d, 2023; the pre-08/2022 version,
commit 02d58ef2, differs only in ``levels.N.to_q_global`` having no ``q_global_gen.`` parent):

    GCViT: patch_embed = PatchEmbed(proj = Conv2d(in, dim, 3, 2, 1), conv_down = ReduceSize(keep_dim))
           levels[i] = GCViTLayer(dim * 2**i): blocks[j] = GCViTBlock, downsample = ReduceSize (i < last),
                       q_global_gen.to_q_global = FeatExtract x {3, 2, 1, 1} for input res R/4, R/8, R/16, R/32
           norm = LayerNorm(dim * 8), head = Linear
    ReduceSize: conv = Sequential(dw Conv2d 3x3, GELU, SE, pw Conv2d 1x1), reduction = Conv2d 3x3 s2
                (no bias), norm2, norm1 = LayerNorm (registered in that order)
    FeatExtract: the same ``conv`` Sequential (+ MaxPool2d, no parameters)
    SE(dim, dim): fc = Sequential(Linear(dim, int(dim * 0.25), bias=False), GELU, Linear(.., dim, bias=False), Sigmoid)
    GCViTBlock: gamma1/gamma2 (only with layer_scale), norm1, attn, norm2, mlp.fc1/fc2;
                attn (even j: WindowAttention, qkv 3*dim; odd j: WindowAttentionGlobal, qkv 2*dim) holds
                relative_position_bias_table ((2w-1)^2, heads), the relative_position_index (w^2, w^2)
                int64 buffer, qkv, proj

This file reproduces names and shapes only; nothing of NVIDIA's code is copied.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: gc_vit_xxtiny as NVlabs registers it.
XXTINY = {"depths": (2, 2, 6, 2), "num_heads": (2, 4, 8, 16), "window_size": (7, 7, 14, 7), "dim": 64,
          "mlp_ratio": 3}

#: Reference numbers for gc_vit_xxtiny, counted by hand from the constructors above (no tool
#: involved): patch_embed 45,632; levels 0-3 (blocks + query generator + downsample)
#: 79,972 + 20,160 + 80,832 | 315,592 + 51,456 + 321,408 | 3,788,208 + 100,608 + 1,281,792 |
#: 4,997,920 + 397,824; norm + head 514,024. Total 11,995,428, the "#Params 12 (M)" of NVlabs'
#: README for GC ViT-XXT (timm: 12.0M). Tensors: 11 (patch_embed) + 12 blocks x 14 + 3 x 9
#: (downsample) + 7 x 4 (FeatExtract) + 2 + 2 = 238, of which 12 are relative_position_index buffers.
XXTINY_PARAMS = 11_995_428
XXTINY_TENSORS = 238
XXTINY_INDEX_BUFFERS = 12


def _conv_sequential(prefix: str, dim: int) -> dict[str, tuple[int, ...]]:
    hidden = int(dim * 0.25)
    return {
        f"{prefix}conv.0.weight": (dim, 1, 3, 3),
        f"{prefix}conv.2.fc.0.weight": (hidden, dim),
        f"{prefix}conv.2.fc.2.weight": (dim, hidden),
        f"{prefix}conv.3.weight": (dim, dim, 1, 1),
    }


def _reduce_size(prefix: str, dim: int, dim_out: int) -> dict[str, tuple[int, ...]]:
    return {
        **_conv_sequential(prefix, dim),
        f"{prefix}reduction.weight": (dim_out, dim, 3, 3),
        f"{prefix}norm2.weight": (dim_out,), f"{prefix}norm2.bias": (dim_out,),
        f"{prefix}norm1.weight": (dim,), f"{prefix}norm1.bias": (dim,),
    }


def _block(prefix: str, dim: int, heads: int, window: int, use_global: bool, mlp_ratio: float,
           layer_scale: bool) -> dict[str, tuple[int, ...]]:
    hidden, qkv = int(dim * mlp_ratio), dim * (2 if use_global else 3)
    shapes = {f"{prefix}gamma1": (dim,), f"{prefix}gamma2": (dim,)} if layer_scale else {}
    return shapes | {
        f"{prefix}norm1.weight": (dim,), f"{prefix}norm1.bias": (dim,),
        f"{prefix}attn.relative_position_bias_table": ((2 * window - 1) ** 2, heads),
        f"{prefix}attn.relative_position_index": (window * window, window * window),
        f"{prefix}attn.qkv.weight": (qkv, dim), f"{prefix}attn.qkv.bias": (qkv,),
        f"{prefix}attn.proj.weight": (dim, dim), f"{prefix}attn.proj.bias": (dim,),
        f"{prefix}norm2.weight": (dim,), f"{prefix}norm2.bias": (dim,),
        f"{prefix}mlp.fc1.weight": (hidden, dim), f"{prefix}mlp.fc1.bias": (hidden,),
        f"{prefix}mlp.fc2.weight": (dim, hidden), f"{prefix}mlp.fc2.bias": (dim,),
    }


def nvlabs_gcvit_shapes(depths: Sequence[int], num_heads: Sequence[int], window_size: Sequence[int],
                        dim: int, mlp_ratio: float, num_classes: int = 1000, in_chans: int = 3,
                        layer_scale: bool = False, query_gen: bool = True) -> dict[str, tuple[int, ...]]:
    """Name -> shape of an NVlabs ``GCViT(...).state_dict()`` at 224 x 224 (``query_gen=False``:
    the pre-08/2022 layout, ``levels.N.to_q_global``)."""
    shapes = {"patch_embed.proj.weight": (dim, in_chans, 3, 3), "patch_embed.proj.bias": (dim,)}
    shapes |= _reduce_size("patch_embed.conv_down.", dim, dim)
    query = "q_global_gen.to_q_global" if query_gen else "to_q_global"
    for i, depth in enumerate(depths):
        level_dim, level = dim * 2**i, f"levels.{i}."
        for j in range(depth):
            shapes |= _block(f"{level}blocks.{j}.", level_dim, num_heads[i], window_size[i],
                             use_global=j % 2 == 1, mlp_ratio=mlp_ratio, layer_scale=layer_scale)
        if i < len(depths) - 1:
            shapes |= _reduce_size(f"{level}downsample.", level_dim, 2 * level_dim)
        for k in range({4: 3, 8: 2, 16: 1, 32: 1}[2 ** (i + 2)]):  # FeatExtract count by input res
            shapes |= _conv_sequential(f"{level}{query}.{k}.", level_dim)
    num_features = dim * 2 ** (len(depths) - 1)
    return shapes | {
        "norm.weight": (num_features,), "norm.bias": (num_features,),
        "head.weight": (num_classes, num_features), "head.bias": (num_classes,),
    }


def random_nvlabs_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values (every tensor distinct); index buffers hold valid int64 indices."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("relative_position_index"):
            state[name] = torch.randint(0, shape[0], shape, generator=gen)
        else:
            state[name] = torch.randn(shape, generator=gen)
    return state
