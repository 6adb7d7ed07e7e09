"""Retrieval accuracy: mAP (revisited Oxford/Paris Easy/Medium/Hard when the ground truth grades
positives, plain mAP otherwise) and recall@k.

Methods: ``model`` (the default MobileNetV2 + GeM embedder or an embedding bundle) and
``histogram``, the classical baseline: an L2-normalised 8x8x8 HSV colour histogram per image.
``results`` scores a JSON file ``{query_name: [gallery names, best first]}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from edgeglocal.errors import InputError
from edgeglocal.evaluation import metrics
from edgeglocal.evaluation.datasets import RetrievalSet, read_image, retrieval_set

METHODS = ("model", "histogram")
RECALL_KS = (1, 5, 10)

Progress = Callable[[int, int], None]


def colour_histogram(image_bgr: np.ndarray, bins: int = 8) -> np.ndarray:
    """Joint HSV histogram, square-rooted (Hellinger) and L2-normalised."""
    hsv = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [bins] * 3, [0, 180, 0, 256, 0, 256]).ravel()
    hist = np.sqrt(hist / max(hist.sum(), 1.0))
    return (hist / max(np.linalg.norm(hist), 1e-12)).astype(np.float32)


def _embed_fn(method: str, model: str | Path | None) -> Callable[[list[np.ndarray]], np.ndarray]:
    if method == "histogram":
        return lambda images: np.stack([colour_histogram(im) for im in images])
    if method != "model":
        raise InputError(f"Retrieval method {method!r} is unknown; expected one of {', '.join(METHODS)}.")
    from edgeglocal.tasks.gallery import Embedder

    return Embedder(model)


def rank(data: RetrievalSet, method: str = "model", model: str | Path | None = None,
         progress: Progress | None = None) -> dict[str, list[str]]:
    """Every query's gallery names by descending cosine similarity."""
    embed = _embed_fn(method, model)
    paths = data.gallery + data.queries
    vectors = []
    for i, p in enumerate(paths):
        vectors.append(embed([read_image(p)])[0])
        if progress:
            progress(i + 1, len(paths))
    vec = np.stack(vectors)
    gallery, queries = vec[: len(data.gallery)], vec[len(data.gallery):]
    order = np.argsort(-(queries @ gallery.T), axis=1, kind="stable")
    return {q.name: [data.gallery[j].name for j in row] for q, row in zip(data.queries, order)}


def score(data: RetrievalSet, rankings: dict[str, list[str]]) -> dict[str, float]:
    missing = [q.name for q in data.queries if q.name not in rankings]
    if missing:
        raise InputError(f"Ranked lists have no entry for query {missing[0]}; expected one list per query.")
    rankings = {q.name: list(rankings[q.name]) for q in data.queries}
    positives = {q: set(g.get("positives", [])) | set(g.get("easy", [])) | set(g.get("hard", []))
                 for q, g in data.gnd.items() if q in rankings}
    out = {"map": float(np.mean([metrics.average_precision(rankings[q], positives[q], set(data.gnd[q].get("junk", [])))
                                 for q in rankings]))}
    if data.graded:
        out.update({f"map_{k}": v for k, v in metrics.revisited_map(rankings, data.gnd).items()})
    out.update({f"recall@{k}": metrics.ranked_recall_at_k(rankings, positives, k) for k in RECALL_KS})
    return out


def evaluate(data: str | Path, model: str | Path | None = None, results: str | Path | None = None,
             method: str = "model", progress: Progress | None = None) -> dict:
    """Rank (or read the ranked lists of) every query and score them."""
    rset = retrieval_set(Path(data))
    if results is not None:
        path = Path(results)
        path = path / "rankings.json" if path.is_dir() else path
        try:
            rankings = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"Ranked lists {path} cannot be read; expected JSON {{query: [gallery names]}} ({exc}).") from exc
    else:
        rankings = rank(rset, method, model, progress)
    return {"task": "retrieve", "method": "results" if results is not None else method, "queries": len(rset.queries),
            "metrics": score(rset, rankings), "rankings": rankings}
