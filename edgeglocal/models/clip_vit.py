"""The CLIP ViT image encoder with OpenAI CLIP's parameter names.

Names and shapes follow OpenAI's ``VisionTransformer`` (``conv1``, ``class_embedding``,
``positional_embedding``, ``ln_pre``, ``transformer.resblocks.N.{ln_1, attn.in_proj_weight,
attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}``, ``ln_post``, ``proj``) so that the
``visual.*`` half of an OpenAI CLIP checkpoint loads strictly. Tokens are batch-first (b, n, c);
attention is written with matmuls so that it exports to plain ONNX ops.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from edgeglocal.models.checkpoint import resize_pos_embed
from edgeglocal.nn.eattn import e_attention

__all__ = ["CLIPAttention", "QuickGELU", "ResidualAttentionBlock", "VisionTransformer"]

#: CLIP's image normalisation (RGB, after scaling to [0, 1]).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the GELU approximation OpenAI CLIP was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class CLIPAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (width // heads) ** -0.5
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(b, n, c) -> q, k, v as (b, heads, n, c / heads)."""
        b, n, c = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        return qkv.reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        b, h, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
        return self._merge(attn @ v)

    def forward_eattn(self, x: torch.Tensor) -> torch.Tensor:
        """Crane's E-Attn (:func:`edgeglocal.nn.eattn.e_attention`) with the same projections."""
        return self._merge(e_attention(*self.qkv(x), scale=self.scale))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = CLIPAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(width * 4, width)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """Holds ``resblocks`` so the names match OpenAI's ``transformer.resblocks.N``."""

    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))


class VisionTransformer(nn.Module):
    """OpenAI CLIP's image tower. ``forward`` returns the projected class embedding (b, output_dim).

    ``img_size`` (int or (H, W)) fixes the stored position-embedding grid; other input sizes
    (multiples of the patch size) interpolate it bicubically on the fly, and
    :meth:`adapt_state_dict` resizes a checkpoint's grid to this model's.
    """

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 16, width: int = 768, layers: int = 12,
                 heads: int = 12, output_dim: int = 512) -> None:
        super().__init__()
        self.patch_size = patch_size
        h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
        self.grid = (h // patch_size, w // patch_size)
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, patch_size, patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.grid[0] * self.grid[1] + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    @property
    def depth(self) -> int:
        return len(self.transformer.resblocks)

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """(grid_h * grid_w + 1, width), interpolated when ``grid`` differs from the stored one."""
        if grid == self.grid:
            return self.positional_embedding
        return resize_pos_embed(self.positional_embedding[None], grid, num_prefix_tokens=1)[0]

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Images (b, 3, H, W) -> tokens after ``ln_pre`` (b, 1 + gh * gw, width) and the grid."""
        x = self.conv1(images)
        grid = (x.shape[-2], x.shape[-1])
        x = x.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.position_embedding(grid).to(x.dtype)
        return self.ln_pre(x), grid

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """``ln_post`` then ``proj``: tokens (..., width) -> (..., output_dim) in CLIP's joint space."""
        return self.ln_post(tokens) @ self.proj

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x, _ = self.embed(images)
        for block in self.transformer.resblocks:
            x = block(x)
        return self.project(x[:, 0])

    def adapt_state_dict(self, state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
        """Resize ``{prefix}positional_embedding`` in ``state`` to this model's grid."""
        key = prefix + "positional_embedding"
        if key in state and state[key].shape != self.positional_embedding.shape:
            state = dict(state)
            state[key] = resize_pos_embed(state[key][None], self.grid, num_prefix_tokens=1)[0]
        return state
