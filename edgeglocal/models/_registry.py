"""The model registry: named factories plus what a bundle needs to know about each model.

timm-style: ``@register_model(...)`` on a factory ``fn(**cfg) -> nn.Module``; ``create(name, **cfg)``
builds it. The decorator also records a :class:`ModelConfig` (task, default input size,
preprocessing, dynamic-dims capability, input/output names) so that ``edgeglocal export`` can write
the manifest without knowing the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from edgeglocal.bundle import Preprocess, TensorSpec
from edgeglocal.errors import InputError

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Dynamic-dim modes, as ``edgeglocal export --dynamic`` spells them.
DYNAMIC_MODES = ("batch", "hw", "all")

F = TypeVar("F", bound=Callable[..., "torch.nn.Module"])


@dataclass(frozen=True)
class ModelConfig:
    """What the exporter and the runtime need to know about a registered model.

    ``dynamic``: the subset of ``DYNAMIC_MODES`` the model exports correctly ("hw" needs every
    spatial size that is a multiple of ``hw_multiple``, e.g. blocks that pad to window multiples).
    ``outputs``: output name -> meaning, in graph order. ``size_kwarg``: the factory keyword
    that builds the model for another input size (e.g. ``img_size``), None when any size works.
    """

    name: str
    task: str
    input_size: tuple[int, int]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color: str = "RGB"
    resize: str = "stretch"
    hw_multiple: int = 32
    dynamic: tuple[str, ...] = ("batch",)
    input_name: str = "images"
    outputs: tuple[tuple[str, str], ...] = (("logits", "class scores before softmax"),)
    description: str = ""
    size_kwarg: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def output_names(self) -> list[str]:
        return [name for name, _ in self.outputs]

    def preprocess(self, size: tuple[int, int] | None = None) -> Preprocess:
        """The manifest's preprocessing for an input of ``size`` (H, W)."""
        return Preprocess(
            color=self.color,
            mean=list(self.mean),
            std=list(self.std),
            resize=self.resize,
            size=list(size or self.input_size),
            multiple=self.hw_multiple,
        )

    def check_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """Validate an (H, W) input size against ``hw_multiple``; return it as a tuple."""
        h, w = (int(v) for v in size)
        if h <= 0 or w <= 0 or h % self.hw_multiple or w % self.hw_multiple:
            raise InputError(
                f"Input size {h}x{w} for {self.name} must be positive multiples of "
                f"{self.hw_multiple}."
            )
        return h, w

    def input_specs(self, size: tuple[int, int] | None = None, dynamic: str | None = "batch") -> list[TensorSpec]:
        """Input TensorSpecs for ``to_onnx``: NCHW float32 with named dynamic dims."""
        h, w = size or self.input_size
        if dynamic is not None and dynamic not in self.dynamic:
            raise InputError(
                f"--dynamic {dynamic} is not supported by {self.name}; expected one of "
                f"{', '.join(self.dynamic) or 'none (static shapes only)'}."
            )
        batch = "batch" if dynamic in ("batch", "all") else 1
        hh, ww = ("height", "width") if dynamic in ("hw", "all") else (h, w)
        return [
            TensorSpec(
                name=self.input_name,
                shape=[batch, 3, hh, ww],
                layout="NCHW",
                meaning="image",
                preprocess=self.preprocess((h, w)),
            )
        ]

    def output_specs(self) -> list[TensorSpec]:
        """Output TensorSpecs (shapes are filled in by the exporter from the graph)."""
        return [TensorSpec(name=n, shape=[], meaning=m) for n, m in self.outputs]


_MODELS: dict[str, tuple[Callable[..., Any], ModelConfig]] = {}


def register_model(
    name: str | None = None, *, task: str, input_size: tuple[int, int], **config: Any
) -> Callable[[F], F]:
    """Register a factory under ``name`` (default: the function's name) with its ModelConfig."""

    def decorator(fn: F) -> F:
        key = name or fn.__name__
        if key in _MODELS and _MODELS[key][0] is not fn:
            raise ValueError(f"model {key!r} is registered twice")
        _MODELS[key] = (fn, ModelConfig(name=key, task=task, input_size=tuple(input_size), **config))
        return fn

    return decorator


def _entry(name: str) -> tuple[Callable[..., Any], ModelConfig]:
    _import_builtin_models()
    if name not in _MODELS:
        raise InputError(
            f"Unknown architecture {name!r}; expected one of {', '.join(sorted(_MODELS))}."
        )
    return _MODELS[name]


def create(name: str, **cfg: Any) -> "torch.nn.Module":
    """Build model ``name`` with random weights; ``cfg`` overrides the factory's keyword defaults."""
    fn, model_cfg = _entry(name)
    return fn(**{**model_cfg.defaults, **cfg})


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """The ModelConfig of ``name`` (fields may be overridden, e.g. ``input_size``)."""
    return replace(_entry(name)[1], **overrides) if overrides else _entry(name)[1]


def list_models(task: str | None = None) -> list[str]:
    """Registered names, sorted; only those of ``task`` when given."""
    _import_builtin_models()
    return sorted(n for n, (_, c) in _MODELS.items() if task is None or c.task == task)


_imported = {"done": False}


def _import_builtin_models() -> None:
    """Import every model module of this package once, so their ``@register_model`` runs.

    Discovering modules (rather than listing them) lets other engineers add architectures
    without editing the registry.
    """
    if _imported["done"]:
        return
    _imported["done"] = True
    import importlib
    import pkgutil

    import edgeglocal.models as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name != "checkpoint":
            importlib.import_module(f"edgeglocal.models.{info.name}")
