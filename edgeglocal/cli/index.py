"""``edgeglocal index build``: embed a folder of images into a gallery index for ``--task retrieve``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edgeglocal.cli._console import console, handle_errors, human_size, stage
from edgeglocal.errors import InputError

index_app = typer.Typer(help="Build gallery indexes for image retrieval.", no_args_is_help=True)


@index_app.command("build")
@handle_errors
def build_command(
    gallery: Path = typer.Argument(..., help="Folder of gallery images (searched recursively)."),
    output: Path = typer.Option(Path("gallery.idx"), "--output", "-o", help="Index file to write."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Embedding bundle (default: MobileNetV2 + GeM)."),
    batch: int = typer.Option(16, "--batch", "-b", help="Images per inference batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or tensorrt."),
) -> None:
    """Embed every image under GALLERY and write the index (embeddings, relative paths, model id)."""
    from edgeglocal.tasks.gallery import Embedder, build_gallery, list_images

    if batch < 1:
        raise InputError(f"--batch {batch} is invalid; expected a positive integer.")
    with stage(f"Scan {gallery}") as info:
        files = list_images(gallery)
        info["detail"] = f"{len(files)} images"
    with stage("Load embedder") as info:
        embedder = Embedder(model, device=device)
        info["detail"] = f"{embedder.model_id} on {embedder.session.backend}"

    with stage("Embed") as info, Progress(
        TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    ) as bar:
        task = bar.add_task("embed", total=len(files))
        index, skipped = build_gallery(
            gallery, embedder, batch=batch, files=files, progress=lambda done, _: bar.update(task, completed=done)
        )
        info["detail"] = f"{len(index)} images, dim {index.embeddings.shape[1]}"
    for path in skipped:
        console.print(f"[yellow]Skipped[/] {path}: OpenCV cannot decode it.")

    with stage("Write index"):
        index.save(output)
    console.print(f"Wrote [bold]{output}[/] ({human_size(output.stat().st_size)}, {len(index)} images)")


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
