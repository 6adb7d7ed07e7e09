"""Task registry: ``create("dehaze" | "anomaly" | "track" | "retrieve", model=None, **options)``.

Task modules are imported on demand so that running one task does not load the others' deps.
"""

from __future__ import annotations

import importlib
from typing import Any

from edgeglocal.errors import InputError
from edgeglocal.tasks.base import Result, Task

_TASKS = {
    "dehaze": "edgeglocal.tasks.dehaze:DehazeTask",
    "anomaly": "edgeglocal.tasks.anomaly:AnomalyTask",
    "track": "edgeglocal.tasks.track:TrackTask",
    "retrieve": "edgeglocal.tasks.retrieve:RetrieveTask",
}

__all__ = ["Result", "Task", "create", "task_class", "task_names"]


def task_names() -> list[str]:
    return list(_TASKS)


def task_class(name: str) -> type[Task]:
    """The Task subclass registered as ``name`` (imported on demand)."""
    if name not in _TASKS:
        raise InputError(f"Unknown task {name!r}; expected one of {', '.join(_TASKS)}.")
    module_name, cls_name = _TASKS[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def create(name: str, model: str | None = None, **options: Any) -> Task:
    """Build a task; ``model`` is a bundle path, or None for the embedded default."""
    return task_class(name)(model=model, **options)
