"""PyTorch -> ONNX bundles, graph passes and the parity check against PyTorch."""

from edgeglocal.export.onnx import to_onnx
from edgeglocal.export.parity import ParityReport, check_parity
from edgeglocal.export.patch import patch

__all__ = ["ParityReport", "check_parity", "patch", "to_onnx"]
