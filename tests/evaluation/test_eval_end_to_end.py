"""make-set builds sets on disk that `edgeglocal eval` consumes end to end (small N)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeglocal.cli.app import app
from edgeglocal.evaluation import datasets, evaluate
from edgeglocal.tasks.mot import read_mot, write_mot


def cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sets")
    cli("eval", "make-set", "haze", "--out", str(root / "haze"), "--n", "3")
    cli("eval", "make-set", "anomaly", "--out", str(root / "anomaly"), "--n", "4")
    cli("eval", "make-set", "mot", "--out", str(root / "mot"), "--n", "40")
    cli("eval", "make-set", "retrieval", "--out", str(root / "retrieval"), "--n", "4")
    return root


def test_sets_have_the_standard_layouts(sets: Path):
    assert len(datasets.haze_pairs(sets / "haze")) == 3
    cats = datasets.anomaly_categories(sets / "anomaly")
    assert [c.name for c in cats] == list(datasets.SKIMAGE_TEXTURES)
    for c in cats:
        assert len(c.train) == 4 and c.labels.count(0) == 2 and c.labels.count(1) == 4
        masks = [datasets.read_mask(m, (128, 128)) for m in c.masks if m is not None]
        assert all(m.any() for m in masks)  # every defect has pixels
    seqs = datasets.mot_sequences(sets / "mot")
    assert [s.name for s in seqs] == list(datasets.MOT_SEQUENCES)
    assert read_mot(seqs[0].gt)[:, 0].max() == 40 and seqs[0].frame_rate == 25
    rset = datasets.retrieval_set(sets / "retrieval")
    assert len(rset.gallery) == 16 and rset.graded


def test_make_set_is_seeded_and_refuses_a_full_folder(sets: Path, tmp_path: Path):
    cli("eval", "make-set", "haze", "--out", str(tmp_path / "again"), "--n", "3")
    a = cv2.imread(str(sets / "haze" / "hazy" / "0002.png"))
    b = cv2.imread(str(tmp_path / "again" / "hazy" / "0002.png"))
    assert np.array_equal(a, b)
    result = CliRunner().invoke(app, ["eval", "make-set", "haze", "--out", str(sets / "haze")])
    assert result.exit_code == 1 and "not empty" in result.output


def test_dehaze_default_beats_the_hazy_input(sets: Path, tmp_path: Path):
    out = tmp_path / "r.json"
    cli("eval", "--task", "dehaze", "--data", str(sets / "haze"), "--compare", "--json", str(out))
    reports = {r["method"]: r["metrics"] for r in json.loads(out.read_text())["reports"]}
    assert reports["model"]["psnr"] > reports["identity"]["psnr"] + 2
    assert reports["model"]["ssim"] > reports["identity"]["ssim"]


def test_dehaze_results_folder_of_clean_images_is_perfect(sets: Path, tmp_path: Path):
    shutil.copytree(sets / "haze" / "clean", tmp_path / "out")
    report = evaluate("dehaze", sets / "haze", results=tmp_path / "out")
    assert report["metrics"]["ssim"] == pytest.approx(1.0) and np.isinf(report["metrics"]["psnr"])


def test_anomaly_pixel_knn_finds_pasted_defects(sets: Path):
    report = evaluate("anomaly", sets / "anomaly", method="pixel-knn")
    m = report["metrics"]
    assert len(report["per_item"]) == 3
    assert m["pixel_auroc"] > 0.7 and 0 < m["aupro"] <= 1 and 0 < m["image_f1_max"] <= 1


def test_anomaly_results_with_the_masks_as_maps_score_one(sets: Path, tmp_path: Path):
    cat = datasets.anomaly_categories(sets / "anomaly" / "brick")[0]
    for img, mask in zip(cat.test, cat.masks):
        target = tmp_path / img.parent.name / f"{img.stem}.npy"
        target.parent.mkdir(parents=True, exist_ok=True)
        np.save(target, datasets.read_mask(mask, (128, 128)).astype(np.float32))
    m = evaluate("anomaly", sets / "anomaly" / "brick", results=tmp_path)["metrics"]
    assert m["image_auroc"] == 1.0 and m["pixel_auroc"] == 1.0 and m["aupro"] == pytest.approx(1.0)


def test_tracking_replays_detections_bytetrack_and_sort(sets: Path, tmp_path: Path):
    out = tmp_path / "t.json"
    cli("eval", "--task", "track", "--data", str(sets / "mot"), "--use-dets", "--compare", "--json", str(out))
    reports = {r["method"]: r for r in json.loads(out.read_text())["reports"]}
    byte, sort = reports["bytetrack (det.txt)"]["metrics"], reports["sort (det.txt)"]["metrics"]
    assert 0.3 < byte["hota"] <= 1 and 0.3 < byte["mota"] <= 1
    # the low-score detections ByteTrack's second stage keeps are true boxes in this set
    assert byte["fn"] < sort["fn"]


def test_tracking_results_mode_scores_mot_files(sets: Path, tmp_path: Path):
    for seq in datasets.mot_sequences(sets / "mot"):
        write_mot(tmp_path / f"{seq.name}.txt", read_mot(seq.gt))
    m = evaluate("track", sets / "mot", results=tmp_path)["metrics"]
    assert m["mota"] == pytest.approx(1.0) and m["idf1"] == pytest.approx(1.0) and m["hota"] == pytest.approx(1.0)


def test_tracking_without_frames_asks_for_use_dets(sets: Path):
    result = CliRunner().invoke(app, ["eval", "--task", "track", "--data", str(sets / "mot")])
    assert result.exit_code == 1 and "--use-dets" in result.output


def test_retrieval_histogram_baseline_and_ranked_lists(sets: Path, tmp_path: Path):
    m = evaluate("retrieve", sets / "retrieval", method="histogram")["metrics"]
    assert 0 < m["map_hard"] <= m["map_easy"] <= 1 and m["recall@10"] >= m["recall@1"]
    rset = datasets.retrieval_set(sets / "retrieval")
    perfect = {q: g["easy"] + g["hard"] + [p.name for p in rset.gallery if p.name not in g["easy"] + g["hard"]]
               for q, g in rset.gnd.items()}
    (tmp_path / "rankings.json").write_text(json.dumps(perfect))
    m = evaluate("retrieve", sets / "retrieval", results=tmp_path)["metrics"]
    assert m["map"] == 1.0 and m["map_medium"] == 1.0 and m["recall@1"] == 1.0
    reversed_lists = {q: v[::-1] for q, v in perfect.items()}
    (tmp_path / "rankings.json").write_text(json.dumps(reversed_lists))
    assert evaluate("retrieve", sets / "retrieval", results=tmp_path)["metrics"]["map"] < 0.5


def test_eval_errors_are_one_sentence(sets: Path, tmp_path: Path):
    result = CliRunner().invoke(app, ["eval", "--task", "dehaze", "--data", str(tmp_path)])
    assert result.exit_code == 1 and "hazy/ and clean/" in result.output
    result = CliRunner().invoke(app, ["eval", "--task", "segment", "--data", str(sets / "haze")])
    assert result.exit_code == 1 and "expected one of" in result.output


def test_tracking_runs_the_default_hog_detector_on_a_sequence_video(tmp_path: Path):
    """A MOTChallenge folder with a video instead of img1/: the HOG detector + ByteTrack run on it."""
    video = Path(__file__).resolve().parents[2] / "samples" / "media" / "vtest_80.mp4"
    if not video.is_file():
        pytest.skip("samples/media/vtest_80.mp4 is not in this checkout")
    seq = tmp_path / "vtest"
    cap, frames = cv2.VideoCapture(str(video)), 0
    writer = None
    while frames < 4:
        ok, image = cap.read()
        if not ok:
            break
        if writer is None:
            writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                                     image.shape[1::-1])
        writer.write(image)
        frames += 1
    writer.release()
    seq.mkdir()
    shutil.move(tmp_path / "clip.avi", seq / "clip.avi")
    # a stand-in ground truth: one fixed box per frame (vtest has no published annotations)
    write_mot(seq / "gt" / "gt.txt", np.array([[f, 1, 300, 150, 60, 150, 1] for f in range(1, frames + 1)], float))
    report = evaluate("track", seq)
    assert report["sequences"] == 1 and report["metrics"]["fn"] + report["metrics"]["fp"] > 0
    assert 0 <= report["metrics"]["hota"] <= 1


def test_anomaly_bundle_with_its_own_maps_is_scored_directly(sets: Path, tmp_path: Path):
    """A bundle whose output is a one-channel map (CRANE-style) is scored as is, without PatchCore."""
    import torch

    from edgeglocal.bundle import Preprocess, TensorSpec
    from edgeglocal.export import to_onnx

    class ColourOutlier(torch.nn.Module):
        """Distance of each pixel's colour from the image's mean colour: pasted patches stand out."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x - x.mean(dim=(2, 3), keepdim=True)).abs().mean(dim=1, keepdim=True)

    bundle = tmp_path / "outlier.onnx"
    spec = TensorSpec(name="images", shape=[1, 3, 128, 128], layout="NCHW", meaning="image",
                      preprocess=Preprocess(size=[128, 128]))
    to_onnx(ColourOutlier(), torch.rand(1, 3, 128, 128), bundle, task="anomaly", arch="colour_outlier",
            input_specs=[spec], output_specs=[TensorSpec(name="anomaly_map", shape=[], meaning="map")])
    report = evaluate("anomaly", sets / "anomaly" / "gravel", model=bundle)
    assert report["method"] == "model maps"
    assert 0.5 < report["metrics"]["pixel_auroc"] <= 1.0
