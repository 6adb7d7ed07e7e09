"""edgeglocal bench on a small zoo model: real PyTorch and ONNX Runtime rows, honest unavailable rows."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeglocal.bench import BenchRow, benchmark, measure
from edgeglocal.cli.app import app

#: coswin_cifar shrunk to a few thousand parameters, so that export and timing take seconds
TINY = {"embed_dim": 12, "depths": (1, 1), "num_heads": (2, 4)}


def test_measure_times_each_call():
    lat = measure(lambda: time.sleep(0.004), batch=2, warmup=1, iters=5)
    assert 4.0 <= lat.p50_ms <= lat.p90_ms <= lat.p99_ms < 200
    assert lat.mean_ms >= 4.0 and lat.throughput == pytest.approx(2e3 / lat.mean_ms)
    assert lat.cpu_ms < lat.mean_ms  # sleeping costs no CPU


@pytest.fixture(scope="module")
def rows() -> list[BenchRow]:
    return benchmark(["coswin_cifar"], backends=["torch", "ort-cpu", "ort-cuda", "ort-trt", "trt"],
                     precisions=["fp32", "int8"], warmup=1, iters=3, model_kwargs=TINY)


def _row(rows, backend, precision) -> BenchRow:
    return next(r for r in rows if r.backend == backend and r.precision == precision)


def test_torch_and_ort_cpu_rows_are_measured(rows):
    torch_row, ort_row = _row(rows, "torch", "fp32"), _row(rows, "ort-cpu", "fp32")
    assert torch_row.status == ort_row.status == "ok"
    assert torch_row.vs_torch == pytest.approx(1.0)
    assert ort_row.vs_torch == pytest.approx(torch_row.latency.mean_ms / ort_row.latency.mean_ms)
    assert ort_row.size_bytes > 1000 and ort_row.latency.iters == 3


def test_int8_comes_from_quantize_and_is_smaller(rows):
    int8 = _row(rows, "ort-cpu", "int8")
    assert int8.status == "ok", int8.reason
    assert int8.size_bytes < _row(rows, "ort-cpu", "fp32").size_bytes
    assert _row(rows, "torch", "int8").status == "unavailable"


def test_missing_backends_say_why(rows):
    import importlib.util

    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "CUDA provider not installed" in _row(rows, "ort-cuda", "fp32").reason
    if importlib.util.find_spec("tensorrt") is None:
        row = _row(rows, "trt", "fp32")
        assert row.status == "unavailable" and "TensorRT is not installed" in row.reason


def test_cli_on_a_bundle_writes_json(rows, tmp_path: Path):
    import torch

    from edgeglocal.export import to_onnx
    from edgeglocal.models import create, get_config

    cfg = get_config("coswin_cifar")
    bundle = tmp_path / "tiny.onnx"
    to_onnx(create("coswin_cifar", **TINY).eval(), torch.randn(1, 3, 32, 32), bundle, task=cfg.task,
            arch="coswin_cifar", dynamic=None, input_specs=cfg.input_specs((32, 32), None),
            output_specs=cfg.output_specs())
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", str(bundle), "--imgsz", "32", "32", "--backends", "torch,ort-cpu,ort-cuda", "--iters", "3",
                                      "--warmup", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    by_backend = {r["backend"]: r for r in data["rows"]}
    assert by_backend["ort-cpu"]["status"] == "ok" and by_backend["ort-cpu"]["latency"]["mean_ms"] > 0
    assert by_backend["torch"]["status"] == "unavailable" and "architecture name" in by_backend["torch"]["reason"]
    assert data["iters"] == 3 and str(out) in result.output.replace("\n", "")


def test_cli_rejects_unknown_backend_and_bad_files(tmp_path: Path):
    result = CliRunner().invoke(app, ["bench", "coswin_cifar", "--backends", "openvino"])
    assert result.exit_code == 1 and "openvino" in result.output
    (tmp_path / "x.txt").write_text("not a model")
    result = CliRunner().invoke(app, ["bench", str(tmp_path / "x.txt")])
    assert result.exit_code == 1 and "not an .onnx bundle" in " ".join(result.output.split())
    assert "Benchmark" not in result.output  # refused before any work
    result = CliRunner().invoke(app, ["bench", "no_such_arch"])
    assert result.exit_code == 1 and "Unknown architecture" in result.output
