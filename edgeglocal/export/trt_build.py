"""Build a TensorRT engine from an exported bundle: ``NAME.onnx`` (+ ``NAME.json``) -> ``NAME.engine`` (+ json).

The edgeglocal plugin library is registered before parsing so that TensorRT 10.7+ picks our
plugins for edgeglocal nodes (the nodes carry ``plugin_namespace``/``plugin_version``); without it
TensorRT inlines the nodes' standard-ONNX function bodies. Precision follows the TensorRT major
version: 10.x builds a weakly typed network with the FP16/INT8 builder flags (INT8 only for
explicit Q/DQ graphs, no calibrator); 11.x builds a strongly typed network whose precision is the
graph's own, so an fp32 bundle must be quantized first. The engine is the plain serialized plan,
written atomically; its manifest is the ONNX manifest plus an ``engine`` record.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import onnx

from edgeglocal.bundle import Manifest, find_manifest, manifest_path
from edgeglocal.errors import BackendUnavailable, BundleError, ExportError, InputError
from edgeglocal.fsutil import atomic_path
from edgeglocal.runtime.cudart import CudaError, CudaRuntime
from edgeglocal.runtime.trt import find_plugin_library, import_tensorrt, load_plugin_library, trt_major

Shape = tuple[int, ...]
#: input name -> (min, opt, max)
Profile = dict[str, tuple[Shape, Shape, Shape]]
#: ``progress(phase, done, total)`` while TensorRT builds.
ProgressFn = Callable[[str, int, int], None]

_DIMS = re.compile(r"^\d+(x\d+)*$")


@dataclass
class BuildResult:
    engine: Path
    manifest: Path | None
    precision: str
    plugin_library: Path | None
    profile: Profile
    custom_ops: list[str]


def parse_shapes(text: str | None, input_names: list[str]) -> Profile:
    """Parse ``--shapes``: ``name:MIN/OPT/MAX[,name:...]``, dims joined by ``x``.

    The name may be left out when the model has one input; ``SHAPE`` alone means min = opt = max.
    """
    if not text:
        return {}
    profile: Profile = {}
    for item in text.split(","):
        name, sep, dims = item.strip().rpartition(":")
        if not sep:
            if len(input_names) != 1:
                raise InputError(
                    f"--shapes entry {item!r} needs an input name (one of {input_names}), e.g. "
                    f"{input_names[0] if input_names else 'input'}:1x3x224x224/1x3x512x512/4x3x1024x1024."
                )
            name = input_names[0]
        if name not in input_names:
            raise InputError(f"--shapes names input {name!r}, but the model's inputs are {input_names}.")
        parts = dims.split("/")
        if len(parts) not in (1, 3) or not all(_DIMS.match(p) for p in parts):
            raise InputError(
                f"--shapes entry {item!r} is not NAME:MIN/OPT/MAX with dims like 1x3x224x224."
            )
        shapes = [tuple(int(d) for d in p.split("x")) for p in parts] * (3 if len(parts) == 1 else 1)
        lo, opt, hi = shapes
        if not len(lo) == len(opt) == len(hi) or not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
            raise InputError(f"--shapes entry {item!r} must have equal ranks and MIN <= OPT <= MAX on every axis.")
        profile[name] = (lo, opt, hi)
    return profile


def graph_inputs(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    """Real graph inputs (initializers excluded) and their dims: int, or the dim's name when dynamic."""
    consts = {i.name for i in model.graph.initializer}
    out: dict[str, list[int | str]] = {}
    for value in model.graph.input:
        if value.name in consts:
            continue
        dims = value.type.tensor_type.shape.dim
        out[value.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    return out


def resolve_profile(inputs: dict[str, list[int | str]], shapes: Profile, manifest: Manifest | None) -> Profile:
    """One optimization profile for every input with dynamic dims.

    ``--shapes`` wins; otherwise a batch dim (axis 0) becomes 1 and NCHW height/width come from the
    manifest's preprocess size. Anything else must be given with ``--shapes``.
    """
    specs = {s.name: s for s in manifest.inputs} if manifest else {}
    profile: Profile = {}
    for name, dims in inputs.items():
        dynamic = [i for i, d in enumerate(dims) if not isinstance(d, int) or d <= 0]
        if name in shapes:
            lo, opt, hi = shapes[name]
            if len(lo) != len(dims):
                raise InputError(f"--shapes gives input {name!r} rank {len(lo)}, but the model's input is {_fmt(dims)}.")
            for i, d in enumerate(dims):
                if i not in dynamic and not lo[i] == opt[i] == hi[i] == d:
                    raise InputError(f"--shapes for input {name!r} changes axis {i}, which the model fixes to {d}.")
            profile[name] = shapes[name]
            continue
        if not dynamic:
            continue
        spec = specs.get(name)
        size = spec.preprocess.size if spec is not None and spec.preprocess is not None else None
        fixed = list(dims)
        for i in dynamic:
            if i == 0:
                fixed[i] = 1
            elif len(dims) == 4 and i in (2, 3) and size:
                fixed[i] = int(size[i - 2])
            else:
                raise InputError(
                    f"Input {name!r} {_fmt(dims)} has dynamic axis {i} that the manifest cannot fill; pass "
                    f"--shapes {name}:MIN/OPT/MAX (e.g. {name}:1x3x224x224/1x3x512x512/4x3x1024x1024)."
                )
        shape = tuple(int(d) for d in fixed)
        profile[name] = (shape, shape, shape)
    return profile


def _fmt(dims: list[int | str]) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def _has_qdq(model: onnx.ModelProto) -> bool:
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def _edgeglocal_ops(model: onnx.ModelProto) -> list[str]:
    return sorted({n.op_type for n in model.graph.node if n.domain == "edgeglocal"})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _gpu() -> dict[str, Any]:
    try:
        cuda = CudaRuntime()
        try:
            return {"gpu": cuda.device_name(), "compute_capability": cuda.compute_capability()}
        finally:
            cuda.close()
    except (BackendUnavailable, CudaError):  # the engine is still valid, only less described
        return {"gpu": "unknown", "compute_capability": "unknown"}


def _load_onnx(bundle: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(bundle), load_external_data=False)
    except Exception as exc:  # DecodeError, OSError, ...
        raise BundleError(f"{bundle} is not a readable ONNX model ({exc}).") from exc


def build_engine(
    bundle: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    fp16: bool = False,
    int8: bool = False,
    shapes: str | None = None,
    timing_cache: str | os.PathLike | None = None,
    plugins: str | os.PathLike | None = None,
    workspace_gb: float | None = None,
    progress: ProgressFn | None = None,
) -> BuildResult:
    """Build ``bundle`` (an ``.onnx`` file) into ``NAME_trt.engine`` beside it (or ``output``).

    Precision: on TensorRT 10.x the graph's own precision (fp16 bundle -> FP16 flag, Q/DQ -> INT8
    flag) plus ``fp16`` to lower an fp32 graph; on 11.x exactly the graph's (strongly typed).
    """
    bundle = Path(bundle)
    if bundle.suffix != ".onnx":
        raise BundleError(f"Bundle {bundle} must be an .onnx file (got suffix {bundle.suffix!r}).")
    if not bundle.is_file():
        raise BundleError(f"Bundle {bundle} does not exist.")
    engine_path = Path(output) if output else bundle.with_name(f"{bundle.stem}_trt.engine")
    if engine_path.suffix != ".engine":
        raise InputError(f"Output {engine_path} must end in .engine.")
    if manifest_path(engine_path).resolve() == manifest_path(bundle).resolve():
        raise InputError(f"Output {engine_path} would overwrite the manifest of {bundle.name}; pick another name.")
    if workspace_gb is not None and workspace_gb <= 0:
        raise InputError(f"--workspace must be a positive number of GB, got {workspace_gb}.")
    manifest = find_manifest(bundle)
    model = _load_onnx(bundle)
    inputs = graph_inputs(model)
    profile = resolve_profile(inputs, parse_shapes(shapes, list(inputs)), manifest)
    qdq = _has_qdq(model)
    graph_mode = manifest.precision.get("mode", "fp32") if manifest else ("int8" if qdq else "fp32")
    if manifest and manifest.precision.get("target") == "cpu":
        raise InputError(
            f"{bundle.name} was quantized for ONNX Runtime CPU (uint8 activations), which TensorRT does not "
            "take; quantize the fp32 bundle again with `edgeglocal quantize -p int8 --target tensorrt`."
        )
    if int8 and not qdq:
        raise InputError(
            f"--int8 needs an explicitly quantized bundle (Q/DQ nodes) and {bundle.name} has none; "
            "run `edgeglocal quantize -p int8 --calib IMAGES` first."
        )

    trt = import_tensorrt()
    strongly_typed = trt_major(trt) >= 11
    if strongly_typed and fp16 and graph_mode == "fp32":
        raise InputError(
            f"TensorRT {trt.__version__} builds strongly typed networks, so --fp16 cannot lower the fp32 "
            f"bundle {bundle.name}; run `edgeglocal quantize -p fp16` and build that bundle."
        )
    custom_ops = _edgeglocal_ops(model)
    plugin_path = _plugin_library(plugins, bool(custom_ops))
    if plugin_path is not None:
        load_plugin_library(trt, plugin_path)

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, logger, bundle, strongly_typed)  # the network needs its parser alive
    config = builder.create_builder_config()
    if workspace_gb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    use_fp16 = not strongly_typed and (fp16 or graph_mode == "fp16")
    use_int8 = not strongly_typed and qdq
    if use_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if use_int8:
        config.set_flag(trt.BuilderFlag.INT8)
    if profile:
        opt_profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile.items():
            opt_profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(opt_profile)
    cache = _open_timing_cache(config, timing_cache)
    if progress is not None and hasattr(trt, "IProgressMonitor"):
        config.progress_monitor = _progress_monitor(trt, progress)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT could not build an engine from {bundle}; its log above says why.")
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(memoryview(plan))
    if cache is not None:
        with atomic_path(timing_cache) as tmp:
            tmp.write_bytes(memoryview(config.get_timing_cache().serialize()))

    precision = graph_mode if strongly_typed else "int8" if use_int8 else "fp16" if use_fp16 else "fp32"
    written = None
    if manifest is not None:
        manifest.engine = {
            "tensorrt": str(trt.__version__),
            **_gpu(),
            "precision": precision,
            "strongly_typed": strongly_typed,
            "plugin_library": str(plugin_path.resolve()) if plugin_path else None,
            "plugin_sha256": _sha256(plugin_path) if plugin_path else None,
            "profile": {k: [list(s) for s in v] for k, v in profile.items()},
            "source": bundle.name,
            "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        written = manifest.save(manifest_path(engine_path))
    return BuildResult(engine_path, written, precision, plugin_path, profile, custom_ops)


def _parse(trt: Any, builder: Any, logger: Any, bundle: Path, strongly_typed: bool) -> tuple[Any, Any]:
    """The network parsed from ``bundle`` (and its parser, which must outlive the build)."""
    typed_flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)  # the default once removed
    network = builder.create_network(1 << int(typed_flag) if strongly_typed and typed_flag is not None else 0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(bundle)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse {bundle} ({errors}).")
    return network, parser


def _plugin_library(explicit: str | os.PathLike | None, needed: bool) -> Path | None:
    """The plugin library to load: required when given, optional (function bodies) when not."""
    if explicit is not None:
        return find_plugin_library(explicit)
    if not needed:
        return None
    try:
        return find_plugin_library()
    except BackendUnavailable:
        return None  # TensorRT inlines the nodes' ONNX function bodies instead


def _open_timing_cache(config: Any, path: str | os.PathLike | None) -> Any:
    if path is None:
        return None
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def _progress_monitor(trt: Any, progress: ProgressFn) -> Any:
    class _Monitor(trt.IProgressMonitor):  # TensorRT 10 calls these from its build thread
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._totals: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._totals[phase_name] = num_steps
            progress(phase_name, 0, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            progress(phase_name, step + 1, self._totals.get(phase_name, step + 1))
            return True

        def phase_finish(self, phase_name: str) -> None:
            total = self._totals.pop(phase_name, 1)
            progress(phase_name, total, total)

    return _Monitor()
