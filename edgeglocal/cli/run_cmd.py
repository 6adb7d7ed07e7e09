"""``edgeglocal run``: a task over a camera, video, images or stream, with a live stats panel."""

from __future__ import annotations

import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from edgeglocal.cli._console import console, err_console, handle_errors, stage
from edgeglocal.io.pipeline import STAGES, PipelineStats

_SHORT = {"decode": "decode", "preprocess": "pre", "infer": "infer", "postprocess": "post", "render": "render", "write": "write"}


def _stats_table(stats: PipelineStats) -> Table:
    """One row: FPS, per-stage latency (ms, moving average), dropped frames, reconnects."""
    table = Table(box=None, header_style="bold", pad_edge=False, caption="stage latencies in ms", caption_justify="left")
    for header in ("FPS", *(_SHORT[s] for s in STAGES), "dropped", "reconnects"):
        table.add_column(header, justify="right")
    table.add_row(
        f"{stats.fps:.1f}", *(f"{stats.latency_ms[s]:.1f}" for s in STAGES), str(stats.dropped), str(stats.reconnects)
    )
    return table


class _Panel:
    """Progress bar (files) or frame counter (live) plus the stats table, redrawn a few times a second."""

    def __init__(self, total: int | None, label: str) -> None:
        columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
        if total:
            columns += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        else:
            columns += [TextColumn("{task.completed} frames")]
        self.progress = Progress(*columns, console=console)
        self.bar = self.progress.add_task(label, total=total)
        self.stats = PipelineStats(total=total)
        self.live = Live(self.render(), console=console, refresh_per_second=4, transient=False)
        self._last = 0.0

    def render(self) -> Group:
        return Group(self.progress, _stats_table(self.stats))

    def update(self, stats: PipelineStats, force: bool = False) -> None:
        self.stats = stats
        now = time.monotonic()
        if force or now - self._last >= 0.25:
            self._last = now
            self.progress.update(self.bar, completed=stats.frames)
            self.live.update(self.render())


def _describe(output: Path) -> str:
    """A file by its name, an image folder by how many images it holds."""
    if output.is_dir():
        n = sum(1 for p in output.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"))
        return f"{n} image{'s' if n != 1 else ''}"
    return output.name


@handle_errors
def run_command(
    task: str = typer.Option(..., "--task", "-t", help="dehaze, anomaly, track or retrieve."),
    source: str = typer.Option(..., "--source", "-s", help="Camera index, video, image/folder/glob, rtsp:// or http:// URL, or .streams file."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Bundle (.onnx/.engine + .json); default: the task's built-in model."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or tensorrt."),
    show: bool = typer.Option(False, "--show", help="Show results in a window (q or Esc stops)."),
    save: bool = typer.Option(False, "--save", help="Save rendered video / images."),
    save_json: bool = typer.Option(False, "--save-json", help="Save one JSON record per frame (results.jsonl)."),
    vid_stride: int = typer.Option(1, "--vid-stride", min=1, help="Use every N-th frame of videos and streams."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Stop after N frames."),
    project: Path = typer.Option(Path("runs"), "--project", help="Root folder of run outputs."),
    name: Optional[str] = typer.Option(None, "--name", help="Run folder name under PROJECT/TASK (default exp, exp2, ...)."),
    exist_ok: bool = typer.Option(False, "--exist-ok", help="Reuse PROJECT/TASK/NAME instead of numbering a new one."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Task threshold (anomaly score, match distance...)."),
    bank: Optional[Path] = typer.Option(None, "--bank", help="anomaly: normal memory bank from `edgeglocal fit`."),
    fit_frames: Optional[int] = typer.Option(None, "--fit-frames", min=1, help="anomaly without --bank: fit on the first N frames."),
    index: Optional[Path] = typer.Option(None, "--index", help="retrieve: gallery index from `edgeglocal index`."),
    topk: Optional[int] = typer.Option(None, "--topk", min=1, help="retrieve: matches per query."),
    save_mot: bool = typer.Option(False, "--save-mot", help="track: write MOTChallenge tracks to the run folder."),
    reid: Optional[str] = typer.Option(None, "--reid", help="track: appearance embedder, 'default' (MobileNetV2 + GeM) or a reid bundle."),
    side_by_side: bool = typer.Option(False, "--side-by-side", help="dehaze: render input and output side by side."),
) -> None:
    """Run a task on a stream and save, show or print the results."""
    from edgeglocal.io.pipeline import run

    chosen = {"threshold": threshold, "bank": bank, "fit_frames": fit_frames, "index": index, "topk": topk,
              "save_mot": save_mot or None, "reid": reid, "side_by_side": side_by_side or None,
              "device": None if device == "auto" else device}
    options = {k: v for k, v in chosen.items() if v is not None}

    with stage(f"Open {task} on {source}") as info, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        pipe = run(task, source, model=model, save=save, save_json=save_json, show=show, vid_stride=vid_stride,
                   max_frames=max_frames, project=project, name=name, exist_ok=exist_ok, task_options=options)
        backend = getattr(getattr(pipe.task, "session", None), "backend", None)
        kind = "live" if pipe.source.is_live else f"{pipe.source.total or '?'} frames"
        info["detail"] = f"{kind}" + (f", {backend}" if backend else "")
    for w in caught:
        err_console.print(f"[yellow]Warning:[/] {w.message}")

    panel = _Panel(pipe.source.total, f"{task}")
    pipe.on_stats = panel.update
    interrupted = False

    def on_sigint(signum: int, frame: Any) -> None:
        """First Ctrl-C: finish the frame in hand and close outputs; a second one aborts."""
        nonlocal interrupted
        if interrupted:
            raise KeyboardInterrupt
        interrupted = True
        pipe.request_stop()

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    t0 = time.perf_counter()
    with panel.live:
        try:
            for _ in pipe:
                pass
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if main_thread:
                signal.signal(signal.SIGINT, previous)
            pipe.close()
        panel.update(pipe.stats, force=True)
    console.line()
    stats = pipe.stats
    summary = f"{stats.frames} frames in {time.perf_counter() - t0:.1f} s ({stats.fps:.1f} FPS)"
    if stats.dropped:
        summary += f", {stats.dropped} dropped"
    console.print(("[yellow]Interrupted[/] after " if interrupted else "Processed ") + summary)
    if pipe.run_dir is not None:
        names = ", ".join(sorted(_describe(p) for p in pipe.outputs)) or "nothing yet"
        console.print(f"Results saved to [bold]{pipe.run_dir}[/] ({names})")
    else:
        console.print("Nothing saved (add --save or --save-json to keep results).")
    if interrupted:
        raise typer.Exit(code=130)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
