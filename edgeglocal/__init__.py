"""edgeglocal: export, quantize, build and run global-local vision models.

``import edgeglocal`` is cheap and torch-free; ``edgeglocal.load`` and ``edgeglocal.run`` import
their backends on first use so that a deployed app needs only what it runs.
"""

from __future__ import annotations

from typing import Any

from edgeglocal._version import __version__
from edgeglocal.errors import EdgeglocalError

__all__ = ["__version__", "EdgeglocalError", "load", "run"]


def __getattr__(name: str) -> Any:
    if name == "load":
        from edgeglocal.runtime import load

        return load
    if name == "run":
        from edgeglocal.io.pipeline import run

        return run
    raise AttributeError(f"module 'edgeglocal' has no attribute {name!r}")
