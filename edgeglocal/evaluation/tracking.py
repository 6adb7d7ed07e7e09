"""Tracking accuracy on MOTChallenge folders: MOTA / IDF1 (motmetrics) and HOTA (TrackEval).

Methods: ``bytetrack`` and ``sort`` (ByteTrack without the low-score second stage: plain IoU
association, the classical baseline). With ``use_dets`` the sequence's det/det.txt detections are
replayed through the tracker; otherwise the detector (``model``: None = HOG people detector, or a
detection bundle) runs on the sequence's img1/ frames or video. ``results`` scores MOTChallenge
files ``<results>/<seq>.txt`` made elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edgeglocal.errors import InputError
from edgeglocal.evaluation import metrics
from edgeglocal.evaluation.datasets import MotSequence, mot_sequences

METHODS = ("bytetrack", "sort")
#: The summary's names (MOTChallenge's short forms) -> motmetrics / TrackEval names.
SUMMARY = {"hota": "hota", "mota": "mota", "idf1": "idf1", "deta": "deta", "assa": "assa", "motp": "motp",
           "idsw": "num_switches", "fp": "num_false_positives", "fn": "num_misses"}

Progress = Callable[[int, int], None]


def _tracker(method: str, frame_rate: float, conf: float):
    from edgeglocal.tasks.bytetrack import ByteTracker

    if method not in METHODS:
        raise InputError(f"Tracking method {method!r} is unknown; expected one of {', '.join(METHODS)}.")
    return ByteTracker(low_thresh=conf, frame_rate=frame_rate, second_stage=method == "bytetrack")


def replay(det_rows: np.ndarray, n_frames: int, method: str = "bytetrack", frame_rate: float = 30.0,
           conf: float = 0.1) -> np.ndarray:
    """Track MOTChallenge detection rows frame by frame; returns MOTChallenge result rows."""
    tracker = _tracker(method, frame_rate, conf)
    out = []
    for f in range(1, n_frames + 1):
        d = det_rows[det_rows[:, 0] == f]
        boxes = np.c_[d[:, 2:4], d[:, 2:4] + d[:, 4:6]]
        for t in tracker.update(boxes, d[:, 6]):
            x1, y1, x2, y2 = t.box
            out.append([f, t.track_id, x1, y1, x2 - x1, y2 - y1, t.score])
    return np.asarray(out, np.float64).reshape(-1, 7)


def _run_detector(seq: MotSequence, method: str, model: str | Path | None) -> np.ndarray:
    from edgeglocal.io import open_source
    from edgeglocal.tasks.detectors import load_detector

    if seq.frames is None:
        raise InputError(f"Sequence {seq.root} has no img1/ frames or video to run a detector on; "
                         "pass --use-dets to replay det/det.txt.")
    detector = load_detector(model)
    tracker = _tracker(method, seq.frame_rate, 0.1)
    source = open_source(str(seq.frames))
    out = []
    try:
        for frame in source:
            det = detector(frame.image)
            for t in tracker.update(det.boxes, det.scores):
                x1, y1, x2, y2 = t.box
                out.append([frame.index + 1, t.track_id, x1, y1, x2 - x1, y2 - y1, t.score])
    finally:
        source.close()
    return np.asarray(out, np.float64).reshape(-1, 7)


def evaluate(data: str | Path, model: str | Path | None = None, results: str | Path | None = None,
             method: str = "bytetrack", use_dets: bool = False, progress: Progress | None = None) -> dict:
    """Track (or read) every sequence and score it; the summary is motmetrics' / TrackEval's OVERALL."""
    from edgeglocal.tasks.mot import read_mot

    seqs = mot_sequences(Path(data))
    pairs = {}
    for i, seq in enumerate(seqs):
        gt = read_mot(seq.gt)
        if results is not None:
            hyp = read_mot(Path(results) / f"{seq.name}.txt")
        elif use_dets:
            if seq.det is None:
                raise InputError(f"Sequence {seq.root} has no det/det.txt to replay; expected MOTChallenge detections.")
            dets = read_mot(seq.det)
            hyp = replay(dets, int(max(gt[:, 0].max(), dets[:, 0].max(initial=0))), method, seq.frame_rate)
        else:
            hyp = _run_detector(seq, method, model)
        pairs[seq.name] = (gt, hyp)
        if progress:
            progress(i + 1, len(seqs))
    clear, hot = metrics.clear_mot(pairs), metrics.hota(pairs)
    per = [{"sequence": name, **clear[name], **hot[name]} for name in pairs]
    overall = "OVERALL" if len(pairs) > 1 else next(iter(pairs))
    both = {**clear[overall], **hot[overall]}
    summary = {short: both[k] for short, k in SUMMARY.items()}
    label = "results" if results is not None else method + (" (det.txt)" if use_dets else "")
    return {"task": "track", "method": label, "sequences": len(pairs), "metrics": summary, "per_item": per}
