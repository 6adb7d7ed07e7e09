"""to_onnx writes a checked, self-contained bundle that runs on ONNX Runtime at new sizes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from export_models import EXAMPLE_SHAPE, tiny_window_net

import edgeglocal.export.onnx as export_onnx
from edgeglocal.errors import ExportError, InputError, SinkError
from edgeglocal.export import to_onnx


def test_manifest_describes_the_graph(bundle):
    _, path, manifest = bundle
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.json", "tiny.onnx"]  # no temp left
    on_disk = json.loads(path.with_suffix(".json").read_text())
    assert on_disk == json.loads(json.dumps(manifest.to_dict()))
    assert manifest.custom_ops == ["WindowAttention"] and manifest.opset == 18
    assert (manifest.task, manifest.arch, manifest.precision) == ("classify", "tiny", {"mode": "fp32"})
    (inp,) = manifest.inputs
    assert (inp.name, inp.shape, inp.dtype) == ("images", ["batch", 3, "height", "width"], "float32")
    assert inp.layout == "NCHW"
    assert inp.preprocess.multiple == 8
    assert [o.name for o in manifest.outputs] == ["features", "logits"]
    assert manifest.outputs[1].meaning == "class scores"
    features_shape = manifest.outputs[0].shape
    assert features_shape[:2] == ["batch", 16] and all(isinstance(d, str) for d in features_shape[2:])
    assert manifest.outputs[1].shape == ["batch", 5]
    assert manifest.extra["note"] == "kept"
    assert manifest.extra["export"]["example_shapes"] == {"images": list(EXAMPLE_SHAPE)}


@pytest.mark.parametrize("shape", [EXAMPLE_SHAPE, (1, 3, 32, 8), (3, 3, 8, 40)])
def test_bundle_matches_pytorch_at_other_sizes(bundle, shape):
    model, path, _ = bundle
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = model(x)
    got = session.run(None, {"images": x.numpy()})
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e.numpy(), atol=1e-4, rtol=1e-3)


def test_static_export_without_custom_ops(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    manifest = to_onnx(model, torch.randn(1, 3, 10, 12), tmp_path / "plain.onnx")
    proto = onnx.load(str(tmp_path / "plain.onnx"))
    assert manifest.custom_ops == [] and not proto.functions
    assert all(o.domain != "edgeglocal" for o in proto.opset_import)
    assert manifest.inputs[0].shape == [1, 3, 10, 12] and manifest.outputs[0].shape == [1, 4, 8, 10]
    assert manifest.arch == "Sequential" and manifest.inputs[0].name == "input"


def test_large_weights_go_to_external_data(tmp_path, monkeypatch):
    monkeypatch.setattr(export_onnx, "EXTERNAL_DATA_BYTES", 0)
    model = tiny_window_net()
    path = tmp_path / "ext.onnx"
    to_onnx(model, torch.randn(1, 3, 16, 16), path, dynamic="batch")
    data = tmp_path / "ext.onnx.data"
    assert data.is_file() and data.stat().st_size > 4 * sum(p.numel() for p in model.parameters()) * 0.9
    stored = onnx.load(str(path), load_external_data=False).graph.initializer
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in stored)
    onnx.checker.check_model(str(path), full_check=True)
    x = torch.randn(2, 3, 16, 16)
    (features, _) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(features, model(x)[0].numpy(), atol=1e-4, rtol=1e-3)


class DataDependent(torch.nn.Module):
    def forward(self, x):
        return x * 2 if x.sum() > 0 else x  # a Python branch on data cannot be exported


def test_failed_export_raises_one_sentence_and_writes_nothing(tmp_path):
    with pytest.raises(ExportError, match=r"^Could not export DataDependent to ONNX \(.+\); rerun with --debug") as err:
        to_onnx(DataDependent(), torch.randn(1, 3, 4, 4), tmp_path / "bad.onnx")
    assert err.value.__cause__ is not None  # the full trace is kept for --debug
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(path="model.pt"), "must end in .onnx"), (dict(dynamic="hwc"), "dynamic must be one of"),
     (dict(example_inputs=[1.0]), "example_inputs"), (dict(opset=13), "opset")],
)
def test_bad_arguments_fail_early(tmp_path, kwargs, match):
    args = dict(model=torch.nn.Identity(), example_inputs=torch.randn(1, 3), path="m.onnx") | kwargs
    with pytest.raises(InputError, match=match):
        to_onnx(args.pop("model"), args.pop("example_inputs"), tmp_path / args.pop("path"), **args)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destination_is_a_sink_error(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    with pytest.raises(SinkError, match=r"^Cannot write .*not_a_dir/m\.onnx: "):
        to_onnx(torch.nn.ReLU(), torch.randn(2, 3), blocker / "m.onnx")



def test_dynamic_batch_traced_from_a_batch_of_one_serves_other_batches(tmp_path):
    """A batch-1 example used to bake batch 1 into MCAF-Net's window reshapes under dynamic="all"."""
    from edgeglocal.models import create

    model = create("mcafnet", dims=(8, 16, 32), depths=(1, 1, 1), decoder_depths=(1, 1), heads=(1, 2, 2),
                   window=4).eval()
    path = tmp_path / "mcaf.onnx"
    manifest = to_onnx(model, torch.randn(1, 3, 64, 64), path, dynamic="all")
    assert manifest.inputs[0].shape == ["batch", 3, "height", "width"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, 64, 96)
    (y,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(y, model(x).numpy(), atol=1e-4)
