"""The ctypes CUDA runtime the TensorRT backend uses instead of PyTorch: the real libcudart is loaded
and called here (no GPU: it must say so in one sentence); copies round-trip on a GPU (marker gpu)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgeglocal.errors import BackendUnavailable
from edgeglocal.runtime.cudart import CudaRuntime, DeviceBuffers, load_cudart


def _cudart_or_skip() -> None:
    try:
        load_cudart()
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


def test_a_missing_library_is_one_sentence(tmp_path):
    with pytest.raises(BackendUnavailable, match=r"^The CUDA runtime library libcudart was not found .*\.$"):
        load_cudart(tmp_path / "libcudart.so.99")


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has an NVIDIA GPU")
def test_without_a_gpu_the_real_runtime_says_why():
    _cudart_or_skip()
    with pytest.raises(BackendUnavailable) as failure:
        CudaRuntime()
    message = str(failure.value)
    # CUDA's own reason and code, e.g. "no CUDA-capable device is detected, error 100"
    assert message.startswith("No CUDA GPU is usable here (") and "error " in message and message.endswith(").")


@pytest.mark.gpu
def test_copies_round_trip_through_device_buffers():
    _cudart_or_skip()
    try:
        cuda = CudaRuntime()
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    buffers = DeviceBuffers(cuda)
    try:
        data = np.random.default_rng(0).standard_normal((3, 224, 224)).astype(np.float32)
        ptr = buffers.get("x", data.nbytes)
        assert buffers.get("x", data.nbytes // 2) == ptr  # reused when it fits
        cuda.to_device(ptr, data)
        back = np.empty_like(data)
        cuda.to_host(back, ptr)
        cuda.synchronize()
        np.testing.assert_array_equal(back, data)
        assert buffers.get("x", data.nbytes * 2) != 0 and cuda.compute_capability()[0].isdigit()
        assert cuda.device_name()  # e.g. "NVIDIA H100 80GB HBM3"
    finally:
        buffers.release()
        cuda.close()
