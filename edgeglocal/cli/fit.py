"""``edgeglocal fit anomaly``: learn a PatchCore normal bank from normal images or a video."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgeglocal.cli._console import console, handle_errors, human_size, stage
from edgeglocal.errors import InputError

fit_app = typer.Typer(help="Fit task state (normal banks) from example data.", no_args_is_help=True)


@fit_app.command("anomaly")
@handle_errors
def anomaly_command(
    normal: str = typer.Option(..., "--normal", "-n", help="Folder / glob of normal images, or a video."),
    output: Path = typer.Option(Path("bank.npz"), "--output", "-o", help="Bank file to write (.npz)."),
    frames: int = typer.Option(100, "--frames", min=2, help="Use the first N frames / images (coreset time grows with N squared)."),
    coreset: float = typer.Option(0.1, "--coreset", help="Fraction of normal patches kept in the memory (0, 1]."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Image-score threshold (default: from held-out normal images)."),
    vid_stride: int = typer.Option(1, "--vid-stride", min=1, help="Use every N-th video frame."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or tensorrt."),
) -> None:
    """Fit the normal patch memory and threshold used by `edgeglocal run --task anomaly --bank BANK`."""
    from edgeglocal.io.sources import open_source
    from edgeglocal.tasks.anomaly import fit_normal_bank
    from edgeglocal.tasks.backbones import feature_session

    if not 0.0 < coreset <= 1.0:
        raise InputError(f"--coreset {coreset} is invalid; expected a fraction in (0, 1].")
    if output.suffix != ".npz":
        raise InputError(f"--output {output} must end in .npz.")
    with stage("Load feature model") as info:
        session = feature_session("patch", device=device)
        info["detail"] = f"MobileNetV2 patch features on {session.backend}"
    source = open_source(normal, vid_stride=vid_stride, max_frames=frames)
    if source.is_live:
        source.close()
        raise InputError(f"--normal {normal} is a live stream; expected a folder of images or a video file.")
    with stage(f"Fit on {normal}") as info, Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as bar:
        steps = {"features": bar.add_task("features", total=source.total), "coreset": bar.add_task("coreset", total=None)}

        def progress(step: str, done: int, total: int) -> None:
            bar.update(steps[step], completed=done, total=total or source.total)

        try:
            bank = fit_normal_bank((f.image for f in source), coreset, threshold, session, progress)
        finally:
            source.close()
        info["detail"] = (
            f"{bank.info['images']} images -> {len(bank.memory)} patches x {bank.memory.shape[1]}, "
            f"threshold {bank.threshold:.4g}"
        )
    bank.save(output)
    console.print(f"Wrote [bold]{output}[/] ({human_size(output.stat().st_size)}); "
                  f"use it with `edgeglocal run --task anomaly --bank {output} --source ...`")


def register(app: typer.Typer) -> None:
    app.add_typer(fit_app, name="fit")
