"""Streams in and out: sources (cameras, files, URLs), sinks (video, images, JSON lines, window) and
the threaded pipeline behind ``edgeglocal.run``.

The pipeline is imported on first use: it depends on ``edgeglocal.tasks``, which itself imports
``edgeglocal.io.frame``.
"""

from __future__ import annotations

from typing import Any

from edgeglocal.io.frame import Frame
from edgeglocal.io.sinks import ImageSink, JsonlSink, VideoSink, WindowSink
from edgeglocal.io.sources import Reconnect, Source, open_source

__all__ = [
    "Frame", "ImageSink", "JsonlSink", "Pipeline", "PipelineStats", "Reconnect", "Source", "VideoSink",
    "WindowSink", "open_source", "run",
]


def __getattr__(name: str) -> Any:
    if name in ("run", "Pipeline", "PipelineStats"):
        from edgeglocal.io import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'edgeglocal.io' has no attribute {name!r}")
