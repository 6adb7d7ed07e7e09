"""PatchCore (Roth et al., CVPR 2022) in NumPy: a coreset memory of normal patch features.

A frame is anomalous where its patch features are far from every remembered normal patch. The
memory is a greedy k-center coreset of the normal patches (chosen in a random projection, for
speed), so it stays small and still covers the normal feature space. The bank travels as a
pickle-free ``.npz`` holding the memory, the decision threshold and a JSON description.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from edgeglocal.errors import InputError
from edgeglocal.fsutil import atomic_path

BANK_FORMAT = 1
#: Gaussian smoothing of the patch-distance map, in feature-map input pixels (PatchCore: sigma=4).
SMOOTH_SIGMA = 4.0


def greedy_coreset(
    features: np.ndarray,
    n_select: int,
    projection_dim: int = 64,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Indices of ``n_select`` rows of ``features`` (M, C) chosen by greedy k-center.

    Each step takes the row farthest from everything chosen so far, so the selection covers the
    whole set (the largest distance from any row to the coreset shrinks as fast as greedy can make
    it). Distances are computed in a Gaussian random projection to ``projection_dim`` dims
    (Johnson-Lindenstrauss keeps them close), which cuts the O(M * n_select * C) cost.
    """
    m = len(features)
    n_select = int(np.clip(n_select, 1, m))
    rng = np.random.default_rng(seed)
    x = features.astype(np.float32, copy=False)
    if x.shape[1] > projection_dim:
        x = x @ (rng.standard_normal((x.shape[1], projection_dim)).astype(np.float32) / np.sqrt(projection_dim))
    sq = np.einsum("ij,ij->i", x, x)
    chosen = np.empty(n_select, np.int64)
    chosen[0] = rng.integers(m)
    min_d = np.full(m, np.inf, np.float32)
    for i in range(1, n_select + 1):
        c = x[chosen[i - 1]]
        # einsum, not BLAS gemv: OpenBLAS threads spin on busy CPUs and make gemv ~10x slower
        np.minimum(min_d, sq - 2.0 * np.einsum("ij,j->i", x, c) + c @ c, out=min_d)
        if i < n_select:
            chosen[i] = int(np.argmax(min_d))
        if progress is not None and (i % 256 == 0 or i == n_select):
            progress(i, n_select)
    return chosen


def nearest_distance(queries: np.ndarray, memory: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Euclidean distance from each query row (N, C) to its nearest memory row (K, C)."""
    q = queries.astype(np.float32, copy=False)
    # |q|^2 is constant along a row, so it is added after the min; -2 is folded into the memory
    # once, and the rest runs in place on the GEMM's output (2x faster than the plain expansion)
    mem_t = memory.T * np.float32(-2.0)
    mem_sq = np.einsum("ij,ij->i", memory, memory)
    out = np.empty(len(q), np.float32)
    for start in range(0, len(q), chunk):
        part = q[start : start + chunk]
        d2 = part @ mem_t
        d2 += mem_sq
        out[start : start + chunk] = d2.min(axis=1) + np.einsum("ij,ij->i", part, part)
    return np.sqrt(np.maximum(out, 0.0))


def patches(feature_map: np.ndarray) -> np.ndarray:
    """(C, h, w) or (N, C, h, w) feature maps -> (N*h*w, C) patch rows."""
    fmap = feature_map[None] if feature_map.ndim == 3 else feature_map
    return np.ascontiguousarray(fmap.transpose(0, 2, 3, 1).reshape(-1, fmap.shape[1]), dtype=np.float32)


@dataclass
class PatchBank:
    """Normal-patch memory (K, C), the image-score threshold, and how the features were made."""

    memory: np.ndarray
    threshold: float
    info: dict[str, Any] = field(default_factory=dict)

    def distance_map(self, feature_map: np.ndarray) -> np.ndarray:
        """(C, h, w) features -> (h, w) distance of each patch to the nearest normal patch."""
        if feature_map.ndim != 3 or feature_map.shape[0] != self.memory.shape[1]:
            raise InputError(
                f"Feature map of shape {feature_map.shape} does not fit this bank; expected "
                f"({self.memory.shape[1]}, h, w) features from {self.info.get('features', 'the fitting backbone')}."
            )
        return nearest_distance(patches(feature_map), self.memory).reshape(feature_map.shape[1:])

    def anomaly_map(self, feature_map: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
        """Patch distances upsampled (bilinear) to ``size_hw`` and Gaussian-smoothed."""
        dist = cv2.resize(self.distance_map(feature_map), size_hw[::-1], interpolation=cv2.INTER_LINEAR)
        return cv2.GaussianBlur(dist, (0, 0), SMOOTH_SIGMA)

    def save(self, path: str | Path) -> Path:
        """Write the bank atomically as ``.npz`` (no pickles)."""
        path = Path(path)
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh,
                    memory=self.memory.astype(np.float32),
                    threshold=np.float64(self.threshold),
                    info=np.array(json.dumps({"format": BANK_FORMAT, **self.info})),
                )
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PatchBank":
        path = Path(path)
        if not path.is_file():
            raise InputError(f"Anomaly bank {path} does not exist; create one with `edgeglocal fit anomaly`.")
        try:
            with np.load(path, allow_pickle=False) as npz:
                memory, threshold = npz["memory"], float(npz["threshold"])
                info = json.loads(str(npz["info"]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            raise InputError(
                f"Anomaly bank {path} is not a readable edgeglocal bank (.npz with memory, threshold "
                f"and info): {exc}."
            ) from exc
        if memory.ndim != 2 or memory.dtype != np.float32 or not len(memory) or not np.isfinite(threshold):
            raise InputError(
                f"Anomaly bank {path} holds a {memory.dtype} memory of shape {memory.shape}; "
                "expected a non-empty float32 (K, C) array and a finite threshold."
            )
        if info.pop("format", None) != BANK_FORMAT:
            raise InputError(f"Anomaly bank {path} has an unknown format; refit it with `edgeglocal fit anomaly`.")
        return cls(memory, threshold, info)


def fit_bank(
    feature_maps: list[np.ndarray],
    coreset: float = 0.1,
    folds: int = 5,
    margin: float = 0.1,
    threshold: float | None = None,
    info: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PatchBank:
    """Fit a bank on (C, h, w) feature maps of normal images, in order.

    Unless ``threshold`` is given, it is set from normal data the bank has not seen: the images
    are split into ``folds`` contiguous blocks (so that neighbouring video frames, near-duplicates,
    do not vouch for each other), each image is scored against the coreset rows that came from
    the other blocks, and the threshold is the highest such score plus ``margin`` (relative). One
    coreset serves all folds, so the threshold costs only nearest-neighbour searches.
    """
    n = len(feature_maps)
    if n == 0:
        raise InputError("No normal images to fit the anomaly bank on; expected at least one.")
    if not 0.0 < coreset <= 1.0:
        raise InputError(f"Coreset fraction {coreset} is not in (0, 1].")
    if threshold is None and n < 2:
        raise InputError("Fitting an anomaly threshold needs at least 2 normal images; got 1 (or pass --threshold).")
    rows = patches(np.stack(feature_maps))
    keep = np.arange(len(rows))
    if coreset < 1.0:
        keep = greedy_coreset(rows, max(1, round(len(rows) * coreset)), progress=progress)
    memory = rows[keep]
    scores: list[float] = []
    if threshold is None:
        owner = keep // (len(rows) // n)  # the image each kept row came from
        stride = int((info or {}).get("stride", 8))
        size = (feature_maps[0].shape[1] * stride, feature_maps[0].shape[2] * stride)
        bounds = np.linspace(0, n, min(folds, n) + 1).round().astype(int)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            others = memory[(owner < lo) | (owner >= hi)]
            if len(others):
                scores += [float(PatchBank(others, np.inf).anomaly_map(f, size).max()) for f in feature_maps[lo:hi]]
        if not scores:
            raise InputError(f"Coreset fraction {coreset} keeps too few patches to set a threshold; raise it or pass one.")
        threshold = max(scores) * (1.0 + margin)
    details = {**(info or {}), "images": n, "coreset": coreset, "normal_scores": [round(s, 5) for s in scores]}
    return PatchBank(memory, float(threshold), details)
