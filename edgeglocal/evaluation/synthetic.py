"""Labelled evaluation samples made from real, unlabelled images.

Each generator is seeded and documented with the physical or geometric model it applies, so a
metric computed on its output has a known ground truth: clean images under synthetic haze,
pixel masks of pasted defects, and the gallery image each transformed query came from.
"""

from __future__ import annotations

import cv2
import numpy as np


def haze(clean_bgr: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
    """Atmospheric scattering model I = J t + A (1 - t), t = exp(-beta d).

    The depth proxy d rises from the bottom of the frame to the top (outdoor scenes) with smooth
    low-frequency variation; beta and the airlight A are drawn per image.
    """
    h, w = clean_bgr.shape[:2]
    j = clean_bgr.astype(np.float32) / 255.0
    ramp = np.linspace(1.0, 0.2, h, dtype=np.float32)[:, None].repeat(w, axis=1)
    low = cv2.resize(rng.random((4, 4)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    depth = np.clip(ramp + 0.3 * (low - 0.5), 0.05, 1.2)
    beta = float(rng.uniform(0.8, 1.6))
    airlight = float(rng.uniform(0.75, 0.95))
    t = np.exp(-beta * depth)[..., None]
    hazy = j * t + airlight * (1.0 - t)
    return (np.clip(hazy, 0, 1) * 255.0 + 0.5).astype(np.uint8), {"beta": beta, "airlight": airlight}


DEFECT_KINDS = ("patch", "scratch")


def defect(image_bgr: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Paste a rotated, colour-shifted patch from elsewhere in the image, or draw a scratch.

    ``kind`` picks one of ``DEFECT_KINDS``; None picks at random.
    Returns the defective image and its uint8 mask (1 inside the defect).
    """
    out = image_bgr.copy()
    h, w = out.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    if kind not in (None, *DEFECT_KINDS):
        raise ValueError(f"defect kind {kind!r} is not one of {DEFECT_KINDS}")
    if kind == "patch" or (kind is None and rng.random() < 0.5):
        size = int(rng.uniform(0.12, 0.22) * min(h, w))
        sy, sx = rng.integers(0, h - size), rng.integers(0, w - size)
        patch = np.rot90(out[sy:sy + size, sx:sx + size], k=int(rng.integers(1, 4))).astype(np.int16)
        patch = np.clip(patch + rng.integers(-60, 60, size=3), 0, 255).astype(np.uint8)
        ty, tx = rng.integers(0, h - size), rng.integers(0, w - size)
        out[ty:ty + size, tx:tx + size] = patch
        mask[ty:ty + size, tx:tx + size] = 1
    else:
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        colour = tuple(int(c) for c in rng.integers(0, 255, size=3))
        thickness = max(2, min(h, w) // 40)
        cv2.line(out, p0, p1, colour, thickness)
        cv2.line(mask, p0, p1, 1, thickness)
    return out, mask


def query_transform(image_bgr: np.ndarray, rng: np.random.Generator, strength: float | None = None) -> np.ndarray:
    """A known photometric + geometric change of a gallery image: crop, flip, brightness, rotation.

    ``strength`` in [0, 1] fixes how far the crop, rotation and gain go (0: mild, 1: strong);
    None draws the original ranges (crop 0.7-0.9, rotation up to 10 degrees, gain 0.8-1.2).
    """
    h, w = image_bgr.shape[:2]
    if strength is not None:
        return _strength_transform(image_bgr, rng, float(np.clip(strength, 0.0, 1.0)))
    scale = rng.uniform(0.7, 0.9)
    ch, cw = int(h * scale), int(w * scale)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    out = image_bgr[y:y + ch, x:x + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    angle = float(rng.uniform(-10, 10))
    m = cv2.getRotationMatrix2D((cw / 2, ch / 2), angle, 1.0)
    out = cv2.warpAffine(np.ascontiguousarray(out), m, (cw, ch), borderMode=cv2.BORDER_REFLECT)
    gain = rng.uniform(0.8, 1.2)
    return np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _strength_transform(image_bgr: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    h, w = image_bgr.shape[:2]
    scale = 0.95 - 0.45 * s  # kept area fraction per side: 0.95 (mild) .. 0.5 (strong)
    ch, cw = int(h * scale), int(w * scale)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    out = np.ascontiguousarray(image_bgr[y:y + ch, x:x + cw])
    angle = float(rng.choice([-1, 1]) * (2 + 28 * s))
    m = cv2.getRotationMatrix2D((cw / 2, ch / 2), angle, 1.0)
    out = cv2.warpAffine(out, m, (cw, ch), borderMode=cv2.BORDER_REFLECT)
    gain = 1.0 + float(rng.choice([-1, 1])) * (0.05 + 0.4 * s)
    out = np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    if s > 0.5:  # strong views are also blurred, as from a distant or moving camera
        out = cv2.GaussianBlur(out, (0, 0), 1.0 + 2.0 * s)
    return out
