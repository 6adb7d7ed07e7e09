"""MCAF-Net dehazer: size budget, any H x W, K*x - B + x output, linear memory, ONNX parity."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from edgeglocal.export import check_parity, to_onnx
from edgeglocal.models import create, get_config
from edgeglocal.nn.channel_attention import ChannelAttention

HAZY_PHOTO = Path("/usr/share/doc/opencv-doc/examples/data/aero3.jpg")
TINY = dict(dims=(8, 16, 32), depths=(1, 1, 1), decoder_depths=(1, 1), heads=(1, 2, 2), window=4)
#: Two levels (one window-attention fusion) keep the dynamic-shape export quick.
TWO_LEVELS = dict(dims=(8, 16), depths=(1, 1), decoder_depths=(1,), heads=(1, 2), window=4)


class LargestTensor(TorchDispatchMode):
    """Records the element count of the largest tensor any aten op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_default_model_is_edge_sized():
    params = sum(p.numel() for p in create("mcafnet").parameters())
    assert 1e6 <= params <= 3e6, params


@pytest.mark.parametrize("size", [(64, 64), (37, 51), (16, 100)])
def test_any_size_comes_back_at_its_own_size(size):
    torch.manual_seed(0)
    model = create("mcafnet", **TINY).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_output_is_k_times_x_minus_b_plus_x():
    torch.manual_seed(0)
    model = create("mcafnet", **TINY).eval()
    x = torch.rand(1, 3, 32, 48)
    head = {}
    model.head.register_forward_hook(lambda m, i, o: head.setdefault("kb", o))
    with torch.no_grad():
        y = model(x)
    k, b = head["kb"][:, :3], head["kb"][:, 3:]
    assert torch.allclose(y, k * x - b + x, atol=1e-6)
    assert (y - x).abs().mean() > 1e-3  # the maps are not trivially zero


def test_samples_do_not_see_each_other():
    """Colour statistics and every fusion weight are per image, so the batch cannot leak."""
    torch.manual_seed(0)
    model = create("mcafnet", **TINY).eval()
    x = torch.rand(3, 3, 32, 32)
    x[0] *= 0.2  # a very different colour cast beside sample 1
    with torch.no_grad():
        assert torch.allclose(model(x)[1], model(x[1:2])[0], atol=1e-5)


def test_colour_calibration_reacts_to_the_image_colour_cast():
    torch.manual_seed(0)
    model = create("mcafnet", **TINY).eval()
    for block in model.modules():  # give the (zero-initialised) calibration MLPs weights
        if hasattr(block, "calib"):
            torch.nn.init.normal_(block.calib[-1].weight, std=0.5)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        model.encoder[0][0].attn.calib[-1].weight.zero_()
        changed = model(x)
    assert (plain - changed).abs().max() > 1e-4


def test_channel_attention_memory_is_linear_in_pixels():
    """The C x C attention never materialises an (H*W) x (H*W) matrix."""
    attn = ChannelAttention(16, num_heads=2).eval()
    sizes = {}
    for side in (32, 64):
        with torch.no_grad(), LargestTensor() as mode:
            attn(torch.rand(1, 16, side, side))
        sizes[side] = mode.largest
        assert mode.largest < (side * side) ** 2
    assert sizes[64] <= 4 * sizes[32]


def test_whole_network_memory_is_linear_in_pixels():
    model = create("mcafnet", **TINY).eval()
    sizes = {}
    for side in (32, 64):
        with torch.no_grad(), LargestTensor() as mode:
            model(torch.rand(1, 3, side, side))
        sizes[side] = mode.largest
    assert sizes[64] <= 4 * sizes[32]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A reduced mcafnet and its dynamic (batch, H, W) bundle."""
    torch.manual_seed(0)
    cfg = get_config("mcafnet")
    model = create("mcafnet", **TWO_LEVELS).eval()
    path = tmp_path_factory.mktemp("mcafnet") / "mcafnet.onnx"
    size = (48, 64)
    manifest = to_onnx(model, torch.rand(2, 3, *size), path, task=cfg.task, arch="mcafnet", dynamic="all",
                       input_specs=cfg.input_specs(size, "all"), output_specs=cfg.output_specs())
    return model, path, manifest


def test_export_matches_pytorch_at_two_sizes(exported):
    model, path, manifest = exported
    assert manifest.task == "dehaze" and "WindowAttention" in manifest.custom_ops
    assert manifest.inputs[0].shape == ["batch", 3, "height", "width"]
    for shape in ((2, 3, 48, 64), (1, 3, 37, 90)):  # the second is not a multiple of anything
        report = check_parity(model, path, torch.rand(*shape), atol=1e-4, rtol=0.0)
        assert report.passed, report.to_dict()
        assert report.outputs[0].shape == list(shape)


@pytest.mark.skipif(not HAZY_PHOTO.exists(), reason="opencv-doc media not installed")
def test_dehaze_task_runs_the_bundle_on_a_real_photo(exported):
    """The bundle drives the dehaze task at the frame's own size and agrees with PyTorch."""
    from edgeglocal.io.frame import Frame
    from edgeglocal.tasks import create as create_task

    model, path, _ = exported
    image = cv2.resize(cv2.imread(str(HAZY_PHOTO)), (150, 100), interpolation=cv2.INTER_AREA)
    task = create_task("dehaze", model=str(path), device="cpu")
    result = task(Frame(image=image, index=0, timestamp=0.0, source=str(HAZY_PHOTO)))
    assert result.image.shape == image.shape and result.image.dtype == np.uint8
    rgb = torch.from_numpy(image[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        expected = (model(rgb)[0].clamp(0, 1) * 255).permute(1, 2, 0).numpy()[:, :, ::-1]
    assert np.abs(result.image.astype(np.float32) - expected).max() <= 1.0


@pytest.mark.slow
def test_default_model_export_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    cfg = get_config("mcafnet")
    model = create("mcafnet").eval()
    path = tmp_path / "mcafnet.onnx"
    to_onnx(model, torch.rand(2, 3, *cfg.input_size), path, task=cfg.task, arch="mcafnet", dynamic="all",
            input_specs=cfg.input_specs(None, "all"), output_specs=cfg.output_specs())
    for shape in ((1, 3, *cfg.input_size), (1, 3, 120, 200)):
        report = check_parity(model, path, torch.rand(*shape), atol=1e-4, rtol=0.0)
        assert report.passed, report.to_dict()
