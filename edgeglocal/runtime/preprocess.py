"""Frame -> model input as the manifest's ``Preprocess`` says, and model output -> frame coordinates.

``prepare`` records what it did (resize scale, padding) in a :class:`PrepMeta` so that dense
outputs (dehazed images, anomaly maps) go back to the frame with ``restore`` and boxes with
``boxes_to_frame``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from edgeglocal.bundle import Preprocess, TensorSpec
from edgeglocal.errors import InputError

RESIZE_MODES = ("stretch", "letterbox", "pad_multiple", "none")
_CV_MAX_CHANNELS = 512  # cv2.resize's limit; wider feature maps are resized in slices


@dataclass(frozen=True)
class PrepMeta:
    """How a frame of ``frame_hw`` became an input of ``input_hw``.

    The image was resized to ``resized_hw`` (``scale`` = resized / frame, per axis) and then padded
    by ``pad`` = (top, bottom, left, right) pixels.
    """

    frame_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    input_hw: tuple[int, int]
    scale: tuple[float, float]
    pad: tuple[int, int, int, int]


def _target_hw(spec: TensorSpec, pre: Preprocess) -> tuple[int, int] | None:
    if pre.size:
        return int(pre.size[0]), int(pre.size[1])
    h, w = spec.shape[-2:] if len(spec.shape) == 4 else (None, None)
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        return h, w
    return None


def prepare(image_bgr: np.ndarray, spec: TensorSpec) -> tuple[np.ndarray, PrepMeta]:
    """A BGR uint8 (H, W, 3) image -> a (1, 3, h, w) float32 batch for ``spec``, plus its meta.

    Without a ``spec.preprocess``, the defaults apply (RGB, /255, stretch to the graph's fixed size).
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise InputError(
            f"Image for input {spec.name!r} is {image_bgr.dtype} {tuple(image_bgr.shape)}; "
            "expected BGR uint8 (H, W, 3)."
        )
    pre = spec.preprocess or Preprocess()
    if pre.resize not in RESIZE_MODES:
        raise InputError(f"Preprocess resize {pre.resize!r} of input {spec.name!r} is not one of {RESIZE_MODES}.")
    frame_hw = image_bgr.shape[:2]
    target = _target_hw(spec, pre)
    if pre.resize in ("stretch", "letterbox") and target is None:
        raise InputError(
            f"Input {spec.name!r} uses resize={pre.resize!r} but neither preprocess.size nor the "
            f"graph shape {spec.shape} gives a fixed height and width."
        )
    if pre.color.upper() not in ("RGB", "BGR"):
        raise InputError(f"Preprocess color {pre.color!r} of input {spec.name!r} is not RGB or BGR.")
    img, resized_hw, pad = _geometry(image_bgr, pre, target)
    luts = _luts(pre.color.upper(), float(pre.scale), tuple(pre.mean), tuple(pre.std))
    planes = cv2.split(img)  # B, G, R uint8 planes
    order = (2, 1, 0) if pre.color.upper() == "RGB" else (0, 1, 2)
    batch = np.empty((1, 3, *img.shape[:2]), np.float32)
    for k, c in enumerate(order):  # normalise each plane straight into its slot of the batch
        cv2.LUT(planes[c], luts[c], dst=batch[0, k])
    meta = PrepMeta(
        frame_hw=(frame_hw[0], frame_hw[1]),
        resized_hw=resized_hw,
        input_hw=(batch.shape[2], batch.shape[3]),
        scale=(resized_hw[0] / frame_hw[0], resized_hw[1] / frame_hw[1]),
        pad=pad,
    )
    return batch, meta


@functools.lru_cache(maxsize=16)
def _luts(color: str, scale: float, mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """``(v * scale - mean) / std`` for every uint8 value, one table per BGR source channel: a table
    lookup per pixel instead of float arithmetic on the whole frame (5x faster on a 768x576 frame)."""
    m, sd = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    if color == "RGB":  # mean/std are given in the model's (RGB) order; the tables are indexed by BGR
        m, sd = m[::-1], sd[::-1]
    values = np.arange(256, dtype=np.float64)
    return tuple(((values * scale - m[c]) / sd[c]).astype(np.float32).reshape(256, 1) for c in range(3))


def _geometry(
    img: np.ndarray, pre: Preprocess, target: tuple[int, int] | None
) -> tuple[np.ndarray, tuple[int, int], tuple[int, int, int, int]]:
    """Resize and pad (in uint8, before normalisation, so ``pad_value`` is a pixel value)."""
    h, w = img.shape[:2]
    if pre.resize == "stretch":
        th, tw = target
        return _resize(img, th, tw), (th, tw), (0, 0, 0, 0)
    if pre.resize == "letterbox":
        th, tw = target
        r = min(th / h, tw / w)
        nh, nw = max(1, round(h * r)), max(1, round(w * r))
        top, left = (th - nh) // 2, (tw - nw) // 2
        pad = (top, th - nh - top, left, tw - nw - left)
        return _pad(_resize(img, nh, nw), pad, pre.pad_value), (nh, nw), pad
    if pre.resize == "pad_multiple":
        m = max(1, int(pre.multiple))
        pad = (0, -h % m, 0, -w % m)
        return _pad(img, pad, pre.pad_value), (h, w), pad
    return img, (h, w), (0, 0, 0, 0)


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    if img.shape[:2] == (h, w):
        return img
    shrink = h < img.shape[0] and w < img.shape[1]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _pad(img: np.ndarray, pad: tuple[int, int, int, int], value: float) -> np.ndarray:
    if not any(pad):
        return img
    top, bottom, left, right = pad
    return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(value,) * 3)


def restore(x: np.ndarray, meta: PrepMeta, channels_last: bool = False) -> np.ndarray:
    """A dense output in input coordinates -> the same map at the frame's size.

    ``x`` has its spatial axes last ((..., h, w), e.g. NCHW) or, with ``channels_last``, as (h, w, C).
    The padding is cropped off, then the map is resized (bilinear) to ``meta.frame_hw``; where there
    is nothing to crop or resize, ``x`` itself is returned.
    """
    hw_axes = (-3, -2) if channels_last else (-2, -1)
    got = (x.shape[hw_axes[0]], x.shape[hw_axes[1]])
    if got != meta.input_hw:
        raise InputError(f"Output map has spatial size {got} but the model input was {meta.input_hw}.")
    if got == meta.frame_hw and not any(meta.pad):
        return x  # full-resolution model output: nothing to crop or resize
    top, bottom, left, right = meta.pad
    h, w = meta.input_hw
    crop = (slice(top, h - bottom), slice(left, w - right))
    if channels_last:
        cropped = x[..., crop[0], crop[1], :]
        hwc = cropped.reshape(cropped.shape[-3], cropped.shape[-2], -1)
    else:
        cropped = x[..., crop[0], crop[1]]
        hwc = cropped.reshape(-1, *cropped.shape[-2:]).transpose(1, 2, 0)
    fh, fw = meta.frame_hw
    out = _resize_any(np.ascontiguousarray(hwc), fh, fw)
    if channels_last:
        return out.reshape(*cropped.shape[:-3], fh, fw, cropped.shape[-1])
    return out.transpose(2, 0, 1).reshape(*cropped.shape[:-2], fh, fw)


def _resize_any(hwc: np.ndarray, h: int, w: int) -> np.ndarray:
    """cv2.resize for any channel count and dtype cv2 accepts; keeps the channel axis."""
    if hwc.shape[:2] == (h, w):
        return hwc
    src = hwc.astype(np.float32) if hwc.dtype not in (np.uint8, np.float32) else hwc
    chunks = [
        cv2.resize(src[..., i : i + _CV_MAX_CHANNELS], (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
        for i in range(0, src.shape[2], _CV_MAX_CHANNELS)
    ]
    return np.concatenate(chunks, axis=2).astype(hwc.dtype, copy=False)


def boxes_to_frame(boxes_xyxy: np.ndarray, meta: PrepMeta) -> np.ndarray:
    """(N, 4+) boxes in input pixels (x1, y1, x2, y2, ...) -> frame pixels, clipped to the frame."""
    out = np.array(boxes_xyxy, dtype=np.float32, copy=True)
    top, _, left, _ = meta.pad
    sy, sx = meta.scale
    out[:, [0, 2]] = (out[:, [0, 2]] - left) / sx
    out[:, [1, 3]] = (out[:, [1, 3]] - top) / sy
    fh, fw = meta.frame_hw
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, fw)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, fh)
    return out
