"""Constant-velocity Kalman filter in (cx, cy, a, h) box space, as used by SORT / DeepSORT / ByteTrack.

State: ``(cx, cy, a, h, vcx, vcy, va, vh)`` where ``a = w / h``. Process and measurement noise scale
with the box height, so a near (large) pedestrian may move more pixels per frame than a far one.
Every method works on a batch of tracks at once (means ``(N, 8)``, covariances ``(N, 8, 8)``):
a tracker with 50 live objects does one vectorised predict per frame, not 50 small ones.
"""

from __future__ import annotations

import numpy as np

NDIM = 4

#: Position and velocity noise, relative to the box height (the SORT/ByteTrack values).
STD_WEIGHT_POSITION = 1.0 / 20
STD_WEIGHT_VELOCITY = 1.0 / 160


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) corner boxes -> (N, 4) centre, aspect ratio, height."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w / np.maximum(h, 1e-6), h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """(N, >=4) centre/aspect/height (extra state columns ignored) -> (N, 4) corner boxes."""
    xyah = np.asarray(xyah, dtype=np.float64).reshape(len(xyah), -1)
    h = xyah[:, 3]
    w = xyah[:, 2] * h
    return np.stack(
        [xyah[:, 0] - w / 2, xyah[:, 1] - h / 2, xyah[:, 0] + w / 2, xyah[:, 1] + h / 2], axis=1
    )


class KalmanFilter:
    """Batched constant-velocity filter; one time step per frame."""

    def __init__(self, dt: float = 1.0) -> None:
        self.F = np.eye(2 * NDIM)
        self.F[:NDIM, NDIM:] = dt * np.eye(NDIM)
        self.H = np.eye(NDIM, 2 * NDIM)

    @staticmethod
    def _heights(x: np.ndarray) -> np.ndarray:
        return x[:, 3:4]

    def initiate(self, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from (N, 4) xyah measurements: zero velocity, wide velocity uncertainty."""
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, NDIM)
        mean = np.concatenate([z, np.zeros_like(z)], axis=1)
        h = self._heights(z)
        std = np.concatenate(
            [
                2 * STD_WEIGHT_POSITION * h, 2 * STD_WEIGHT_POSITION * h, np.full_like(h, 1e-2),
                2 * STD_WEIGHT_POSITION * h,
                10 * STD_WEIGHT_VELOCITY * h, 10 * STD_WEIGHT_VELOCITY * h, np.full_like(h, 1e-5),
                10 * STD_WEIGHT_VELOCITY * h,
            ],
            axis=1,
        )
        return mean, _diag(std**2)

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step ahead for every track: x' = F x, P' = F P F^T + Q(h)."""
        h = self._heights(mean)
        std = np.concatenate(
            [
                STD_WEIGHT_POSITION * h, STD_WEIGHT_POSITION * h, np.full_like(h, 1e-2),
                STD_WEIGHT_POSITION * h,
                STD_WEIGHT_VELOCITY * h, STD_WEIGHT_VELOCITY * h, np.full_like(h, 1e-5),
                STD_WEIGHT_VELOCITY * h,
            ],
            axis=1,
        )
        mean = mean @ self.F.T
        cov = self.F @ cov @ self.F.T + _diag(std**2)
        return mean, cov

    def project(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """State -> measurement space: (N, 4) means and (N, 4, 4) innovation covariances H P H^T + R."""
        h = self._heights(mean)
        std = np.concatenate(
            [STD_WEIGHT_POSITION * h, STD_WEIGHT_POSITION * h, np.full_like(h, 1e-1),
             STD_WEIGHT_POSITION * h],
            axis=1,
        )
        return mean @ self.H.T, self.H @ cov @ self.H.T + _diag(std**2)

    def update(
        self, mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct each track with its matched (N, 4) xyah measurement."""
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, NDIM)
        z_mean, s = self.project(mean, cov)
        pht = cov @ self.H.T  # (N, 8, 4)
        # K = P H^T S^-1, solved rather than inverted: S is symmetric positive definite.
        gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)
        innovation = z - z_mean
        mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        cov = cov - gain @ s @ gain.transpose(0, 2, 1)
        return mean, cov


def _diag(values: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, D, D) diagonal matrices."""
    out = np.zeros(values.shape + values.shape[-1:], dtype=np.float64)
    idx = np.arange(values.shape[-1])
    out[:, idx, idx] = values
    return out
