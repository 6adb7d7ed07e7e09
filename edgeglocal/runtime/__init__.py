"""Run exported models: ``load(path, device="auto") -> Session`` over ONNX Runtime or TensorRT.

Torch-free at import; each backend imports its runtime library on first use.
"""

from edgeglocal.runtime.backend import Backend
from edgeglocal.runtime.session import DEVICES, Session, load

__all__ = ["Backend", "DEVICES", "Session", "load"]
