"""Session over ONNX Runtime on real exported models: specs, manifest round trip, feed checks."""

from __future__ import annotations

import numpy as np
import pytest

from edgeglocal.bundle import Manifest, Preprocess, TensorSpec, manifest_path
from edgeglocal.errors import BackendUnavailable, BundleError, InputError
from edgeglocal.runtime import load
from runtime_models import double_function, numpy_conv_net, save_model, unary_graph


def test_bare_onnx_runs_and_matches_numpy(conv_net):
    path, w1, b1, w2 = conv_net
    sess = load(path, device="cpu")
    assert sess.backend == "onnxruntime:CPUExecutionProvider"
    assert sess.manifest is None
    assert [s.name for s in sess.inputs] == ["image"] and [s.name for s in sess.outputs] == ["map"]
    assert sess.inputs[0].shape == ["batch", 3, "height", "width"]
    assert sess.inputs[0].dtype == "float32"
    x = np.random.default_rng(0).standard_normal((2, 3, 20, 12)).astype(np.float32)
    out = sess.run({"image": x})["map"]
    assert out.shape == (2, 1, 20, 12)
    np.testing.assert_allclose(out, numpy_conv_net(x, w1, b1, w2), rtol=1e-4, atol=1e-4)


def test_auto_device_picks_best_available_provider(conv_net):
    import onnxruntime as ort

    sess = load(conv_net[0])  # device="auto"
    best = next(p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
                if p in ort.get_available_providers())
    assert sess.backend == f"onnxruntime:{best}"


def test_manifest_round_trip_is_used(conv_net, tmp_path):
    src = conv_net[0]
    path = tmp_path / "convnet.onnx"
    path.write_bytes(src.read_bytes())
    pre = Preprocess(color="BGR", scale=1.0, resize="letterbox", size=[32, 32], pad_value=114)
    Manifest(
        task="anomaly",
        arch="tiny-conv",
        inputs=[TensorSpec("image", ["batch", 3, "height", "width"], layout="NCHW", preprocess=pre)],
        outputs=[TensorSpec("map", ["batch", 1, "height", "width"], meaning="anomaly map")],
    ).save(manifest_path(path))
    sess = load(path, device="cpu")
    assert sess.manifest is not None and sess.manifest.task == "anomaly"
    assert sess.inputs[0].preprocess == pre
    assert sess.outputs[0].meaning == "anomaly map"
    # A bundle folder with one model file loads the same way.
    assert load(tmp_path, device="cpu").manifest.arch == "tiny-conv"


def test_manifest_naming_other_tensors_is_a_bundle_error(conv_net, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(conv_net[0].read_bytes())
    Manifest(task="dehaze", arch="x", inputs=[TensorSpec("input", [1, 3, 8, 8])],
             outputs=[TensorSpec("map", [1, 1, 8, 8])]).save(manifest_path(path))
    with pytest.raises(BundleError, match=r"lists inputs \['input'\] but the graph has \['image'\]"):
        load(path, device="cpu")


@pytest.mark.parametrize(
    "feeds, message",
    [
        ({}, "Input 'image' is missing"),
        ({"image": np.zeros((3, 8, 8), np.float32)}, "rank 4"),
        ({"image": np.zeros((1, 3, 8, 8), np.float64)}, "is float64 but float32"),
        ({"image": np.zeros((1, 4, 8, 8), np.float32)}, "axis 1 must be 3"),
        ({"image": np.zeros((1, 3, 8, 8), np.float32), "extra": np.zeros(1)}, "'extra' is not an input"),
    ],
)
def test_bad_feeds_name_the_input(conv_net, feeds, message):
    sess = load(conv_net[0], device="cpu")
    with pytest.raises(InputError, match=message):
        sess.run(feeds)


def test_unknown_custom_op_is_one_sentence_naming_op_and_file(tmp_path):
    path = save_model(unary_graph("acme.vision", "Frobnicate"), tmp_path / "acme.onnx", domains=["acme.vision"])
    with pytest.raises(BundleError) as info:
        load(path, device="cpu")
    msg = str(info.value)
    assert "acme.vision::Frobnicate" in msg and str(path) in msg
    assert msg.count(". ") == 0 and msg.endswith(".")


def test_custom_op_with_local_function_runs_on_stock_ort(tmp_path):
    path = save_model(
        unary_graph("edgeglocal", "Doubler"), tmp_path / "fn.onnx",
        functions=[double_function("edgeglocal", "Doubler")], domains=["edgeglocal"],
    )
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(load(path, device="cpu").run({"x": x})["y"], 2 * x)


def test_missing_file_and_bad_suffix(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load(tmp_path / "nope.onnx")
    (tmp_path / "m.tflite").write_bytes(b"x")
    with pytest.raises(BundleError, match="expected .onnx or .engine"):
        load(tmp_path / "m.tflite")
    (tmp_path / "net.pt").write_bytes(b"x")
    with pytest.raises(BackendUnavailable, match="export it first"):
        load(tmp_path / "net.pt")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(BundleError, match="junk.onnx"):
        load(tmp_path / "junk.onnx")


def test_unavailable_device_names_the_package(conv_net):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA, so device='cuda' is available")
    with pytest.raises(BackendUnavailable, match="install onnxruntime-gpu"):
        load(conv_net[0], device="cuda")


def test_engine_without_tensorrt_is_backend_unavailable(tmp_path):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 16)
    with pytest.raises(BackendUnavailable, match="tensorrt"):
        load(engine)
