"""`edgeglocal build` and the TensorRT runtime on a machine with or without TensorRT: argument
parsing, profiles from manifests, plugin lookup, and the errors a user sees."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

import edgeglocal
from edgeglocal.cli.app import app
from edgeglocal.errors import BackendUnavailable, BundleError, InputError
from edgeglocal.export.trt_build import build_engine, graph_inputs, parse_shapes, resolve_profile
from edgeglocal.bundle import Manifest
from edgeglocal.runtime import trt as trt_runtime

from trt_bundles import requires_no_trt, write_bundle

runner = CliRunner()


def test_parse_shapes_named_and_unnamed():
    profile = parse_shapes("input:1x3x224x224/1x3x512x512/4x3x1024x1024", ["input"])
    assert profile == {"input": ((1, 3, 224, 224), (1, 3, 512, 512), (4, 3, 1024, 1024))}
    assert parse_shapes("2x3x64x64", ["input"]) == {"input": ((2, 3, 64, 64),) * 3}
    two = parse_shapes("a:1x8/2x8/4x8, b:1x3x32x32", ["a", "b"])
    assert two["a"][2] == (4, 8) and two["b"][0] == (1, 3, 32, 32)


@pytest.mark.parametrize(
    "text, names, needle",
    [
        ("1x3x224x224", ["a", "b"], "needs an input name"),
        ("image:1x3x8x8", ["input"], "model's inputs are ['input']"),
        ("input:1x3x8/1x3x8x8/1x3x8x8", ["input"], "equal ranks"),
        ("input:4x3x8x8/1x3x8x8/8x3x8x8", ["input"], "MIN <= OPT <= MAX"),
        ("input:1x3xAx8", ["input"], "NAME:MIN/OPT/MAX"),
        ("input:1x3x8x8/2x3x8x8", ["input"], "NAME:MIN/OPT/MAX"),
    ],
)
def test_parse_shapes_rejects(text, names, needle):
    with pytest.raises(InputError, match="--shapes") as info:
        parse_shapes(text, names)
    assert needle in str(info.value)


def test_profile_from_manifest_and_overrides(bundle: Path):
    model = onnx.load(str(bundle))
    inputs = graph_inputs(model)
    assert inputs == {"input": ["batch", 3, "height", "width"]}
    manifest = Manifest.load(bundle.with_suffix(".json"))
    # No --shapes: batch 1, height/width from preprocess.size (64, 96).
    assert resolve_profile(inputs, {}, manifest) == {"input": ((1, 3, 64, 96),) * 3}
    given = parse_shapes("input:1x3x32x32/2x3x64x64/4x3x128x128", ["input"])
    assert resolve_profile(inputs, given, manifest) == given
    with pytest.raises(InputError, match="axis 1, which the model fixes to 3"):
        resolve_profile(inputs, parse_shapes("input:1x4x32x32", ["input"]), manifest)
    with pytest.raises(InputError, match="rank 3"):
        resolve_profile(inputs, parse_shapes("input:1x3x32", ["input"]), manifest)


def test_profile_needs_shapes_without_a_size(tmp_path: Path):
    path = write_bundle(tmp_path, size=None)
    manifest = Manifest.load(path.with_suffix(".json"))
    with pytest.raises(InputError, match=r"dynamic axis 2 .* --shapes input:MIN/OPT/MAX"):
        resolve_profile(graph_inputs(onnx.load(str(path))), {}, manifest)
    # A static model needs no profile at all.
    assert resolve_profile({"x": [1, 3, 8, 8]}, {}, None) == {}


def test_build_rejects_bad_bundles_before_looking_for_tensorrt(tmp_path: Path, bundle: Path):
    with pytest.raises(BundleError, match="does not exist"):
        build_engine(tmp_path / "missing.onnx")
    with pytest.raises(BundleError, match="must be an .onnx file"):
        build_engine(bundle.with_suffix(".json"))
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(BundleError, match="not a readable ONNX model"):
        build_engine(tmp_path / "junk.onnx")
    with pytest.raises(InputError, match="--int8 needs an explicitly quantized bundle"):
        build_engine(bundle, int8=True)
    with pytest.raises(InputError, match="would overwrite the manifest"):
        build_engine(bundle, tmp_path / "tiny.engine")
    with pytest.raises(InputError, match="--workspace"):
        build_engine(bundle, workspace_gb=0)


@requires_no_trt
def test_build_without_tensorrt_names_the_package(tmp_path: Path):
    qdq = write_bundle(tmp_path, qdq=True)
    with pytest.raises(BackendUnavailable) as info:
        build_engine(qdq, int8=True)
    assert str(info.value) == trt_runtime.TRT_MISSING
    assert not list(tmp_path.glob("*.engine")), "nothing may be written when the build cannot run"


@requires_no_trt
def test_cli_build_messages(tmp_path: Path, bundle: Path):
    def build(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["build", *args])
        return result.exit_code, " ".join(result.output.split())  # undo Rich's line wrapping

    code, out = build(str(tmp_path / "nope.onnx"))
    assert code == 1 and "nope.onnx does not exist" in out
    code, out = build(str(bundle), "--shapes", "input:1x3x8")
    assert code == 1 and "--shapes" in out and "rank 3" in out
    code, out = build(str(bundle), "--fp16")
    assert code == 1
    assert "TensorRT is not installed" in out and "pip install 'edgeglocal[gpu]'" in out
    assert "Traceback" not in out


def test_cli_build_help_lists_the_options():
    result = runner.invoke(app, ["build", "--help"])
    assert result.exit_code == 0
    for option in ("--fp16", "--int8", "--shapes", "--timing-cache", "--plugins", "--workspace"):
        assert option in result.output


def test_plugin_library_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(trt_runtime.PLUGIN_ENV, raising=False)
    monkeypatch.setattr(trt_runtime, "DEFAULT_PLUGIN_DIRS", (tmp_path / "build", tmp_path / "lib"))
    path, why = trt_runtime.plugin_library_status()
    assert path is None and "was not found" in why and str(tmp_path / "build") in why

    lib = tmp_path / "lib" / trt_runtime.PLUGIN_LIBRARY
    lib.parent.mkdir()
    lib.write_bytes(b"\x7fELF")
    assert trt_runtime.plugin_library_status() == (lib, f"found in {lib.parent}")

    monkeypatch.setenv(trt_runtime.PLUGIN_ENV, str(tmp_path / "elsewhere.so"))
    path, why = trt_runtime.plugin_library_status()
    assert path is None and "$EDGEGLOCAL_TRT_PLUGINS points to" in why
    other = tmp_path / "custom.so"
    other.write_bytes(b"\x7fELF")
    monkeypatch.setenv(trt_runtime.PLUGIN_ENV, str(other))
    assert trt_runtime.plugin_library_status() == (other, "from $EDGEGLOCAL_TRT_PLUGINS")
    # An explicit path wins and must exist.
    assert trt_runtime.plugin_library_status(lib) == (lib, "given explicitly")
    with pytest.raises(InputError, match="--plugins"):
        trt_runtime.find_plugin_library(tmp_path / "missing.so")


@requires_no_trt
def test_loading_an_engine_without_tensorrt(tmp_path: Path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\x00" * 64)
    with pytest.raises(BackendUnavailable) as info:
        edgeglocal.load(engine)
    assert str(info.value) == trt_runtime.TRT_MISSING


def test_runtime_module_imports_without_torch_or_tensorrt():
    import subprocess
    import sys

    code = (
        "import sys, edgeglocal.runtime.trt, edgeglocal.cli.build;"
        "bad = [m for m in ('torch', 'tensorrt') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout + proc.stderr
