"""``edgeglocal check``: does a bundle compute what its PyTorch model computes?"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from edgeglocal.cli._console import console, handle_errors, stage
from edgeglocal.errors import InputError, ParityError


def _import_factory(spec: str) -> Any:
    """``package.module:callable`` (found like ``python -m`` would, from the working folder) or
    ``path/to/file.py:callable``."""
    module_name, _, attr = spec.partition(":")
    try:
        if module_name.endswith(".py"):
            file_spec = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
            if file_spec is None or not Path(module_name).is_file():
                raise ImportError(f"no file {module_name}")
            module = importlib.util.module_from_spec(file_spec)
            file_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(
            f"--model {spec!r} must name an importable module:callable or file.py:callable ({exc})."
        ) from exc


def load_model(
    arch: str | None, model_path: str | None, checkpoint: Path | None, config: dict[str, Any] | None = None
) -> Any:
    """The PyTorch model to compare with: ``--arch`` from the registry (built with the factory
    ``config`` that ``edgeglocal export`` recorded, e.g. class count or input size) or
    ``--model module:callable``."""
    if model_path:
        model = _import_factory(model_path)()
    elif arch:
        from edgeglocal.models import create

        model = create(arch, **{k: tuple(v) if isinstance(v, list) else v for k, v in (config or {}).items()})
    else:
        raise InputError("The bundle's manifest names no architecture; pass --arch NAME or --model module:callable.")
    if checkpoint is not None:
        from edgeglocal.models import load_checkpoint

        load_checkpoint(model, checkpoint, arch=arch or model_path or "")
    return model


def _fmt(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


@handle_errors
def check_command(
    bundle: Path = typer.Argument(..., help="The bundle to check (NAME.onnx with NAME.json)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Registered architecture (default: the manifest's)."),
    model: Optional[str] = typer.Option(
        None, "--model", help="Your own model factory: module:callable or file.py:callable."
    ),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Weights the bundle was exported from."),
    atol: float = typer.Option(1e-4, "--atol", help="Absolute tolerance."),
    rtol: float = typer.Option(1e-3, "--rtol", help="Relative tolerance."),
    n: int = typer.Option(3, "--n", help="Number of random inputs to compare."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random inputs."),
    save: bool = typer.Option(False, "--save", help="Store the result in the manifest's parity field."),
) -> None:
    """Compare a bundle on ONNX Runtime CPU with its PyTorch model; exit 2 when outputs differ."""
    from edgeglocal.bundle import find_manifest
    from edgeglocal.export.parity import check_parity, onnx_file

    with stage("Load model") as info:
        manifest = find_manifest(onnx_file(bundle))
        if arch is None and model is None and manifest is not None and manifest.arch:
            from edgeglocal.models import list_models

            if manifest.arch not in list_models():
                raise InputError(
                    f"The manifest's architecture {manifest.arch!r} is not registered; pass --arch NAME "
                    f"or --model module:callable."
                )
            arch = manifest.arch
        recorded = manifest.extra.get("model", {}).get("config") if manifest and manifest.arch == arch else None
        torch_model = load_model(arch, model, checkpoint, recorded)
        info["detail"] = model or arch

    with stage(f"Compare PyTorch and ONNX Runtime CPU on {n} random input(s)"), Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task("inputs", total=n)
        report = check_parity(torch_model, bundle, atol=atol, rtol=rtol, n=n, seed=seed,
                              on_step=lambda _: bar.advance(task))

    table = Table(title=f"{bundle.name} vs PyTorch (atol={atol:g}, rtol={rtol:g}, {report.n} input(s))")
    table.add_column("output", overflow="fold")
    table.add_column("shape", overflow="fold")
    for col in ("max abs", "mean abs", "max rel", "min atol", "result"):
        table.add_column(col, justify="right", no_wrap=True)
    for o in report.outputs:
        verdict = "[green]PASSED[/]" if o.passed else "[red]FAILED[/]"
        table.add_row(o.name, "x".join(map(str, o.shape)) or "scalar", _fmt(o.max_abs), _fmt(o.mean_abs),
                      _fmt(o.max_rel), _fmt(o.min_atol), verdict)
    console.print(table)
    fed = ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in report.input_shapes.items())
    console.print(f"inputs: {fed} (seeded random, seed {seed}); backend {report.backend}")
    if save:
        written = report.store(bundle)
        console.print(f"Stored the result in [bold]{Path(bundle).with_suffix('.json')}[/] (parity of {written.arch})")
    if not report.passed:
        raise ParityError(
            f"{bundle.name} differs from PyTorch beyond atol={atol:g}, rtol={rtol:g}; it would pass with "
            f"atol >= {report.min_atol:.3g}."
        )
    console.print(f"[bold green]PASSED[/] {bundle.name} matches PyTorch (smallest passing atol {report.min_atol:.3g}).")


def register(app: typer.Typer) -> None:
    app.command("check")(check_command)
