"""``edgeglocal quantize``: fp16 / int8 bundles with a report of what they cost."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from edgeglocal.cli._console import console, handle_errors, human_size, phase_progress, stage


@handle_errors
def quantize_command(
    bundle: Path = typer.Argument(..., help="An fp32 bundle (NAME.onnx with NAME.json)."),
    precision: str = typer.Option("int8", "--precision", "-p", help="fp16 or int8."),
    calib: Optional[str] = typer.Option(None, "--calib", help="Calibration images: a folder, glob or video."),
    calib_size: int = typer.Option(32, "--calib-size", help="Number of calibration frames."),
    method: str = typer.Option("minmax", "--method", help="minmax, entropy or percentile."),
    exclude: List[str] = typer.Option([], "--exclude", help="Node-name pattern kept in float (repeatable)."),
    auto: bool = typer.Option(False, "--auto", help="Keep the most sensitive layers in float until --budget holds."),
    budget: float = typer.Option(30.0, "--budget", help="With --auto: lowest acceptable output SNR vs fp32, in dB."),
    target: str = typer.Option("tensorrt", "--target", help="int8: tensorrt (symmetric, TensorRT-ready) or cpu (uint8 activations, fastest on ONNX Runtime CPU)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output .onnx (default NAME_<precision>.onnx)."),
) -> None:
    """Write an FP16 or INT8 (explicit Q/DQ) copy of a bundle and report size, speed and accuracy."""
    from edgeglocal.export.quantize import quantize
    from edgeglocal.export.quant_report import compare_bundles

    with phase_progress() as progress:
        with stage(f"Quantize {bundle.name} to {precision}") as info:
            result = quantize(bundle, precision, calib=calib, calib_size=calib_size, method=method,
                              exclude=exclude, auto=auto, budget_db=budget, target=target, output=output,
                              progress=progress)
            info["detail"] = f"{len(result.excluded)} layer(s) kept in float"

    with stage("Compare with fp32"):
        rows = compare_bundles(bundle, result.path, calib=calib, calib_size=min(calib_size, 16))
    table = Table(title=f"{bundle.stem}: fp32 vs {precision}")
    for col in ("bundle", "size", "ORT CPU latency (ms)", "task metric", "largest output error"):
        table.add_column(col, justify="right" if col != "bundle" else "left")
    for row in rows:
        table.add_row(row.name, human_size(row.size_bytes), f"{row.latency_ms:.2f}",
                      row.metric_text, "-" if row.max_abs_error is None else f"{row.max_abs_error:.3g}")
    console.print(table)
    console.print(f"Wrote [bold]{result.path}[/] and [bold]{result.path.with_suffix('.json')}[/]")


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize_command)
