"""Evaluation sets on disk: builders from real data shipped here, and readers of the standard layouts.

Layouts (the ones public benchmarks use, so a downloaded set evaluates the same way):

- haze: ``hazy/NAME`` + ``clean/NAME`` pairs with the same file names (RESIDE SOTS style);
- anomaly: MVTec AD, ``train/good``, ``test/good``, ``test/<defect>``, ``ground_truth/<defect>/NAME_mask.png``;
  a folder of such categories is evaluated category by category;
- mot: MOTChallenge, ``<seq>/gt/gt.txt`` (+ ``<seq>/det/det.txt``, ``<seq>/img1/`` or a video, ``seqinfo.ini``);
- retrieval: ``gallery/``, ``queries/`` and ``gnd.json`` = ``{"queries": {NAME: {"easy": [...],
  "hard": [...], "junk": [...]}}}`` (revisited Oxford/Paris labels; a plain ``"positives"`` list also works).
"""

from __future__ import annotations

import configparser
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgeglocal.errors import InputError
from edgeglocal.evaluation import synthetic
from edgeglocal.fsutil import atomic_path, write_text_atomic
from edgeglocal.io.sources import FILE_URL_SUFFIXES, IMAGE_SUFFIXES

VIDEO_SUFFIXES = tuple(s for s in FILE_URL_SUFFIXES if s not in IMAGE_SUFFIXES)
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
#: Photos of real scenes (not hazy, not drawings) in opencv-doc's samples.
OPENCV_PHOTOS = ("baboon.jpg", "building.jpg", "fruits.jpg", "home.jpg", "messi5.jpg", "orange.jpg", "apple.jpg",
                 "butterfly.jpg", "board.jpg", "leuvenA.jpg", "HappyFish.jpg", "left01.jpg")
#: scikit-image's bundled CC0 / public-domain photos.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SKIMAGE_TEXTURES = ("brick", "grass", "gravel")
MOT_SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")
#: TUD sequences: 640x480 at 25 FPS (MOTChallenge 2015 seqinfo).
TUD_INFO = {"imWidth": 640, "imHeight": 480, "frameRate": 25}
SET_KINDS = ("haze", "anomaly", "mot", "retrieval")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (not below), sorted; [] when it does not exist."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if Path(folder).is_dir() else []


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"Image {path} cannot be read; expected a PNG/JPEG file.")
    return image


def write_image(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise InputError(f"Cannot encode image {path}.")


def real_photos() -> list[np.ndarray]:
    """BGR photos available offline: opencv-doc samples and scikit-image's bundled photos."""
    import skimage.data

    photos = [read_image(OPENCV_DATA / n) for n in OPENCV_PHOTOS if (OPENCV_DATA / n).is_file()]
    for name in SKIMAGE_PHOTOS:
        rgb = getattr(skimage.data, name)()
        photos.append(cv2.cvtColor(rgb[..., :3], cv2.COLOR_RGB2BGR))
    return photos


def _crop(image: np.ndarray, hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = hw
    scale = max(h / image.shape[0], w / image.shape[1], 1.0)
    if scale > 1.0:
        image = cv2.resize(image, (int(np.ceil(image.shape[1] * scale)), int(np.ceil(image.shape[0] * scale))))
    y, x = rng.integers(0, image.shape[0] - h + 1), rng.integers(0, image.shape[1] - w + 1)
    return np.ascontiguousarray(image[y:y + h, x:x + w])


def _fresh(out: Path) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"Output folder {out} is not empty; expected a new or empty folder for the set.")
    out.mkdir(parents=True, exist_ok=True)
    return out


# ---------------------------------------------------------------- builders


def make_haze_set(out: Path, n: int = 20, seed: int = 0, size: tuple[int, int] = (240, 320)) -> Path:
    """``n`` crops of real photos under synthetic haze (atmospheric scattering, known clean image)."""
    out, rng = _fresh(out), np.random.default_rng(seed)
    photos, params = real_photos(), {}
    for i in range(n):
        clean = _crop(photos[i % len(photos)], size, rng)
        hazy, params[f"{i:04d}.png"] = synthetic.haze(clean, rng)
        write_image(out / "clean" / f"{i:04d}.png", clean)
        write_image(out / "hazy" / f"{i:04d}.png", hazy)
    write_text_atomic(out / "haze.json", json.dumps({"seed": seed, "model": "I = J t + A (1 - t)", "images": params}, indent=1))
    return out


def make_anomaly_set(out: Path, n: int = 20, seed: int = 0, size: int = 128,
                     textures: tuple[str, ...] = SKIMAGE_TEXTURES) -> Path:
    """One MVTec-style category per scikit-image texture: ``n`` normal training crops, ``n // 2``
    normal test crops and ``n // 2`` crops per synthetic defect kind, with pixel masks."""
    import skimage.data

    out, rng = _fresh(out), np.random.default_rng(seed)
    n_test = max(1, n // 2)
    for tex in textures:
        gray = getattr(skimage.data, tex)()
        image = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR) if gray.ndim == 2 else cv2.cvtColor(gray, cv2.COLOR_RGB2BGR)
        root = out / tex
        for i in range(n):
            write_image(root / "train" / "good" / f"{i:03d}.png", _crop(image, (size, size), rng))
        for i in range(n_test):
            write_image(root / "test" / "good" / f"{i:03d}.png", _crop(image, (size, size), rng))
        for kind in synthetic.DEFECT_KINDS:
            for i in range(n_test):
                bad, mask = synthetic.defect(_crop(image, (size, size), rng), rng, kind=kind)
                write_image(root / "test" / kind / f"{i:03d}.png", bad)
                write_image(root / "ground_truth" / kind / f"{i:03d}_mask.png", mask * 255)
    return out


def motmetrics_sequence(name: str) -> Path:
    """The folder of a TUD sequence shipped inside motmetrics (gt.txt + a tracker's test.txt)."""
    import motmetrics

    path = Path(motmetrics.__file__).parent / "data" / name
    if not (path / "gt.txt").is_file():
        raise InputError(f"motmetrics does not ship sequence {name}; expected it under {path}.")
    return path


def noisy_detections(gt: np.ndarray, rng: np.random.Generator, miss: float = 0.1, low: float = 0.25,
                     jitter: float = 0.05, false_per_frame: float = 0.3) -> np.ndarray:
    """Detector-like rows from ground truth: jittered boxes, missed boxes, some low scores
    (occlusion: what ByteTrack's second stage recovers) and low-score false positives."""
    rows = []
    frames = np.unique(gt[:, 0])
    wmax, hmax = TUD_INFO["imWidth"], TUD_INFO["imHeight"]
    for f in frames:
        for _, _, x, y, w, h, _ in gt[gt[:, 0] == f]:
            if rng.random() < miss:
                continue
            dx, dy, dw, dh = rng.normal(0, jitter, 4) * [w, h, w, h]
            score = rng.uniform(0.15, 0.45) if rng.random() < low else rng.uniform(0.6, 0.95)
            rows.append([f, -1, x + dx, y + dy, max(w + dw, 2), max(h + dh, 2), score])
        for _ in range(rng.poisson(false_per_frame)):
            w, h = rng.uniform(30, 80), rng.uniform(80, 200)
            rows.append([f, -1, rng.uniform(0, wmax - w), rng.uniform(0, hmax - h), w, h, rng.uniform(0.1, 0.4)])
    return np.asarray(rows, np.float64).reshape(-1, 7)


def make_mot_set(out: Path, n: int | None = None, seed: int = 0) -> Path:
    """MOTChallenge sequences from motmetrics' TUD ground truth with noisy detections in det/det.txt.

    ``n`` keeps the first ``n`` frames of each sequence (None: all). There are no images (the TUD
    frames are not shipped), so these sequences evaluate trackers that replay det/det.txt.
    """
    from edgeglocal.tasks.mot import read_mot, write_mot

    out, rng = _fresh(out), np.random.default_rng(seed)
    for name in MOT_SEQUENCES:
        gt = read_mot(motmetrics_sequence(name) / "gt.txt")
        if n is not None:
            gt = gt[gt[:, 0] <= n]
        seq = out / name
        write_mot(seq / "gt" / "gt.txt", gt)
        write_mot(seq / "det" / "det.txt", noisy_detections(gt, rng))
        info = configparser.ConfigParser()
        info.optionxform = str
        info["Sequence"] = {"name": name, "imDir": "img1", "seqLength": str(int(gt[:, 0].max())), **{
            k: str(v) for k, v in TUD_INFO.items()}, "imExt": ".jpg"}
        with atomic_path(seq / "seqinfo.ini") as tmp, open(tmp, "w") as fh:
            info.write(fh)
    return out


#: Transform strengths of the gallery views of each scene, and the gnd label each gets.
RETRIEVAL_VIEWS = ((0.1, "easy"), (0.3, "easy"), (0.7, "hard"), (0.95, "hard"))


def make_retrieval_set(out: Path, n: int = 12, seed: int = 0, size: tuple[int, int] = (240, 320)) -> Path:
    """``n`` scenes cut from real photos; each gives one query and four gallery views of known
    strength (mild ones labelled easy, strong ones hard), so every other scene is a distractor."""
    out, rng = _fresh(out), np.random.default_rng(seed)
    photos, gnd = real_photos(), {}
    for i in range(n):
        scene = _crop(photos[i % len(photos)], (size[0] * 3 // 2, size[1] * 3 // 2), rng)
        query = cv2.resize(scene, size[::-1], interpolation=cv2.INTER_AREA)
        qname = f"q{i:03d}.jpg"
        write_image(out / "queries" / qname, query)
        entry: dict[str, list[str]] = {"easy": [], "hard": [], "junk": []}
        for j, (strength, label) in enumerate(RETRIEVAL_VIEWS):
            view = cv2.resize(synthetic.query_transform(scene, rng, strength), size[::-1], interpolation=cv2.INTER_AREA)
            gname = f"s{i:03d}_v{j}.jpg"
            write_image(out / "gallery" / gname, view)
            entry[label].append(gname)
        gnd[qname] = entry
    write_text_atomic(out / "gnd.json", json.dumps({"seed": seed, "views": RETRIEVAL_VIEWS, "queries": gnd}, indent=1))
    return out


def make_set(kind: str, out: Path, n: int | None = None, seed: int = 0) -> Path:
    """Build evaluation set ``kind`` (one of ``SET_KINDS``) under ``out``."""
    builders = {"haze": make_haze_set, "anomaly": make_anomaly_set, "mot": make_mot_set, "retrieval": make_retrieval_set}
    if kind not in builders:
        raise InputError(f"Set kind {kind!r} is unknown; expected one of {', '.join(SET_KINDS)}.")
    if n is not None and n < 1:
        raise InputError(f"--n {n} must be at least 1.")
    return builders[kind](out, seed=seed, **({} if n is None else {"n": n}))


# ---------------------------------------------------------------- readers


def haze_pairs(root: Path) -> list[tuple[str, Path, Path]]:
    """(name, hazy, clean) for every hazy image that has a clean image of the same name."""
    root = Path(root)
    hazy = list_images(root / "hazy")
    if not hazy or not (root / "clean").is_dir():
        raise InputError(f"Dehaze set {root} needs hazy/ and clean/ folders of images with the same names.")
    pairs = [(p.name, p, root / "clean" / p.name) for p in hazy if (root / "clean" / p.name).is_file()]
    if len(pairs) != len(hazy):
        missing = next(p.name for p in hazy if not (root / "clean" / p.name).is_file())
        raise InputError(f"Dehaze set {root} has hazy/{missing} but no clean/{missing}; expected matching names.")
    return pairs


@dataclass
class AnomalyCategory:
    """One MVTec-style category: normal training images and labelled test images."""

    name: str
    train: list[Path]
    test: list[Path]
    labels: list[int]
    masks: list[Path | None] = field(default_factory=list)  # None: defect-free (all-zero mask)


def anomaly_categories(root: Path) -> list[AnomalyCategory]:
    """The category at ``root`` (it has train/ and test/) or every category folder below it."""
    root = Path(root)
    dirs = [root] if (root / "test").is_dir() else sorted(d for d in root.iterdir() if (d / "test").is_dir()) if root.is_dir() else []
    if not dirs:
        raise InputError(f"Anomaly set {root} has no test/ folder; expected the MVTec AD layout (train/good, test/<defect>, ground_truth/<defect>).")
    return [_category(d) for d in dirs]


def _category(root: Path) -> AnomalyCategory:
    train = list_images(root / "train" / "good")
    cat = AnomalyCategory(root.name, train, [], [], [])
    for defect_dir in sorted(d for d in (root / "test").iterdir() if d.is_dir()):
        for img in list_images(defect_dir):
            good = defect_dir.name == "good"
            cat.test.append(img)
            cat.labels.append(0 if good else 1)
            mask = root / "ground_truth" / defect_dir.name / f"{img.stem}_mask.png"
            if not good and not mask.is_file():
                raise InputError(f"Anomaly set {root} has test/{defect_dir.name}/{img.name} but no mask {mask}.")
            cat.masks.append(None if good else mask)
    if not cat.test or 1 not in cat.labels or 0 not in cat.labels:
        raise InputError(f"Anomaly category {root} needs good and defective test images; found {len(cat.test)} images.")
    return cat


def read_mask(path: Path | None, hw: tuple[int, int]) -> np.ndarray:
    if path is None:
        return np.zeros(hw, np.uint8)
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise InputError(f"Mask {path} cannot be read; expected a grayscale PNG.")
    if mask.shape != hw:
        mask = cv2.resize(mask, hw[::-1], interpolation=cv2.INTER_NEAREST)
    return (mask > 0).astype(np.uint8)


@dataclass
class MotSequence:
    name: str
    root: Path
    gt: Path
    det: Path | None
    frames: Path | None  # img1/ or a video file; None when the sequence ships no images
    frame_rate: float = 30.0


def mot_sequences(root: Path) -> list[MotSequence]:
    """The sequence at ``root`` (it has gt/gt.txt) or every sequence folder below it."""
    root = Path(root)
    dirs = [root] if (root / "gt" / "gt.txt").is_file() else sorted(
        d for d in root.iterdir() if (d / "gt" / "gt.txt").is_file()) if root.is_dir() else []
    if not dirs:
        raise InputError(f"Tracking set {root} has no <seq>/gt/gt.txt; expected the MOTChallenge layout.")
    seqs = []
    for d in dirs:
        info = configparser.ConfigParser()
        info.read(d / "seqinfo.ini")
        rate = float(info.get("Sequence", "frameRate", fallback="30"))
        videos = sorted(p for p in d.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        frames = d / "img1" if list_images(d / "img1") else (videos[0] if videos else None)
        det = d / "det" / "det.txt"
        seqs.append(MotSequence(d.name, d, d / "gt" / "gt.txt", det if det.is_file() else None, frames, rate))
    return seqs


@dataclass
class RetrievalSet:
    gallery: list[Path]
    queries: list[Path]
    gnd: dict[str, dict[str, list[str]]]  # query name -> easy / hard / junk (or positives) gallery names

    @property
    def graded(self) -> bool:
        """True when the ground truth has revisited-protocol easy/hard labels."""
        return all("easy" in g or "hard" in g for g in self.gnd.values())


def retrieval_set(root: Path) -> RetrievalSet:
    root = Path(root)
    gnd_path = root / "gnd.json"
    if not gnd_path.is_file() or not list_images(root / "gallery") or not list_images(root / "queries"):
        raise InputError(f"Retrieval set {root} needs gallery/, queries/ and gnd.json.")
    try:
        gnd = json.loads(gnd_path.read_text())["queries"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{gnd_path} is not a ground-truth file; expected JSON with a 'queries' object ({exc}).") from exc
    queries = [p for p in list_images(root / "queries") if p.name in gnd]
    if not queries:
        raise InputError(f"{gnd_path} labels none of the images in {root / 'queries'}.")
    return RetrievalSet(list_images(root / "gallery"), queries, gnd)
