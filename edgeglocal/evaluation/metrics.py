"""The standard metrics of each field, computed with the established libraries."""

from __future__ import annotations

import numpy as np

from edgeglocal.errors import BackendUnavailable


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """PSNR in dB of uint8 images (scikit-image)."""
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(reference, image, data_range=255))


def ssim(reference: np.ndarray, image: np.ndarray) -> float:
    """Mean SSIM of uint8 colour images (scikit-image, Gaussian-weighted as in Wang et al.)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(reference, image, data_range=255, channel_axis=-1,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False))


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn)."""
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError as exc:
        raise BackendUnavailable("AUROC needs scikit-learn: pip install 'edgeglocal[eval]'.") from exc
    return float(roc_auc_score(np.asarray(labels).ravel(), np.asarray(scores).ravel()))


def recall_at_k(similarity: np.ndarray, truth: np.ndarray, k: int = 1) -> float:
    """Fraction of queries (rows) whose true gallery index is among the k most similar columns."""
    top = np.argsort(-similarity, axis=1)[:, :k]
    return float(np.mean([t in row for t, row in zip(truth, top)]))


# ---------------------------------------------------------------- anomaly detection


def pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float:
    """Pixel-level AUROC over every pixel of every test image (MVTec AD protocol)."""
    return auroc((np.asarray(masks) > 0).astype(np.uint8), maps)


def f1_max(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best F1 over all decision thresholds (scikit-learn's precision-recall curve)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(np.asarray(labels).ravel() > 0, np.asarray(scores).ravel())
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(f1.max())


def aupro(masks: np.ndarray, maps: np.ndarray, max_fpr: float = 0.3) -> float:
    """Area under the per-region-overlap curve up to ``max_fpr``, divided by ``max_fpr`` (MVTec AD).

    Each connected defect region (8-connectivity, scipy.ndimage.label) weighs the same however
    large it is: PRO at a threshold is the mean over regions of the fraction of the region above
    it, and FPR is the fraction of defect-free pixels above it. Every distinct score is a
    threshold, so the curve is exact; the last segment is interpolated at ``max_fpr``.
    """
    from scipy import ndimage

    masks = np.asarray(masks) > 0
    maps = np.asarray(maps, dtype=np.float64)
    if masks.shape != maps.shape:
        raise ValueError(f"masks {masks.shape} and maps {maps.shape} must have the same shape")
    region_weight = np.zeros(maps.shape, np.float64)
    n_regions = 0
    for i, mask in enumerate(masks.reshape(-1, *masks.shape[-2:])):
        labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
        sizes = np.bincount(labels.ravel())
        w = np.where(labels > 0, 1.0 / sizes[labels], 0.0)
        region_weight.reshape(-1, *masks.shape[-2:])[i] = w
        n_regions += n
    n_ok = int((~masks).sum())
    if n_regions == 0 or n_ok == 0:
        raise ValueError("AUPRO needs at least one defect region and one defect-free pixel")
    order = np.argsort(-maps.ravel(), kind="stable")
    scores = maps.ravel()[order]
    fpr = np.cumsum((~masks).ravel()[order]) / n_ok
    pro = np.cumsum(region_weight.ravel()[order]) / n_regions
    last = np.r_[scores[1:] != scores[:-1], True]  # a threshold takes every pixel with that score
    fpr, pro = np.r_[0.0, fpr[last]], np.r_[0.0, pro[last]]
    keep = fpr <= max_fpr
    fpr_c, pro_c = fpr[keep], pro[keep]
    if fpr_c[-1] < max_fpr:
        j = int(keep.sum())
        pro_end = pro[j - 1] + (pro[j] - pro[j - 1]) * (max_fpr - fpr[j - 1]) / (fpr[j] - fpr[j - 1])
        fpr_c, pro_c = np.r_[fpr_c, max_fpr], np.r_[pro_c, pro_end]
    return float(np.trapezoid(pro_c, fpr_c) / max_fpr)


# ---------------------------------------------------------------- retrieval


def average_precision(ranked: list[str] | np.ndarray, positives: set, junk: set = frozenset(),
                      trapezoid: bool = False) -> float:
    """AP of one ranked list; junk items are dropped before ranking (they count neither way).

    Default: non-interpolated AP, the mean precision at the rank of each positive. ``trapezoid``:
    the Oxford / revisited-Oxford benchmark's variant, which averages the precision just before
    and at each positive (so a positive at rank r after j hits adds (j/r + (j+1)/(r+1)) / 2).
    Positives never retrieved contribute zero.
    """
    if not positives:
        return float("nan")
    hits, total, rank = 0, 0.0, 0
    for item in ranked:
        if item in junk:
            continue
        if item in positives:
            before = (hits / rank if rank else 1.0) if trapezoid else (hits + 1) / (rank + 1)
            total += (before + (hits + 1) / (rank + 1)) / 2
            hits += 1
        rank += 1
    return total / len(positives)


def revisited_map(rankings: dict[str, list[str]], gnd: dict[str, dict[str, list[str]]]) -> dict[str, float]:
    """mAP of the revisited Oxford/Paris protocol (Radenovic et al., CVPR 2018) in Easy/Medium/Hard.

    ``gnd[query]`` holds ``easy``, ``hard`` and ``junk`` gallery items. Easy: easy positives, hard
    ignored; Medium: easy and hard positives; Hard: hard positives, easy ignored. Junk is always
    ignored; queries without positives in a setting are left out of that setting's mean. AP is the
    benchmark's trapezoidal variant.
    """
    settings = {
        "easy": (("easy",), ("junk", "hard")),
        "medium": (("easy", "hard"), ("junk",)),
        "hard": (("hard",), ("junk", "easy")),
    }
    out = {}
    for name, (pos_keys, junk_keys) in settings.items():
        aps = []
        for q, ranked in rankings.items():
            g = gnd[q]
            pos = {x for k in pos_keys for x in g.get(k, [])}
            if pos:
                aps.append(average_precision(ranked, pos, {x for k in junk_keys for x in g.get(k, [])}, trapezoid=True))
        out[name] = float(np.mean(aps)) if aps else float("nan")
    return out


def ranked_recall_at_k(rankings: dict[str, list[str]], positives: dict[str, set], k: int) -> float:
    """Fraction of queries with at least one positive among their first ``k`` results."""
    return float(np.mean([bool(set(rankings[q][:k]) & positives[q]) for q in rankings]))


# ---------------------------------------------------------------- multi-object tracking


def iou_distance(gt_xywh: np.ndarray, hyp_xywh: np.ndarray, max_distance: float = 0.5) -> np.ndarray:
    """1 - IoU of (x, y, w, h) boxes, NaN (do-not-pair) beyond ``max_distance``; motmetrics' convention.

    motmetrics 1.4.0's own ``iou_matrix`` calls ``np.asfarray``, which NumPy 2 removed.
    """
    a = np.asarray(gt_xywh, np.float64).reshape(-1, 4)
    b = np.asarray(hyp_xywh, np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.empty((len(a), len(b)))
    return np.where((d := 1.0 - _iou_xywh(a, b)) > max_distance, np.nan, d)


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    union = np.prod(a[:, 2:], axis=1)[:, None] + np.prod(b[:, 2:], axis=1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _by_frame(rows: np.ndarray) -> dict[int, np.ndarray]:
    rows = np.asarray(rows, np.float64).reshape(-1, 7)
    return {int(f): rows[rows[:, 0] == f] for f in np.unique(rows[:, 0])}


def clear_mot(sequences: dict[str, tuple[np.ndarray, np.ndarray]], iou_threshold: float = 0.5) -> dict[str, dict[str, float]]:
    """CLEAR-MOT and identity metrics (MOTA, MOTP, IDF1, ...) per sequence and ``OVERALL``, by motmetrics.

    ``sequences[name] = (gt, hyp)``, MOTChallenge rows (frame, id, x, y, w, h, conf); matching is at
    IoU >= ``iou_threshold``, as motmetrics' ``compare_to_groundtruth(..., "iou", distth=0.5)``.
    MOTP is motmetrics' mean (1 - IoU) of matches (lower is better).
    """
    try:
        import motmetrics as mm
    except ImportError as exc:
        raise BackendUnavailable("Tracking metrics need motmetrics: pip install motmetrics.") from exc
    accs = []
    for gt, hyp in sequences.values():
        acc = mm.MOTAccumulator(auto_id=False)
        g, h = _by_frame(gt), _by_frame(hyp)
        empty = np.empty((0, 7))
        for f in sorted(set(g) | set(h)):
            gf, hf = g.get(f, empty), h.get(f, empty)
            dist = iou_distance(gf[:, 2:6], hf[:, 2:6], 1.0 - iou_threshold)
            acc.update(gf[:, 1].astype(int).tolist(), hf[:, 1].astype(int).tolist(), dist, frameid=f)
        accs.append(acc)
    summary = mm.metrics.create().compute_many(accs, metrics=MOT_METRICS, names=list(sequences),
                                               generate_overall=len(accs) > 1)
    return {str(name): {m: float(row[m]) for m in MOT_METRICS} for name, row in summary.iterrows()}


MOT_METRICS = ["mota", "motp", "idf1", "idp", "idr", "recall", "precision", "num_switches",
               "num_false_positives", "num_misses", "mostly_tracked", "mostly_lost", "num_fragmentations"]


def hota(sequences: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict[str, float]]:
    """HOTA, DetA, AssA and LocA (Luiten et al., IJCV 2021) per sequence and ``OVERALL``, by TrackEval.

    The per-frame IoU similarities go straight to ``trackeval.metrics.HOTA`` (its dataset readers
    are not needed for plain MOTChallenge rows); each score is the mean over the 19 localisation
    thresholds, as TrackEval reports it.
    """
    try:
        from trackeval.metrics import HOTA
    except ImportError as exc:
        raise BackendUnavailable("HOTA needs TrackEval: pip install trackeval.") from exc
    metric = HOTA()
    per = {name: metric.eval_sequence(_hota_data(gt, hyp)) for name, (gt, hyp) in sequences.items()}
    if len(per) > 1:
        per["OVERALL"] = metric.combine_sequences(dict(per))
    return {name: {k.lower(): float(np.mean(r[k])) for k in ("HOTA", "DetA", "AssA", "LocA")} for name, r in per.items()}


def _hota_data(gt: np.ndarray, hyp: np.ndarray) -> dict:
    """One sequence in the form TrackEval's metrics take: per-frame 0-based ids and IoU matrices."""
    gt, hyp = np.asarray(gt, np.float64).reshape(-1, 7), np.asarray(hyp, np.float64).reshape(-1, 7)
    g, h = _by_frame(gt), _by_frame(hyp)
    gt_ids = {v: i for i, v in enumerate(np.unique(gt[:, 1]).astype(int))}
    hyp_ids = {v: i for i, v in enumerate(np.unique(hyp[:, 1]).astype(int))}
    frames = range(1, int(max([*g, *h, 0])) + 1)
    empty = np.empty((0, 7))
    data: dict = {"gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    for f in frames:
        gf, hf = g.get(f, empty), h.get(f, empty)
        data["gt_ids"].append(np.array([gt_ids[int(i)] for i in gf[:, 1]], int))
        data["tracker_ids"].append(np.array([hyp_ids[int(i)] for i in hf[:, 1]], int))
        data["similarity_scores"].append(_iou_xywh(gf[:, 2:6], hf[:, 2:6]))
    data.update(num_gt_dets=len(gt), num_tracker_dets=len(hyp), num_gt_ids=len(gt_ids),
                num_tracker_ids=len(hyp_ids), num_timesteps=len(frames))
    return data
