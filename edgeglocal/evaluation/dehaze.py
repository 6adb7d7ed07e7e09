"""Dehazing accuracy: PSNR / SSIM (scikit-image) of each method's output against the clean image."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from edgeglocal.errors import InputError
from edgeglocal.evaluation import metrics
from edgeglocal.evaluation.datasets import haze_pairs, read_image

#: Classical references: the hazy input itself, and contrast-limited histogram equalisation.
BASELINES = ("identity", "clahe")

Progress = Callable[[int, int], None]


def clahe(image_bgr: np.ndarray) -> np.ndarray:
    """CLAHE on the L channel of Lab: a contrast baseline that knows nothing about haze."""
    lab = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def _method(method: str, model: str | Path | None) -> Callable[[np.ndarray], np.ndarray]:
    if method == "identity":
        return lambda image: image
    if method == "clahe":
        return clahe
    if method != "model":
        raise InputError(f"Dehaze method {method!r} is unknown; expected model, {', '.join(BASELINES)}.")
    from edgeglocal.io.frame import Frame
    from edgeglocal.tasks.dehaze import DehazeTask

    task = DehazeTask(model=model)

    def run(image: np.ndarray) -> np.ndarray:
        frame = Frame(image=image, index=0, timestamp=0.0, source="eval")
        return task.postprocess(task.infer(task.preprocess(frame)), frame).image

    return run


def evaluate(data: str | Path, model: str | Path | None = None, results: str | Path | None = None,
             method: str = "model", progress: Progress | None = None) -> dict:
    """Score a method (or, with ``results``, images named as in ``hazy/``) on a hazy/ + clean/ set."""
    pairs = haze_pairs(Path(data))
    run = None if results is not None else _method(method, model)
    rows = []
    for i, (name, hazy_path, clean_path) in enumerate(pairs):
        clean = read_image(clean_path)
        if results is not None:
            out_path = Path(results) / name
            if not out_path.is_file():
                raise InputError(f"Results folder {results} has no {name}; expected one dehazed image per hazy image.")
            out = read_image(out_path)
        else:
            out = run(read_image(hazy_path))
        if out.shape != clean.shape:
            raise InputError(f"Dehazed {name} is {out.shape[1]}x{out.shape[0]}; expected the clean image's size "
                             f"{clean.shape[1]}x{clean.shape[0]}.")
        rows.append({"image": name, "psnr": metrics.psnr(clean, out), "ssim": metrics.ssim(clean, out)})
        if progress:
            progress(i + 1, len(pairs))
    summary = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr", "ssim")}
    return {"task": "dehaze", "method": "results" if results is not None else method, "images": len(rows),
            "metrics": summary, "per_item": rows}
