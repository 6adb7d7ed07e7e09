"""The ``edgeglocal`` command: a thin Typer front over the library.

Each verb lives in its own module with a ``register(app)`` function; this file only assembles them.
"""

from __future__ import annotations

import importlib

import typer

from edgeglocal._version import __version__
from edgeglocal.cli._console import console, set_debug

app = typer.Typer(
    name="edgeglocal",
    help="Export, quantize, build and run global-local vision models on edge GPUs and CPUs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Verb modules under edgeglocal.cli, in help order.
COMMAND_MODULES = (
    "doctor",
    "export_cmd",
    "check",
    "quantize_cmd",
    "build",
    "run_cmd",
    "fit",
    "index",
    "bench",
    "eval_cmd",
)


def _version(value: bool) -> None:
    if value:
        console.print(f"edgeglocal {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True),
) -> None:
    set_debug(debug)


for _name in COMMAND_MODULES:
    importlib.import_module(f"edgeglocal.cli.{_name}").register(app)


def main() -> None:
    app()
