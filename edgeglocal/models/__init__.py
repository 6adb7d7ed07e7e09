"""Global-local architectures (VCMamba, GC ViT, CoSwin, ...) behind one registry.

``create("vcmamba_s")`` builds a model, ``load_checkpoint(model, "w.pth")`` loads weights with a
strict key report, ``list_models()`` lists names and ``get_config(name)`` says how to feed it.
"""

from __future__ import annotations

from edgeglocal.models._registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ModelConfig,
    create,
    get_config,
    list_models,
    register_model,
)
from edgeglocal.models.checkpoint import load_checkpoint, read_state_dict

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ModelConfig",
    "create",
    "get_config",
    "list_models",
    "load_checkpoint",
    "read_state_dict",
    "register_model",
]
