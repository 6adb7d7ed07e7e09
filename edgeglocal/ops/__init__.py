"""The global-local kernels. Importing this package registers their ONNX schemas and translations."""

from edgeglocal.ops.selective_scan import selective_scan, selective_scan_fn, selective_scan_ref
from edgeglocal.ops.selective_scan_2d import selective_scan_2d, selective_scan_2d_ref
from edgeglocal.ops.window_attention import window_attention, window_attention_ref

__all__ = [
    "selective_scan",
    "selective_scan_fn",
    "selective_scan_ref",
    "selective_scan_2d",
    "selective_scan_2d_ref",
    "window_attention",
    "window_attention_ref",
]
