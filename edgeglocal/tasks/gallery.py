"""Image embeddings and the gallery index that retrieval searches.

An :class:`Embedder` turns BGR images into L2-normalised vectors with the default MobileNetV2 + GeM
model or an exported embedding bundle (task "features", "retrieve" or "reid"); its ``model_id``
travels with every index so that queries are never compared with vectors from another model.

The index file (``.idx``) is a NumPy ``.npz`` archive of plain arrays (embeddings, relative paths,
model id, gallery root) read with ``allow_pickle=False``: opening an index never runs code.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from edgeglocal.errors import BackendUnavailable, InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
EMBED_TASKS = ("features", "retrieve", "reid")
INDEX_FORMAT = 1


class Embedder:
    """L2-normalised embeddings of whole images or crops, batched through one Session.

    ``model``: None / ``"default"`` for MobileNetV2 + GeM, else an embedding bundle path.
    ``size`` (h, w) overrides the manifest's input size, e.g. a person-shaped 256x128 for ReID crops.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        device: str = "auto",
        size: tuple[int, int] | None = None,
    ) -> None:
        if model is None or str(model) == "default":
            from edgeglocal.tasks.backbones import feature_session

            self.session = feature_session("gem", device=device)
            self.model_id = f"default:{self.session.path.stem}"
        else:
            from edgeglocal.runtime import load

            self.session = load(model, device=device)
            manifest = self.session.manifest
            if manifest is not None and manifest.task not in EMBED_TASKS:
                raise InputError(
                    f"{self.session.path.name} is a {manifest.task!r} bundle; expected an embedding "
                    f"model (task {', '.join(EMBED_TASKS)})."
                )
            arch = manifest.arch if manifest is not None else self.session.path.stem
            self.model_id = f"{arch}:{_file_digest(self.session.path)}"
        if len(self.session.inputs) != 1:
            raise InputError(f"{self.session.path.name} has {len(self.session.inputs)} inputs; an embedder takes one image.")
        spec = self.session.inputs[0]
        if size is not None and spec.preprocess is not None:
            spec = replace(spec, preprocess=replace(spec.preprocess, size=[int(size[0]), int(size[1])]))
        self.spec = spec
        names = [o.name for o in self.session.outputs]
        self.output = "embedding" if "embedding" in names else names[0]
        # a graph exported with a fixed batch of 1 must be fed one image at a time
        self.max_batch = 1 if spec.shape and spec.shape[0] == 1 else None

    def prepare(self, images_bgr: list[np.ndarray]) -> np.ndarray:
        """BGR images -> one NCHW batch as the model's manifest prescribes."""
        from edgeglocal.runtime.preprocess import prepare

        return np.concatenate([prepare(img, self.spec)[0] for img in images_bgr])

    def run(self, batch: np.ndarray) -> np.ndarray:
        """A prepared batch -> (N, D) float32 unit vectors."""
        step = self.max_batch or len(batch)
        outs = [self.session.run({self.spec.name: batch[i : i + step]})[self.output] for i in range(0, len(batch), step)]
        emb = np.concatenate(outs).reshape(len(batch), -1).astype(np.float32)
        if not np.isfinite(emb).all():
            raise InputError(f"{self.session.path.name} produced non-finite embeddings.")
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def __call__(self, images_bgr: list[np.ndarray]) -> np.ndarray:
        if not images_bgr:
            return np.empty((0, 0), np.float32)
        return self.run(self.prepare(images_bgr))


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def list_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root`` (recursively), sorted so that an index is reproducible."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"Gallery {root} is not a folder of images.")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"Gallery {root} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return files


@dataclass
class Gallery:
    """Gallery vectors (N, D), their paths relative to ``root``, and the id of the model that made them."""

    embeddings: np.ndarray
    paths: list[str]
    model_id: str
    root: str
    _faiss: object | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.paths)

    def image_path(self, i: int) -> Path:
        return Path(self.root) / self.paths[i]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index atomically (plain arrays only)."""
        from edgeglocal.fsutil import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                format=np.array(INDEX_FORMAT),
                embeddings=self.embeddings.astype(np.float32),
                paths=np.array(self.paths, dtype=str),
                model_id=np.array(self.model_id),
                root=np.array(self.root),
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Gallery":
        path = Path(path)
        if not path.is_file():
            raise InputError(f"Index {path} does not exist; build one with `edgeglocal index build GALLERY_DIR`.")
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("a bare array, not an index archive")
            with data:
                fmt = int(data["format"])
                emb = np.asarray(data["embeddings"], np.float32)
                paths = [str(p) for p in data["paths"]]
                model_id, root = str(data["model_id"]), str(data["root"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            detail = str(exc).strip("'\"") or type(exc).__name__
            raise InputError(
                f"Index {path} is not a readable edgeglocal index ({detail}); rebuild it with "
                "`edgeglocal index build`."
            ) from exc
        if fmt > INDEX_FORMAT:
            raise InputError(f"Index {path} has format {fmt}; this edgeglocal reads format {INDEX_FORMAT}, so upgrade it.")
        if emb.ndim != 2 or len(emb) != len(paths) or not np.isfinite(emb).all():
            raise InputError(f"Index {path} holds {emb.shape} embeddings for {len(paths)} paths; the file is damaged.")
        return cls(emb, paths, model_id, root)

    def search(self, queries: np.ndarray, k: int, backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` inner products: (scores (Q, k), indices (Q, k)), best first.

        ``backend``: "faiss" (IndexFlatIP, exact), "numpy", or "auto" (faiss when importable).
        Both are exact searches, so they rank identically.
        """
        queries = np.ascontiguousarray(np.asarray(queries, np.float32).reshape(-1, self.embeddings.shape[1]))
        k = min(k, len(self))
        if backend == "auto":
            backend = "faiss" if _faiss_available() else "numpy"
        if backend == "faiss":
            if self._faiss is None:
                if not _faiss_available():
                    raise BackendUnavailable("Search backend 'faiss' needs the faiss package; install faiss-cpu.")
                import faiss

                index = faiss.IndexFlatIP(self.embeddings.shape[1])
                index.add(np.ascontiguousarray(self.embeddings, dtype=np.float32))
                self._faiss = index
            scores, idx = self._faiss.search(queries, k)
            return scores, idx.astype(np.int64)
        if backend != "numpy":
            raise InputError(f"Search backend {backend!r} is not one of auto, faiss, numpy.")
        sims = queries @ self.embeddings.T
        idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(sims, idx, axis=1), idx


def _faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def build_gallery(
    root: str | os.PathLike,
    embedder: Embedder,
    batch: int = 16,
    progress: Callable[[int, int], None] | None = None,
    files: list[Path] | None = None,
) -> tuple[Gallery, list[Path]]:
    """Embed every image under ``root`` (or the given ``files`` inside it).

    Returns the gallery and the files that OpenCV could not decode.
    """
    if batch < 1:
        raise InputError(f"Batch size {batch} is invalid; expected a positive integer.")
    root = Path(root)
    files = list_images(root) if files is None else files
    vectors, kept, skipped = [], [], []
    for start in range(0, len(files), batch):
        chunk = files[start : start + batch]
        images = []
        for p in chunk:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                skipped.append(p)
            else:
                images.append(img)
                kept.append(p.relative_to(root).as_posix())
        if images:
            vectors.append(embedder(images))
        if progress is not None:
            progress(min(start + batch, len(files)), len(files))
    if not kept:
        raise InputError(f"Gallery {root} holds no image that OpenCV can decode.")
    gallery = Gallery(np.concatenate(vectors), kept, embedder.model_id, str(root.resolve()))
    return gallery, skipped
