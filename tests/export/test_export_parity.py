"""check_parity: PyTorch vs ONNX Runtime CPU, with the numbers a user needs to pick tolerances."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from export_models import tiny_window_net_perturbed

from edgeglocal.errors import BundleError, InputError
from edgeglocal.export import check_parity


def test_exported_model_passes(bundle):
    model, path, _ = bundle
    report = check_parity(model, path, n=2)
    assert report.passed and report.n == 2
    assert [o.name for o in report.outputs] == ["features", "logits"]
    assert report.outputs[0].shape == [2, 16, 8, 12]  # the exported example size
    assert report.input_shapes == {"images": [2, 3, 16, 24]}
    for out in report.outputs:
        assert 0 < out.max_abs < 1e-4 and out.mean_abs <= out.max_abs and out.min_atol <= report.atol


def test_perturbed_model_fails_and_min_atol_is_the_boundary(bundle):
    _, path, _ = bundle
    model = tiny_window_net_perturbed()
    x = torch.randn(1, 3, 24, 16, generator=torch.Generator().manual_seed(3))
    report = check_parity(model, path, {"images": x}, atol=1e-4, rtol=1e-3)
    assert not report.passed and report.n == 1
    features = report.outputs[0]
    assert not features.passed and features.max_abs > 1e-3
    # check the boundary independently: numpy.allclose on the same two results
    (got, _) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})
    with torch.no_grad():
        expected = model(x)[0].numpy()
    assert np.allclose(got, expected, rtol=1e-3, atol=features.min_atol * 1.001)
    assert not np.allclose(got, expected, rtol=1e-3, atol=features.min_atol * 0.99)
    assert report.min_atol == max(o.min_atol for o in report.outputs)


def test_result_is_stored_in_the_manifest(bundle_copy):
    model, copy = bundle_copy
    report = check_parity(model, copy.with_suffix(".json"), torch.randn(1, 3, 8, 8))
    report.store(copy)
    stored = json.loads(copy.with_suffix(".json").read_text())["parity"]
    assert stored["passed"] is True and stored["outputs"][1]["name"] == "logits"
    assert stored["min_atol"] == report.min_atol


def test_bad_bundles_and_inputs_fail_clearly(bundle, tmp_path):
    model, path, _ = bundle
    with pytest.raises(BundleError, match="does not exist"):
        check_parity(model, tmp_path / "missing.onnx")
    with pytest.raises(InputError, match="must be an .onnx file"):
        check_parity(model, tmp_path / "model.engine")
    with pytest.raises(InputError, match="1 model inputs"):
        check_parity(model, path, (torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8)))
    with pytest.raises(BundleError, match="has 2 outputs but the model returns 1"):
        check_parity(lambda_model(model), path, torch.randn(1, 3, 8, 8))


def lambda_model(model):
    class FirstOnly(torch.nn.Module):
        def forward(self, x):
            return model(x)[0]

    return FirstOnly()
