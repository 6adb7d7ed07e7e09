"""Where each tensor of a loaded model came from, for checkpoints filled with random values."""

from __future__ import annotations

import torch


def tensor_origins(model: torch.nn.Module, source: dict[str, torch.Tensor]) -> dict[str, str]:
    """For every model tensor, the ``source`` tensor whose values it holds (all values random, so the
    first few identify a tensor); each match is checked element-wise (a reshape is allowed)."""
    by_values = {(v.numel(), tuple(v.flatten()[:4].tolist())): k for k, v in source.items()}
    origin = {}
    for key, value in model.state_dict().items():
        name = by_values[(value.numel(), tuple(value.flatten()[:4].tolist()))]
        assert torch.equal(value, source[name].reshape(value.shape)), key
        origin[key] = name
    return origin
