"""MOTChallenge text files: ``frame, id, x, y, w, h, conf, -1, -1, -1`` per line, 1-based frames.

The format every MOT evaluator (motmetrics, TrackEval) reads, for both ground truth and results.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgeglocal.errors import InputError
from edgeglocal.fsutil import atomic_path

#: Column order of the arrays this module reads and writes.
COLUMNS = ("frame", "id", "x", "y", "w", "h", "conf")


def read_mot(path: str | os.PathLike) -> np.ndarray:
    """(N, 7) float64 array of frame, id, x, y, w, h, conf; extra columns are ignored."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"MOT file {path} does not exist.")
    try:
        data = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"MOT file {path} is not comma-separated numbers ({exc}).") from exc
    if data.size == 0:
        return np.empty((0, 7))
    if data.shape[1] < 6:
        raise InputError(f"MOT file {path} has {data.shape[1]} columns; expected at least 6 (frame, id, x, y, w, h).")
    if data.shape[1] == 6:
        data = np.concatenate([data, np.ones((len(data), 1))], axis=1)
    return data[:, :7]


def format_mot(rows: np.ndarray) -> str:
    """Rows of (frame, id, x, y, w, h, conf) -> MOTChallenge text."""
    return "".join(
        f"{int(f)},{int(i)},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{c:.4f},-1,-1,-1\n"
        for f, i, x, y, w, h, c in np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    )


def write_mot(path: str | os.PathLike, rows: np.ndarray) -> Path:
    """Write rows atomically (sorted by frame then id) and return the final path."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    with atomic_path(path) as tmp:
        tmp.write_text(format_mot(rows), encoding="utf-8")
    return Path(path)
