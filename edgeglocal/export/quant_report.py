"""What a precision change cost: size, ONNX Runtime CPU latency, the task's own metric, output error.

The task metric is measured on labelled samples made from the calibration frames
(edgeglocal.evaluation.synthetic): PSNR against the clean image under synthetic haze for dehazing,
AUROC on pasted defects for anomaly detection, recall@1 of transformed queries for retrieval and
ReID. Both bundles see exactly the same samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgeglocal.bundle import Manifest, find_manifest
from edgeglocal.evaluation import metrics, synthetic
from edgeglocal.export.quantize import calibration_frames, make_feeds, max_abs_error, run_all


@dataclass
class BundleRow:
    name: str
    size_bytes: int
    latency_ms: float
    metric_name: str
    metric: float
    max_abs_error: float | None

    @property
    def metric_text(self) -> str:
        return f"{self.metric_name} {self.metric:.4g}"


def latency_ms(path: Path, feed: dict[str, np.ndarray], iters: int = 10) -> float:
    """Median ONNX Runtime CPU latency of one inference, after one warm-up run."""
    from edgeglocal.export.quantize import _session

    sess = _session(path)
    sess.run(None, feed)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def _output_image(out: np.ndarray) -> np.ndarray:
    """(1, 3, H, W) RGB in [0, 1] -> BGR uint8."""
    rgb = np.clip(out[0].transpose(1, 2, 0), 0, 1)
    return (rgb[..., ::-1] * 255 + 0.5).astype(np.uint8)


def _resized(manifest: Manifest, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Frames at the size calibration used, so that labels and outputs align pixel for pixel."""
    import cv2

    feed = make_feeds(manifest, frames[:1])[0]
    h, w = next(iter(feed.values())).shape[-2:]
    return [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames]


TaskMetric = Callable[[Path, Manifest, list[np.ndarray]], tuple[str, float]]


def _dehaze_metric(path: Path, manifest: Manifest, frames: list[np.ndarray]) -> tuple[str, float]:
    rng = np.random.default_rng(0)
    clean = _resized(manifest, frames)
    hazy = [synthetic.haze(c, rng)[0] for c in clean]
    outs = run_all(path, make_feeds(manifest, hazy))
    return "PSNR dB", float(np.mean([metrics.psnr(c, _output_image(o[0])) for c, o in zip(clean, outs)]))


def _anomaly_metric(path: Path, manifest: Manifest, frames: list[np.ndarray]) -> tuple[str, float]:
    rng = np.random.default_rng(0)
    normal = _resized(manifest, frames)
    defective = [synthetic.defect(f, rng)[0] for f in normal]
    names = [t.name for t in manifest.outputs]
    idx = names.index("score") if "score" in names else len(names) - 1
    scores = [float(np.ravel(o[idx])[0]) for o in run_all(path, make_feeds(manifest, normal + defective))]
    return "AUROC", metrics.auroc(np.r_[np.zeros(len(normal)), np.ones(len(defective))], np.array(scores))


def _retrieval_metric(path: Path, manifest: Manifest, frames: list[np.ndarray]) -> tuple[str, float]:
    rng = np.random.default_rng(0)
    queries = [synthetic.query_transform(f, rng) for f in frames]

    def embed(images: list[np.ndarray]) -> np.ndarray:
        e = np.concatenate([o[0].reshape(1, -1) for o in run_all(path, make_feeds(manifest, images))])
        return e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-12)

    sim = embed(queries) @ embed(frames).T
    return "recall@1", metrics.recall_at_k(sim, np.arange(len(frames)), k=1)


TASK_METRICS: dict[str, TaskMetric] = {
    "dehaze": _dehaze_metric,
    "anomaly": _anomaly_metric,
    "retrieve": _retrieval_metric,
    "reid": _retrieval_metric,
}


def compare_bundles(reference: Path, others: Path | Sequence[Path], *, calib: str | Path | None,
                    calib_size: int = 16) -> list[BundleRow]:
    """One row per bundle (the fp32 reference first), measured on the same frames."""
    paths = [Path(reference)] + ([Path(others)] if isinstance(others, (str, Path)) else [Path(p) for p in others])
    manifest = find_manifest(paths[0])
    assert manifest is not None
    frames = calibration_frames(calib, calib_size) if calib else []
    feeds = make_feeds(manifest, frames) if frames else []
    ref_out = run_all(paths[0], feeds) if feeds else []
    task_metric = TASK_METRICS.get(manifest.task)
    rows = []
    for p in paths:
        outs = run_all(p, feeds) if feeds else []
        if task_metric and frames:
            name, value = task_metric(p, manifest, frames)
        elif feeds:
            from edgeglocal.export.quantize import snr_db

            name, value = "output SNR dB", min(snr_db(ref_out, outs), 999.0)
        else:
            name, value = "-", float("nan")
        rows.append(BundleRow(
            name=p.name,
            size_bytes=p.stat().st_size,
            latency_ms=latency_ms(p, feeds[0]) if feeds else float("nan"),
            metric_name=name,
            metric=value,
            max_abs_error=max_abs_error(ref_out, outs) if feeds and p != paths[0] else None,
        ))
    return rows
