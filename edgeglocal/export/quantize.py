"""FP16 and INT8 bundles that keep their accuracy.

INT8 is explicit Q/DQ (ONNX Runtime static quantization) with per-channel symmetric int8 weights.
Activations depend on where the bundle will run: ``target="tensorrt"`` (default) makes them
symmetric int8 with zero point 0, the only form TensorRT 10/11 consumes; ``target="cpu"`` makes
them asymmetric uint8, which ONNX Runtime's x86 kernels (U8S8) run about 3x faster than fp32 on a
ResNet-50 where symmetric int8 runs slower than fp32 (BENCHMARKS.md, "Quantization"). Only the heavy linear ops with
constant weights (Conv, ConvTranspose, Gemm, MatMul x W) are quantized; edgeglocal custom ops,
softmax, powers (GeM), normalisations and activation x activation matmuls stay in float.
``auto=True`` ranks layers by how much quantizing each alone perturbs the outputs and keeps the
worst offenders in float until the outputs stay within the budget.
"""

from __future__ import annotations

import fnmatch
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import onnx

from edgeglocal.bundle import Manifest, find_manifest, manifest_path
from edgeglocal.errors import BundleError, InputError
from edgeglocal.fsutil import atomic_path

#: Ops whose inputs and outputs stay in fp32 in an fp16 bundle (overflow or precision risk).
FP16_BLOCK_OPS = (
    "Pow", "ReduceL2", "ReduceSumSquare", "LpNormalization", "Exp", "Log", "Softplus",
    "LayerNormalization", "GroupNormalization", "InstanceNormalization", "Softmax", "TopK",
    "Range", "Resize", "CumSum", "Sqrt", "Reciprocal",
)
#: Ops that INT8 quantizes; everything else stays float.
INT8_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
METHODS = ("minmax", "entropy", "percentile")
TARGETS = ("tensorrt", "cpu")
_INT8_FORMATS = {
    "tensorrt": "qdq, int8 symmetric activations, int8 symmetric per-channel weights",
    "cpu": "qdq, uint8 asymmetric activations, int8 symmetric per-channel weights",
}


@dataclass
class QuantizeResult:
    """What a quantize run produced and what it cost."""

    path: Path
    manifest: Manifest
    excluded: list[str] = field(default_factory=list)
    sensitivity: list[tuple[str, float]] = field(default_factory=list)
    output_snr_db: float | None = None


# ---------------------------------------------------------------- calibration data


def calibration_frames(source: str | Path, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` BGR frames from an image folder, a glob or a video (spread over its length)."""
    import cv2

    src = Path(source)
    if src.is_file() and src.suffix.lower() in {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}:
        cap = cv2.VideoCapture(str(src))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or limit
        wanted = set(np.linspace(0, max(total - 1, 0), num=min(limit, total)).astype(int).tolist())
        frames: list[np.ndarray] = []
        index = 0
        while len(frames) < len(wanted):
            ok, img = cap.read()
            if not ok:
                break
            if index in wanted:
                frames.append(img)
            index += 1
        cap.release()
    else:
        from edgeglocal.io.sources import open_source

        source_iter = open_source(str(source), max_frames=limit)
        try:
            frames = [f.image for f in source_iter]
        finally:
            source_iter.close()
    if not frames:
        raise InputError(f"Calibration source {source} holds no readable images or frames.")
    return frames


#: Calibration size for models whose spatial dims are dynamic and whose recipe keeps the frame size.
DYNAMIC_CALIB_HW = (256, 256)


def _calibration_size(manifest: Manifest) -> tuple[int, int]:
    """One fixed size for all calibration frames (the recipe's, the graph's, or DYNAMIC_CALIB_HW)."""
    spec = manifest.inputs[0]
    if spec.preprocess and spec.preprocess.size:
        return int(spec.preprocess.size[0]), int(spec.preprocess.size[1])
    h, w = spec.shape[-2:]
    if isinstance(h, int) and isinstance(w, int):
        return h, w
    return DYNAMIC_CALIB_HW


def make_feeds(manifest: Manifest, frames: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Pre-process frames exactly as the runtime will (the bundle's own recipe)."""
    import cv2

    from edgeglocal.runtime.preprocess import prepare

    spec = manifest.inputs[0]
    size = _calibration_size(manifest)
    feeds = []
    for img in frames:
        if spec.preprocess is None or spec.preprocess.resize in ("none", "pad_multiple"):
            img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        array, _ = prepare(img, spec)
        feeds.append({spec.name: array})
    return feeds


class _FeedReader:
    """onnxruntime.quantization.CalibrationDataReader over prepared feeds."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]):
        self._feeds = list(feeds)
        self._it = iter(self._feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._feeds)


# ---------------------------------------------------------------- graph inspection


def _const_names(model: onnx.ModelProto) -> set[str]:
    names = {t.name for t in model.graph.initializer}
    names |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return names


def quantizable_nodes(model: onnx.ModelProto) -> list[str]:
    """INT8 candidates: heavy linear ops whose weight is a constant (never activation x activation)."""
    consts = _const_names(model)
    nodes = []
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in INT8_OPS:
            continue
        if len(node.input) > 1 and node.input[1] in consts:
            nodes.append(node.name)
    return nodes


def _ensure_node_names(model: onnx.ModelProto) -> None:
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"


# ---------------------------------------------------------------- conversions


def to_fp16(model: onnx.ModelProto, exclude: Iterable[str] = ()) -> tuple[onnx.ModelProto, list[str]]:
    """FP16 weights and activations, fp32 graph I/O; sensitive ops and excluded nodes stay fp32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    blocked = [n.name for n in model.graph.node if _matches(n.name, exclude)]
    converted = convert_float_to_float16(
        model, keep_io_types=True, op_block_list=list(FP16_BLOCK_OPS), node_block_list=blocked
    )
    return converted, blocked


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _int8(
    model_path: Path,
    out_path: Path,
    reader: _FeedReader,
    nodes: Sequence[str],
    method: str,
    cache: Path,
    target: str,
) -> None:
    """Static Q/DQ quantization of ``nodes``; calibration ranges are computed once into ``cache``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    calibrate_method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    reader.rewind()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT's quantizer warns about pre-processing on every call
    try:
        quantize_static(
            str(model_path),
            str(out_path),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(INT8_OPS),
            nodes_to_quantize=list(nodes),
            per_channel=True,
            activation_type=QuantType.QInt8 if target == "tensorrt" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=calibrate_method,
            calibration_cache_path=str(cache),
            extra_options={
                "ActivationSymmetric": target == "tensorrt",  # TensorRT takes zero-point-0 int8 only
                "WeightSymmetric": True,
                "QuantizeBias": False,  # TensorRT fuses float bias; int32 bias DQ is not its form
                "CalibPercentile": 99.99,
            },
        )
    finally:
        root.setLevel(level)


# ---------------------------------------------------------------- error measurement


def _session(model: onnx.ModelProto | Path):
    import onnxruntime as ort

    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def run_all(model: onnx.ModelProto | Path, feeds: Sequence[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    sess = _session(model)
    return [sess.run(None, f) for f in feeds]


def snr_db(reference: list[list[np.ndarray]], candidate: list[list[np.ndarray]]) -> float:
    """Signal-to-quantization-noise ratio over all outputs and samples (dB; higher is better)."""
    sig = noise = 0.0
    for ref_outs, cand_outs in zip(reference, candidate):
        for r, c in zip(ref_outs, cand_outs):
            r = r.astype(np.float64)
            sig += float(np.sum(r * r))
            noise += float(np.sum((r - c.astype(np.float64)) ** 2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * np.log10(max(sig, 1e-30) / noise)


def max_abs_error(reference: list[list[np.ndarray]], candidate: list[list[np.ndarray]]) -> float:
    return max(
        float(np.max(np.abs(r.astype(np.float64) - c.astype(np.float64))))
        for ro, co in zip(reference, candidate)
        for r, c in zip(ro, co)
    )


# ---------------------------------------------------------------- the public entry point


def default_output(bundle: Path, precision: str) -> Path:
    return bundle.with_name(f"{bundle.stem}_{precision}.onnx")


def quantize(
    bundle: str | Path,
    precision: str,
    *,
    calib: str | Path | None = None,
    calib_size: int = 32,
    method: str = "minmax",
    exclude: Sequence[str] = (),
    auto: bool = False,
    budget_db: float = 30.0,
    target: str = "tensorrt",
    output: str | Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> QuantizeResult:
    """Write an fp16 or int8 copy of ``bundle`` (+ manifest) and return what it cost.

    ``target`` (int8): ``"tensorrt"`` for symmetric int8 activations, ``"cpu"`` for ONNX Runtime's
    faster uint8 ones (see the module docstring). ``budget_db`` (with ``auto``) is the lowest acceptable output SNR against the fp32 model on
    the calibration frames; layers are kept in float, worst first, until it is met.
    """
    bundle = Path(bundle)
    if precision not in ("fp16", "int8"):
        raise InputError(f"Precision {precision!r} is not supported; expected fp16 or int8.")
    if method not in METHODS:
        raise InputError(f"Calibration method {method!r} is unknown; expected one of {', '.join(METHODS)}.")
    if target not in TARGETS:
        raise InputError(f"Target {target!r} is unknown; expected tensorrt or cpu.")
    if bundle.suffix != ".onnx" or not bundle.is_file():
        raise BundleError(f"{bundle} is not an ONNX bundle file; quantize takes NAME.onnx from `edgeglocal export`.")
    manifest = find_manifest(bundle)
    if manifest is None:
        raise BundleError(f"{bundle} has no manifest {manifest_path(bundle).name}; quantize needs the bundle's pre-processing.")
    if manifest.precision.get("mode", "fp32") != "fp32":
        raise BundleError(f"{bundle} is already {manifest.precision['mode']}; quantize an fp32 bundle.")
    if precision == "int8" and calib is None:
        raise InputError("INT8 needs calibration data: pass --calib DIR|VIDEO with images like the ones the model will see.")

    model = onnx.load(str(bundle))
    _ensure_node_names(model)
    out = Path(output) if output else default_output(bundle, precision)
    feeds = make_feeds(manifest, calibration_frames(calib, calib_size)) if calib else []
    reference = run_all(model, feeds) if feeds else []
    result = QuantizeResult(path=out, manifest=manifest)

    with tempfile.TemporaryDirectory(prefix="edgeglocal-quant-") as tmp:
        tmpdir = Path(tmp)
        if precision == "fp16":
            converted, blocked = to_fp16(model, exclude)
            result.excluded = blocked
            with atomic_path(out) as tmp_out:
                onnx.save(converted, str(tmp_out))
        else:
            named = tmpdir / "fp32.onnx"
            onnx.save(model, str(named))
            reader = _FeedReader(feeds)

            def quantize_nodes(dest: Path, nodes: Sequence[str]) -> None:
                _int8(named, dest, reader, nodes, method, tmpdir / "calib.cache", target)

            candidates = quantizable_nodes(model)
            keep_float = [n for n in candidates if _matches(n, exclude)]
            if auto:
                keep_float += _auto_exclusions(
                    quantize_nodes, tmpdir / "probe.onnx", feeds, reference,
                    [n for n in candidates if n not in keep_float], budget_db, progress,
                )
            result.excluded = keep_float
            with atomic_path(out) as tmp_out:
                quantize_nodes(tmp_out, [n for n in candidates if n not in keep_float])
        if feeds:
            candidate = run_all(out, feeds)
            result.output_snr_db = snr_db(reference, candidate)

    result.manifest = _derived_manifest(manifest, precision, calib, len(feeds), method, target, result)
    result.manifest.save(manifest_path(out))
    return result


def _auto_exclusions(
    quantize_nodes: Callable[[Path, Sequence[str]], None],
    probe: Path,
    feeds: Sequence[dict[str, np.ndarray]],
    reference: list[list[np.ndarray]],
    candidates: Sequence[str],
    budget_db: float,
    progress: Callable[[str, int, int], None] | None,
) -> list[str]:
    """Rank layers by the SNR loss of quantizing each alone; keep the worst in float until the budget holds."""
    scores: list[tuple[str, float]] = []
    for i, node in enumerate(candidates):
        if progress:
            progress("sensitivity", i, len(candidates))
        quantize_nodes(probe, [node])
        scores.append((node, snr_db(reference, run_all(probe, feeds))))
    scores.sort(key=lambda s: s[1])  # lowest SNR = most sensitive first
    excluded: list[str] = []
    for k in range(len(scores) + 1):
        excluded = [name for name, _ in scores[:k]]
        kept = [n for n in candidates if n not in excluded]
        if not kept:
            break
        quantize_nodes(probe, kept)
        if snr_db(reference, run_all(probe, feeds)) >= budget_db:
            break
        if progress:
            progress("exclude", k + 1, len(scores))
    return excluded


def _derived_manifest(
    manifest: Manifest, precision: str, calib: Any, n_calib: int, method: str, target: str, result: QuantizeResult
) -> Manifest:
    derived = Manifest.from_dict(manifest.to_dict())
    derived.precision = {
        "mode": precision,
        "from": "fp32",
        "format": _INT8_FORMATS[target] if precision == "int8" else "fp16, graph inputs/outputs fp32",
        "target": target if precision == "int8" else None,
        "calibration": {"source": str(calib), "frames": n_calib, "method": method} if precision == "int8" else None,
        "excluded_nodes": result.excluded,
        "kept_float_ops": list(FP16_BLOCK_OPS) if precision == "fp16" else ["all but " + ", ".join(INT8_OPS)],
        "output_snr_db": None if result.output_snr_db is None else round(result.output_snr_db, 2),
        "quantized_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    derived.parity = None
    return derived
