"""prepare / restore / boxes_to_frame on real images with hand-checkable numbers."""

from __future__ import annotations

import numpy as np
import pytest

from edgeglocal.bundle import Preprocess, TensorSpec
from edgeglocal.errors import InputError
from edgeglocal.runtime.preprocess import boxes_to_frame, prepare, restore


def _image(h: int, w: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 10  # B
    img[..., 1] = 20  # G
    img[..., 2] = 250  # R
    return img


def test_rgb_scale_mean_std_and_stretch():
    pre = Preprocess(color="RGB", scale=1 / 255, mean=[0.5, 0.5, 0.5], std=[0.25, 0.5, 1.0], size=[8, 6])
    x, meta = prepare(_image(16, 12), TensorSpec("image", [1, 3, "h", "w"], preprocess=pre))
    assert x.shape == (1, 3, 8, 6) and x.dtype == np.float32 and x.flags.c_contiguous
    # channel 0 is R after the swap: (250/255 - 0.5) / 0.25
    np.testing.assert_allclose(x[0, :, 0, 0], [(250 / 255 - 0.5) / 0.25, (20 / 255 - 0.5) / 0.5, 10 / 255 - 0.5], rtol=1e-6)
    assert meta.scale == (0.5, 0.5) and meta.pad == (0, 0, 0, 0)


def test_bgr_keeps_channel_order_and_size_from_graph_shape():
    x, meta = prepare(_image(5, 7), TensorSpec("image", [1, 3, 10, 14], preprocess=Preprocess(color="BGR", scale=1.0)))
    assert x.shape == (1, 3, 10, 14)
    np.testing.assert_array_equal(x[0, :, 3, 3], [10, 20, 250])
    assert meta.input_hw == (10, 14)


def test_letterbox_pads_centred_with_pixel_value_and_maps_boxes_back():
    pre = Preprocess(color="BGR", scale=1.0, resize="letterbox", size=[64, 64], pad_value=114)
    img = _image(32, 64)  # wide: scaled by 1, padded 16 rows top and bottom
    x, meta = prepare(img, TensorSpec("images", [1, 3, 64, 64], preprocess=pre))
    assert meta.resized_hw == (32, 64) and meta.pad == (16, 16, 0, 0)
    assert (x[0, :, :16] == 114).all() and (x[0, :, 48:] == 114).all()
    np.testing.assert_array_equal(x[0, :, 16, 0], [10, 20, 250])

    img = _image(100, 50)  # tall: scaled by 0.64 to 64x32, padded 16 columns each side
    _, meta = prepare(img, TensorSpec("images", [1, 3, 64, 64], preprocess=pre))
    assert meta.resized_hw == (64, 32) and meta.pad == (0, 0, 16, 16)
    boxes = np.array([[16, 0, 48, 64, 0.9], [0, 10, 20, 30, 0.5]], np.float32)
    back = boxes_to_frame(boxes, meta)
    np.testing.assert_allclose(back[0], [0, 0, 50, 100, 0.9], atol=1e-5)
    np.testing.assert_allclose(back[1, :4], [0, 10 / 0.64, 4 / 0.64, 30 / 0.64], atol=1e-4)


def test_pad_multiple_and_restore_crops_padding():
    pre = Preprocess(color="BGR", scale=1.0, resize="pad_multiple", multiple=8)
    img = np.random.default_rng(0).integers(0, 255, (13, 21, 3), dtype=np.uint8)
    x, meta = prepare(img, TensorSpec("x", [1, 3, "h", "w"], preprocess=pre))
    assert x.shape == (1, 3, 16, 24) and meta.pad == (0, 3, 0, 3)
    # An identity "model": restoring its output gives back the frame exactly.
    back = restore(x, meta)
    assert back.shape == (1, 3, 13, 21)
    np.testing.assert_array_equal(back[0].transpose(1, 2, 0), img.astype(np.float32))
    hwc = restore(x[0].transpose(1, 2, 0), meta, channels_last=True)
    np.testing.assert_array_equal(hwc, img.astype(np.float32))


def test_restore_resizes_maps_to_frame_size():
    pre = Preprocess(resize="letterbox", size=[32, 32])
    _, meta = prepare(_image(40, 80), TensorSpec("x", [1, 3, 32, 32], preprocess=pre))
    amap = np.zeros((1, 1, 32, 32), np.float32)
    amap[..., 8:24, :] = 1.0  # exactly the image area (16 rows resized + 8 rows pad each side)
    out = restore(amap, meta)
    assert out.shape == (1, 1, 40, 80)
    np.testing.assert_allclose(out, 1.0)
    with pytest.raises(InputError, match="spatial size"):
        restore(np.zeros((1, 1, 16, 16), np.float32), meta)


def test_none_keeps_size_and_bad_inputs_fail_early():
    x, _ = prepare(_image(9, 11), TensorSpec("x", [1, 3, "h", "w"], preprocess=Preprocess(resize="none")))
    assert x.shape == (1, 3, 9, 11)
    with pytest.raises(InputError, match="neither preprocess.size nor the graph shape"):
        prepare(_image(9, 11), TensorSpec("x", [1, 3, "h", "w"]))
    with pytest.raises(InputError, match="expected BGR uint8"):
        prepare(np.zeros((9, 11), np.uint8), TensorSpec("x", [1, 3, 4, 4]))
    with pytest.raises(InputError, match="resize 'crop'"):
        prepare(_image(4, 4), TensorSpec("x", [1, 3, 4, 4], preprocess=Preprocess(resize="crop")))
