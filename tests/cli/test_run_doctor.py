"""``edgeglocal doctor`` reports what is really installed here, and the plugin search order."""

from __future__ import annotations

import cv2
import onnxruntime as ort
from typer.testing import CliRunner

from edgeglocal.cli.app import app
from edgeglocal.runtime.environment import environment_report
from edgeglocal.runtime.trt import PLUGIN_LIBRARY


def _by_name():
    return {c.name: c for c in environment_report()}


def test_doctor_prints_versions_and_providers_and_exits_0():
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert ort.__version__ in text and cv2.__version__ in text
    assert "CPUExecutionProvider" in text and "plugin library" in text


def test_report_matches_the_installed_libraries():
    checks = _by_name()
    assert checks["onnxruntime"].detail == ort.__version__ and checks["opencv"].ok
    assert all(p in checks["providers"].detail for p in ort.get_available_providers())
    try:
        import tensorrt
    except ImportError:
        assert checks["tensorrt"].ok is None and "not installed" in checks["tensorrt"].detail
    else:
        assert checks["tensorrt"].detail == tensorrt.__version__
    import edgeglocal.ops  # noqa: F401  (importing registers every op)
    from edgeglocal.ops._registry import registered_ops

    assert checks["edgeglocal ops"].detail == (", ".join(sorted(registered_ops())) or "none registered")


def test_plugin_library_found_or_explained(tmp_path, monkeypatch):
    lib = tmp_path / PLUGIN_LIBRARY
    monkeypatch.setenv("EDGEGLOCAL_TRT_PLUGINS", str(lib))
    missing = _by_name()["plugin library"]
    assert missing.ok is None and str(lib) in missing.detail and "does not exist" in missing.detail
    lib.write_bytes(b"\x7fELF")  # found by path; an unreadable ELF only hides the TensorRT major it needs
    found = _by_name()["plugin library"]
    assert found.ok is True and found.detail == f"{lib} (from $EDGEGLOCAL_TRT_PLUGINS; built for TensorRT unknown)"


def test_cuda_row_is_what_the_tensorrt_backend_would_see(monkeypatch):
    """The row asks libcudart, as the TensorRT backend does; hiding every GPU is reported as such."""
    from edgeglocal.errors import BackendUnavailable
    from edgeglocal.runtime.cudart import CudaRuntime

    try:
        cuda = CudaRuntime()
    except BackendUnavailable as exc:
        assert _by_name()["devices"].detail == str(exc)  # e.g. CUDA's own "no CUDA-capable device" reason
    else:
        assert _by_name()["devices"].detail.startswith(cuda.device_name())
        cuda.close()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert _by_name()["devices"].detail == "CUDA_VISIBLE_DEVICES hides all GPUs"
