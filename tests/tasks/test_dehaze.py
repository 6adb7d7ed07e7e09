"""Dehaze: the packaged DCP bundle on real hazy photos and on synthetic haze with known t and A."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.metrics import peak_signal_noise_ratio as psnr

from edgeglocal.assets import DCP_DEHAZE
from edgeglocal.bundle import Manifest
from edgeglocal.errors import BundleError
from edgeglocal.io.frame import Frame
from edgeglocal.runtime import load
from edgeglocal.tasks import create
from edgeglocal.tasks.dehaze import DehazeTask

MEDIA = Path("/usr/share/doc/opencv-doc/examples/data")
HAZE_A = np.array([0.85, 0.87, 0.9])


def _frame(bgr: np.ndarray, index: int = 0) -> Frame:
    return Frame(bgr, index, index / 25.0, "test")


def _real_hazy(name: str) -> np.ndarray:
    path = MEDIA / name
    if not path.exists():
        pytest.skip(f"{path} (opencv-doc) is not installed")
    return cv2.imread(str(path))


def _synthetic_haze(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Koschmieder's model I = J t + A (1 - t), depth growing down the image (t from 0.74 to 0.37)."""
    clean = rgb[..., :3].astype(np.float32) / 255.0
    depth = np.linspace(0.3, 1.0, clean.shape[0], dtype=np.float32)[:, None, None]
    t = np.exp(-depth)
    hazy = clean * t + HAZE_A * (1.0 - t)
    return clean, (hazy[..., ::-1] * 255.0 + 0.5).astype(np.uint8)


@pytest.fixture(scope="module")
def task() -> DehazeTask:
    return DehazeTask()


@pytest.mark.parametrize("name, min_gain_db", [("coffee", 8.0), ("astronaut", 5.0)])
def test_psnr_improves_on_synthetic_haze(task, name, min_gain_db):
    clean, hazy_bgr = _synthetic_haze(getattr(data, name)())
    result = task(_frame(hazy_bgr))
    before = psnr(clean, hazy_bgr[..., ::-1] / 255.0, data_range=1.0)
    after = psnr(clean, result.image[..., ::-1] / 255.0, data_range=1.0)
    # measured on this module: coffee 10.8 -> 22.2 dB, astronaut 11.2 -> 18.7 dB
    assert after - before > min_gain_db
    np.testing.assert_allclose(result.atmosphere, HAZE_A, atol=0.08)
    assert 0.3 < result.mean_transmission < 0.75


@pytest.mark.parametrize("name", ["aero1.jpg", "aero3.jpg"])
def test_real_hazy_photo_gains_contrast(task, name):
    hazy = _real_hazy(name)
    result = task(_frame(hazy))
    assert result.image.shape == hazy.shape and result.image.dtype == np.uint8

    def dark_channel_mean(bgr):  # haze lifts the dark channel; removing it brings it down
        return cv2.erode(bgr.min(axis=2), np.ones((15, 15), np.uint8)).mean() / 255.0

    def mean_gradient(bgr):  # haze flattens local contrast
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
        return np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)).mean()

    # measured: dark channel 0.40 -> 0.10 (aero1), 0.39 -> 0.14 (aero3); gradient x1.43, x1.34
    assert dark_channel_mean(result.image) < 0.5 * dark_channel_mean(hazy)
    assert mean_gradient(result.image) > 1.2 * mean_gradient(hazy)
    assert min(result.atmosphere) > 0.6  # haze is bright
    record = result.to_record()
    assert json.loads(json.dumps(record)) == record
    assert set(record) == {"brightness", "mean_transmission", "atmosphere_rgb"}


def test_shipped_onnx_matches_regenerated_export_and_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from edgeglocal.export.packaged import export_dcp
    from edgeglocal.models.dcp import DarkChannelDehaze

    export_dcp(tmp_path / "dcp.onnx")
    regenerated, shipped = Manifest.load(tmp_path / "dcp.json"), Manifest.load(DCP_DEHAZE.with_suffix(".json"))
    regenerated.extra["export"]["torch"] = shipped.extra["export"]["torch"]  # the exporting torch may differ
    assert regenerated == shipped
    image = cv2.cvtColor(_real_hazy("aero3.jpg"), cv2.COLOR_BGR2RGB)[:301, :417]  # odd size
    x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    with torch.no_grad():
        want = [t.numpy() for t in DarkChannelDehaze()(torch.from_numpy(x))]
    for path in (DCP_DEHAZE, tmp_path / "dcp.onnx"):
        out = load(path, device="cpu").run({"image": x})
        # A averages the top 0.1% of the dark channel; ties at the top may be broken differently
        np.testing.assert_allclose(out["atmosphere"], want[2], atol=2e-3)
        np.testing.assert_allclose(out["transmission"], want[1], atol=2e-3)
        np.testing.assert_allclose(out["dehazed"], want[0], atol=1e-2)
        assert np.abs(out["dehazed"] - want[0]).mean() < 1e-3


@pytest.mark.parametrize("hw", [(16, 16), (97, 131), (240, 1000)])
def test_dynamic_sizes(hw):
    session = load(DCP_DEHAZE, device="cpu")
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, *hw), dtype=np.float32) * 0.5 + 0.4
    out = session.run({"image": x})
    assert out["dehazed"].shape == x.shape and out["transmission"].shape == (2, 1, *hw)
    assert out["atmosphere"].shape == (2, 3)
    assert (out["dehazed"] >= 0).all() and (out["dehazed"] <= 1).all()
    assert (out["transmission"] >= 0.1 - 1e-6).all()


def test_side_by_side_render_and_registry():
    task = create("dehaze", side_by_side=True)
    hazy = _real_hazy("aero1.jpg")
    frame = _frame(hazy)
    result = task(frame)
    view = task.render(result, frame)
    assert view.shape == (hazy.shape[0], 2 * hazy.shape[1], 3)
    assert np.array_equal(view[60:, hazy.shape[1] :], result.image[60:])  # right half (under the label)
    assert task.session.backend.startswith("onnxruntime")


def test_other_dehaze_bundle_with_padding_and_wrong_task(tmp_path):
    """A zoo-style bundle (pad to a multiple of 16, one output) is run and cropped back to the frame."""
    torch = pytest.importorskip("torch")
    from edgeglocal.bundle import Preprocess, TensorSpec

    class Brighten(torch.nn.Module):
        def forward(self, x):
            return (x * 1.5).clamp(0, 1)

    path = tmp_path / "toy.onnx"
    torch.onnx.export(Brighten().eval(), (torch.rand(1, 3, 32, 48),), str(path), dynamo=True, input_names=["input"],
                      output_names=["image"], dynamic_shapes=({2: torch.export.Dim("h"), 3: torch.export.Dim("w")},))
    image = ["batch", 3, "height", "width"]
    pre = Preprocess(resize="pad_multiple", multiple=16)
    manifest = Manifest("dehaze", "toy", [TensorSpec("input", image, preprocess=pre)], [TensorSpec("image", image)])
    manifest.save(tmp_path / "toy.json")
    frame = _frame(np.full((50, 70, 3), 100, np.uint8))
    result = DehazeTask(model=path)(frame)
    assert result.image.shape == (50, 70, 3)
    assert abs(int(result.image.mean()) - 150) <= 1
    assert result.mean_transmission is None and "mean_transmission" not in result.to_record()

    Manifest("anomaly", "toy", manifest.inputs, manifest.outputs).save(tmp_path / "toy.json")
    with pytest.raises(BundleError, match="is a 'anomaly' model; expected a dehaze model"):
        DehazeTask(model=path)


@pytest.mark.slow
def test_runs_a_zoo_mcafnet_bundle(tmp_path):
    """The zoo's mcafnet bundle (manifest from its registry entry) runs through DehazeTask unchanged."""
    torch = pytest.importorskip("torch")
    from edgeglocal.export import to_onnx
    from edgeglocal.models import create as create_model
    from edgeglocal.models import get_config

    torch.manual_seed(0)
    cfg = get_config("mcafnet")
    model = create_model("mcafnet", dims=(8, 16), depths=(1, 1), decoder_depths=(1,), heads=(1, 2), window=4).eval()
    path = tmp_path / "mcafnet.onnx"
    to_onnx(model, torch.rand(1, 3, 48, 64), path, task=cfg.task, arch="mcafnet", dynamic="all",
            input_specs=cfg.input_specs((48, 64), "all"), output_specs=cfg.output_specs())
    hazy = cv2.resize(_real_hazy("aero3.jpg"), (200, 152))
    result = DehazeTask(model=path)(_frame(hazy))
    x = torch.from_numpy(np.ascontiguousarray(hazy[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0)
    with torch.no_grad():
        want = (model(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()[..., ::-1] * 255.0).round()
    assert result.image.shape == hazy.shape and result.mean_transmission is None
    assert np.abs(result.image.astype(np.float32) - want).max() <= 2.0
