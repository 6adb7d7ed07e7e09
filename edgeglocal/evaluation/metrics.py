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
