"""The few CUDA runtime calls the TensorRT backend needs (device buffers, a stream, copies), made
through ``ctypes`` on ``libcudart``.

A deployed app, say on a Jetson with JetPack's TensorRT, then needs neither PyTorch nor
cuda-python: ``libcudart`` comes with the CUDA toolkit, JetPack and the ``nvidia-cuda-runtime``
wheels that TensorRT's own wheels pull in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys

import numpy as np

from edgeglocal.errors import BackendUnavailable

_H2D, _D2H = 1, 2  # cudaMemcpyKind
_STREAM_NON_BLOCKING = 1
_ATTR_CC_MAJOR, _ATTR_CC_MINOR = 75, 76  # cudaDevAttrComputeCapabilityMajor / Minor
SONAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")


def _candidates() -> list[str]:
    """Where libcudart may be: $CUDA_HOME, the toolkit and JetPack folders, NVIDIA's runtime wheels,
    then whatever the dynamic linker finds by name."""
    roots = [os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    found = []
    for root in filter(None, roots):
        for sub in ("lib64", "lib", "targets/x86_64-linux/lib", "targets/aarch64-linux/lib"):
            found += sorted(glob.glob(os.path.join(root, sub, "libcudart.so*")))
    for site in sys.path:
        found += sorted(glob.glob(os.path.join(site, "nvidia", "cu*", "lib", "libcudart.so*")))
        found += sorted(glob.glob(os.path.join(site, "nvidia", "cuda_runtime", "lib", "libcudart.so*")))
    by_name = ctypes.util.find_library("cudart")
    return found + ([by_name] if by_name else []) + list(SONAMES)


def load_cudart(path: str | os.PathLike | None = None) -> ctypes.CDLL:
    """``libcudart`` (from ``path`` when given), or :class:`BackendUnavailable` naming where it looked."""
    tried = [str(path)] if path is not None else _candidates()
    for name in tried:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise BackendUnavailable(
        "The CUDA runtime library libcudart was not found (looked in $CUDA_HOME, /usr/local/cuda and "
        "NVIDIA's pip wheels); install the CUDA toolkit or JetPack, or set $CUDA_HOME."
    )


class CudaError(RuntimeError):
    """A CUDA runtime call failed; the message is CUDA's own."""


class CudaRuntime:
    """Device ``device`` through libcudart: allocate, copy and synchronise on one non-blocking stream."""

    def __init__(self, device: int = 0, library: str | os.PathLike | None = None) -> None:
        self._lib = lib = load_cudart(library)
        lib.cudaGetErrorString.restype = ctypes.c_char_p
        count = ctypes.c_int(0)
        code = lib.cudaGetDeviceCount(ctypes.byref(count))
        if code != 0 or count.value == 0:
            reason = self._error(code) if code else "no device"
            raise BackendUnavailable(f"No CUDA GPU is usable here ({reason}).")
        if not 0 <= device < count.value:
            raise BackendUnavailable(f"CUDA device {device} does not exist; this machine has {count.value}.")
        self.device = device
        self._check(lib.cudaSetDevice(device), "cudaSetDevice")
        stream = ctypes.c_void_p()
        self._check(lib.cudaStreamCreateWithFlags(ctypes.byref(stream), _STREAM_NON_BLOCKING), "cudaStreamCreate")
        self.stream = stream.value or 0

    def _error(self, code: int) -> str:
        return f"{self._lib.cudaGetErrorString(code).decode()}, error {code}"

    def _check(self, code: int, call: str) -> None:
        if code != 0:
            raise CudaError(f"{call} failed: {self._error(code)}.")

    def compute_capability(self) -> str:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self._lib.cudaDeviceGetAttribute(ctypes.byref(major), _ATTR_CC_MAJOR, self.device), "cudaDeviceGetAttribute")
        self._check(self._lib.cudaDeviceGetAttribute(ctypes.byref(minor), _ATTR_CC_MINOR, self.device), "cudaDeviceGetAttribute")
        return f"{major.value}.{minor.value}"

    def device_name(self) -> str:
        """The GPU's name: the first field (char[256]) of cudaDeviceProp in every CUDA version, read
        into a buffer larger than the whole struct so its other, version-dependent fields cannot overflow."""
        props = ctypes.create_string_buffer(8192)
        get = getattr(self._lib, "cudaGetDeviceProperties_v2", None) or self._lib.cudaGetDeviceProperties
        self._check(get(props, self.device), "cudaGetDeviceProperties")
        return props.raw[:256].split(b"\0", 1)[0].decode(errors="replace")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self._check(self._lib.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(max(nbytes, 1))), f"cudaMalloc({nbytes})")
        return ptr.value

    def free(self, ptr: int) -> None:
        self._check(self._lib.cudaFree(ctypes.c_void_p(ptr)), "cudaFree")

    def to_device(self, ptr: int, array: np.ndarray) -> None:
        """Queue a copy of the C-contiguous ``array`` to ``ptr`` (keep ``array`` alive until synchronize)."""
        self._copy(ctypes.c_void_p(ptr), ctypes.c_void_p(array.ctypes.data), array.nbytes, _H2D)

    def to_host(self, array: np.ndarray, ptr: int) -> None:
        """Queue a copy from ``ptr`` into the C-contiguous ``array``."""
        self._copy(ctypes.c_void_p(array.ctypes.data), ctypes.c_void_p(ptr), array.nbytes, _D2H)

    def _copy(self, dst: ctypes.c_void_p, src: ctypes.c_void_p, nbytes: int, kind: int) -> None:
        code = self._lib.cudaMemcpyAsync(dst, src, ctypes.c_size_t(nbytes), kind, ctypes.c_void_p(self.stream))
        self._check(code, "cudaMemcpyAsync")

    def synchronize(self) -> None:
        self._check(self._lib.cudaStreamSynchronize(ctypes.c_void_p(self.stream)), "cudaStreamSynchronize")

    def close(self) -> None:
        if self.stream:
            self._lib.cudaStreamDestroy(ctypes.c_void_p(self.stream))
            self.stream = 0


class DeviceBuffers:
    """One device buffer per tensor name, reused across calls and grown when a larger shape comes."""

    def __init__(self, cuda: CudaRuntime) -> None:
        self._cuda = cuda
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (pointer, capacity in bytes)

    def get(self, name: str, nbytes: int) -> int:
        ptr, capacity = self._buffers.get(name, (0, 0))
        if nbytes > capacity:
            if ptr:
                self._cuda.free(ptr)
            ptr, capacity = self._cuda.malloc(nbytes), nbytes
            self._buffers[name] = (ptr, capacity)
        return ptr

    def release(self) -> None:
        for ptr, _ in self._buffers.values():
            self._cuda.free(ptr)
        self._buffers.clear()

