"""Retrieval task: each frame's top-k gallery images, drawn as a strip of thumbnails beside the frame."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgeglocal.errors import InputError
from edgeglocal.io.frame import Frame
from edgeglocal.tasks.base import Feeds, Outputs, Task
from edgeglocal.tasks.gallery import Embedder, Gallery
from edgeglocal.tasks.rerank import superglobal_rerank


@dataclass
class Match:
    path: str
    score: float
    index: int


@dataclass
class RetrievalResult:
    frame_index: int
    matches: list[Match]

    def to_record(self) -> dict[str, Any]:
        return {
            "frame": self.frame_index,
            "matches": [{"path": m.path, "score": round(m.score, 5)} for m in self.matches],
        }


class RetrieveTask(Task):
    """Search a gallery index (``edgeglocal index build``) with every frame.

    ``model`` must be the embedder the index was built with (None = the default MobileNetV2 + GeM);
    ``rerank`` re-scores the top ``rerank_m`` results with SuperGlobal's MDescAug + RerankwMDA;
    ``threshold`` drops matches scoring below it (so a frame showing nothing known has no matches).
    """

    name = "retrieve"

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        index: str | os.PathLike | None = None,
        topk: int = 5,
        rerank: bool = False,
        rerank_m: int = 100,
        threshold: float | None = None,
        device: str = "auto",
        search_backend: str = "auto",
    ) -> None:
        if index is None:
            raise InputError("The retrieve task needs --index PATH, an index built with `edgeglocal index build GALLERY_DIR`.")
        if topk < 1:
            raise InputError(f"topk={topk} is invalid; expected a positive integer.")
        self.gallery = Gallery.load(index)
        self.embedder = Embedder(model, device=device)
        if self.embedder.model_id != self.gallery.model_id:
            raise InputError(
                f"Index {index} was built with model {self.gallery.model_id!r} but the queries would use "
                f"{self.embedder.model_id!r}; pass the index's --model or rebuild the index with this one."
            )
        self.topk = min(topk, len(self.gallery))
        self.rerank = rerank
        self.rerank_m = max(rerank_m, self.topk)
        self.search_backend = search_backend
        self.threshold = -np.inf if threshold is None else threshold
        self._thumbs: dict[tuple[int, int], np.ndarray] = {}

    def preprocess(self, frame: Frame) -> Feeds:
        return {self.embedder.spec.name: self.embedder.prepare([frame.image])}

    def infer(self, feeds: Feeds) -> Outputs:
        return {"embedding": self.embedder.run(feeds[self.embedder.spec.name])}

    def search(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Q, D) query vectors -> (scores, gallery indices), each (Q, topk), best first."""
        k = min(self.rerank_m, len(self.gallery)) if self.rerank else self.topk
        scores, idx = self.gallery.search(queries, k, backend=self.search_backend)
        if self.rerank:
            idx, scores = superglobal_rerank(queries, self.gallery.embeddings, idx, m=k)
        return scores[:, : self.topk], idx[:, : self.topk]

    def postprocess(self, outputs: Outputs, frame: Frame) -> RetrievalResult:
        scores, idx = self.search(outputs["embedding"])
        return RetrievalResult(
            frame.index,
            [Match(self.gallery.paths[i], float(s), int(i)) for s, i in zip(scores[0], idx[0]) if s >= self.threshold],
        )

    def render(self, result: RetrievalResult, frame: Frame) -> np.ndarray:
        """The frame with a column of the top-k gallery thumbnails (and scores) on its right."""
        h = frame.image.shape[0]
        cell_h = max(1, h // self.topk)
        cell_w = cell_h * 4 // 3
        strip = np.full((h, cell_w, 3), 32, np.uint8)
        for rank, m in enumerate(result.matches):
            y = rank * cell_h
            strip[y : y + cell_h] = self._thumbnail(m.index, cell_h, cell_w)
            label = f"{rank + 1}. {m.score:.2f}"
            cv2.putText(strip, label, (4, y + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(strip, label, (4, y + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        return np.hstack([frame.image, strip])

    def _thumbnail(self, i: int, h: int, w: int) -> np.ndarray:
        """Gallery image ``i`` letterboxed into (h, w); a grey cell if the file has gone."""
        key = (i, h)
        if key not in self._thumbs:
            cell = np.full((h, w, 3), 64, np.uint8)
            img = cv2.imread(str(self.gallery.image_path(i)), cv2.IMREAD_COLOR)
            if img is not None:
                r = min(h / img.shape[0], w / img.shape[1])
                th, tw = max(1, int(img.shape[0] * r)), max(1, int(img.shape[1] * r))
                y0, x0 = (h - th) // 2, (w - tw) // 2
                cell[y0 : y0 + th, x0 : x0 + tw] = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
            self._thumbs[key] = cell
        return self._thumbs[key]
