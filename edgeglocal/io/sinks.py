"""Where results go: video files, image files, JSON lines and a window.

Every sink writes to a temporary name and renames on ``close()``, which the pipeline also calls on
Ctrl-C, so an interrupted run leaves playable videos and complete JSON lines, never half-files.
All sinks share one method, ``write(frame, image, record)``; ``needs_image`` tells the pipeline
whether to render for it.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edgeglocal.errors import SinkError
from edgeglocal.fsutil import atomic_path
from edgeglocal.io.frame import Frame

DEFAULT_FPS = 25.0


class Sink(Protocol):
    needs_image: bool

    def write(self, frame: Frame, image: np.ndarray | None, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class _Atomic:
    """Hold ``atomic_path`` open across many writes: commit on ``commit()``, discard on ``abort()``."""

    def __init__(self, path: Path) -> None:
        self._cm = atomic_path(path)
        self.tmp = self._cm.__enter__()

    def commit(self) -> None:
        self._cm.__exit__(None, None, None)

    def abort(self) -> None:
        with contextlib.suppress(SinkError):
            self._cm.__exit__(SinkError, SinkError("aborted"), None)


class VideoSink:
    """An mp4 (mp4v) at the input's fps; opened at the first frame, whose size it keeps."""

    needs_image = True

    def __init__(self, path: str | os.PathLike, fps: float | None = None) -> None:
        self.path = Path(path)
        self.fps = fps or DEFAULT_FPS
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._file: _Atomic | None = None
        self._size: tuple[int, int] | None = None

    def write(self, frame: Frame, image: np.ndarray | None, record: dict[str, Any]) -> None:
        if self._writer is None:
            self._open(image)
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size)
        self._writer.write(image)
        self.frames += 1

    def _open(self, image: np.ndarray) -> None:
        self._size = (image.shape[1], image.shape[0])
        self._file = _Atomic(self.path)
        self._writer = cv2.VideoWriter(str(self._file.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
        if not self._writer.isOpened():
            self._file.abort()
            raise SinkError(f"Video {self.path} cannot be written: OpenCV has no mp4v encoder for {self._size}.")

    def close(self) -> None:
        """Finish the file (moov atom written) and move it to its final name."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            self._file.commit()


class ImageSink:
    """One image per frame in ``folder``; image inputs keep their file names."""

    needs_image = True

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.frames = 0

    def write(self, frame: Frame, image: np.ndarray | None, record: dict[str, Any]) -> None:
        name = Path(frame.path).name if frame.path else f"{Path(frame.source).stem or 'frame'}_{frame.index:06d}.jpg"
        with atomic_path(self.folder / name) as tmp:
            if not cv2.imwrite(str(tmp), image):
                raise SinkError(f"Image {self.folder / name} cannot be written: OpenCV has no encoder for its suffix.")
        self.frames += 1

    def close(self) -> None:
        pass


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class JsonlSink:
    """One JSON object per frame, flushed as it is written; renamed to ``path`` on close."""

    needs_image = False

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.frames = 0
        self._file = _Atomic(self.path)
        self._fh = open(self._file.tmp, "w", encoding="utf-8")

    def write(self, frame: Frame, image: np.ndarray | None, record: dict[str, Any]) -> None:
        line = {"source": frame.source, "frame": frame.index, "timestamp": round(frame.timestamp, 6)}
        if frame.path:
            line["path"] = frame.path
        line.update(record)
        self._fh.write(json.dumps(line, default=_jsonable) + "\n")
        self._fh.flush()
        self.frames += 1

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
            self._file.commit()


def display_available() -> bool:
    """Whether a window can open: X11/Wayland on Linux; other OSes always have a desktop."""
    if os.name != "posix" or os.uname().sysname == "Darwin":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class WindowSink:
    """``cv2.imshow`` per source; ``q`` or Esc sets ``stop_requested``."""

    needs_image = True

    def __init__(self, title: str = "edgeglocal") -> None:
        if not display_available():
            raise SinkError("--show needs a display but none is available (DISPLAY is not set); use --save instead.")
        self.title = title
        self.stop_requested = False
        self._windows: set[str] = set()

    def write(self, frame: Frame, image: np.ndarray | None, record: dict[str, Any]) -> None:
        window = f"{self.title}: {frame.source}"
        try:
            if window not in self._windows:  # resizable, no toolbar, opened at the frame's own size
                cv2.namedWindow(window, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
                cv2.resizeWindow(window, image.shape[1], image.shape[0])
                self._windows.add(window)
            cv2.imshow(window, image)
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as exc:
            raise SinkError(f"Window {window!r} could not be shown ({exc.err}); use --save instead.") from exc
        if key in (ord("q"), 27):
            self.stop_requested = True

    def close(self) -> None:
        for window in self._windows:
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(window)
        self._windows.clear()
