"""``edgeglocal build``: a TensorRT engine (plain serialized plan + manifest) from an ONNX bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgeglocal.cli._console import console, handle_errors, human_size, phase_progress, stage


@handle_errors
def build_command(
    bundle: Path = typer.Argument(..., help="An ONNX bundle (NAME.onnx, with NAME.json when exported by edgeglocal)."),
    fp16: bool = typer.Option(False, "--fp16", help="TensorRT 10.x: allow FP16 kernels for an fp32 graph."),
    int8: bool = typer.Option(False, "--int8", help="Require an explicitly quantized (Q/DQ) bundle and build INT8."),
    shapes: Optional[str] = typer.Option(
        None, "--shapes", help="Profile per input: NAME:MIN/OPT/MAX, e.g. input:1x3x224x224/1x3x512x512/4x3x1024x1024."
    ),
    timing_cache: Optional[Path] = typer.Option(None, "--timing-cache", help="Read and update this timing cache file."),
    plugins: Optional[Path] = typer.Option(
        None, "--plugins", help="libedgeglocal_trt_plugins.so (default: $EDGEGLOCAL_TRT_PLUGINS, plugins_trt/build)."
    ),
    workspace: Optional[float] = typer.Option(None, "--workspace", help="Builder workspace limit in GB."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output .engine (default NAME_trt.engine)."),
) -> None:
    """Build a TensorRT engine with the edgeglocal plugins and write it with its manifest."""
    from edgeglocal.export.trt_build import build_engine

    with phase_progress() as progress:
        with stage(f"Build TensorRT engine from {bundle.name}") as info:
            result = build_engine(bundle, output, fp16=fp16, int8=int8, shapes=shapes, timing_cache=timing_cache,
                                  plugins=plugins, workspace_gb=workspace, progress=progress)
            if result.plugin_library:
                plugin = result.plugin_library.name
            elif result.custom_ops:
                plugin = f"not found, so {', '.join(result.custom_ops)} run as their ONNX function bodies"
            else:
                plugin = "none needed"
            info["detail"] = f"{result.precision}, plugins: {plugin}"

    for name, (lo, opt, hi) in result.profile.items():
        console.print(f"  profile {name}: min {lo}  opt {opt}  max {hi}")
    size = human_size(result.engine.stat().st_size)
    where = f" and [bold]{result.manifest}[/]" if result.manifest else " (no manifest: the bundle had none)"
    console.print(f"Wrote [bold]{result.engine}[/] ({size}){where}")


def register(app: typer.Typer) -> None:
    app.command("build")(build_command)
