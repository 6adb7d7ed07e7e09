"""Does the exported graph compute what the PyTorch model computes? (Polygraphy-style comparison.)

``check_parity`` runs the model in PyTorch and the bundle on ONNX Runtime CPU with the same
inputs and reports, per output, absolute and relative errors and the smallest ``atol`` that would
pass at the given ``rtol`` (elementwise ``|onnx - torch| <= atol + rtol * |torch|``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from edgeglocal.bundle import Manifest, find_manifest, manifest_path
from edgeglocal.errors import BackendUnavailable, BundleError, InputError

_NP_DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64,
              "int64": np.int64, "int32": np.int32, "uint8": np.uint8, "bool": np.bool_}


@dataclass
class OutputParity:
    """Errors of one output over all compared inputs (max of maxima, mean of means)."""

    name: str
    shape: list[int]
    max_abs: float
    mean_abs: float
    max_rel: float
    mean_rel: float
    min_atol: float
    passed: bool


@dataclass
class ParityReport:
    """The comparison of a bundle against its PyTorch model; ``to_dict`` is what the manifest stores."""

    passed: bool
    atol: float
    rtol: float
    n: int
    backend: str
    outputs: list[OutputParity] = field(default_factory=list)
    #: the compared inputs' shapes by name (the last input when n > 1; random ones share shapes)
    input_shapes: dict[str, list[int]] = field(default_factory=dict)

    @property
    def min_atol(self) -> float:
        """The smallest atol at which every output would pass (at this rtol)."""
        return max((o.min_atol for o in self.outputs), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "min_atol": self.min_atol}

    def store(self, bundle_path: str | Path) -> Manifest:
        """Write this report into the bundle manifest's ``parity`` field (atomically)."""
        manifest = Manifest.load(manifest_path(onnx_file(bundle_path)))
        manifest.parity = self.to_dict()
        manifest.save(manifest_path(onnx_file(bundle_path)))
        return manifest


def onnx_file(bundle_path: str | Path) -> Path:
    """``NAME.onnx`` for ``NAME.onnx`` or ``NAME.json``."""
    path = Path(bundle_path)
    onnx_path = path.with_suffix(".onnx") if path.suffix == ".json" else path
    if onnx_path.suffix != ".onnx":
        raise InputError(f"Bundle {path} must be an .onnx file (or its .json manifest).")
    if not onnx_path.is_file():
        raise BundleError(f"Bundle model {onnx_path} does not exist.")
    return onnx_path


def _session(onnx_path: Path) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendUnavailable("Parity checks need ONNX Runtime; install onnxruntime.") from exc
    try:
        return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise BundleError(f"ONNX Runtime cannot load {onnx_path} ({type(exc).__name__}: {exc}).") from exc


def _random_feeds(session: Any, manifest: Manifest | None, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Seeded inputs of the exported example shapes (or the graph's static shapes)."""
    examples = (manifest.extra.get("export", {}).get("example_shapes", {}) if manifest else {})
    dtypes = {s.name: s.dtype for s in manifest.inputs} if manifest else {}
    feeds = {}
    for inp in session.get_inputs():
        shape = examples.get(inp.name) or inp.shape
        if not all(isinstance(d, int) for d in shape):
            raise InputError(
                f"Input {inp.name!r} has dynamic shape {inp.shape} and the manifest records no example "
                f"shape; pass inputs to check_parity."
            )
        dtype = _NP_DTYPES.get(dtypes.get(inp.name, "float32"), np.float32)
        if np.issubdtype(dtype, np.floating):
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[inp.name] = rng.integers(0, 2 if dtype == np.bool_ else 10, size=shape).astype(dtype)
    return feeds


def _as_feeds(session: Any, inputs: Any) -> dict[str, np.ndarray]:
    names = [i.name for i in session.get_inputs()]
    if isinstance(inputs, Mapping):
        values = [inputs[n] for n in names if n in inputs]
    else:
        values = [inputs] if isinstance(inputs, (torch.Tensor, np.ndarray)) else list(inputs)
    if len(values) != len(names):
        raise InputError(f"inputs must give the {len(names)} model inputs {names}, got {len(values)}.")
    return {n: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
            for n, v in zip(names, values)}


def _to_model(value: np.ndarray, model: torch.nn.Module) -> torch.Tensor:
    """A feed as the model takes it: on the model's device, floats in its dtype (an fp16 bundle's
    inputs are compared against the fp32 model)."""
    param = next(iter(model.parameters()), None)
    tensor = torch.from_numpy(value)
    if param is None:
        return tensor
    return tensor.to(param.device, param.dtype if tensor.is_floating_point() else tensor.dtype)


def _flatten(out: Any) -> list[np.ndarray]:
    """Model outputs in graph order: a tensor, a (nested) tuple/list, or a dict (value order)."""
    if isinstance(out, torch.Tensor):
        return [out.detach().float().cpu().numpy()]
    if isinstance(out, Mapping):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [a for o in out for a in _flatten(o)]
    raise InputError(f"The model must return tensors (or tuples/dicts of them), got {type(out).__name__}.")


def _errors(actual: np.ndarray, expected: np.ndarray, rtol: float) -> dict[str, float]:
    actual, expected = actual.astype(np.float64), expected.astype(np.float64)
    abs_err = np.abs(actual - expected)
    if not np.array_equal(np.isnan(actual), np.isnan(expected)):
        return dict(max_abs=math.inf, mean_abs=math.inf, max_rel=math.inf, mean_rel=math.inf, min_atol=math.inf)
    abs_err = np.nan_to_num(abs_err, nan=0.0)
    rel_err = abs_err / np.maximum(np.abs(expected), np.finfo(np.float32).tiny)
    if abs_err.size == 0:
        return dict(max_abs=0.0, mean_abs=0.0, max_rel=0.0, mean_rel=0.0, min_atol=0.0)
    return dict(
        max_abs=float(abs_err.max()), mean_abs=float(abs_err.mean()),
        max_rel=float(rel_err.max()), mean_rel=float(rel_err.mean()),
        min_atol=float(max(0.0, (abs_err - rtol * np.abs(expected)).max())),
    )


def check_parity(
    model: torch.nn.Module,
    bundle_path: str | Path,
    inputs: Any = None,
    *,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    n: int = 1,
    seed: int = 0,
    on_step: Callable[[int], None] | None = None,
) -> ParityReport:
    """Compare ``model`` (eval mode, no grad) with the bundle on ONNX Runtime CPU.

    ``inputs``: a tensor/array, a sequence in graph-input order, or a dict by input name; when
    None, ``n`` seeded random inputs of the exported example shapes are compared.
    ``on_step(i)`` is called after each comparison (progress bars).
    """
    if n < 1 or atol < 0 or rtol < 0:
        raise InputError(f"n must be >= 1 and atol, rtol >= 0, got n={n}, atol={atol}, rtol={rtol}.")
    onnx_path = onnx_file(bundle_path)
    manifest = find_manifest(onnx_path)
    session = _session(onnx_path)
    rng = np.random.default_rng(seed)
    trials = [_as_feeds(session, inputs)] if inputs is not None else None
    count = 1 if trials else n
    stats: list[list[dict[str, float]]] = []
    shapes: list[list[int]] = []
    input_shapes: dict[str, list[int]] = {}
    was_training = model.training
    model.eval()
    try:
        for step in range(count):
            feeds = trials[0] if trials else _random_feeds(session, manifest, rng)
            with torch.no_grad():
                expected = _flatten(model(*(_to_model(v, model) for v in feeds.values())))
            actual = session.run(None, feeds)
            if len(actual) != len(expected):
                raise BundleError(
                    f"Bundle {onnx_path} has {len(actual)} outputs but the model returns {len(expected)}."
                )
            stats.append([_errors(a, e, rtol) for a, e in zip(actual, expected)])
            shapes = [list(a.shape) for a in actual]
            input_shapes = {name: list(v.shape) for name, v in feeds.items()}
            if on_step:
                on_step(step)
    finally:
        model.train(was_training)
    outputs = []
    for i, out in enumerate(session.get_outputs()):
        per = [s[i] for s in stats]
        worst = {k: max(p[k] for p in per) for k in ("max_abs", "max_rel", "min_atol")}
        means = {k: float(np.mean([p[k] for p in per])) for k in ("mean_abs", "mean_rel")}
        outputs.append(OutputParity(name=out.name, shape=shapes[i], **worst, **means,
                                    passed=worst["min_atol"] <= atol))
    return ParityReport(
        passed=all(o.passed for o in outputs), atol=atol, rtol=rtol, n=count,
        backend="onnxruntime:CPUExecutionProvider", outputs=outputs, input_shapes=input_shapes,
    )
