"""Retrieval on a real photo gallery (scikit-image + OpenCV sample photos) with the default embedder."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeglocal.errors import InputError
from edgeglocal.io.frame import Frame
from edgeglocal.tasks.gallery import Embedder, Gallery, build_gallery
from edgeglocal.tasks.rerank import mdescaug, superglobal_rerank
from edgeglocal.tasks.retrieve import RetrieveTask

skdata = pytest.importorskip("skimage.data")

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
SKIMAGE_PHOTOS = ["astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "coins", "moon", "page", "text", "colorwheel", "grass", "gravel", "brick", "clock"]
OPENCV_PHOTOS = ["baboon.jpg", "butterfly.jpg", "fruits.jpg", "home.jpg", "messi5.jpg", "orange.jpg", "apple.jpg",
                 "starry_night.jpg", "building.jpg", "board.jpg", "aero1.jpg", "aero3.jpg", "HappyFish.jpg",
                 "graf1.png", "leuvenA.jpg", "left01.jpg", "left02.jpg", "rubberwhale1.png", "sudoku.png"]


def write_gallery(root: Path) -> Path:
    """Real photos on disk, in two sub-folders (the index stores relative paths)."""
    (root / "skimage").mkdir(parents=True)
    (root / "opencv").mkdir()
    for name in SKIMAGE_PHOTOS:
        img = getattr(skdata, name)()
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(root / "skimage" / f"{name}.png"), img)
    for name in OPENCV_PHOTOS:
        if (OPENCV_DATA / name).is_file():
            cv2.imwrite(str(root / "opencv" / f"{Path(name).stem}.jpg"), cv2.imread(str(OPENCV_DATA / name)))
    (root / "notes.txt").write_text("not an image")
    return root


def transform(img: np.ndarray, kind: str) -> np.ndarray:
    h, w = img.shape[:2]
    if kind == "crop":
        return img[h // 10 : h - h // 10, w // 10 : w - w // 10]
    if kind == "flip":
        return np.ascontiguousarray(img[:, ::-1])
    if kind == "brightness":
        return cv2.convertScaleAbs(img, alpha=1.0, beta=40)
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 10, 1.0)  # "rotate"
    return cv2.warpAffine(img, rot, (w, h), borderMode=cv2.BORDER_REFLECT)


TRANSFORMS = ("crop", "flip", "brightness", "rotate")


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()  # exports MobileNetV2 + GeM into the cache on first use


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, embedder) -> tuple[Gallery, Path]:
    root = write_gallery(tmp_path_factory.mktemp("gallery"))
    gal, skipped = build_gallery(root, embedder, batch=8)
    assert skipped == []
    return gal, root


@pytest.fixture(scope="module")
def queries(gallery, embedder) -> tuple[np.ndarray, np.ndarray]:
    """Known transforms of every third gallery photo: (query vectors, index of the true photo)."""
    gal, _ = gallery
    images, truth = [], []
    for i in range(0, len(gal), 3):
        photo = cv2.imread(str(gal.image_path(i)))
        for kind in TRANSFORMS:
            images.append(transform(photo, kind))
            truth.append(i)
    return embedder(images), np.asarray(truth)


def test_gallery_holds_relative_paths_and_unit_vectors(gallery):
    gal, root = gallery
    assert len(gal) >= len(SKIMAGE_PHOTOS)
    assert all(not Path(p).is_absolute() and (root / p).is_file() for p in gal.paths)
    np.testing.assert_allclose(np.linalg.norm(gal.embeddings, axis=1), 1.0, atol=1e-5)


def test_recall_at_1_on_transformed_photos(gallery, queries):
    gal, _ = gallery
    q, truth = queries
    _, idx = gal.search(q, 5, backend="numpy")
    recall1 = float((idx[:, 0] == truth).mean())
    # measured 1.00 on 35 photos x 4 transforms; similar pairs (aero1/aero3, left01/left02) are in the gallery
    assert recall1 >= 0.9
    assert (idx == truth[:, None]).any(axis=1).mean() >= 0.95


def test_faiss_and_numpy_rank_identically(gallery, queries):
    pytest.importorskip("faiss")
    gal, _ = gallery
    s_np, i_np = gal.search(queries[0], 10, backend="numpy")
    s_fa, i_fa = gal.search(queries[0], 10, backend="faiss")
    np.testing.assert_array_equal(i_np, i_fa)
    np.testing.assert_allclose(s_np, s_fa, atol=1e-5)


def test_rerank_keeps_recall_at_1(gallery, queries):
    gal, _ = gallery
    q, truth = queries
    _, idx = gal.search(q, len(gal), backend="numpy")
    before = (idx[:, 0] == truth).mean()
    reranked, scores = superglobal_rerank(q, gal.embeddings, idx, m=20, k=3)
    assert (reranked[:, 0] == truth).mean() >= before
    assert np.all(np.diff(scores[:, :20], axis=1) <= 1e-6)  # re-ranked part is sorted
    np.testing.assert_array_equal(np.sort(reranked, axis=1), np.sort(idx, axis=1))  # a permutation


def test_mdescaug_matches_hand_computation():
    x = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    refined = mdescaug(x[None], k=1, beta=0.5)[0]
    # x0's nearest other candidate is x1 (similarity 0.8): (x0 + 0.5 * 0.8 * x1) / (1 + 0.4)
    np.testing.assert_allclose(refined[0], (x[0] + 0.4 * x[1]) / 1.4)
    # x2's nearest other is x1 (0.6)
    np.testing.assert_allclose(refined[2], (x[2] + 0.3 * x[1]) / 1.3)


def test_index_build_cli_writes_a_loadable_index(gallery, tmp_path):
    from edgeglocal.cli.app import app

    _, root = gallery
    out = tmp_path / "sub" / "gallery.idx"
    result = CliRunner().invoke(app, ["index", "build", str(root), "--output", str(out), "--batch", "16"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output.replace("\n", "")
    index = Gallery.load(out)
    assert index.paths == gallery[0].paths
    assert index.model_id == gallery[0].model_id
    np.testing.assert_allclose(index.embeddings, gallery[0].embeddings, atol=1e-4)
    with np.load(out, allow_pickle=False) as data:  # readable without pickle
        assert data["embeddings"].shape == index.embeddings.shape
    assert sorted(p.name for p in out.parent.iterdir()) == ["gallery.idx"]


def test_corrupt_or_foreign_index_fails_with_one_sentence(gallery, tmp_path):
    from edgeglocal.cli.app import app

    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(InputError, match="not a readable edgeglocal index"):
        Gallery.load(bad)
    result = CliRunner().invoke(app, ["index", "build", str(tmp_path / "missing"), "-o", str(tmp_path / "x.idx")])
    assert result.exit_code == 1 and "is not a folder of images" in " ".join(result.output.split())
    assert "Load embedder" not in result.output  # failed before loading anything
    gal, root = gallery
    foreign = Gallery(gal.embeddings, gal.paths, "resnet50_gem:0123456789abcdef", str(root))
    foreign.save(tmp_path / "foreign.idx")
    with pytest.raises(InputError, match="was built with model 'resnet50_gem"):
        RetrieveTask(index=tmp_path / "foreign.idx")


def write_damaged(path: Path, kind: str) -> Path:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "bare-array":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    elif kind == "other-archive":
        with open(path, "wb") as f:
            np.savez(f, weights=np.zeros(2))
    elif kind == "object-array":  # would need pickle to load
        with open(path, "wb") as f:
            np.savez(f, format=np.array(1), embeddings=np.array([{"a": 1}], dtype=object),
                     paths=np.array(["x.png"]), model_id=np.array("m"), root=np.array("/"))
    else:  # "mismatched": 2 vectors, 3 paths
        Gallery(np.eye(2, 4, dtype=np.float32), ["a.png", "b.png", "c.png"], "m", "/").save(path)
    return path


@pytest.mark.parametrize("kind", ["empty", "bare-array", "other-archive", "object-array", "mismatched"])
def test_damaged_index_files_fail_with_one_sentence(tmp_path, kind):
    path = write_damaged(tmp_path / f"{kind}.idx", kind)
    with pytest.raises(InputError) as info:
        Gallery.load(path)
    message = str(info.value)
    assert str(path) in message and "index" in message and message.count(". ") == 0


def test_retrieve_task_finds_and_renders_matches(gallery, tmp_path):
    gal, root = gallery
    path = gal.save(tmp_path / "g.idx")
    task = RetrieveTask(index=path, topk=3, rerank=True)
    target = 4
    photo = transform(cv2.imread(str(gal.image_path(target))), "crop")
    frame = Frame(photo, index=7, timestamp=0.7, source="test")
    result = task(frame)
    assert result.matches[0].path == gal.paths[target]
    assert len(result.matches) == 3 and result.matches[0].score >= result.matches[1].score
    record = json.loads(json.dumps(result.to_record()))
    assert record["frame"] == 7 and record["matches"][0]["path"] == gal.paths[target]
    image = task.render(result, frame)
    cell_h = photo.shape[0] // 3
    assert image.shape == (photo.shape[0], photo.shape[1] + cell_h * 4 // 3, 3)
    np.testing.assert_array_equal(image[:, : photo.shape[1]], photo)
    assert image[:, photo.shape[1] :].std() > 10  # thumbnails were drawn, not a blank strip
    strict = RetrieveTask(index=path, topk=3, rerank=True, threshold=result.matches[0].score - 1e-4)
    assert [m.path for m in strict(frame).matches] == [gal.paths[target]]


def test_run_cli_retrieves_from_an_image_folder(gallery, tmp_path, monkeypatch):
    from edgeglocal.cli.app import app

    gal, _ = gallery
    index = gal.save(tmp_path / "g.idx")
    queries = tmp_path / "queries"
    queries.mkdir()
    targets = [1, 5]
    for n, i in enumerate(targets):
        cv2.imwrite(str(queries / f"q{n}.jpg"), transform(cv2.imread(str(gal.image_path(i))), "flip"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "-t", "retrieve", "-s", str(queries), "--index", str(index),
                                      "--topk", "2", "--save-json", "--save"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "runs/retrieve/exp/results.jsonl").read_text().splitlines()]
    assert [r["matches"][0]["path"] for r in records] == [gal.paths[i] for i in targets]
    assert all(len(r["matches"]) == 2 for r in records)
    saved = cv2.imread(str(tmp_path / "runs/retrieve/exp/q0.jpg"))
    assert saved is not None and saved.shape[1] > cv2.imread(str(queries / "q0.jpg")).shape[1]  # strip added


def colour_embedder_bundle(path: Path) -> Path:
    """A real (tiny) embedding bundle: mean colour of the image, fixed batch of 1, task "retrieve"."""
    import onnx
    from onnx import TensorProto, helper

    from edgeglocal.bundle import Manifest, Preprocess, TensorSpec

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["embedding"])],
        "mean_colour",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    Manifest(
        task="retrieve", arch="mean_colour",
        inputs=[TensorSpec("image", [1, 3, 32, 32], preprocess=Preprocess(color="RGB", resize="stretch", size=[32, 32]))],
        outputs=[TensorSpec("embedding", [1, 3])],
    ).save(path.with_suffix(".json"))
    return path


def test_index_and_queries_with_an_embedding_bundle(gallery, tmp_path):
    from edgeglocal.cli.app import app

    _, root = gallery
    bundle = colour_embedder_bundle(tmp_path / "colour.onnx")
    out = tmp_path / "colour.idx"
    result = CliRunner().invoke(app, ["index", "build", str(root), "-o", str(out), "--model", str(bundle), "-b", "4"])
    assert result.exit_code == 0, result.output
    index = Gallery.load(out)
    assert index.model_id.startswith("mean_colour:") and index.embeddings.shape == (len(index), 3)
    # the embedding really is the normalised mean RGB colour of the 32x32 image
    img = cv2.resize(cv2.imread(str(index.image_path(0))), (32, 32), interpolation=cv2.INTER_AREA)
    rgb = img[..., ::-1].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(index.embeddings[0], rgb / np.linalg.norm(rgb), atol=1e-3)
    with pytest.raises(InputError, match="was built with model 'mean_colour"):
        RetrieveTask(index=out)  # default embedder vs. a bundle-built index
    task = RetrieveTask(model=bundle, index=out, topk=1)
    photo = cv2.imread(str(index.image_path(3)))
    assert task(Frame(photo, 0, 0.0, "test")).matches[0].path == index.paths[3]
