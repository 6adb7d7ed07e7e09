"""SuperGlobal-style re-ranking of the top results with global descriptors only (Shao et al., ICCV 2023).

Two steps, both on the top ``M`` gallery vectors of each query, no local features:

1. MDescAug: each candidate's descriptor is replaced by a weighted mean of itself (weight 1) and its
   ``K`` nearest candidates (weight ``beta`` * similarity), so a true match that its own neighbours
   agree on moves towards the query's cluster;
2. RerankwMDA: the query is expanded with the element-wise maximum of its ``K + 1`` best refined
   descriptors, and each candidate is re-scored by the mean of its similarity to the query and to
   that expansion.

Results beyond the top ``M`` keep their original order.
"""

from __future__ import annotations

import numpy as np


def mdescaug(candidates: np.ndarray, k: int, beta: float) -> np.ndarray:
    """(Q, M, D) candidate descriptors -> refined (Q, M, D), each averaged with its k nearest candidates."""
    sims = np.einsum("qmd,qnd->qmn", candidates, candidates)
    k = min(k + 1, candidates.shape[1])  # +1: the nearest candidate is normally itself
    nn = np.argsort(-sims, axis=2, kind="stable")[:, :, :k]
    weights = np.take_along_axis(sims, nn, axis=2) * beta
    weights[:, :, 0] = 1.0
    neighbours = np.take_along_axis(candidates[:, None, :, :], nn[..., None], axis=2)  # (Q, M, k, D)
    return (neighbours * weights[..., None]).sum(axis=2) / weights.sum(axis=2, keepdims=True)


def rerank_with_mda(query: np.ndarray, refined: np.ndarray, k: int) -> np.ndarray:
    """(Q, D) queries, (Q, M, D) refined candidates -> (Q, M) re-ranking scores."""
    sims = np.einsum("qd,qmd->qm", query, refined)
    order = np.argsort(-sims, axis=1, kind="stable")[:, : min(k + 1, refined.shape[1])]
    expanded = np.take_along_axis(refined, order[..., None], axis=1).max(axis=1)  # (Q, D)
    return (sims + np.einsum("qd,qmd->qm", expanded, refined)) / 2.0


def superglobal_rerank(
    queries: np.ndarray,
    gallery: np.ndarray,
    ranks: np.ndarray,
    m: int = 100,
    k: int = 9,
    beta: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank the first ``m`` entries of ``ranks`` (Q, R gallery indices, best first).

    Returns (indices (Q, R), scores (Q, R)): re-ranking scores for the first ``m``, the original
    inner products after them.
    """
    queries = np.asarray(queries, np.float32).reshape(len(ranks), -1)
    m = min(m, ranks.shape[1])
    top = ranks[:, :m]
    refined = mdescaug(gallery[top], k, beta)
    scores = rerank_with_mda(queries, refined, k)
    order = np.argsort(-scores, axis=1, kind="stable")
    new_top = np.take_along_axis(top, order, axis=1)
    tail = ranks[:, m:]
    tail_scores = np.einsum("qd,qrd->qr", queries, gallery[tail]) if tail.size else np.empty(tail.shape, np.float32)
    return (
        np.concatenate([new_top, tail], axis=1),
        np.concatenate([np.take_along_axis(scores, order, axis=1), tail_scores], axis=1),
    )
