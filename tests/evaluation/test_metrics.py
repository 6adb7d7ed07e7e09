"""Metrics against hand-worked answers and against the reference libraries on their own data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from edgeglocal.evaluation import metrics
from edgeglocal.tasks.mot import read_mot

motmetrics = pytest.importorskip("motmetrics")
MOT_DATA = Path(motmetrics.__file__).parent / "data"


# ---------------------------------------------------------------- anomaly


def test_aupro_hand_worked_case():
    # region A: one pixel scored 0.9; region B: three pixels scored 0.8, 0.2, 0.2;
    # one normal pixel at 0.85, eleven at 0.1. PRO/FPR curve: (0,0) (0,.5) (1/12,.5) (1/12,2/3)
    # (1/12,1) (1,1); area up to FPR 0.3 = .5/12 + (0.3 - 1/12) -> / 0.3 = 31/36.
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = 1
    mask[3, 1:] = 1
    amap = np.full((4, 4), 0.1)
    amap[0, 0], amap[3, 1:], amap[1, 2] = 0.9, (0.8, 0.2, 0.2), 0.85
    assert metrics.aupro(mask[None], amap[None]) == pytest.approx(31 / 36)


def test_aupro_perfect_and_uninformative_maps():
    rng = np.random.default_rng(0)
    masks = np.zeros((3, 32, 32), np.uint8)
    masks[0, 4:10, 4:10] = 1
    masks[1, 20:30, 2:5] = 1
    assert metrics.aupro(masks, masks.astype(float) + 0.01 * rng.random(masks.shape)) == pytest.approx(1.0)
    # a constant map: one threshold at FPR 1 and PRO 1, the straight line -> 0.5 * 0.3^2 / 0.3
    assert metrics.aupro(masks, np.ones(masks.shape)) == pytest.approx(0.15)


def _brute_aupro(masks, maps, max_fpr=0.3):
    """Threshold by threshold, region by region: the definition, written the slow way."""
    regions = []
    for i, m in enumerate(masks):
        lab, n = ndimage.label(m, structure=np.ones((3, 3)))
        regions += [(i, lab == k) for k in range(1, n + 1)]
    normal = masks == 0
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        above = maps >= t
        fprs.append(above[normal].mean())
        pros.append(np.mean([above[i][r].mean() for i, r in regions]))
    fprs, pros = np.array(fprs), np.array(pros)
    end = np.interp(max_fpr, fprs, pros)
    keep = fprs <= max_fpr
    x, y = np.r_[fprs[keep], max_fpr], np.r_[pros[keep], end]
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / max_fpr)


def test_aupro_matches_brute_force_on_random_maps():
    rng = np.random.default_rng(1)
    masks = np.zeros((4, 24, 24), np.uint8)
    for m in masks[:3]:
        y, x = rng.integers(0, 16, 2)
        m[y:y + rng.integers(2, 8), x:x + rng.integers(2, 8)] = 1
    maps = np.round(rng.random(masks.shape) + masks * rng.uniform(0, 1, masks.shape), 2)  # ties included
    assert metrics.aupro(masks, maps) == pytest.approx(_brute_aupro(masks, maps), abs=1e-9)


def test_f1_max_hand_worked():
    # thresholds 0.8 / 0.4 / 0.35 / 0.1 give F1 2/3, 1/2, 4/5, 2/3
    assert metrics.f1_max([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.8)


def test_pixel_auroc_is_the_mann_whitney_statistic():
    rng = np.random.default_rng(2)
    masks = (rng.random((2, 8, 8)) < 0.2).astype(np.uint8)
    maps = rng.random((2, 8, 8)) + masks * 0.3
    pos, neg = maps[masks == 1], maps[masks == 0]
    expected = np.mean(pos[:, None] > neg[None, :])  # continuous scores: no ties
    assert metrics.pixel_auroc(masks, maps) == pytest.approx(expected)


# ---------------------------------------------------------------- dehazing


def test_psnr_and_ssim_agree_with_definitions():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    assert metrics.psnr(a, b) == pytest.approx(10 * np.log10(255**2 / mse))
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    assert metrics.ssim(a, b) == pytest.approx(structural_similarity(
        a, b, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False))
    assert metrics.ssim(a, b) < 0.99


# ---------------------------------------------------------------- retrieval


def test_average_precision_hand_worked():
    ranked = list("axbyc")
    assert metrics.average_precision(ranked, set("abc")) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert metrics.average_precision(ranked, set("abc"), junk={"x"}) == pytest.approx((1 + 1 + 3 / 4) / 3)
    assert metrics.average_precision(list("xa"), {"a", "z"}) == pytest.approx(0.5 / 2)  # z never found


def test_revisited_protocol_settings():
    # easy a, hard c, junk x; b and y are negatives. Trapezoidal AP per setting:
    # easy: [a b y] -> 1; medium: [a b y c] -> (1 + (1/3 + 2/4) / 2) / 2; hard: [b y c] -> (0 + 1/3) / 2
    out = metrics.revisited_map({"q": list("axbyc")}, {"q": {"easy": ["a"], "hard": ["c"], "junk": ["x"]}})
    assert out["easy"] == pytest.approx(1.0)
    assert out["medium"] == pytest.approx((1 + (1 / 3 + 1 / 2) / 2) / 2)
    assert out["hard"] == pytest.approx(1 / 6)


def test_ranked_recall_at_k():
    rankings = {"q1": ["a", "b", "c"], "q2": ["c", "b", "a"]}
    positives = {"q1": {"b"}, "q2": {"a"}}
    assert metrics.ranked_recall_at_k(rankings, positives, 1) == 0.0
    assert metrics.ranked_recall_at_k(rankings, positives, 2) == 0.5
    assert metrics.ranked_recall_at_k(rankings, positives, 3) == 1.0


# ---------------------------------------------------------------- tracking


def _tud(name: str):
    return read_mot(MOT_DATA / name / "gt.txt"), read_mot(MOT_DATA / name / "test.txt")


def test_clear_mot_reproduces_motmetrics_expected_values():
    # motmetrics' tests/test_metrics.py::test_motchallenge_files expects these for TUD-Campus / -Stadtmitte
    out = metrics.clear_mot({n: _tud(n) for n in ("TUD-Campus", "TUD-Stadtmitte")})
    campus, stadt = out["TUD-Campus"], out["TUD-Stadtmitte"]
    assert campus["idf1"] == pytest.approx(0.557659, abs=1e-6)
    assert campus["mota"] == pytest.approx(0.526462, abs=1e-6)
    assert campus["motp"] == pytest.approx(0.277201, abs=1e-6)
    assert (campus["num_false_positives"], campus["num_misses"], campus["num_switches"]) == (13, 150, 7)
    assert stadt["idf1"] == pytest.approx(0.644619, abs=1e-6)
    assert "OVERALL" in out


def test_clear_mot_equals_motmetrics_own_pipeline(monkeypatch):
    """motmetrics' compare_to_groundtruth needs np.asfarray (gone in NumPy 2): restore it for this test only."""
    import motmetrics as mm

    monkeypatch.setattr(np, "asfarray", lambda a: np.asarray(a, dtype=float), raising=False)
    gt_df = mm.io.loadtxt(str(MOT_DATA / "TUD-Stadtmitte" / "gt.txt"))
    ts_df = mm.io.loadtxt(str(MOT_DATA / "TUD-Stadtmitte" / "test.txt"))
    acc = mm.utils.compare_to_groundtruth(gt_df, ts_df, "iou", distth=0.5)
    ref = mm.metrics.create().compute(acc, metrics=metrics.MOT_METRICS, name="x")
    ours = metrics.clear_mot({"s": _tud("TUD-Stadtmitte")})["s"]
    for name in metrics.MOT_METRICS:
        assert ours[name] == pytest.approx(float(ref[name].iloc[0]), abs=1e-9), name


def test_hota_is_one_on_ground_truth_and_drops_under_perturbation():
    gt, _ = _tud("TUD-Campus")
    perfect = metrics.hota({"s": (gt, gt)})["s"]
    assert perfect["hota"] == pytest.approx(1.0) and perfect["assa"] == pytest.approx(1.0)

    swapped = gt.copy()  # identities exchanged halfway through: detection intact, association hurt
    late = swapped[:, 0] > 35
    swapped[late, 1] = swapped[late, 1] + 1000
    res = metrics.hota({"s": (gt, swapped)})["s"]
    assert res["deta"] == pytest.approx(1.0)
    assert 0.3 < res["assa"] < 0.9 and res["hota"] < 0.95

    jittered = gt.copy()
    jittered[:, 2:4] += np.random.default_rng(0).normal(0, 8, (len(gt), 2))
    res = metrics.hota({"s": (gt, jittered)})["s"]
    assert res["loca"] < 0.95 and res["deta"] < 0.95


def test_hota_of_a_real_tracker_output_is_between():
    res = metrics.hota({"s": _tud("TUD-Campus")})["s"]
    assert 0.2 < res["hota"] < 0.8
    assert res["hota"] == pytest.approx(np.sqrt(res["deta"] * res["assa"]), rel=0.1)
