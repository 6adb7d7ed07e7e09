"""Evaluation data the project can build from real photos, and the metrics each field uses.

``evaluate(task, data, method=...)`` dispatches to the task's evaluator module (imported on demand,
so scoring dehazing never imports motmetrics); each returns a JSON-able report with ``metrics``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from edgeglocal.errors import InputError

#: task -> (evaluator module, its methods; the first runs the model, the others are classical baselines)
TASKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dehaze": ("edgeglocal.evaluation.dehaze", ("model", "identity", "clahe")),
    "anomaly": ("edgeglocal.evaluation.anomaly", ("patchcore", "pixel-knn")),
    "track": ("edgeglocal.evaluation.tracking", ("bytetrack", "sort")),
    "retrieve": ("edgeglocal.evaluation.retrieval", ("model", "histogram")),
}


def task_methods(task: str) -> tuple[str, ...]:
    if task not in TASKS:
        raise InputError(f"Task {task!r} cannot be evaluated; expected one of {', '.join(TASKS)}.")
    return TASKS[task][1]


def evaluate(task: str, data: str | Path, method: str | None = None, model: str | Path | None = None,
             results: str | Path | None = None, progress: Callable[[int, int], None] | None = None,
             **options: Any) -> dict:
    """Score ``method`` (default: the task's model method) or saved ``results`` on the set at ``data``."""
    methods = task_methods(task)
    method = method or methods[0]
    if method not in methods:
        raise InputError(f"Method {method!r} is not one of {task}'s methods: {', '.join(methods)}.")
    if not Path(data).is_dir():
        raise InputError(f"Evaluation data {data} is not a folder.")
    module = importlib.import_module(TASKS[task][0])
    report = module.evaluate(data, model=model, results=results, method=method, progress=progress, **options)
    report["data"] = str(data)
    report["model"] = str(model) if model is not None else None
    return report
