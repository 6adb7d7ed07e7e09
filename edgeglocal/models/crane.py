"""Crane-style zero-shot anomaly detection on a CLIP ViT. Task "anomaly".

The graph takes CLIP-normalised RGB images and returns a per-pixel ``anomaly_map`` (b, 1, H, W)
in [0, 1] and an image ``score`` (b,):

1. The CLIP image tower runs as usual (main path). From block ``depth - eattn_blocks`` on, a second
   *patch path* starts from the main-path tokens and accumulates E-Attn outputs computed on the
   main path's normalised tokens, skipping the FFN (Crane / CLIP-Surgery style dual path);
   E-Attn keeps patch tokens local (:mod:`edgeglocal.nn.eattn`).
2. Patch tokens of ``feature_layers`` (patch path where it exists, else main path) go through
   ``ln_post`` + ``proj``, and their cosine similarity with two constant text embeddings
   (normal, anomalous) divided by ``temperature`` gives a per-patch anomalous probability.
3. The layer maps are averaged, upsampled to the input size and Gaussian-smoothed with a fixed
   kernel inside the graph; the score pools the map weighted by itself.

Every step is per sample: a sample's outputs never depend on the rest of the batch.
The text embeddings come from a file made offline with the CLIP text tower (and Crane's learned
prompts); they are constants of the exported graph.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeglocal.errors import InputError
from edgeglocal.models._registry import register_model
from edgeglocal.models.clip_vit import CLIP_MEAN, CLIP_STD, VisionTransformer

__all__ = ["Crane", "crane_vit_b16", "crane_vit_l14_336", "load_text_embeddings", "random_text_embeddings"]


def random_text_embeddings(embed_dim: int, seed: int = 0) -> torch.Tensor:
    """Deterministic random unit vectors (2, embed_dim): a stand-in until real prompts are given."""
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(2, embed_dim, generator=g), dim=-1)


def load_text_embeddings(path: str | Path, embed_dim: int) -> torch.Tensor:
    """Read the (normal, anomalous) text embeddings, shape (2, embed_dim), from .npy, .safetensors
    or .pt/.pth (plain tensors only); a file holding several tensors must name one ``text_embeddings``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Text embeddings file {path} does not exist.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            import numpy as np

            value = torch.from_numpy(np.load(path, allow_pickle=False))
        elif suffix == ".safetensors":
            from safetensors.torch import load_file

            value = load_file(str(path))
        elif suffix in (".pt", ".pth"):
            value = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise InputError(f"Text embeddings file {path} must be .npy, .safetensors, .pt or .pth.")
    except InputError:
        raise
    except Exception as exc:  # any reader failure is the file's fault
        raise InputError(f"Text embeddings file {path} cannot be read ({type(exc).__name__}: {exc}).") from exc
    if isinstance(value, dict):
        tensors = {k: v for k, v in value.items() if isinstance(v, torch.Tensor)}
        value = tensors.get("text_embeddings", next(iter(tensors.values())) if len(tensors) == 1 else None)
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != (2, embed_dim):
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise InputError(
            f"Text embeddings file {path} must hold one tensor of shape (2, {embed_dim}) "
            f"(normal, anomalous), got {got}."
        )
    return F.normalize(value.float(), dim=-1)


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian with radius ceil(3 sigma)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


class Crane(nn.Module):
    """Zero-shot anomaly maps from a CLIP ViT with an E-Attn patch path (see module docstring).

    ``text_embeddings``: a (2, output_dim) tensor, a path to one, or None for deterministic
    random unit vectors (with a warning: maps are then meaningless until real embeddings are set).
    """

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 16, width: int = 768, layers: int = 12,
                 heads: int = 12, output_dim: int = 512, eattn_blocks: int = 9,
                 feature_layers: Sequence[int] = (6, 9, 12), temperature: float = 0.07,
                 sigma: float = 4.0, text_embeddings: torch.Tensor | str | Path | None = None) -> None:
        super().__init__()
        if not 0 < eattn_blocks <= layers:
            raise InputError(f"eattn_blocks must be in 1..{layers} (the depth), got {eattn_blocks}.")
        if not feature_layers or any(not 1 <= i <= layers for i in feature_layers):
            raise InputError(f"feature_layers must be block numbers in 1..{layers}, got {tuple(feature_layers)}.")
        self.visual = VisionTransformer(img_size, patch_size, width, layers, heads, output_dim)
        self.eattn_start = layers - eattn_blocks
        self.feature_layers = tuple(sorted(set(int(i) for i in feature_layers)))
        self.temperature = temperature
        self.register_buffer("text_embeddings", self._text_embeddings(text_embeddings, output_dim), persistent=False)
        self.register_buffer("smooth_kernel", gaussian_kernel1d(sigma), persistent=False)

    @staticmethod
    def _text_embeddings(value: torch.Tensor | str | Path | None, dim: int) -> torch.Tensor:
        if value is None:
            warnings.warn(
                "Crane has no text embeddings; using deterministic random ones, so anomaly maps are "
                "meaningless until you pass text_embeddings=<file of shape (2, D)>.",
                stacklevel=3,
            )
            return random_text_embeddings(dim)
        if isinstance(value, torch.Tensor):
            if tuple(value.shape) != (2, dim):
                raise InputError(f"text_embeddings must have shape (2, {dim}), got {tuple(value.shape)}.")
            return F.normalize(value.float(), dim=-1)
        return load_text_embeddings(value, dim)

    def set_text_embeddings(self, value: torch.Tensor | str | Path) -> None:
        """Replace the (normal, anomalous) embeddings, e.g. after loading image-tower weights."""
        current = self.text_embeddings
        self.text_embeddings = self._text_embeddings(value, current.shape[1]).to(current.device)

    def remap_checkpoint(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Accept a full OpenAI CLIP state dict (``visual.*`` kept, text tower dropped with a note)
        or a bare image-encoder one; resize the position grid to this model's input size."""
        visual = {k: v for k, v in state.items() if k.startswith("visual.")}
        if visual:
            dropped = len(state) - len(visual)
            if dropped:
                warnings.warn(
                    f"Ignoring {dropped} text-tower keys of the CLIP checkpoint (only the image tower is used).",
                    stacklevel=2,
                )
        else:
            visual = {f"visual.{k}": v for k, v in state.items()}
        return self.visual.adapt_state_dict(visual, prefix="visual.")

    def patch_features(self, images: torch.Tensor) -> tuple[list[torch.Tensor], tuple[int, int]]:
        """Normalised projected patch tokens (b, gh * gw, D) of each feature layer, and the grid."""
        x, grid = self.visual.embed(images)
        patch_path = None
        last = self.feature_layers[-1]
        feats = []
        for i, block in enumerate(self.visual.transformer.resblocks[:last]):
            if i >= self.eattn_start:
                base = x if patch_path is None else patch_path  # the patch path forks off here
                patch_path = base + block.attn.forward_eattn(block.ln_1(x))
            if patch_path is None or i + 1 < last:
                x = block(x)
            if i + 1 in self.feature_layers:
                tokens = (x if patch_path is None else patch_path)[:, 1:]
                feats.append(F.normalize(self.visual.project(tokens), dim=-1))
        return feats, grid

    def smooth(self, maps: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian blur of (b, 1, H, W) maps with replicate padding."""
        k = self.smooth_kernel.to(maps.dtype)
        r = k.numel() // 2
        maps = F.conv2d(F.pad(maps, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
        return F.conv2d(F.pad(maps, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = images.shape
        p = self.visual.patch_size
        if h % p or w % p:
            raise InputError(f"Crane input size {h}x{w} must be a multiple of the patch size {p}.")
        feats, (gh, gw) = self.patch_features(images)
        text = self.text_embeddings.to(images.dtype)
        probs = [((f @ text.T) / self.temperature).softmax(dim=-1)[..., 1] for f in feats]
        grid_map = torch.stack(probs, dim=0).mean(dim=0).reshape(b, 1, gh, gw)
        anomaly_map = self.smooth(F.interpolate(grid_map, size=(h, w), mode="bilinear", align_corners=False))
        flat = anomaly_map.flatten(1)
        score = (flat * flat).sum(dim=1) / flat.sum(dim=1).clamp(min=1e-6)
        return anomaly_map, score


_ANOMALY = dict(
    task="anomaly",
    mean=CLIP_MEAN,
    std=CLIP_STD,
    dynamic=("batch",),
    size_kwarg="img_size",
    outputs=(
        ("anomaly_map", "per-pixel anomalous probability in [0, 1], input resolution"),
        ("score", "image anomaly score: the map pooled with its own values as weights"),
    ),
)


@register_model(input_size=(224, 224), hw_multiple=16,
                description="Crane zero-shot anomaly maps on CLIP ViT-B/16 (E-Attn patch path)", **_ANOMALY)
def crane_vit_b16(**kwargs) -> Crane:
    cfg = dict(img_size=224, patch_size=16, width=768, layers=12, heads=12, output_dim=512,
               eattn_blocks=9, feature_layers=(6, 9, 12))
    return Crane(**{**cfg, **kwargs})


@register_model(input_size=(336, 336), hw_multiple=14,
                description="Crane zero-shot anomaly maps on CLIP ViT-L/14@336 (E-Attn patch path)", **_ANOMALY)
def crane_vit_l14_336(**kwargs) -> Crane:
    cfg = dict(img_size=336, patch_size=14, width=1024, layers=24, heads=16, output_dim=768,
               eattn_blocks=20, feature_layers=(6, 12, 18, 24))
    return Crane(**{**cfg, **kwargs})
