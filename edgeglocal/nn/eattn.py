"""Crane's E-Attn: attention that sharpens patch tokens for zero-shot anomaly segmentation.

CLIP's q-k attention makes every patch attend to a few global "register" tokens, which washes
out local detail. E-Attn sums three self-similarity attentions, softmax(q q^T) + softmax(k k^T)
+ softmax(v v^T), so each token attends to tokens that look like itself, and applies the sum to V.
"""

from __future__ import annotations

import torch

__all__ = ["e_attention"]


def e_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """E-Attn over (b, heads, n, d) tensors; returns (b, heads, n, d)."""
    def self_similarity(t: torch.Tensor) -> torch.Tensor:
        return (t @ t.transpose(-2, -1) * scale).softmax(dim=-1)

    return (self_similarity(q) + self_similarity(k) + self_similarity(v)) @ v
