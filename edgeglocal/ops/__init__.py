"""The global-local kernels. Importing this package registers their ONNX schemas and translations."""

from edgeglocal.ops.window_attention import window_attention, window_attention_ref

__all__ = ["window_attention", "window_attention_ref"]
