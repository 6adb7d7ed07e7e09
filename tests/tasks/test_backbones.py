"""The shared MobileNetV2 backbone: ImageNet weights really load, and the cached ONNX feature models."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from edgeglocal.models.mobilenetv2 import MobileNetV2, mobilenet_v2, to_torchvision_keys
from edgeglocal.runtime.preprocess import prepare
from edgeglocal.tasks import backbones

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def _bgr(name: str) -> np.ndarray:
    rgb = getattr(data, name)()[..., :3]
    return np.ascontiguousarray(rgb[..., ::-1])


def _two_crops(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-left and bottom-right 80% crops: same content, shifted and cut differently."""
    h, w = img.shape[:2]
    return img[: int(h * 0.8), : int(w * 0.8)], img[int(h * 0.2) :, int(w * 0.2) :]


def _crop_margin(model: torch.nn.Module) -> float:
    """Mean cosine similarity of two crops of the same photo minus that of different photos."""
    from edgeglocal.bundle import Preprocess, TensorSpec

    spec = TensorSpec("image", [1, 3, 224, 224], preprocess=Preprocess(
        mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], resize="stretch", size=[224, 224]))
    a, b = zip(*(_two_crops(_bgr(n)) for n in PHOTOS))
    with torch.no_grad():
        ea, eb = (torch.nn.functional.normalize(model(torch.from_numpy(
            np.concatenate([prepare(i, spec)[0] for i in crops]))), dim=1) for crops in (a, b))
    sim = (ea @ eb.T).numpy()
    off = sim[~np.eye(len(PHOTOS), dtype=bool)]
    return float(np.diag(sim).mean() - off.mean()), sim


def test_imagenet_weights_separate_photos_much_better_than_random_init():
    torch.manual_seed(0)
    trained, sim = _crop_margin(mobilenet_v2())
    random_init, _ = _crop_margin(MobileNetV2(num_classes=0).eval())
    # every photo's two crops are closer to each other than to any other photo's crop
    assert (np.diag(sim)[:, None] > sim - np.eye(len(PHOTOS))).all()
    # measured: trained margin 0.43, random-init 0.02
    assert trained > 0.2
    assert trained > 3 * random_init


def test_flat_checkpoint_keys_map_onto_torchvision_names():
    model = MobileNetV2()
    names = set(model.state_dict())
    flat = torch.load(backbones.mobilenetv2_weights(), map_location="cpu", weights_only=True)
    mapped = to_torchvision_keys(flat)
    assert "features.1.conv.0.0.weight" in mapped and "features.2.conv.3.running_var" in mapped
    assert set(mapped) == names - {"classifier.1.weight", "classifier.1.bias"}
    assert to_torchvision_keys(mapped) == mapped  # torchvision layout passes through


@pytest.mark.parametrize("kind", ["gem", "patch"])
def test_feature_session_exports_once_and_matches_torch(kind):
    # the real cache (first run on a machine exports, ~30 s per kind); keyed so it is never stale
    session = backbones.feature_session(kind)
    path = backbones.feature_path(kind)
    assert session.path == path and path.parent == backbones.cache_dir()
    assert backbones.sha256(backbones.mobilenetv2_weights())[:12] in path.name
    stamp = os.stat(path).st_mtime_ns
    again = backbones.feature_session(kind)
    assert os.stat(path).st_mtime_ns == stamp and again.path == path  # cached, not re-exported
    assert not [p for p in path.parent.glob(f".{path.stem}*")]  # no temp files left

    images = [_bgr("astronaut"), cv2.resize(_bgr("coffee"), (300, 200))]
    got = backbones.extract(session, images)
    from edgeglocal.models.mobilenetv2 import FEATURE_HEADS

    head = FEATURE_HEADS[kind](mobilenet_v2()).eval()
    spec = session.inputs[0]
    with torch.no_grad():
        want = head(torch.from_numpy(np.concatenate([prepare(i, spec)[0] for i in images]))).numpy()
    np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-3)
    if kind == "gem":
        assert got.shape == (2, 1280)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    else:
        h, w = spec.preprocess.size
        assert got.shape == (2, 128, h // 8, w // 8)


def test_unknown_kind_names_the_choices():
    with pytest.raises(Exception, match="'global' is not one of patch, gem"):
        backbones.feature_session("global")


def test_corrupt_or_foreign_weights_fail_in_one_sentence(tmp_path):
    from edgeglocal.errors import CheckpointError

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        mobilenet_v2(path=corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"backbone.conv1.weight": torch.zeros(1)}, foreign)
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        mobilenet_v2(path=foreign)
    with pytest.raises(CheckpointError, match="has no torchvision match"):
        to_torchvision_keys({"features.1.conv.2.weight": torch.zeros(1)})  # conv.2 is a ReLU6
