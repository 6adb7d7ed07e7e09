"""Pipeline overhead: end-to-end FPS of ``edgeglocal.run`` vs the task's model alone, per task.

    python bench/pipeline.py --source /usr/share/doc/opencv-doc/examples/data/vtest.avi --frames 60

"model only" times ``task.infer`` on feeds prepared beforehand (no decode, no pre/post-processing);
"end to end" times the threaded pipeline over the same frames (decode, preprocess, infer,
postprocess, and with ``--save`` render + video encode). overhead = 1 - e2e FPS / model FPS: the
share of throughput lost to everything that is not the model. Writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgeglocal import tasks
from edgeglocal.errors import EdgeglocalError
from edgeglocal.io.pipeline import run
from edgeglocal.io.sources import open_source

DEFAULT_SOURCE = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def make_task(name: str, source: str, workdir: Path) -> tasks.Task:
    """The task with its default model; anomaly gets a bank fitted beforehand on the source's first
    frames, so that the one-off coreset selection is not timed as per-frame work."""
    if name != "anomaly":
        return tasks.create(name)
    bank = workdir / "anomaly_bank.npz"
    if not bank.exists():
        from edgeglocal.tasks.anomaly import DEFAULT_FIT_FRAMES, fit_normal_bank

        with open_source(source, max_frames=DEFAULT_FIT_FRAMES) as src:
            fit_normal_bank(f.image for f in src).save(bank)
    return tasks.create(name, bank=str(bank))


def model_only_fps(task: tasks.Task, source: str, frames: int) -> float:
    with open_source(source, max_frames=frames) as src:
        feeds = [task.preprocess(f) for f in src]
    task.infer(feeds[0])  # warm-up
    t0 = time.perf_counter()
    for f in feeds:
        task.infer(f)
    return len(feeds) / (time.perf_counter() - t0)


def end_to_end_fps(task: tasks.Task, source: str, frames: int, save: bool, project: Path) -> tuple[float, dict]:
    pipe = run(task, source, max_frames=frames, save=save, project=project)
    t0 = time.perf_counter()
    n = sum(1 for _ in pipe)
    return n / (time.perf_counter() - t0), dict(pipe.stats.latency_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description="end-to-end vs model-only FPS")
    parser.add_argument("--source", default=DEFAULT_SOURCE)
    parser.add_argument("--tasks", nargs="+", default=tasks.task_names())
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2, help="best of N for each measurement (shared CPUs are noisy)")
    parser.add_argument("--save", action="store_true", help="also render and encode the output video")
    parser.add_argument("--out", default="bench/results/pipeline.json")
    args = parser.parse_args()
    console = Console()
    rows = []
    with tempfile.TemporaryDirectory() as project:
        for name in args.tasks:
            try:
                model_fps = max(model_only_fps(make_task(name, args.source, Path(project)), args.source, args.frames)
                                for _ in range(args.repeats))
                e2e_fps, latency = max(
                    (end_to_end_fps(make_task(name, args.source, Path(project)), args.source, args.frames, args.save,
                                    Path(project))
                     for _ in range(args.repeats)), key=lambda r: r[0])
            except (EdgeglocalError, ImportError) as exc:
                console.print(f"[yellow]{name}: skipped[/] ({exc})")
                continue
            rows.append({"task": name, "model_fps": model_fps, "e2e_fps": e2e_fps,
                         "overhead": 1 - e2e_fps / model_fps, "latency_ms": latency})
    table = Table(title=f"pipeline vs model, {args.frames} frames of {Path(args.source).name}, "
                        f"save={args.save}, best of {args.repeats}")
    for col in ("task", "model-only FPS", "end-to-end FPS", "overhead", "infer ms", "pre ms", "post ms", "decode ms"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for r in rows:
        lat = r["latency_ms"]
        table.add_row(r["task"], f"{r['model_fps']:.2f}", f"{r['e2e_fps']:.2f}", f"{100 * r['overhead']:.1f}%",
                      f"{lat['infer']:.1f}", f"{lat['preprocess']:.1f}", f"{lat['postprocess']:.1f}",
                      f"{lat['decode']:.1f}")
    console.print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"source": args.source, "frames": args.frames, "save": args.save, "repeats": args.repeats,
            "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
