"""A plugin library built for one TensorRT major is recognised from its ELF dependencies and refused
by another major before ``dlopen``; a missing dependency is named. The libraries are real ones,
linked here with the C compiler against a stand-in ``libnvinfer.so.10`` (TensorRT is not installable
on this machine); only the ``tensorrt`` module's version string is stood in for."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgeglocal.errors import BackendUnavailable
from edgeglocal.runtime import environment
from edgeglocal.runtime import trt as trt_runtime
from edgeglocal.runtime.elf import needed_libraries

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler to link test libraries")


def _cc(*args: str | Path) -> None:
    subprocess.run(["cc", *map(str, args)], check=True, capture_output=True)


@pytest.fixture
def plugin_for_trt10(tmp_path: Path) -> Path:
    """libedgeglocal_trt_plugins.so linked against a library whose soname is libnvinfer.so.10."""
    (tmp_path / "nvinfer.c").write_text("void* getPluginRegistry(void) { return 0; }\n")
    (tmp_path / "plugins.c").write_text(
        "#include <stdio.h>\nvoid* getPluginRegistry(void);\n"
        "void* probe(void) { puts(\"probe\"); return getPluginRegistry(); }\n"
    )
    _cc("-shared", "-fPIC", "-Wl,-soname,libnvinfer.so.10", "-o", tmp_path / "libnvinfer.so.10", tmp_path / "nvinfer.c")
    plugin = tmp_path / trt_runtime.PLUGIN_LIBRARY
    _cc("-shared", "-fPIC", "-o", plugin, tmp_path / "plugins.c", f"-L{tmp_path}", "-l:libnvinfer.so.10")
    (tmp_path / "libnvinfer.so.10").unlink()  # as on a machine without that TensorRT
    return plugin


def test_needed_libraries_reads_the_link_order(plugin_for_trt10: Path):
    needed = needed_libraries(plugin_for_trt10)
    assert needed[0] == "libnvinfer.so.10" and any(n.startswith("libc.so") for n in needed)  # puts()
    if shutil.which("readelf"):
        dynamic = subprocess.run(["readelf", "-d", str(plugin_for_trt10)], check=True, capture_output=True, text=True)
        assert needed == [line.split("[")[1].rstrip("]") for line in dynamic.stdout.splitlines() if "(NEEDED)" in line]
    assert trt_runtime.plugin_tensorrt_major(plugin_for_trt10) == 10


def test_needed_libraries_rejects_what_is_not_a_64_bit_elf(tmp_path: Path):
    text = tmp_path / "notes.so"
    text.write_text("not a library")
    with pytest.raises(ValueError, match="not an ELF file"):
        needed_libraries(text)
    assert trt_runtime.plugin_tensorrt_major(text) is None


def test_a_library_for_another_major_is_refused_before_loading(plugin_for_trt10: Path):
    trt11 = SimpleNamespace(__version__="11.4.0.106")
    with pytest.raises(BackendUnavailable) as refused:
        trt_runtime.load_plugin_library(trt11, plugin_for_trt10)
    message = str(refused.value)
    assert "built for TensorRT 10 (it links libnvinfer.so.10)" in message
    assert "TensorRT 11.4.0.106 is installed" in message and "-DTensorRT_ROOT" in message


def test_a_missing_dependency_is_named(plugin_for_trt10: Path):
    """Same major, but libnvinfer.so.10 is not on the loader's path: dlopen's reason is passed on."""
    with pytest.raises(BackendUnavailable, match=r"Cannot load the TensorRT plugin library .*libnvinfer\.so\.10"):
        trt_runtime.load_plugin_library(SimpleNamespace(__version__="10.7.0"), plugin_for_trt10)


def test_doctor_reports_the_major_the_library_was_built_for(plugin_for_trt10: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(trt_runtime.PLUGIN_ENV, str(plugin_for_trt10))
    plugin = next(c for c in environment.environment_report() if c.name == "plugin library")
    assert plugin.ok is True and "built for TensorRT 10" in plugin.detail
