"""Side-by-side speed of models x backends x precisions, measured in one run.

A model is an architecture name (built at random init, or from ``checkpoint``, and exported once
per run into a temporary bundle) or an existing fp32 bundle. fp16 and int8 bundles come from
:func:`edgeglocal.export.quantize.quantize`, int8 calibrated on real frames. Every combination
gives a row: ``ok`` with latency statistics and the speed ratio against PyTorch eager fp32 of the
same model in the same run, ``unavailable`` with why, or ``failed`` with the error's sentence.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from edgeglocal.bench.backends import BACKENDS, PRECISIONS, Unavailable, ort_runner, torch_runner, trt_runner
from edgeglocal.bench.timing import Latency, measure
from edgeglocal.bundle import find_manifest
from edgeglocal.errors import EdgeglocalError, InputError
from edgeglocal.evaluation.datasets import OPENCV_DATA


@dataclass
class BenchRow:
    model: str
    backend: str
    precision: str
    status: str  # ok | unavailable | failed
    reason: str = ""
    size_bytes: int | None = None
    latency: Latency | None = None
    vs_torch: float | None = None  # PyTorch eager fp32 mean latency / this mean latency

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["latency"] = self.latency.to_dict() if self.latency else None
        return d


@dataclass
class BenchModel:
    """What each backend needs: the eager module (if any), bundles per precision, and the input."""

    name: str
    bundles: dict[str, Path]
    x: np.ndarray
    module: Any = None
    errors: dict[str, str] = field(default_factory=dict)  # precision -> why its bundle is missing


def default_calibration() -> Path:
    """Real frames for int8 calibration: the repository's sample video, else opencv-doc's, else its photos."""
    media = Path(__file__).resolve().parents[2] / "samples" / "media"
    for candidate in (media / "vtest_80.mp4", OPENCV_DATA / "vtest.avi"):
        if candidate.is_file():
            return candidate
    if media.is_dir() and any(media.glob("*.jpg")):
        return media
    raise InputError("No calibration frames found (samples/media or opencv-doc's vtest.avi); pass --calib.")


def _file_size(bundle: Path) -> int:
    """The graph plus any external-data files next to it that the graph names."""
    import onnx

    size = bundle.stat().st_size
    model = onnx.load(str(bundle), load_external_data=False)
    names = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    return size + sum((bundle.parent / n).stat().st_size for n in names if (bundle.parent / n).is_file())


def _export_arch(arch: str, work: Path, imgsz: tuple[int, int] | None, batch: int,
                 checkpoint: Path | None, model_kwargs: dict[str, Any]) -> tuple[Any, Path, tuple[int, int]]:
    import torch

    from edgeglocal.export import to_onnx
    from edgeglocal.models import create, get_config, load_checkpoint

    cfg = get_config(arch)
    size = cfg.check_size(imgsz) if imgsz else cfg.input_size
    overrides = {cfg.size_kwarg: size} if cfg.size_kwarg and size != cfg.input_size else {}
    module = create(arch, **{**overrides, **model_kwargs}).eval()
    if checkpoint is not None:
        load_checkpoint(module, checkpoint, arch=arch)
    path = work / arch / f"{arch}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    to_onnx(module, torch.randn(batch, 3, *size), path, task=cfg.task, arch=arch, dynamic=None,
            input_specs=cfg.input_specs(size, None), output_specs=cfg.output_specs())
    return module, path, size


def _input_for(bundle: Path, imgsz: tuple[int, int] | None, batch: int) -> np.ndarray:
    manifest = find_manifest(bundle)
    if manifest is None:
        raise InputError(f"Bundle {bundle} has no manifest; bench needs NAME.json to know the input shape.")
    spec = manifest.inputs[0]
    h, w = imgsz or (spec.preprocess.size if spec.preprocess else spec.shape[2:])
    if not isinstance(h, int) or not isinstance(w, int):
        raise InputError(f"Bundle {bundle} has a dynamic input size; pass --imgsz H W.")
    fixed_b = spec.shape[0] if isinstance(spec.shape[0], int) else None
    if fixed_b is not None and fixed_b != batch:
        raise InputError(f"Bundle {bundle} was exported for batch {fixed_b}; pass --batch {fixed_b}.")
    return np.random.default_rng(0).random((batch, 3, h, w), dtype=np.float32)


def check_models(models: list[str]) -> None:
    """Fail early: every model must be an existing .onnx file or a registered architecture name."""
    if not models:
        raise InputError("bench needs at least one bundle or architecture name.")
    for spec in models:
        path = Path(spec)
        if path.suffix == ".onnx" or path.exists():
            if not path.is_file() or path.suffix != ".onnx":
                raise InputError(f"Model {spec} is not an .onnx bundle file; expected a bundle or an architecture name.")
        else:
            from edgeglocal.models import get_config  # torch: only when an architecture is named

            get_config(spec)  # raises "Unknown architecture ..., expected one of ..."


def prepare(spec: str, work: Path, precisions: Iterable[str], imgsz: tuple[int, int] | None = None,
            batch: int = 1, checkpoint: Path | None = None, calib: Path | None = None,
            log: Callable[[str], None] = lambda _: None, model_kwargs: dict[str, Any] | None = None) -> BenchModel:
    """Export (for an arch name; ``model_kwargs`` override its factory's) and quantize one model into ``work``."""
    from edgeglocal.export.quantize import quantize

    check_models([spec])
    path = Path(spec)
    if path.suffix == ".onnx":
        bm = BenchModel(path.stem, {"fp32": path}, _input_for(path, imgsz, batch))
        manifest = find_manifest(path)
        mode = manifest.precision.get("mode", "fp32") if manifest else "fp32"
        if mode != "fp32":
            bm.bundles = {mode: path}
    else:
        log(f"export {spec}")
        module, fp32, size = _export_arch(spec, work, imgsz, batch, checkpoint, model_kwargs or {})
        bm = BenchModel(spec, {"fp32": fp32}, np.random.default_rng(0).random((batch, 3, *size), dtype=np.float32),
                        module)
    for p in precisions:
        if p in bm.bundles or p == "fp32" or "fp32" not in bm.bundles:
            continue
        log(f"quantize {bm.name} to {p}")
        out = work / bm.name / f"{bm.name}_{p}.onnx"
        try:
            source = (calib or default_calibration()) if p == "int8" else calib
            bm.bundles[p] = quantize(bm.bundles["fp32"], p, calib=source, calib_size=8, output=out).path
        except EdgeglocalError as exc:
            bm.errors[p] = str(exc)
    return bm


def bench_model(bm: BenchModel, backends: Iterable[str], precisions: Iterable[str], warmup: int = 3,
                iters: int = 20) -> list[BenchRow]:
    """Time every backend x precision of one prepared model; torch fp32 first, as the reference."""
    rows = []
    for precision in precisions:
        for backend in backends:
            row = BenchRow(bm.name, backend, precision, "ok")
            try:
                if backend == "torch":
                    if bm.module is None:
                        raise Unavailable("PyTorch eager needs an architecture name, not an exported bundle.")
                    fn = torch_runner(bm.module, bm.x, precision)
                else:
                    if precision not in bm.bundles:
                        raise Unavailable(bm.errors.get(precision) or f"no {precision} bundle (give the fp32 bundle "
                                          "or an architecture name to derive it).")
                    row.size_bytes = _file_size(bm.bundles[precision])
                    fn = trt_runner(bm.bundles[precision], bm.x) if backend == "trt" else \
                        ort_runner(bm.bundles[precision], backend, bm.x)
                row.latency = measure(fn, len(bm.x), warmup, iters)
            except Unavailable as exc:
                row.status, row.reason = "unavailable", str(exc)
            except Exception as exc:  # one failing backend must not lose the other rows
                row.status, row.reason = "failed", f"{type(exc).__name__}: {exc}".splitlines()[0]
            rows.append(row)
    ref = next((r for r in rows if r.backend == "torch" and r.precision == "fp32" and r.latency), None)
    for r in rows:
        if ref is not None and r.latency is not None:
            r.vs_torch = ref.latency.mean_ms / r.latency.mean_ms
    return rows


def benchmark(models: list[str], backends: Iterable[str] = ("torch", "ort-cpu"), precisions: Iterable[str] = ("fp32",),
              imgsz: tuple[int, int] | None = None, batch: int = 1, warmup: int = 3, iters: int = 20,
              checkpoint: Path | None = None, calib: Path | None = None,
              log: Callable[[str], None] = lambda _: None, model_kwargs: dict[str, Any] | None = None) -> list[BenchRow]:
    """Rows for every model x backend x precision (see the module docstring)."""
    backends, precisions = list(backends), list(precisions)
    for b in backends:
        if b not in BACKENDS:
            raise InputError(f"Backend {b!r} is unknown; expected some of {', '.join(BACKENDS)}.")
    for p in precisions:
        if p not in PRECISIONS:
            raise InputError(f"Precision {p!r} is unknown; expected some of {', '.join(PRECISIONS)}.")
    check_models(models)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeglocal-bench-") as tmp:
        for spec in models:
            bm = prepare(spec, Path(tmp), precisions, imgsz, batch, checkpoint, calib, log, model_kwargs)
            log(f"time {bm.name}")
            rows.extend(bench_model(bm, backends, precisions, warmup, iters))
    return rows
