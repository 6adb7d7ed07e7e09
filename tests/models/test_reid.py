"""The small ReID embedder: size, descriptor layout, per-sample behaviour and ONNX parity."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgeglocal.errors import InputError
from edgeglocal.export import check_parity, to_onnx
from edgeglocal.models import IMAGENET_MEAN, IMAGENET_STD, create, get_config

PEDESTRIANS = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")

TINY = dict(stages=((8, 1, 2), (16, 1, 2), (24, 1, 2), (32, 1, 1)), stem=8, feat_dim=64, global_dim=32, part_dim=8)


def test_default_model_is_edge_sized_and_unit_norm():
    model = create("reid_small").eval()
    assert 0.3e6 < sum(p.numel() for p in model.parameters()) < 2e6
    assert model.embed_dim == 256 + 4 * 64
    with torch.no_grad():
        out = model(torch.rand(2, 3, *get_config("reid_small").input_size))
    assert out.shape == (2, 512)
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_stripes_describe_their_own_rows():
    """Changing only the bottom rows of a crop moves the bottom stripe's part more than the top's."""
    torch.manual_seed(0)
    model = create("reid_small", **TINY).eval()
    x = torch.rand(1, 3, 256, 128)
    y = x.clone()
    y[:, :, 192:] = torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        a, b = model(x), model(y)
    parts = (a - b)[0, 32:].reshape(4, 8).norm(dim=1)
    assert parts[3] > 3 * parts[0]


def test_batch_does_not_change_a_sample():
    torch.manual_seed(0)
    model = create("reid_small", **TINY).eval()
    x = torch.rand(4, 3, 128, 64)
    with torch.no_grad():
        assert torch.allclose(model(x)[2], model(x[2:3])[0], atol=1e-6)


def test_bad_height_is_one_clear_error():
    model = create("reid_small", **TINY).eval()
    with pytest.raises(InputError, match="height 100 must be a multiple of 64"):
        model(torch.rand(1, 3, 100, 64))


def _export_and_check(model, size, tmp_path):
    cfg = get_config("reid_small")
    path = tmp_path / f"reid_{size[0]}x{size[1]}.onnx"
    manifest = to_onnx(model, torch.rand(2, 3, *size), path, task=cfg.task, arch="reid_small", dynamic="batch",
                       input_specs=cfg.input_specs(size, "batch"), output_specs=cfg.output_specs())
    assert manifest.inputs[0].name == "crops" and manifest.inputs[0].shape == ["batch", 3, *size]
    report = check_parity(model, path, torch.rand(3, 3, *size), atol=1e-4, rtol=0.0)
    assert report.passed, report.to_dict()
    assert report.outputs[0].shape == [3, model.embed_dim]
    return path


def test_export_matches_pytorch_at_default_size(tmp_path):
    torch.manual_seed(0)
    model = create("reid_small", **TINY).eval()
    path = _export_and_check(model, (256, 128), tmp_path)
    if not PEDESTRIANS.exists():
        pytest.skip("opencv-doc media not installed")
    from edgeglocal.tasks.gallery import Embedder

    # The bundle plugs into the tracker's embedder: person-sized crops of a real video frame.
    cap = cv2.VideoCapture(str(PEDESTRIANS))
    ok, frame = cap.read()
    cap.release()
    assert ok
    crops = [frame[100:356, 200:328], frame[200:456, 500:628]]
    embedder = Embedder(path, device="cpu")
    got = embedder(crops)
    rgb = torch.from_numpy(np.stack([c[:, :, ::-1] for c in crops]).copy()).permute(0, 3, 1, 2).float() / 255
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    with torch.no_grad():
        expected = model((rgb - mean) / std).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.slow
def test_export_matches_pytorch_at_another_size(tmp_path):
    torch.manual_seed(0)
    _export_and_check(create("reid_small").eval(), (128, 64), tmp_path)
