"""Where the TensorRT plugin library is looked for, shared by the TensorRT backend and ``doctor``."""

from __future__ import annotations

import os
from pathlib import Path

import edgeglocal

LIBRARY_NAME = "libedgeglocal_trt_plugins.so"
ENV_VAR = "EDGEGLOCAL_TRT_PLUGINS"


def plugin_search_paths() -> list[tuple[str, Path]]:
    """(origin, path) candidates in search order: $EDGEGLOCAL_TRT_PLUGINS, the source build, the package."""
    package = Path(edgeglocal.__file__).resolve().parent
    candidates = []
    if os.environ.get(ENV_VAR):
        candidates.append((f"${ENV_VAR}", Path(os.environ[ENV_VAR]).expanduser()))
    candidates.append(("source build", package.parent / "plugins_trt" / "build" / LIBRARY_NAME))
    candidates.append(("package", package / LIBRARY_NAME))
    return candidates


def find_plugin_library() -> tuple[Path | None, str]:
    """The first existing candidate and where it came from, or None and what was searched."""
    searched = []
    for origin, path in plugin_search_paths():
        if path.is_file():
            return path, origin
        searched.append(f"{path} ({origin}: missing)")
    return None, "; ".join(searched)
