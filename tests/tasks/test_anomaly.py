"""Anomaly: PatchCore bank on a real texture (skimage brick), synthetic defects, the fit CLI, bank files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from scipy.spatial.distance import cdist
from scipy.stats import rankdata
from typer.testing import CliRunner

from edgeglocal.cli.app import app
from edgeglocal.errors import InputError
from edgeglocal.io.frame import Frame
from edgeglocal.tasks.anomaly import AnomalyTask, fit_normal_bank
from edgeglocal.tasks.patchcore import PatchBank, greedy_coreset, nearest_distance

TILE = 128


def roc_auc_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUROC as the Mann-Whitney U statistic: P(score of a positive > score of a negative)."""
    ranks = rankdata(scores)
    pos = labels.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _brick_tiles() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The 512x512 brick photo as a 4x4 checkerboard of tiles: white tiles fit, black ones test."""
    brick = np.repeat(data.brick()[..., None], 3, axis=2)
    tiles = {(i, j): brick[i * TILE : (i + 1) * TILE, j * TILE : (j + 1) * TILE] for i in range(4) for j in range(4)}
    fit = [t for (i, j), t in tiles.items() if (i + j) % 2 == 0]
    test = [np.ascontiguousarray(t) for (i, j), t in tiles.items() if (i + j) % 2 == 1]
    return fit, test


def _paste_gravel(tile: np.ndarray, rng: np.random.Generator, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    gravel = data.gravel()
    y, x = rng.integers(16, TILE - size - 16, 2)
    gy, gx = rng.integers(0, gravel.shape[0] - size, 2)
    out = tile.copy()
    out[y : y + size, x : x + size] = gravel[gy : gy + size, gx : gx + size, None]
    mask = np.zeros(tile.shape[:2], bool)
    mask[y : y + size, x : x + size] = True
    return out, mask


def _scratch(tile: np.ndarray) -> np.ndarray:
    out = tile.copy()
    cv2.line(out, (20, 30), (100, 90), (20, 20, 20), 3)
    return out


def _frame(image: np.ndarray, index: int = 0) -> Frame:
    return Frame(image, index, index / 25.0, "test")


@pytest.fixture(scope="module")
def brick_bank(tmp_path_factory):
    fit, _ = _brick_tiles()
    path = tmp_path_factory.mktemp("bank") / "brick.npz"
    fit_normal_bank(fit, coreset=0.25).save(path)
    return path


def test_defects_score_above_threshold_and_normals_below(brick_bank):
    task = AnomalyTask(bank=brick_bank)
    _, test = _brick_tiles()
    rng = np.random.default_rng(0)
    normal, scratched, aucs, peaks_inside = [], [], [], 0
    for k, tile in enumerate(test):
        normal.append(task(_frame(tile, k)))
        scratched.append(task(_frame(_scratch(tile), k)))
        pasted, mask = _paste_gravel(tile, rng)
        result = task(_frame(pasted, k))
        assert result.map.shape == mask.shape
        aucs.append(roc_auc_score(mask.ravel(), result.map.ravel()))
        y, x = np.unravel_index(np.argmax(result.map), mask.shape)
        peaks_inside += bool(mask[y, x])
    # measured: normal held-out tiles 3.6-4.2, scratches 5.8-6.2, threshold 4.64; pixel AUROC 0.99-1.0
    assert all(not r.is_anomaly for r in normal)
    assert all(r.is_anomaly for r in scratched)
    assert min(aucs) > 0.95 and np.mean(aucs) > 0.98
    assert peaks_inside >= len(test) - 1
    record = scratched[0].to_record()
    assert json.loads(json.dumps(record)) == record and record["anomaly"] is True


def test_threshold_override_and_render(brick_bank):
    _, test = _brick_tiles()
    task = AnomalyTask(bank=brick_bank, threshold=1e9)
    frame = _frame(_scratch(test[0]))
    result = task(frame)
    assert result.threshold == 1e9 and result.is_anomaly is False
    view = task.render(result, frame)
    assert view.shape == frame.image.shape and not np.array_equal(view, frame.image)


def test_fits_on_first_frames_of_a_stream_then_detects():
    fit, test = _brick_tiles()
    task = AnomalyTask(fit_frames=len(fit), coreset=0.25)
    states = [task(_frame(t, i)).to_record() for i, t in enumerate(fit)]
    assert [s["state"] for s in states] == ["fitting"] * len(fit)
    assert states[-1]["fitted"] == len(fit) and task.bank is not None
    assert task.render(task(_frame(fit[0])), _frame(fit[0])).shape == fit[0].shape  # detect now
    assert task(_frame(_scratch(test[1]))).is_anomaly
    assert not task(_frame(test[1])).is_anomaly


def test_fit_cli_writes_a_loadable_bank(tmp_path):
    folder = tmp_path / "normal"
    folder.mkdir()
    fit, _ = _brick_tiles()
    for i, tile in enumerate(fit[:4]):
        cv2.imwrite(str(folder / f"tile{i}.png"), tile)
    out = tmp_path / "bank.npz"
    result = CliRunner().invoke(app, ["fit", "anomaly", "--normal", str(folder), "--coreset", "0.2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output.replace("\n", "")
    bank = PatchBank.load(out)
    assert bank.memory.shape == (round(4 * 32 * 32 * 0.2), 128) and bank.info["images"] == 4
    assert bank.threshold > 0 and len(bank.info["normal_scores"]) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with np.load(out, allow_pickle=False) as npz:  # pickle-free on disk
        assert set(npz.files) == {"memory", "threshold", "info"}


def test_corrupt_and_wrong_bank_files_fail_in_one_sentence(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(InputError, match=r"^Anomaly bank .*bad\.npz is not a readable edgeglocal bank"):
        PatchBank.load(bad)
    image = tmp_path / "tile.png"
    cv2.imwrite(str(image), _brick_tiles()[1][0])
    result = CliRunner().invoke(app, ["run", "--task", "anomaly", "--source", str(image), "--bank", str(bad)])
    assert result.exit_code != 0 and "is not a readable edgeglocal bank" in " ".join(result.output.split())
    with pytest.raises(InputError, match="does not exist"):
        PatchBank.load(tmp_path / "missing.npz")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, memory=np.array([object()], dtype=object), threshold=1.0, info="{}")
    with pytest.raises(InputError, match="not a readable edgeglocal bank"):
        PatchBank.load(pickled)
    other = tmp_path / "other.npz"
    PatchBank(np.ones((4, 128), np.float32), 1.0, {"weights_sha256": "0" * 64, "input_size": [256, 256]}).save(other)
    with pytest.raises(InputError, match="was fitted with weights_sha256=0000"):
        AnomalyTask(bank=other)


@pytest.mark.parametrize("chunk", [4096, 7])
def test_nearest_distance_matches_brute_force(chunk):
    """The expanded, in-place distance search equals scipy's pairwise minimum, across query chunks."""
    rng = np.random.default_rng(3)
    memory = rng.standard_normal((300, 16)).astype(np.float32) * 3
    queries = np.concatenate([rng.standard_normal((50, 16)), memory[:5].astype(np.float64)]).astype(np.float32)
    got = nearest_distance(queries, memory, chunk=chunk)
    want = cdist(queries.astype(np.float64), memory.astype(np.float64)).min(axis=1)
    np.testing.assert_allclose(got[:50], want[:50], rtol=1e-4)
    # members of the bank: 0, up to the expansion's float32 cancellation (sqrt(eps * |q|^2) ~ 5e-3 here)
    assert got[-5:].max() < 1e-2


def test_greedy_coreset_covers_clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=20, size=(5, 128)).astype(np.float32)
    points = np.concatenate([c + rng.normal(size=(400, 128)).astype(np.float32) for c in centres])
    keep = greedy_coreset(points, 5)
    assert len(set(keep // 400)) == 5  # one point from every cluster: k-center, not random sampling


def test_zero_shot_bundle_needs_no_bank(tmp_path):
    """A CRANE-style bundle (outputs anomaly_map (b, 1, H, W) and score (b,)) runs without fitting."""
    torch = pytest.importorskip("torch")
    from edgeglocal.bundle import Manifest, Preprocess, TensorSpec

    class DarkSpots(torch.nn.Module):  # "anomalous" = dark, at a quarter of the input resolution
        def forward(self, x):
            amap = torch.nn.functional.avg_pool2d(1.0 - x.mean(1, keepdim=True), 4)
            return amap, amap.flatten(1).amax(1)

    path = tmp_path / "toy_crane.onnx"
    torch.onnx.export(DarkSpots().eval(), (torch.rand(1, 3, 64, 64),), str(path), dynamo=True,
                      input_names=["image"], output_names=["anomaly_map", "score"])
    inputs = [TensorSpec("image", [1, 3, 64, 64], preprocess=Preprocess(resize="stretch", size=[64, 64]))]
    outputs = [TensorSpec("anomaly_map", [1, 1, 16, 16]), TensorSpec("score", [1])]
    Manifest("anomaly", "toy_crane", inputs, outputs, extra={"threshold": 0.5}).save(tmp_path / "toy_crane.json")

    task = AnomalyTask(model=path)
    image = np.full((120, 200, 3), 230, np.uint8)
    image[40:80, 150:190] = 0  # a dark defect on the right
    result = task(_frame(image))
    assert result.map.shape == (120, 200) and result.is_anomaly and result.threshold == 0.5
    y, x = np.unravel_index(np.argmax(result.map), result.map.shape)
    assert 40 <= y < 80 and 150 <= x < 190
    assert not task(_frame(np.full((120, 200, 3), 230, np.uint8))).is_anomaly
    with pytest.raises(InputError, match="zero-shot and needs none"):
        AnomalyTask(model=path, bank=tmp_path / "bank.npz")


def test_run_cli_with_bank_writes_verdicts(brick_bank, tmp_path):
    _, test = _brick_tiles()
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_normal.png"), test[2])
    cv2.imwrite(str(folder / "b_scratch.png"), _scratch(test[2]))
    result = CliRunner().invoke(app, ["run", "--task", "anomaly", "--source", str(folder), "--bank", str(brick_bank),
                                      "--save", "--save-json", "--project", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "runs" / "anomaly" / "exp" / "results.jsonl").read_text().splitlines()
    records = {Path(r["path"]).stem: r for r in map(json.loads, lines)}
    assert records["a_normal"]["anomaly"] is False and records["b_scratch"]["anomaly"] is True
    assert records["b_scratch"]["score"] > records["b_scratch"]["threshold"] > records["a_normal"]["score"]
    saved = cv2.imread(str(tmp_path / "runs" / "anomaly" / "exp" / "b_scratch.png"))
    assert saved is not None and saved.shape == test[2].shape
