"""A deployed app may have onnxruntime and OpenCV but no torch: the runtime and io must not need it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MODULES = [
    "edgeglocal.runtime", "edgeglocal.runtime.ort", "edgeglocal.runtime.preprocess", "edgeglocal.runtime.environment",
    "edgeglocal.io", "edgeglocal.io.sources", "edgeglocal.io.sinks", "edgeglocal.io.pipeline",
    "edgeglocal.tasks.dehaze", "edgeglocal.tasks.track", "edgeglocal.tasks.retrieve", "edgeglocal.tasks.anomaly",
    "edgeglocal.cli.app",
]


def test_runtime_and_io_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
        + "".join(f"import {m}\n" for m in MODULES)
        + "import edgeglocal; edgeglocal.load; edgeglocal.run\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
