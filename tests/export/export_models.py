"""Small models for the export tests (importable by name, so `edgeglocal check --model` can use them)."""

from __future__ import annotations

import torch

from edgeglocal.ops import window_attention

#: (b, c, h, w) of the shared bundle's example input (tests/export/conftest.py).
EXAMPLE_SHAPE = (2, 3, 16, 24)


class TinyWindowNet(torch.nn.Module):
    """Conv stem, one shifted-window attention block, two outputs (feature map and pooled logits)."""

    def __init__(self, c: int = 16, heads: int = 2, classes: int = 5) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, c, 3, stride=2, padding=1)
        self.qkv = torch.nn.Linear(c, 3 * c)
        self.proj = torch.nn.Linear(c, c)
        self.table = torch.nn.Parameter(0.5 * torch.randn(49, heads))
        self.head = torch.nn.Linear(c, classes)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x).permute(0, 2, 3, 1)
        x = x + self.proj(window_attention(self.qkv(x), self.table, num_heads=self.heads, window_size=4, shift=2))
        return x.permute(0, 3, 1, 2), self.head(x.mean((1, 2)))


def tiny_window_net(seed: int = 0) -> TinyWindowNet:
    torch.manual_seed(seed)
    return TinyWindowNet().eval()


def tiny_window_net_perturbed() -> TinyWindowNet:
    """The same network with one weight nudged: a bundle exported from tiny_window_net must fail parity."""
    model = tiny_window_net()
    with torch.no_grad():
        model.proj.weight[0, 0] += 0.05
    return model
