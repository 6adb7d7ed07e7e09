"""Where each tensor of a loaded model came from, for checkpoints filled with random values."""

from __future__ import annotations

from typing import Callable

import torch

from edgeglocal.models import load_checkpoint


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


def assert_own_layout_loads_unchanged(make: Callable[[], torch.nn.Module], arch: str) -> None:
    """A checkpoint already in the model's own layout passes ``remap_checkpoint`` untouched and loads exactly."""
    src = make()
    with torch.no_grad():
        for p in src.parameters():
            p.normal_()
    state = src.state_dict()
    dst = make()
    assert dst.remap_checkpoint(state) is state
    report = load_checkpoint(dst, state, arch=arch)
    assert report.ok and report.loaded == len(state)
    for k, v in dst.state_dict().items():
        assert torch.equal(v, state[k]), k
