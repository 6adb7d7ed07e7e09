"""The unit that flows from sources through tasks to sinks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frame:
    """One decoded frame.

    ``image`` is BGR uint8 (H, W, 3), as OpenCV decodes it. ``timestamp`` is media time in seconds
    for files and wall-clock time since the source opened for live sources. ``path`` is set for
    image files so that image sinks can keep the name.
    """

    image: np.ndarray
    index: int
    timestamp: float
    source: str
    path: str | None = None
    fps: float | None = None
