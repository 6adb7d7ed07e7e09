"""End to end with TensorRT: build an engine from an exported bundle with the plugin library and
run it through edgeglocal.load, against ONNX Runtime on the same bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_bundles import TRT_INSTALLED, write_bundle

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not TRT_INSTALLED, reason="TensorRT is not installed")]


def _plugins() -> Path:
    from edgeglocal.runtime.trt import plugin_library_status

    path, why = plugin_library_status()
    if path is None:
        pytest.skip(why)
    return path


def test_plain_bundle_builds_and_runs(tmp_path: Path):
    import edgeglocal
    from edgeglocal.export.trt_build import build_engine

    bundle = write_bundle(tmp_path)
    result = build_engine(bundle, shapes="input:1x3x32x32/1x3x64x96/2x3x128x128")
    session = edgeglocal.load(result.engine)
    assert session.backend == "tensorrt" and session.manifest.engine["precision"] == "fp32"
    x = np.random.default_rng(0).standard_normal((2, 3, 48, 64)).astype(np.float32)
    out = session.run({"input": x})["output"]
    np.testing.assert_allclose(out, np.maximum(x * 0.5, 0), atol=1e-5)


@pytest.mark.parametrize("op", ["selective_scan_2d", "window_attention"])
def test_edgeglocal_op_engine_matches_onnxruntime(tmp_path: Path, op: str):
    torch = pytest.importorskip("torch")
    import edgeglocal
    from edgeglocal.export import to_onnx
    from edgeglocal.export.trt_build import build_engine
    from edgeglocal.ops import selective_scan_2d, window_attention

    plugins = _plugins()

    class Scan2D(torch.nn.Module):
        def __init__(self, d: int = 8, n: int = 4) -> None:
            super().__init__()
            self.A = torch.nn.Parameter(-torch.rand(4 * d, n) - 0.1)
            self.proj = torch.nn.Conv2d(d, 4 * d + 8 * n, 1)
            self.d, self.n = d, n

        def forward(self, x):
            b, d, h, w = x.shape
            p = self.proj(x).flatten(2)
            delta = p[:, : 4 * d].reshape(b, 4, d, h * w)
            B = p[:, 4 * d : 4 * d + 4 * self.n].reshape(b, 4, self.n, h * w)
            C = p[:, 4 * d + 4 * self.n :].reshape(b, 4, self.n, h * w)
            return selective_scan_2d(x, delta, self.A, B, C)

    class Window(torch.nn.Module):
        def __init__(self, c: int = 8) -> None:
            super().__init__()
            self.qkv = torch.nn.Linear(c, 3 * c)
            self.table = torch.nn.Parameter(torch.randn(13 * 13, 2) * 0.1)

        def forward(self, x):
            return window_attention(self.qkv(x.permute(0, 2, 3, 1)), self.table, num_heads=2, window_size=7,
                                    shift=3).permute(0, 3, 1, 2)

    model = (Scan2D() if op == "selective_scan_2d" else Window()).eval()
    example = torch.randn(1, 8, 14, 14)
    to_onnx(model, (example,), tmp_path / f"{op}.onnx", task="dehaze", arch=op, dynamic=None)
    result = build_engine(tmp_path / f"{op}.onnx", plugins=plugins)
    assert result.plugin_library == plugins
    engine = edgeglocal.load(result.engine)
    feeds = {engine.inputs[0].name: example.numpy()}
    ort_out = edgeglocal.load(tmp_path / f"{op}.onnx", device="cpu").run(feeds)
    trt_out = engine.run(feeds)
    for name, want in ort_out.items():
        np.testing.assert_allclose(trt_out[name], want, atol=2e-4, rtol=2e-4)
