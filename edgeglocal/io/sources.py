"""Where frames come from: ``open_source(spec)`` for cameras, files, folders, globs, URLs and ``.streams``.

Files deliver every frame (in order, at decode speed). Live sources (cameras, RTSP/HTTP) keep only
the newest frame: a reader thread overwrites a one-slot buffer and counts what it overwrote, so a
slow consumer sees fresh frames instead of a growing backlog. A dropped network stream is reopened
with exponential back-off.
"""

from __future__ import annotations

import glob
import os
import queue
import threading
import time
import urllib.parse
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from edgeglocal.errors import InputError, SourceError
from edgeglocal.io.frame import Frame

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: URLs ending like this are files on a server (every frame, then the end), not live streams.
FILE_URL_SUFFIXES = IMAGE_SUFFIXES + (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".ts")
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Reconnect:
    """Back-off for a dropped live stream: ``attempts`` tries, waiting ``initial`` s, doubling up to ``max_delay``."""

    attempts: int = 6
    initial: float = 0.5
    max_delay: float = 8.0
    #: OpenCV open/read timeouts for network streams (ms), so a dead server cannot hang a read.
    timeout_ms: int = 5000


class Source(ABC):
    """An iterable of :class:`Frame`; ``close()`` releases it (also on early exit)."""

    #: The spec the user gave (tags frames).
    name: str
    is_live: bool = False
    #: Frames per second of the media (None when unknown, e.g. image folders or some streams).
    fps: float | None = None
    #: How many frames iteration will yield, when known (files), for progress bars.
    total: int | None = None

    @property
    def dropped(self) -> int:
        """Frames a live source overwrote before they were consumed."""
        return 0

    @property
    def reconnects(self) -> int:
        return 0

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None:
        """Release devices and threads; safe to call twice."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _limit(n: int, max_frames: int | None) -> int:
    return n if max_frames is None else min(n, max_frames)


class ImageSource(Source):
    """Image files in a fixed (sorted) order; frames carry their path so sinks can keep the names."""

    def __init__(self, name: str, paths: list[Path], max_frames: int | None = None) -> None:
        self.name = name
        self.paths = paths[:max_frames] if max_frames else paths
        self.total = len(self.paths)

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            image = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                raise SourceError(f"Image {path} could not be decoded; expected a readable image file.")
            yield Frame(image=image, index=index, timestamp=0.0, source=self.name, path=str(path))


class VideoSource(Source):
    """A video file (local, or a file URL) decoded in order; every ``vid_stride``-th frame is delivered."""

    def __init__(self, path: Path | str, vid_stride: int = 1, max_frames: int | None = None) -> None:
        self.name = str(path)
        self.path = path
        self.vid_stride = vid_stride
        self.max_frames = max_frames
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            raise SourceError(f"Video {path} could not be opened; expected a video file OpenCV can decode.")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.total = _limit(-(-count // vid_stride), max_frames) if count > 0 else None

    def __iter__(self) -> Iterator[Frame]:
        delivered = 0
        position = 0
        while self.max_frames is None or delivered < self.max_frames:
            if position % self.vid_stride:
                ok, image = self._cap.grab(), None
            else:
                ok, image = self._cap.read()
            if not ok:
                return
            if image is not None:
                t = position / self.fps if self.fps else self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
                yield Frame(image=image, index=position, timestamp=t, source=self.name, fps=self.fps)
                delivered += 1
            position += 1

    def close(self) -> None:
        self._cap.release()


class LiveSource(Source):
    """A camera or network stream read on its own thread into a one-slot buffer (newest frame wins)."""

    is_live = True

    def __init__(
        self,
        name: str,
        opener: Callable[[], cv2.VideoCapture],
        describe_failure: Callable[[], str],
        vid_stride: int = 1,
        max_frames: int | None = None,
        reconnect: Reconnect = Reconnect(),
    ) -> None:
        self.name = name
        self._opener = opener
        self.vid_stride = vid_stride
        self.max_frames = max_frames
        self.reconnect_policy = reconnect
        self._cap = opener()
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(describe_failure())
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._slot: Frame | None = None
        self._done = False
        self._error: SourceError | None = None
        self._dropped = 0
        self._reconnects = 0
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._read_loop, name=f"source:{name}", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def reconnects(self) -> int:
        return self._reconnects

    def _read_loop(self) -> None:
        position = 0
        try:
            while not self._stop.is_set():
                ok, image = self._cap.read()
                if not ok:
                    if self._stop.is_set() or not self._reopen():
                        return
                    continue
                position += 1
                if (position - 1) % self.vid_stride:
                    continue
                frame = Frame(image, position - 1, time.monotonic() - self._t0, self.name, fps=self.fps)
                with self._cond:
                    if self._slot is not None:
                        self._dropped += 1
                    self._slot = frame
                    self._cond.notify()
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _reopen(self) -> bool:
        """Back off and reopen; on giving up, record the error for the consumer."""
        policy = self.reconnect_policy
        self._cap.release()
        delay, waited = policy.initial, 0.0
        for _ in range(policy.attempts):
            if self._stop.wait(delay):
                return False
            waited += delay
            cap = self._opener()
            if cap.isOpened():
                self._cap = cap
                self._reconnects += 1
                return True
            cap.release()
            delay = min(delay * 2, policy.max_delay)
        self._error = SourceError(
            f"Stream {self.name} dropped and did not come back after {policy.attempts} reconnect "
            f"attempts over {waited:.1f} s."
        )
        return False

    def __iter__(self) -> Iterator[Frame]:
        delivered = 0
        while self.max_frames is None or delivered < self.max_frames:
            with self._cond:
                while self._slot is None and not self._done:
                    self._cond.wait(0.1)
                frame, self._slot = self._slot, None
            if frame is None:
                break
            yield frame
            delivered += 1
        if self._error is not None and not self._stop.is_set():
            raise self._error

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.reconnect_policy.timeout_ms / 1000 + 1)
        self._cap.release()


class MultiSource(Source):
    """Several sources read concurrently (a ``.streams`` file); frames keep their own ``source`` tag."""

    def __init__(self, name: str, sources: list[Source]) -> None:
        self.name = name
        self.sources = sources
        self.is_live = any(s.is_live for s in sources)
        self.fps = max((s.fps for s in sources if s.fps), default=None)
        totals = [s.total for s in sources]
        self.total = None if None in totals else sum(totals)
        self._queue: queue.Queue = queue.Queue(maxsize=2 * len(sources))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self.sources)

    @property
    def reconnects(self) -> int:
        return sum(s.reconnects for s in self.sources)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self, source: Source) -> None:
        end: object = None  # None: this source ended; a SourceError: it failed
        try:
            for frame in source:
                if not self._put(frame):
                    return
        except SourceError as exc:
            end = exc
        self._put(end)

    def __iter__(self) -> Iterator[Frame]:
        self._threads = [threading.Thread(target=self._pump, args=(s,), daemon=True) for s in self.sources]
        for t in self._threads:
            t.start()
        running, error = len(self._threads), None
        while running and not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(item, Frame):
                yield item
            else:
                running -= 1
                error = error or item
        if error is not None:
            raise error

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=1)  # file readers stop within a frame; live ones once their source closes
        for s in self.sources:
            s.close()
        for t in self._threads:
            t.join()


def _open_camera(index: int) -> cv2.VideoCapture:
    """Open quietly: OpenCV logs its own errors for missing devices; ours says what to do."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(previous)


def _camera(index: int, vid_stride: int, max_frames: int | None, reconnect: Reconnect) -> LiveSource:
    def failure() -> str:
        device = Path(f"/dev/video{index}")
        if os.name == "posix" and not device.exists():
            why = "no such device (is it connected?)"
        else:
            why = "the device did not start (is another program using it?)"
        return f"Camera {index} could not be opened: {why}."

    return LiveSource(str(index), lambda: _open_camera(index), failure, vid_stride, max_frames, reconnect)


def _stream(url: str, vid_stride: int, max_frames: int | None, reconnect: Reconnect) -> LiveSource:
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, reconnect.timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, reconnect.timeout_ms]
    return LiveSource(
        url,
        lambda: cv2.VideoCapture(url, cv2.CAP_FFMPEG, params),
        lambda: f"Stream {url} could not be opened: no video came back (is the address right and the server up?).",
        vid_stride,
        max_frames,
        reconnect,
    )


def _images(spec: str, paths: list[Path], max_frames: int | None) -> ImageSource:
    images = sorted(p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise SourceError(f"{spec} matches no images; expected files ending in {', '.join(IMAGE_SUFFIXES)}.")
    return ImageSource(spec, images, max_frames)


def _streams_file(path: Path, vid_stride: int, max_frames: int | None, reconnect: Reconnect) -> MultiSource:
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    specs = [ln for ln in lines if ln and not ln.startswith("#")]
    if not specs:
        raise SourceError(f"Streams file {path} lists no sources; expected one source per line.")
    opened: list[Source] = []
    try:
        for spec in specs:
            if spec.endswith(".streams"):
                raise SourceError(f"Streams file {path} lists another .streams file ({spec}); nest sources directly.")
            opened.append(open_source(spec, vid_stride, max_frames, reconnect))
    except BaseException:
        for s in opened:
            s.close()
        raise
    return MultiSource(str(path), opened)


def open_source(
    spec: str | os.PathLike | int,
    vid_stride: int = 1,
    max_frames: int | None = None,
    reconnect: Reconnect | None = None,
) -> Source:
    """Open whatever ``spec`` names: ``"0"`` (camera), a video or image file, a folder, a glob,
    an ``rtsp://``/``http://`` URL, or a ``.streams`` file with one of those per line.

    ``vid_stride`` keeps every N-th frame of videos and streams; ``max_frames`` stops after N
    delivered frames (per source for ``.streams``).
    """
    if vid_stride < 1:
        raise InputError(f"vid_stride must be 1 or more, got {vid_stride}.")
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max_frames must be 1 or more, got {max_frames}.")
    reconnect = reconnect or Reconnect()
    text = str(spec)
    if text.isdigit():
        return _camera(int(text), vid_stride, max_frames, reconnect)
    if text.lower().startswith(URL_SCHEMES):
        if Path(urllib.parse.urlparse(text).path).suffix.lower() in FILE_URL_SUFFIXES:
            return VideoSource(text, vid_stride, max_frames)
        return _stream(text, vid_stride, max_frames, reconnect)
    path = Path(text).expanduser()
    if any(c in text for c in _GLOB_CHARS) and not path.exists():
        return _images(text, [Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True)], max_frames)
    if path.is_dir():
        return _images(text, list(path.iterdir()), max_frames)
    if not path.exists():
        raise SourceError(
            f"Source {text} does not exist; expected a camera index, a video or image file, a folder, "
            "a glob, an rtsp:// or http:// URL, or a .streams file."
        )
    if path.suffix == ".streams":
        return _streams_file(path, vid_stride, max_frames, reconnect)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(text, [path], max_frames)
    return VideoSource(path, vid_stride, max_frames)
