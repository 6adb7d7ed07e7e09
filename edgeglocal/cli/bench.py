"""``edgeglocal bench``: side-by-side latency of models x backends x precisions, one Rich table + JSON."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich import box
from rich.table import Table

from edgeglocal.cli._console import console, handle_errors, human_size, stage
from edgeglocal.errors import InputError


def _split(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise InputError(f"{what} {bad[0] if bad else text!r} is unknown; expected a comma list of {', '.join(allowed)}.")
    return items


@handle_errors
def bench_command(
    models: List[str] = typer.Argument(..., help="Bundles (NAME.onnx) and/or architecture names (`edgeglocal export --list`)."),
    backends: str = typer.Option("torch,ort-cpu", "--backends", "-b", help="Comma list: torch, ort-cpu, ort-cuda, ort-trt, trt."),
    precisions: str = typer.Option("fp32", "--precisions", "-p", help="Comma list: fp32, fp16, int8."),
    imgsz: Optional[tuple[int, int]] = typer.Option(None, "--imgsz", help="Input H W (default: the model's)."),
    batch: int = typer.Option(1, "--batch", help="Images per call."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed calls first."),
    iters: int = typer.Option(20, "--iters", help="Timed calls."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Weights for an architecture name (default: random init)."),
    calib: Optional[Path] = typer.Option(None, "--calib", help="int8 calibration frames (default: samples/media or opencv-doc)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the rows to this JSON file."),
) -> None:
    """Measure latency (mean / p50 / p90 / p99), throughput and speed-up over PyTorch eager."""
    from edgeglocal.bench import BACKENDS, PRECISIONS, benchmark
    from edgeglocal.bench.run import check_models
    from edgeglocal.fsutil import write_text_atomic

    backend_list = _split(backends, BACKENDS, "Backend")
    precision_list = _split(precisions, PRECISIONS, "Precision")
    if batch < 1 or iters < 1 or warmup < 0:
        raise InputError(f"--batch {batch}, --iters {iters}, --warmup {warmup}: expected batch, iters >= 1 and warmup >= 0.")
    check_models(models)

    with stage(f"Benchmark {len(models)} model(s) x {len(backend_list)} backend(s) x {len(precision_list)} precision(s)") as info, \
            console.status("preparing...") as status:
        rows = benchmark(models, backend_list, precision_list, imgsz, batch, warmup, iters,
                         checkpoint, calib, log=lambda msg: status.update(msg))
        info["detail"] = f"{sum(r.status == 'ok' for r in rows)} of {len(rows)} rows measured"

    table = Table(title=f"Latency (ms), batch {batch}, {iters} timed calls after {warmup} warm-up", box=box.SIMPLE_HEAD)
    for col in ("model", "backend", "prec.", "size", "mean", "p50", "p90", "p99", "CPU", "img/s", "vs torch"):
        table.add_column(col, justify="left" if col in ("model", "backend", "prec.") else "right", no_wrap=col != "model")
    notes: dict[str, int] = {}  # one footnote per distinct reason, so the table stays narrow
    for r in rows:
        size = human_size(r.size_bytes) if r.size_bytes else "-"
        if r.latency is None:
            mark = notes.setdefault(f"[{'yellow' if r.status == 'unavailable' else 'red'}]{r.status}[/]: {r.reason}",
                                    len(notes) + 1)
            table.add_row(r.model, r.backend, r.precision, size, f"{'n/a' if r.status == 'unavailable' else 'failed'} [{mark}]",
                          *[""] * 6)
            continue
        lat = r.latency
        table.add_row(r.model, r.backend, r.precision, size, f"{lat.mean_ms:.2f}", f"{lat.p50_ms:.2f}",
                      f"{lat.p90_ms:.2f}", f"{lat.p99_ms:.2f}", f"{lat.cpu_ms:.2f}", f"{lat.throughput:.1f}",
                      "-" if r.vs_torch is None else f"{r.vs_torch:.2f}x")
    console.print(table)
    for text, mark in notes.items():
        console.print(f"[{mark}] {text}")
    if json_out is not None:
        meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.platform(),
                "processor": platform.processor() or platform.machine(), "batch": batch, "warmup": warmup, "iters": iters}
        write_text_atomic(json_out, json.dumps({**meta, "rows": [r.to_dict() for r in rows]}, indent=1) + "\n")
        console.print(f"Rows written to [bold]{json_out}[/]")
    else:
        console.print("Done (pass --json FILE to keep the rows).")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)
