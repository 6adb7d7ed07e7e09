"""Anomaly detection accuracy on MVTec AD layouts: image / pixel AUROC, AUPRO@0.3 and F1-max.

Methods: ``patchcore`` (PatchCore over the default MobileNetV2 patch features, or a bundle's
feature map; a bundle whose output is a one-channel map is used as the anomaly map directly)
and ``pixel-knn``, the classical baseline: PatchCore's nearest-neighbour distance over raw
8x8 Lab pixel patches, no learned features. ``results`` scores saved maps instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from edgeglocal.errors import InputError
from edgeglocal.evaluation import metrics
from edgeglocal.evaluation.datasets import AnomalyCategory, anomaly_categories, read_image, read_mask

METHODS = ("patchcore", "pixel-knn")
PIXEL_PATCH = 8  # raw-pixel baseline: one 8x8 Lab patch per feature vector
PIXEL_SIZE = 128  # ... of the image resized to 128x128

Progress = Callable[[int, int], None]
Scorer = Callable[[list[np.ndarray]], list[np.ndarray]]  # images -> anomaly maps at image size


def pixel_features(image_bgr: np.ndarray) -> np.ndarray:
    """(3 * 8 * 8, 16, 16) raw Lab pixel patches of the image resized to 128x128."""
    lab = cv2.cvtColor(cv2.resize(image_bgr, (PIXEL_SIZE, PIXEL_SIZE), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2LAB)
    g = PIXEL_SIZE // PIXEL_PATCH
    x = lab.astype(np.float32).reshape(g, PIXEL_PATCH, g, PIXEL_PATCH, 3) / 255.0
    return x.transpose(1, 3, 4, 0, 2).reshape(-1, g, g)


def _feature_fn(method: str, model: str | Path | None) -> tuple[Callable[[np.ndarray], np.ndarray], bool]:
    """image -> (C, h, w) features, and whether the output is already an anomaly map."""
    if method == "pixel-knn":
        return pixel_features, False
    if method != "patchcore":
        raise InputError(f"Anomaly method {method!r} is unknown; expected one of {', '.join(METHODS)}.")
    from edgeglocal.runtime.preprocess import prepare
    from edgeglocal.tasks.backbones import feature_session

    if model is None:
        session = feature_session("patch")
    else:
        from edgeglocal.runtime import load

        session = load(model)
    spec, out = session.inputs[0], session.outputs[0].name

    def run(image: np.ndarray) -> np.ndarray:
        y = session.run({spec.name: prepare(image, spec)[0]})[out]
        return y.reshape(y.shape[-3:]) if y.ndim == 4 else y.reshape(1, *y.shape[-2:])

    probe = run(np.zeros((64, 64, 3), np.uint8))
    return run, probe.shape[0] == 1


def _scorer(cat: AnomalyCategory, method: str, model: str | Path | None) -> tuple[Scorer, str]:
    """The category's scorer and what it is: PatchCore over features, or the model's own maps."""
    from edgeglocal.tasks.patchcore import fit_bank

    features, is_map = _feature_fn(method, model)
    if is_map:
        return (lambda images: [cv2.resize(features(im)[0], im.shape[1::-1]) for im in images]), "model maps"
    if not cat.train:
        raise InputError(f"Anomaly category {cat.name} has no train/good images to fit the normal bank on.")
    bank = fit_bank([features(read_image(p)) for p in cat.train], coreset=0.25, threshold=np.inf)
    return (lambda images: [bank.anomaly_map(features(im), im.shape[:2]) for im in images]), method


def _load_result(results: Path, cat: AnomalyCategory, image: Path, multi: bool) -> np.ndarray:
    base = (results / cat.name if multi else results) / image.parent.name / image.stem
    if base.with_suffix(".npy").is_file():
        return np.load(base.with_suffix(".npy"), allow_pickle=False).astype(np.float32)
    if base.with_suffix(".png").is_file():
        return cv2.imread(str(base.with_suffix(".png")), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    raise InputError(f"Results folder {results} has no anomaly map {base}.npy or .png for {image}.")


def _image_scores(results: Path | None, cat: AnomalyCategory, maps: list[np.ndarray], multi: bool) -> np.ndarray:
    """Max of each map, unless the results folder has a scores.json ({"<defect>/<name>": score})."""
    path = None if results is None else (results / cat.name if multi else results) / "scores.json"
    if path is not None and path.is_file():
        given = json.loads(path.read_text())
        try:
            return np.array([given[f"{p.parent.name}/{p.name}"] for p in cat.test], np.float64)
        except KeyError as exc:
            raise InputError(f"{path} has no score for {exc.args[0]}; expected one per test image.") from exc
    return np.array([float(m.max()) for m in maps])


def score_category(cat: AnomalyCategory, maps: list[np.ndarray], scores: np.ndarray) -> dict[str, float]:
    """The five numbers of one category; maps of other sizes are resized to the first one's."""
    hw = maps[0].shape
    maps = [m if m.shape == hw else cv2.resize(m, hw[::-1], interpolation=cv2.INTER_LINEAR) for m in maps]
    masks = np.stack([read_mask(path, hw) for path in cat.masks])
    labels = np.asarray(cat.labels)
    stack = np.stack(maps)
    return {
        "image_auroc": metrics.auroc(labels, scores),
        "pixel_auroc": metrics.pixel_auroc(masks, stack),
        "aupro": metrics.aupro(masks, stack),
        "image_f1_max": metrics.f1_max(labels, scores),
        "pixel_f1_max": metrics.f1_max(masks, stack),
    }


def evaluate(data: str | Path, model: str | Path | None = None, results: str | Path | None = None,
             method: str = "patchcore", progress: Progress | None = None) -> dict:
    """Score every category of an MVTec-style set; the summary is the mean over categories."""
    cats = anomaly_categories(Path(data))
    multi = not (Path(data) / "test").is_dir()  # a folder of categories: results/<category>/...
    results = None if results is None else Path(results)
    total, done, per, label = sum(len(c.test) for c in cats), 0, [], "results" if results is not None else method
    for cat in cats:
        if results is not None:
            maps = [_load_result(results, cat, p, multi) for p in cat.test]
        else:
            score, label = _scorer(cat, method, model)
            maps = []
            for p in cat.test:
                maps.extend(score([read_image(p)]))
                done += 1
                if progress:
                    progress(done, total)
        row = score_category(cat, maps, _image_scores(results, cat, maps, multi))
        per.append({"category": cat.name, "images": len(cat.test), **row})
    keys = ("image_auroc", "pixel_auroc", "aupro", "image_f1_max", "pixel_f1_max")
    return {"task": "anomaly", "method": label,
            "images": sum(r["images"] for r in per),
            "metrics": {k: float(np.mean([r[k] for r in per])) for k in keys}, "per_item": per}
