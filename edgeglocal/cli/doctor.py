"""``edgeglocal doctor``: what is installed and what can run here, in one table."""

from __future__ import annotations

import typer
from rich.table import Table

from edgeglocal.cli._console import console, handle_errors

_MARK = {True: "[green]ok[/]", False: "[red]missing[/]", None: "[yellow]-[/]"}


@handle_errors
def doctor_command() -> None:
    """Report versions, ONNX Runtime providers, TensorRT and its plugins, CUDA, and the registered ops."""
    from edgeglocal.runtime.environment import environment_report

    table = Table(title="edgeglocal doctor", show_lines=False)
    table.add_column("group", style="bold")
    table.add_column("check")
    table.add_column("status", justify="center")
    table.add_column("detail", overflow="fold")
    for check in environment_report():
        table.add_row(check.group, check.name, _MARK[check.ok], check.detail)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_command)
