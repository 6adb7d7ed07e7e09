"""Console helpers every CLI command shares: errors in one red line, stage lines with timings."""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Any, Callable, Iterator, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from edgeglocal.errors import EdgeglocalError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])

_state = {"debug": False}


def set_debug(flag: bool) -> None:
    _state["debug"] = flag


def handle_errors(func: F) -> F:
    """Turn an :class:`EdgeglocalError` into one red sentence and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EdgeglocalError as exc:
            if _state["debug"]:
                raise
            err_console.print(f"[bold red]Error:[/] {escape(str(exc))}")  # messages may hold [brackets]
            raise typer.Exit(code=exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def stage(name: str) -> Iterator[dict[str, Any]]:
    """Print ``name ... done (1.23 s) detail`` around a block; the block may set ``info['detail']``."""
    info: dict[str, Any] = {}
    t0 = time.perf_counter()
    console.print(f"[bold]{name}[/] ...")
    yield info
    dt = time.perf_counter() - t0
    detail = f"  {info['detail']}" if info.get("detail") else ""
    console.print(f"[bold]{name}[/] [green]done[/] ({dt:.2f} s){detail}")


def human_size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.1f} {unit}" if unit != "B" else f"{int(n_bytes)} B"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GB"


@contextlib.contextmanager
def phase_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A transient Rich progress display fed by ``callback(phase, done, total)``, one bar per phase.

    Library functions report long work through such a callback so that they stay free of Rich.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True) as bar:
        bars: dict[str, Any] = {}

        def callback(phase: str, done: int, total: int) -> None:
            if phase not in bars:
                bars[phase] = bar.add_task(phase, total=max(total, 1))
            bar.update(bars[phase], completed=done)

        yield callback
