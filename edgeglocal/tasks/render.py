"""Drawing helpers every task's ``render`` shares: heat-map overlays, side-by-side views, labels.

All take and return BGR uint8 images (OpenCV's convention) and never modify their inputs.
"""

from __future__ import annotations

import cv2
import numpy as np

GREEN = (40, 200, 40)
RED = (30, 30, 230)
WHITE = (255, 255, 255)


def to_bgr_uint8(rgb: np.ndarray) -> np.ndarray:
    """An RGB float image in [0, 1], (H, W, 3) or (3, H, W), -> BGR uint8 (H, W, 3)."""
    planes = rgb if rgb.ndim == 3 and rgb.shape[0] == 3 and rgb.shape[2] != 3 else rgb.transpose(2, 0, 1)
    # max(.,0) then OpenCV's saturating, rounding conversion: one pass per plane, no float temporaries
    bgr = [cv2.convertScaleAbs(cv2.max(np.ascontiguousarray(p, np.float32), 0.0), alpha=255.0) for p in planes[::-1]]
    return cv2.merge(bgr)


def heatmap(values: np.ndarray, vmin: float, vmax: float, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """A 2-D map -> a BGR colour image, ``vmin`` blue .. ``vmax`` red (values outside are clipped)."""
    scaled = (np.asarray(values, np.float32) - vmin) / max(vmax - vmin, 1e-12)
    return cv2.applyColorMap((np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8), colormap)


def overlay_heatmap(
    image: np.ndarray, values: np.ndarray, vmin: float, vmax: float, alpha: float = 0.45
) -> np.ndarray:
    """Blend the heat map of ``values`` (resized to the image if needed) over ``image``."""
    h, w = image.shape[:2]
    values = np.asarray(values, np.float32)
    if values.shape != (h, w):
        values = cv2.resize(values, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.addWeighted(image, 1.0 - alpha, heatmap(values, vmin, vmax), alpha, 0.0)


def put_label(
    image: np.ndarray,
    text: str,
    origin: tuple[int, int] = (8, 8),
    color: tuple[int, int, int] = WHITE,
    scale: float | None = None,
) -> np.ndarray:
    """Write ``text`` on a dark box whose top-left corner is ``origin``; the font scales with the image."""
    out = image.copy()
    scale = scale or max(0.4, min(out.shape[:2]) / 720.0)
    thickness = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = origin
    pad = max(2, round(4 * scale))
    cv2.rectangle(out, (x, y), (x + tw + 2 * pad, y + th + base + 2 * pad), (0, 0, 0), -1)
    cv2.putText(out, text, (x + pad, y + pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)
    return out


def side_by_side(left: np.ndarray, right: np.ndarray, labels: tuple[str, str] | None = None) -> np.ndarray:
    """``left`` | ``right`` in one image (``right`` resized to ``left``'s height), optionally labelled."""
    h = left.shape[0]
    if right.shape[0] != h:
        right = cv2.resize(right, (max(1, round(right.shape[1] * h / right.shape[0])), h))
    if labels:
        left, right = put_label(left, labels[0]), put_label(right, labels[1])
    return np.hstack([left, right])
