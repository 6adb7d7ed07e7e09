"""Layers built on edgeglocal ops (SS2D, window / global-query attention) and shared blocks."""

from edgeglocal.nn.basic import DropPath, LayerNorm2d, LayerScale, Mlp
from edgeglocal.nn.channel_attention import ChannelAttention, ColorCalibratedChannelAttention, color_statistics
from edgeglocal.nn.eattn import e_attention
from edgeglocal.nn.global_query import GlobalQueryGen, MbConvBlock, SqueezeExcite
from edgeglocal.nn.pooling import GeM, GeMPlus, RegionalGeM, ScaleGeM, gem
from edgeglocal.nn.ss2d import SS2D
from edgeglocal.nn.window_attention import GlobalWindowAttention, RelPosBias, WindowAttention, pad_to_windows

__all__ = [
    "ChannelAttention",
    "ColorCalibratedChannelAttention",
    "DropPath",
    "GeM",
    "GeMPlus",
    "GlobalQueryGen",
    "GlobalWindowAttention",
    "LayerNorm2d",
    "LayerScale",
    "MbConvBlock",
    "Mlp",
    "RegionalGeM",
    "RelPosBias",
    "SS2D",
    "ScaleGeM",
    "SqueezeExcite",
    "WindowAttention",
    "color_statistics",
    "e_attention",
    "gem",
    "pad_to_windows",
]
