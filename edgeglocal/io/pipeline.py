"""The stream pipeline: source -> task -> sinks, with decode, inference and output overlapped.

Three stages run concurrently and talk through bounded queues, so memory stays flat whatever the
speeds: a decode thread reads the source, an inference thread runs ``task.preprocess`` +
``task.infer``, and the caller's thread runs ``task.postprocess`` (in frame order), renders and
writes the sinks while the next frames are decoded and inferred. Closing the iterator (or Ctrl-C)
stops the threads, finishes every sink and closes the task.
"""

from __future__ import annotations

import atexit
import inspect
import queue
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from edgeglocal.errors import InputError, SinkError
from edgeglocal.fsutil import next_run_dir
from edgeglocal.io.frame import Frame
from edgeglocal.io.sinks import ImageSink, JsonlSink, Sink, VideoSink, WindowSink
from edgeglocal.io.sources import ImageSource, MultiSource, Source, open_source
from edgeglocal.tasks.base import Result, Task

STAGES = ("decode", "preprocess", "infer", "postprocess", "render", "write")
#: Task options that ask for an output file: ``True`` becomes a path in the run folder.
OUTPUT_OPTIONS = {"save_mot": "{stem}.txt"}
_END = object()


@dataclass
class PipelineStats:
    """Live numbers for a progress display: FPS (average since the start), per-stage latency (ms,
    exponential moving average), frames a live source dropped, and stream reconnects."""

    frames: int = 0
    total: int | None = None
    dropped: int = 0
    reconnects: int = 0
    elapsed: float = 0.0
    fps: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def _add(self, stage: str, seconds: float, alpha: float = 0.1) -> None:
        ms, old = seconds * 1000.0, self.latency_ms[stage]
        self.latency_ms[stage] = ms if self.frames == 1 else old + alpha * (ms - old)


@dataclass
class _Item:
    frame: Frame
    outputs: Any = None
    times: dict[str, float] = field(default_factory=dict)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Pipeline:
    """An iterator of task results over a source; see :func:`run`."""

    def __init__(
        self,
        task: Task,
        source: Source,
        sinks: list[Sink],
        run_dir: Path | None = None,
        on_stats: Callable[[PipelineStats], None] | None = None,
        task_outputs: list[Path] | None = None,
        tasks_by_source: dict[str, Task] | None = None,
    ) -> None:
        self.task, self.source, self.sinks, self.run_dir = task, source, sinks, run_dir
        #: One task per stream of a multi-stream source (``task`` serves any other frame).
        self.tasks_by_source = tasks_by_source or {}
        self.stats = PipelineStats(total=source.total)
        #: Called with :attr:`stats` after every frame, from the iterating thread.
        self.on_stats = on_stats
        self._task_outputs = task_outputs or []
        size = 1 if source.is_live else 4  # live: stay close to the newest frame
        self._decoded: queue.Queue = queue.Queue(maxsize=size)
        self._inferred: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._decode_loop, name="edgeglocal-decode", daemon=True),
            threading.Thread(target=self._infer_loop, name="edgeglocal-infer", daemon=True),
        ]
        self._closed = False
        self._stop_requested = False
        self._results = self._generate()

    # -- threads ---------------------------------------------------------------------------------
    def _put(self, q: queue.Queue, item: object) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode_loop(self) -> None:
        try:
            frames = iter(self.source)
            while not self._stop.is_set():
                t0 = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    break
                if not self._put(self._decoded, _Item(frame, times={"decode": time.perf_counter() - t0})):
                    return
            self._put(self._decoded, _END)
        except BaseException as exc:  # handed to the caller's thread
            self._put(self._decoded, _Failure(exc))

    def _infer_loop(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._get(self._decoded)
                if item is None:
                    return
                if item is _END or isinstance(item, _Failure):
                    self._put(self._inferred, item)
                    return
                t0 = time.perf_counter()
                task = self._task_for(item.frame)
                feeds = task.preprocess(item.frame)
                t1 = time.perf_counter()
                item.outputs = task.infer(feeds)
                item.times.update(preprocess=t1 - t0, infer=time.perf_counter() - t1)
                if not self._put(self._inferred, item):
                    return
        except BaseException as exc:
            self._put(self._inferred, _Failure(exc))

    def _task_for(self, frame: Frame) -> Task:
        return self.tasks_by_source.get(frame.source, self.task)

    def _get(self, q: queue.Queue) -> Any:
        while not self._stop.is_set() and not (self._stop_requested and q is self._inferred):
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    # -- caller's thread ---------------------------------------------------------------------------
    def _generate(self) -> Iterator[Result]:
        # A caller that abandons the loop without close() (e.g. catches KeyboardInterrupt around
        # it) still gets finished outputs: atexit runs before the interpreter kills daemon threads.
        atexit.register(self._finish)
        for t in self._threads:
            t.start()
        t_start = time.perf_counter()
        needs_image = any(s.needs_image for s in self.sinks)
        needs_record = any(isinstance(s, JsonlSink) for s in self.sinks)
        try:
            while True:
                item = self._get(self._inferred)
                if item is None or item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                t0 = time.perf_counter()
                task = self._task_for(item.frame)
                result = task.postprocess(item.outputs, item.frame)
                t1 = time.perf_counter()
                image = task.render(result, item.frame) if needs_image else None
                t2 = time.perf_counter()
                record = result.to_record() if needs_record else {}
                for sink in self.sinks:
                    sink.write(item.frame, image, record)
                item.times.update(postprocess=t1 - t0, render=t2 - t1, write=time.perf_counter() - t2)
                self._update_stats(item.times, time.perf_counter() - t_start)
                yield result
                if self._stop_requested or any(getattr(s, "stop_requested", False) for s in self.sinks):
                    return
        finally:
            self._finish()

    def _update_stats(self, times: dict[str, float], elapsed: float) -> None:
        s = self.stats
        s.frames += 1
        s.elapsed = elapsed
        s.fps = s.frames / elapsed if elapsed > 0 else 0.0
        s.dropped, s.reconnects = self.source.dropped, self.source.reconnects
        for stage, seconds in times.items():
            s._add(stage, seconds)
        if self.on_stats is not None:
            self.on_stats(s)

    def __iter__(self) -> "Pipeline":
        return self

    def __next__(self) -> Result:
        return next(self._results)

    def request_stop(self) -> None:
        """End iteration after the frame in hand; safe from a signal handler (the CLI's Ctrl-C)."""
        self._stop_requested = True

    def close(self) -> None:
        """Stop the threads, finish every sink (files get their final names) and close the task."""
        self._results.close()
        self._finish()

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._finish)
        self._stop.set()
        decode, infer = self._threads
        if infer.is_alive():
            infer.join()
        if decode.is_alive():
            decode.join(timeout=0.5)  # a file decoder stops within one frame; never release it mid-read
        self.source.close()  # a live source's reader stops, which ends its iterator
        if decode.is_alive():
            decode.join()
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except SinkError as exc:
                errors.append(exc)
        for task in {id(t): t for t in [self.task, *self.tasks_by_source.values()]}.values():
            task.close()
        if errors:
            raise errors[0]

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def outputs(self) -> list[Path]:
        """The files written so far (final names once closed)."""
        found = []
        for sink in self.sinks:
            if isinstance(sink, _PerSourceVideo):
                found += [v.path for v in sink.videos.values() if v.frames]
            elif isinstance(sink, JsonlSink):
                found.append(sink.path)
            elif isinstance(sink, ImageSink) and sink.frames:
                found.append(sink.folder)
        return found + [p for p in self._task_outputs if p.exists()]


class _PerSourceVideo:
    """One :class:`VideoSink` per source of a (multi-)source run, named after the source.

    With ``vid_stride`` N the video plays at fps / N, so that it lasts as long as the input.
    """

    needs_image = True

    def __init__(self, folder: Path, fps: float | None, vid_stride: int = 1) -> None:
        self.folder, self.fps, self.vid_stride = folder, fps, vid_stride
        self.videos: dict[str, VideoSink] = {}

    def write(self, frame: Frame, image: Any, record: dict[str, Any]) -> None:
        sink = self.videos.get(frame.source)
        if sink is None:
            stem = _stem(frame.source)
            if any(v.path.stem == stem for v in self.videos.values()):
                stem = f"{stem}_{len(self.videos)}"
            fps = frame.fps or self.fps
            sink = VideoSink(self.folder / f"{stem}.mp4", fps / self.vid_stride if fps else None)
            self.videos[frame.source] = sink
        sink.write(frame, image, record)

    def close(self) -> None:
        errors = []
        for sink in self.videos.values():
            try:
                sink.close()
            except SinkError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def _stem(spec: str) -> str:
    """A file-name stem for a source: ``vtest`` for a file, ``camera0``, or the URL's last part."""
    if spec.isdigit():
        return f"camera{spec}"
    stem = Path(spec.split("?")[0].rstrip("/")).stem
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) or "stream"


def _supported_options(cls: type[Task], task: str, options: dict[str, Any]) -> dict[str, Any]:
    """Keep the options ``cls`` accepts; warn about the rest (one CLI serves every task)."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return options
    ignored = [k for k in options if k not in params]
    if ignored:
        flags = ", ".join("--" + k.replace("_", "-") for k in ignored)
        warnings.warn(f"The {task} task does not use {flags}; ignored.", RuntimeWarning, stacklevel=3)
    return {k: v for k, v in options.items() if k in params}


def _create_tasks(
    name: str, model: str | None, options: dict[str, Any], src: Source, run_dir: Path | None
) -> tuple[dict[str, Task], list[Path]]:
    """One task per stream of a ``.streams`` source, so that tracks or banks never mix streams.

    Output options (``save_mot=True``) become a file per stream in ``run_dir``, named after it.
    """
    from edgeglocal import tasks

    specs = [s.name for s in src.sources] if isinstance(src, MultiSource) else [src.name]
    created: dict[str, Task] = {}
    outputs: list[Path] = []
    stems: set[str] = set()
    try:
        for spec in specs:
            stem = _stem(spec)
            stem = stem if stem not in stems else f"{stem}_{len(stems)}"
            stems.add(stem)
            task_options = dict(options)
            for key, pattern in OUTPUT_OPTIONS.items():
                if task_options.get(key) is True:
                    task_options[key] = run_dir / pattern.format(stem=stem)
                    outputs.append(task_options[key])
            created[spec] = tasks.create(name, model=model, **task_options)
    except BaseException:
        for task in created.values():
            task.close()
        raise
    return created, outputs


def run(
    task: str | Task,
    source: str | Source,
    *,
    model: str | None = None,
    save: bool = False,
    save_json: bool = False,
    show: bool = False,
    vid_stride: int = 1,
    max_frames: int | None = None,
    project: str | Path = "runs",
    name: str | None = None,
    exist_ok: bool = False,
    task_options: dict[str, Any] | None = None,
    on_stats: Callable[[PipelineStats], None] | None = None,
) -> Pipeline:
    """Run ``task`` (a name for ``tasks.create`` or a :class:`Task`) over ``source``; iterate for results.

    The Python twin of ``edgeglocal run``. Setup happens now, so a bad source or model fails here;
    frames flow as the returned :class:`Pipeline` is iterated. Outputs go to
    ``project/<task>/<name>N`` (``pipeline.run_dir``) when ``save``/``save_json`` ask for them.
    ``show`` without a display warns and carries on. Leaving the loop early: call ``close()`` (or
    use ``with``) to stop the threads and finish the outputs now; otherwise that happens at exit.
    """
    from edgeglocal import tasks

    options = dict(task_options or {})
    if isinstance(task, Task) and (model is not None or options):
        raise InputError("model and task_options apply when task is a name; configure a Task instance yourself.")
    task_name = task.name if isinstance(task, Task) else task
    if not isinstance(task, Task) and task not in tasks.task_names():
        raise InputError(f"Unknown task {task!r}; expected one of {', '.join(tasks.task_names())}.")
    src = source if isinstance(source, Source) else open_source(source, vid_stride, max_frames)
    per_source: dict[str, Task] = {}
    try:
        wants_files = save or save_json or any(options.get(k) is True for k in OUTPUT_OPTIONS)
        run_dir = next_run_dir(Path(project) / (task_name or "task"), name or "exp", exist_ok) if wants_files else None
        if isinstance(task, Task):
            task_obj, per_source, task_outputs = task, {}, []
        else:
            options = _supported_options(tasks.task_class(task), task, options)
            per_source, task_outputs = _create_tasks(task, model, options, src, run_dir)
            task_obj = next(iter(per_source.values()))
        sinks: list[Sink] = []
        if show:
            try:
                sinks.append(WindowSink())
            except SinkError as exc:
                warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
        if save:
            video = _PerSourceVideo(run_dir, src.fps, vid_stride)
            sinks.append(ImageSink(run_dir) if isinstance(src, ImageSource) else video)
        if save_json:
            sinks.append(JsonlSink(run_dir / "results.jsonl"))
    except BaseException:
        for created in per_source.values():
            created.close()
        src.close()
        raise
    return Pipeline(task_obj, src, sinks, run_dir, on_stats, task_outputs=task_outputs, tasks_by_source=per_source)
