"""ctypes front of libedgeglocal_kernels.so for the GPU tests: each launcher called on torch CUDA tensors."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: Where tests look for the kernel library: $EDGEGLOCAL_KERNELS_LIB, else the CMake build folder.
KERNELS_LIB = Path(os.environ.get("EDGEGLOCAL_KERNELS_LIB", REPO / "plugins_trt" / "build" / "libedgeglocal_kernels.so"))

_P, _I, _F = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
_SIGNATURES = {
    "egl_selective_scan_fwd": [_P] * 8 + [_I] * 7 + [_P],
    "egl_selective_scan_2d_fwd": [_P] * 9 + [_I] * 8 + [_P],
    "egl_selective_scan_2d_workspace_size": [_I] * 5,
    "egl_window_attention_fwd": [_P] * 4 + [_I] * 9 + [_F, _I, _I, _P],
    "egl_status_string": [_I],
}


class Kernels:
    """The C launch API with torch tensors in and out; raises on a non-zero status."""

    def __init__(self, path: Path = KERNELS_LIB) -> None:
        self.lib = ctypes.CDLL(str(path))
        for name, args in _SIGNATURES.items():
            getattr(self.lib, name).argtypes = args
        self.lib.egl_selective_scan_2d_workspace_size.restype = ctypes.c_size_t
        self.lib.egl_status_string.restype = ctypes.c_char_p

    @staticmethod
    def _ptr(t: Any) -> int | None:
        return None if t is None else t.data_ptr()

    @staticmethod
    def _dtype(t: Any) -> int:
        import torch

        return {torch.float32: 0, torch.float16: 1}[t.dtype]

    def _check(self, status: int) -> None:
        if status:
            raise RuntimeError(self.lib.egl_status_string(status).decode())

    def selective_scan(self, u, delta, A, B, C, D, delta_bias, delta_softplus: bool):
        import torch

        b, d, l = u.shape
        g, n = B.shape[1], B.shape[2]
        y = torch.empty_like(u)
        stream = torch.cuda.current_stream().cuda_stream
        self._check(self.lib.egl_selective_scan_fwd(
            *(self._ptr(t) for t in (u, delta, A, B, C, D, delta_bias, y)),
            b, d, l, n, g, self._dtype(u), int(delta_softplus), stream))
        return y

    def selective_scan_2d(self, x, delta, A, B, C, D, delta_bias, delta_softplus: bool, params_follow_scan: bool):
        import torch

        b, d, h, w = x.shape
        n = A.shape[1]
        y = torch.empty_like(x)
        size = self.lib.egl_selective_scan_2d_workspace_size(b, d, h, w, self._dtype(x))
        workspace = torch.empty(max(size, 1), dtype=torch.uint8, device=x.device)
        stream = torch.cuda.current_stream().cuda_stream
        self._check(self.lib.egl_selective_scan_2d_fwd(
            *(self._ptr(t) for t in (x, delta, A, B, C, D, delta_bias, y, workspace)),
            b, d, h, w, n, self._dtype(x), int(delta_softplus), int(params_follow_scan), stream))
        return y

    def window_attention(self, qkv, rel_bias_table, *, num_heads, window_size, shift, scale, q_global=None):
        import torch

        b, h, w, cc = qkv.shape
        c = cc // (2 if q_global is not None else 3)
        out = torch.empty(b, h, w, c, dtype=qkv.dtype, device=qkv.device)
        stream = torch.cuda.current_stream().cuda_stream
        self._check(self.lib.egl_window_attention_fwd(
            *(self._ptr(t) for t in (qkv, rel_bias_table, q_global, out)),
            b, h, w, c, num_heads, window_size[0], window_size[1], shift[0], shift[1], float(scale),
            0 if q_global is None else q_global.shape[0], self._dtype(qkv), stream))
        return out
