"""``edgeglocal export`` end to end: checkpoint -> bundle on disk -> ONNX Runtime, and its failures."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from edgeglocal.cli.app import app
from edgeglocal.models import create, register_model
from edgeglocal.models.coswin import CoSwin

runner = CliRunner()


@register_model("coswin_micro_test", task="classify", input_size=(32, 32), hw_multiple=8,
                dynamic=("batch", "hw", "all"), size_kwarg="img_size", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
def coswin_micro_test(**kw) -> CoSwin:
    """The real CoSwin code at a size that exports in seconds (a user-registered model)."""
    return CoSwin(**{"img_size": 32, "patch_size": 2, "window_size": 4, "embed_dim": 16, "depths": (1, 2),
                     "num_heads": (1, 2), "mlp_ratio": 2.0, "num_classes": 4, **kw})


def _invoke(*args: str):
    return runner.invoke(app, ["export", *args])


def _text(output: str) -> str:
    """Rich wraps at the terminal width; compare with whitespace collapsed."""
    return " ".join(output.split())


def test_checkpoint_round_trip_through_the_cli(tmp_path):
    torch.manual_seed(1)
    trained, raw = create("coswin_micro_test").eval(), create("coswin_micro_test").eval()
    ckpt = tmp_path / "micro.pth"
    torch.save({"model": raw.state_dict(), "model_ema": trained.state_dict(), "epoch": 9}, ckpt)

    result = _invoke("--arch", "coswin_micro_test", "--checkpoint", str(ckpt), "--output", str(tmp_path / "out"),
                     "--dynamic", "hw", "--ema")
    assert result.exit_code == 0, result.output
    onnx_path = tmp_path / "out" / "micro.onnx"
    assert str(onnx_path) in "".join(result.output.split())
    assert "edgeglocal ops: WindowAttention" in _text(result.output) and "PASSED" in result.output
    hint = next(line for line in result.output.splitlines() if line.startswith("Run it: "))
    assert f"edgeglocal.load('{onnx_path}')" in hint and "np.zeros((1, 3, 32, 32), np.float32)" in hint

    manifest = json.loads(onnx_path.with_suffix(".json").read_text())
    assert manifest["task"] == "classify" and manifest["arch"] == "coswin_micro_test"
    assert manifest["parity"]["passed"] and manifest["parity"]["min_atol"] <= 1e-4
    pre = manifest["inputs"][0]["preprocess"]
    assert pre["mean"] == [0.5, 0.5, 0.5] and pre["std"] == [0.25, 0.25, 0.25] and pre["color"] == "RGB"
    assert manifest["inputs"][0]["shape"] == [1, 3, "height", "width"]
    assert manifest["extra"]["model"]["checkpoint"] == "micro.pth"

    # The bundle carries the checkpoint's EMA weights (not the raw ones), at another size too.
    x = np.random.default_rng(0).standard_normal((1, 3, 48, 40)).astype(np.float32)
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    with torch.no_grad():
        want = trained(torch.from_numpy(x)).numpy()
        other = raw(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert np.abs(got - other).max() > 1e-3


@pytest.mark.parametrize("kind", ["wrong_arch", "truncated", "pickled_code"])
def test_bad_checkpoints_fail_with_one_sentence(tmp_path, kind):
    ckpt = tmp_path / "w.pth"
    if kind == "wrong_arch":
        torch.save(create("coswin_micro_test", depths=(1, 1)).state_dict(), ckpt)
        expect = "does not match architecture coswin_micro_test"
    elif kind == "truncated":
        torch.save(create("coswin_micro_test").state_dict(), ckpt)
        ckpt.write_bytes(ckpt.read_bytes()[:3000])
        expect = "is truncated or not a PyTorch/safetensors checkpoint"
    else:
        torch.save({"model": nn.Conv2d(1, 1, 1)}, ckpt)
        expect = "contains pickled code"
    result = _invoke("--arch", "coswin_micro_test", "--checkpoint", str(ckpt), "--output", str(tmp_path / "o"))
    assert result.exit_code == 1
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and expect in _text(result.output)
    assert "Traceback" not in result.output
    if kind == "wrong_arch":
        assert "missing" in result.output and "layers.1.blocks.1" in result.output  # the key table
    assert not (tmp_path / "o").exists()


def test_list_and_argument_errors():
    result = _invoke("--list")
    assert result.exit_code == 0
    for name in ("gcvit_xxtiny", "vcmamba_s", "coswin_tiny"):
        assert name in result.output
    result = _invoke("--arch", "no_such_net")
    assert result.exit_code == 1 and "Unknown architecture 'no_such_net'" in _text(result.output)
    result = _invoke("--arch", "gcvit_xxtiny", "--dynamic", "hw")
    assert result.exit_code == 1 and "--dynamic hw is not supported by gcvit_xxtiny" in _text(result.output)
    result = _invoke("--arch", "gcvit_xxtiny", "--imgsz", "100", "224")
    assert result.exit_code == 1 and "must be positive multiples of 32" in _text(result.output)
