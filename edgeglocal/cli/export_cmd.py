"""``edgeglocal export``: registered architecture (+ checkpoint) -> bundle checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.markup import escape
from rich.table import Table

from edgeglocal.cli._console import console, handle_errors, human_size, stage
from edgeglocal.errors import InputError, ParityError

PARITY_INPUTS = 2


def _list_models() -> None:
    from edgeglocal.models import get_config, list_models

    table = Table(title="Registered architectures")
    for col in ("name", "task", "input", "dynamic", "description"):
        table.add_column(col)
    for name in list_models():
        cfg = get_config(name)
        table.add_row(name, cfg.task, "x".join(map(str, cfg.input_size)), ",".join(cfg.dynamic), cfg.description)
    console.print(table)


def _parity_table(name: str, report: Any) -> Table:
    table = Table(title=f"{name}: ONNX Runtime CPU vs PyTorch ({report.n} random inputs, atol={report.atol:g})")
    for col in ("output", "shape", "max abs", "mean abs", "result"):
        table.add_column(col, justify="left" if col in ("output", "shape") else "right")
    for o in report.outputs:
        table.add_row(o.name, "x".join(map(str, o.shape)), f"{o.max_abs:.3g}", f"{o.mean_abs:.3g}",
                      "[green]PASSED[/]" if o.passed else "[red]FAILED[/]")
    return table


def _run_hint(task: str, onnx_path: Path, input_name: str, size: tuple[int, int]) -> str:
    """The command that runs the bundle: the task's ``edgeglocal run``, else a runnable Python line."""
    from edgeglocal.tasks import task_names

    if task in task_names():
        return f"edgeglocal run --task {task} --model {onnx_path} --source VIDEO_OR_CAMERA"
    feeds = f"{{'{input_name}': np.zeros((1, 3, {size[0]}, {size[1]}), np.float32)}}"
    return (f"python -c \"import edgeglocal, numpy as np; out = edgeglocal.load('{onnx_path}').run({feeds}); "
            f"print({{k: v.shape for k, v in out.items()}})\"")


@handle_errors
def export_command(
    arch: Optional[str] = typer.Option(None, "--arch", "-a", help="Registered architecture (see --list)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help=".pt/.pth/.safetensors weights."),
    imgsz: Optional[tuple[int, int]] = typer.Option(None, "--imgsz", help="Input H W (default: the model's)."),
    dynamic: str = typer.Option("batch", "--dynamic", help="Symbolic dims: batch, hw, all or none."),
    opset: int = typer.Option(18, "--opset", help="ONNX default-domain opset."),
    output: Path = typer.Option(Path("exports"), "--output", "-o", help="Folder for NAME.onnx + NAME.json."),
    name: Optional[str] = typer.Option(None, "--name", help="Bundle name (default: checkpoint stem or arch)."),
    num_classes: Optional[int] = typer.Option(None, "--num-classes", help="Classes of a fine-tuned checkpoint."),
    ema: bool = typer.Option(False, "--ema", help="Use the checkpoint's EMA weights (model_ema / state_dict_ema)."),
    atol: float = typer.Option(1e-4, "--atol", help="Parity tolerance against PyTorch (fp32)."),
    list_: bool = typer.Option(False, "--list", help="List the registered architectures and exit."),
) -> None:
    """Export a registered model to an ONNX bundle with edgeglocal ops and check it against PyTorch."""
    if list_:
        _list_models()
        return
    if not arch:
        raise InputError("--arch is required; run `edgeglocal export --list` to see the architectures.")
    from edgeglocal.models._registry import DYNAMIC_MODES

    dyn = None if dynamic == "none" else dynamic
    if dyn is not None and dyn not in DYNAMIC_MODES:
        raise InputError(f"--dynamic {dynamic!r} is not valid; expected {', '.join(DYNAMIC_MODES)} or none.")

    import torch

    from edgeglocal.export import check_parity, to_onnx
    from edgeglocal.models import create, get_config, load_checkpoint
    from edgeglocal.models.checkpoint import CheckpointMismatch

    cfg = get_config(arch)
    size = cfg.check_size(imgsz) if imgsz else cfg.input_size
    overrides: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    if cfg.size_kwarg and size != cfg.input_size:
        overrides[cfg.size_kwarg] = size
    input_specs = cfg.input_specs(size, dyn)  # validates --dynamic against the model

    with stage(f"Build {arch}") as info:
        model = create(arch, **overrides).eval()
        n_params = sum(p.numel() for p in model.parameters())
        info["detail"] = f"{n_params / 1e6:.2f} M parameters"

    if checkpoint is not None:
        with stage(f"Load {checkpoint}") as info:
            try:
                report = load_checkpoint(model, checkpoint, arch=arch, ema=ema)
            except CheckpointMismatch as exc:
                console.print(exc.report.to_table())
                raise
            info["detail"] = f"{report.loaded} tensors" + (f", resized {len(report.resized)}" if report.resized else "")

    out = output / f"{name or (checkpoint.stem if checkpoint else arch)}.onnx"
    with stage(f"Export ONNX (opset {opset}, dynamic={dyn})") as info, console.status("exporting..."):
        manifest = to_onnx(
            model, torch.randn(1, 3, *size), out, task=cfg.task, arch=arch, dynamic=dyn, opset=opset,
            input_specs=input_specs, output_specs=cfg.output_specs(),
            extra={"model": {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
                             "checkpoint": checkpoint.name if checkpoint else None,
                             "parameters": n_params}},
        )
        info["detail"] = f"{human_size(out.stat().st_size)}, edgeglocal ops: {', '.join(manifest.custom_ops) or 'none'}"

    with stage("Check parity on ONNX Runtime CPU"), Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task("inputs", total=PARITY_INPUTS)
        parity = check_parity(model, out, atol=atol, n=PARITY_INPUTS, on_step=lambda _: bar.advance(task))
        parity.store(out)
    console.print(_parity_table(out.name, parity))
    if not parity.passed:
        raise ParityError(
            f"{out} differs from PyTorch beyond atol={atol:g} (it would pass with atol >= {parity.min_atol:.3g}); "
            "the bundle is kept for inspection."
        )
    console.print(f"Results saved to [bold]{out}[/] and [bold]{out.with_suffix('.json')}[/]")
    console.print(f"Run it: [bold]{escape(_run_hint(cfg.task, out, cfg.input_name, size))}[/]", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
