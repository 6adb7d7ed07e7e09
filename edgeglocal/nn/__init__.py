"""Layers built on edgeglocal ops (SS2D, window / global-query attention) and shared blocks."""

from edgeglocal.nn.basic import DropPath, LayerNorm2d, LayerScale, Mlp
from edgeglocal.nn.global_query import GlobalQueryGen, MbConvBlock, SqueezeExcite
from edgeglocal.nn.ss2d import SS2D
from edgeglocal.nn.window_attention import GlobalWindowAttention, RelPosBias, WindowAttention, pad_to_windows

__all__ = [
    "DropPath",
    "GlobalQueryGen",
    "GlobalWindowAttention",
    "LayerNorm2d",
    "LayerScale",
    "MbConvBlock",
    "Mlp",
    "RelPosBias",
    "SS2D",
    "SqueezeExcite",
    "WindowAttention",
    "pad_to_windows",
]
