"""``edgeglocal eval``: task accuracy with each field's standard metrics, and the sets to measure it on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from edgeglocal.cli._console import console, handle_errors, stage
from edgeglocal.errors import InputError

eval_app = typer.Typer(help="Score a model (or saved results) with each field's standard metrics.",
                       invoke_without_command=True, no_args_is_help=False)


@eval_app.callback()
@handle_errors
def eval_command(
    ctx: typer.Context,
    task: Optional[str] = typer.Option(None, "--task", "-t", help="dehaze, anomaly, track or retrieve."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="The evaluation set (see `eval make-set`)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="A bundle (default: the task's embedded default)."),
    results: Optional[Path] = typer.Option(
        None, "--results", help="Score outputs made elsewhere, no model run: dehazed images named as in hazy/; "
        "[<category>/]<defect>/<name>.npy|.png maps (+ scores.json); <seq>.txt MOTChallenge files; rankings.json."),
    method: Optional[str] = typer.Option(
        None, "--method", help="Comma list (default: the first): dehaze model,identity,clahe; anomaly "
        "patchcore,pixel-knn; track bytetrack,sort; retrieve model,histogram."),
    compare: bool = typer.Option(False, "--compare", help="Also run the task's classical baselines, side by side."),
    use_dets: bool = typer.Option(False, "--use-dets", help="track: replay det/det.txt through the tracker."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the reports to this JSON file."),
) -> None:
    """Score a model, its classical baselines or saved results on an evaluation set."""
    if ctx.invoked_subcommand is not None:
        return
    from edgeglocal.evaluation import evaluate, task_methods
    from edgeglocal.fsutil import write_text_atomic

    if task is None or data is None:
        raise InputError("eval needs --task and --data (or the make-set subcommand); see `edgeglocal eval --help`.")
    methods = task_methods(task)
    chosen = [None] if results is not None else (
        list(methods) if compare else [m.strip() for m in method.split(",")] if method else [methods[0]])
    options = {"use_dets": use_dets} if task == "track" else {}
    reports = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        for m in chosen:
            label = "results" if m is None else m
            job = bar.add_task(f"{task} / {label}", total=None)
            with stage(f"Evaluate {task} / {label} on {data}") as info:
                report = evaluate(task, data, method=m, model=model, results=results,
                                  progress=lambda done, total, job=job: bar.update(job, completed=done, total=total),
                                  **options)
                info["detail"] = ", ".join(f"{k} {v:.4g}" for k, v in list(report["metrics"].items())[:3])
            reports.append(report)
    console.print(_table(task, data, reports, methods[0]))
    if json_out is not None:
        write_text_atomic(json_out, json.dumps({"task": task, "reports": reports}, indent=1, default=str) + "\n")
        console.print(f"Reports written to [bold]{json_out}[/]")
    else:
        console.print("Done (pass --json FILE to keep the per-item numbers).")


def _table(task: str, data: Path, reports: list[dict], primary: str) -> Table:
    """Metrics as rows and methods as columns, so that many metrics still fit a terminal."""
    table = Table(title=f"{task} accuracy on {data}")
    table.add_column("metric")
    for r in reports:
        label = r["method"]
        if label == primary:  # the model method: say which model ran
            label += f" ({Path(r['model']).name if r.get('model') else 'default'})"
        table.add_column(label, justify="right")
    for k in reports[0]["metrics"]:
        table.add_row(k, *(_fmt(r["metrics"][k]) for r in reports))
    return table


def _fmt(v: float) -> str:
    return f"{int(v)}" if float(v).is_integer() and abs(v) > 1 else f"{v:.4f}"


@eval_app.command("make-set")
@handle_errors
def make_set_command(
    kind: str = typer.Argument(..., help="haze, anomaly, mot or retrieval."),
    out: Path = typer.Option(..., "--out", "-o", help="New or empty folder for the set."),
    n: Optional[int] = typer.Option(None, "--n", help="Size (images / per-category images / frames / scenes)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed builds the same set."),
) -> None:
    """Build an evaluation set with known ground truth from real data shipped with the dependencies."""
    from edgeglocal.evaluation.datasets import make_set

    with stage(f"Build {kind} set"):
        path = make_set(kind, out, n=n, seed=seed)
    files = sum(1 for p in path.rglob("*") if p.is_file())
    console.print(f"Wrote {files} files to [bold]{path}[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
