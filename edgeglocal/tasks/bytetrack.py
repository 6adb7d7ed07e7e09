"""ByteTrack: associate every detection box, the low-score ones included (Zhang et al., ECCV 2022).

Per frame: predict every track with the Kalman filter; match high-score detections to tracked and
lost tracks (IoU, optionally fused with appearance); match the low-score detections to the tracks
still unmatched (occluded people often score low, and dropping them is what breaks tracks); confirm
or drop tentative tracks; start new tracks from the high-score leftovers; forget tracks lost for
longer than the buffer. Optional appearance fusion (as in BoT-SORT / DeepSORT) mixes IoU distance
with the cosine distance to each track's EMA-smoothed embedding, gated so that a poor appearance
match can never be rescued by overlap alone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from edgeglocal.errors import InputError
from edgeglocal.tasks.kalman import KalmanFilter, xyah_to_xyxy, xyxy_to_xyah


class TrackState(enum.IntEnum):
    TRACKED = 0
    LOST = 1
    REMOVED = 2


@dataclass(eq=False)
class Track:
    """One tracked object; ``box`` is the filtered (x1, y1, x2, y2)."""

    track_id: int
    mean: np.ndarray
    cov: np.ndarray
    score: float
    cls: int
    start_frame: int
    last_frame: int
    state: TrackState = TrackState.TRACKED
    activated: bool = False
    embedding: np.ndarray | None = field(default=None, repr=False)

    @property
    def box(self) -> np.ndarray:
        return xyah_to_xyxy(self.mean[None])[0]

    @property
    def age(self) -> int:
        return self.last_frame - self.start_frame


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M), computed in one broadcast."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def linear_assignment(cost: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost matching where leaving a row or column unmatched costs ``thresh / 2``.

    This is the ``cost_limit`` semantics of lapjv that ByteTrack relies on: a pair is matched only
    if its cost is below ``thresh``, and the solver may prefer leaving a poor pair unmatched over
    forcing it. Returns ``(matches (K, 2), unmatched_rows, unmatched_cols)``.
    """
    n, m = cost.shape
    if n == 0 or m == 0:
        return np.empty((0, 2), dtype=np.int64), np.arange(n), np.arange(m)
    big = thresh * 4 + 1.0
    aug = np.full((n + m, m + n), big)
    aug[:n, :m] = np.where(cost < thresh, cost, big)
    aug[np.arange(n), m + np.arange(n)] = thresh / 2
    aug[n + np.arange(m), np.arange(m)] = thresh / 2
    aug[n:, m:] = 0.0
    rows, cols = linear_sum_assignment(aug)
    keep = (rows < n) & (cols < m)
    matches = np.stack([rows[keep], cols[keep]], axis=1)
    free_rows = np.ones(n, bool)
    free_rows[matches[:, 0]] = False
    free_cols = np.ones(m, bool)
    free_cols[matches[:, 1]] = False
    return matches, np.flatnonzero(free_rows), np.flatnonzero(free_cols)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ByteTracker:
    """Multi-object tracker; call :meth:`update` once per frame with that frame's detections.

    Thresholds follow the ByteTrack defaults: detections above ``high_thresh`` drive the first
    association and may start tracks (if above ``new_track_thresh``); those between ``low_thresh``
    and ``high_thresh`` only extend existing tracks (``second_stage=False`` turns this off, which
    is plain SORT-style association). ``track_buffer`` frames (at 30 FPS, scaled by ``frame_rate``)
    is how long a lost track may be re-found.
    """

    def __init__(
        self,
        *,
        high_thresh: float = 0.5,
        low_thresh: float = 0.1,
        new_track_thresh: float = 0.6,
        match_thresh: float = 0.8,
        second_match_thresh: float = 0.5,
        unconfirmed_match_thresh: float = 0.7,
        track_buffer: int = 30,
        frame_rate: float = 30.0,
        second_stage: bool = True,
        fuse_score: bool = True,
        appearance_weight: float = 0.5,
        appearance_gate: float = 0.25,
        embedding_momentum: float = 0.9,
    ) -> None:
        if not 0.0 <= low_thresh <= high_thresh <= 1.0:
            raise InputError(
                f"Tracker thresholds low={low_thresh}, high={high_thresh} are invalid; "
                "expected 0 <= low <= high <= 1."
            )
        self.high_thresh = high_thresh
        self.low_thresh = low_thresh
        self.new_track_thresh = new_track_thresh
        self.match_thresh = match_thresh
        self.second_match_thresh = second_match_thresh
        self.unconfirmed_match_thresh = unconfirmed_match_thresh
        self.max_time_lost = max(1, int(round(track_buffer * frame_rate / 30.0)))
        self.second_stage = second_stage
        self.fuse_score = fuse_score
        self.appearance_weight = appearance_weight
        self.appearance_gate = appearance_gate
        self.embedding_momentum = embedding_momentum
        self.kf = KalmanFilter()
        self.tracks: list[Track] = []  # tracked (confirmed or not) and lost; removed ones are dropped
        self.frame_id = 0
        self._next_id = 1

    # -- public -------------------------------------------------------------------------------

    def update(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        classes: np.ndarray | None = None,
        embeddings: np.ndarray | None = None,
    ) -> list[Track]:
        """Advance one frame; returns the confirmed tracks seen in this frame."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        n = len(boxes)
        if len(scores) != n:
            raise InputError(f"Detections have {n} boxes but {len(scores)} scores; expected one score per box.")
        classes = np.zeros(n, np.int64) if classes is None else np.asarray(classes).reshape(-1)
        if embeddings is not None:
            embeddings = np.asarray(embeddings, dtype=np.float64)
            if embeddings.ndim != 2 or len(embeddings) != n:
                raise InputError(
                    f"Embeddings have shape {embeddings.shape} for {n} boxes; expected one row per box."
                )
            embeddings = _normalise(embeddings)
        self.frame_id += 1

        high = np.flatnonzero(scores >= self.high_thresh)
        low = np.flatnonzero((scores > self.low_thresh) & (scores < self.high_thresh))

        confirmed = [t for t in self.tracks if t.activated or t.state == TrackState.LOST]
        unconfirmed = [t for t in self.tracks if not t.activated and t.state == TrackState.TRACKED]
        self._predict(confirmed)

        # 1) high-score detections vs. tracked + lost tracks
        cost = self._cost(confirmed, boxes[high], scores[high], embeddings, high)
        matches, rest_t, rest_d = linear_assignment(cost, self.match_thresh)
        self._absorb([confirmed[i] for i in matches[:, 0]], high[matches[:, 1]], boxes, scores, classes, embeddings)
        high = high[rest_d]

        # 2) low-score detections vs. the still-unmatched tracked tracks (IoU only)
        pending = [confirmed[i] for i in rest_t if confirmed[i].state == TrackState.TRACKED]
        if self.second_stage and len(low):
            cost = 1.0 - box_iou(self._boxes(pending), boxes[low])
            matches, rest_t2, _ = linear_assignment(cost, self.second_match_thresh)
            self._absorb([pending[i] for i in matches[:, 0]], low[matches[:, 1]], boxes, scores, classes, None)
            pending = [pending[i] for i in rest_t2]
        for t in pending:
            t.state = TrackState.LOST

        # 3) tentative tracks (seen once) need a second high-score detection to be confirmed
        cost = self._cost(unconfirmed, boxes[high], scores[high], embeddings, high)
        matches, rest_u, rest_d = linear_assignment(cost, self.unconfirmed_match_thresh)
        self._absorb([unconfirmed[i] for i in matches[:, 0]], high[matches[:, 1]], boxes, scores, classes, embeddings)
        for i in rest_u:
            unconfirmed[i].state = TrackState.REMOVED
        high = high[rest_d]

        # 4) new tracks; 5) forget long-lost tracks and duplicates
        for di in high[scores[high] >= self.new_track_thresh]:
            self._start(di, boxes, scores, classes, embeddings)
        for t in self.tracks:
            if t.state == TrackState.LOST and self.frame_id - t.last_frame > self.max_time_lost:
                t.state = TrackState.REMOVED
        self._drop_duplicates()
        self.tracks = [t for t in self.tracks if t.state != TrackState.REMOVED]
        return [
            t for t in self.tracks
            if t.state == TrackState.TRACKED and t.activated and t.last_frame == self.frame_id
        ]

    # -- internals ----------------------------------------------------------------------------

    def _predict(self, tracks: list[Track]) -> None:
        if not tracks:
            return
        mean = np.stack([t.mean for t in tracks])
        cov = np.stack([t.cov for t in tracks])
        lost = np.array([t.state != TrackState.TRACKED for t in tracks])
        mean[lost, 7] = 0.0  # a lost track keeps its position trend but stops growing/shrinking
        mean, cov = self.kf.predict(mean, cov)
        for t, m, c in zip(tracks, mean, cov):
            t.mean, t.cov = m, c

    @staticmethod
    def _boxes(tracks: list[Track]) -> np.ndarray:
        if not tracks:
            return np.empty((0, 4))
        return xyah_to_xyxy(np.stack([t.mean for t in tracks]))

    def _cost(
        self,
        tracks: list[Track],
        det_boxes: np.ndarray,
        det_scores: np.ndarray,
        embeddings: np.ndarray | None,
        det_index: np.ndarray,
    ) -> np.ndarray:
        iou = box_iou(self._boxes(tracks), det_boxes)
        # ByteTrack's score fusion: a confident detection is a more trustworthy match.
        cost = 1.0 - (iou * det_scores[None, :] if self.fuse_score else iou)
        if embeddings is None or not tracks or not len(det_index):
            return cost
        has_emb = np.array([t.embedding is not None for t in tracks])
        if not has_emb.any():
            return cost
        track_emb = np.stack([t.embedding if t.embedding is not None else np.zeros(embeddings.shape[1]) for t in tracks])
        cos = 1.0 - track_emb @ embeddings[det_index].T
        fused = (1.0 - self.appearance_weight) * cost + self.appearance_weight * cos
        fused[cos > self.appearance_gate] = 1.0
        return np.where(has_emb[:, None], fused, cost)

    def _absorb(
        self,
        tracks: list[Track],
        det_index: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        classes: np.ndarray,
        embeddings: np.ndarray | None,
    ) -> None:
        """Correct matched tracks with their detections (one batched Kalman update)."""
        if not tracks:
            return
        mean, cov = self.kf.update(
            np.stack([t.mean for t in tracks]), np.stack([t.cov for t in tracks]), xyxy_to_xyah(boxes[det_index])
        )
        for t, m, c, di in zip(tracks, mean, cov, det_index):
            t.mean, t.cov = m, c
            t.activated = True
            t.state = TrackState.TRACKED
            t.score = float(scores[di])
            t.cls = int(classes[di])
            t.last_frame = self.frame_id
            if embeddings is not None:
                e = embeddings[di]
                if t.embedding is not None:
                    e = self.embedding_momentum * t.embedding + (1 - self.embedding_momentum) * e
                t.embedding = _normalise(e)

    def _start(
        self,
        di: int,
        boxes: np.ndarray,
        scores: np.ndarray,
        classes: np.ndarray,
        embeddings: np.ndarray | None,
    ) -> None:
        mean, cov = self.kf.initiate(xyxy_to_xyah(boxes[di]))
        self.tracks.append(
            Track(
                track_id=self._next_id,
                mean=mean[0],
                cov=cov[0],
                score=float(scores[di]),
                cls=int(classes[di]),
                start_frame=self.frame_id,
                last_frame=self.frame_id,
                activated=self.frame_id == 1,  # the first frame has nothing to confirm against
                embedding=None if embeddings is None else embeddings[di],
            )
        )
        self._next_id += 1

    def _drop_duplicates(self) -> None:
        """A lost track and a tracked one on the same box: keep the one followed longer."""
        tracked = [t for t in self.tracks if t.state == TrackState.TRACKED]
        lost = [t for t in self.tracks if t.state == TrackState.LOST]
        if not tracked or not lost:
            return
        overlap = box_iou(self._boxes(tracked), self._boxes(lost)) > 0.85
        for i, j in zip(*np.nonzero(overlap)):
            loser = tracked[i] if tracked[i].age < lost[j].age else lost[j]
            loser.state = TrackState.REMOVED
