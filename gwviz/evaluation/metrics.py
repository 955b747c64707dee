"""The one home of evaluation metrics: ROC, TPR at a fixed false-positive rate, accuracy per network-SNR
bin, confusion matrices. The CNN evaluation (:mod:`gwviz.evaluation.evaluate`), the matched-filter comparison
(:mod:`gwviz.baseline`) and the calibration all score through these functions, so "TPR at FPR 1e-3"
means one thing everywhere. Scores are "higher = more signal-like"; no function here knows a model.
"""
from __future__ import annotations

import numpy as np

from ..constants import CLASSES
from ..data.params import SIGNAL_CLASSES, SNR_RANGE

#: Unit network-SNR bins from 8 to 24 (16 bins).
SNR_EDGES: np.ndarray = np.arange(SNR_RANGE[0], SNR_RANGE[1] + 1.0, 1.0)
#: False-positive rates at which the TPR is reported.
FPR_POINTS: tuple[float, ...] = (1e-2, 1e-3)


def roc_curve(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC of scores (higher = more signal-like), one point per distinct score from the highest down.

    It starts at (0, 0) (threshold +inf) and ends at (1, 1). Tied scores form one point, so a tie is drawn
    as a diagonal step.

    Parameters
    ----------
    positive, negative : (N,) array_like
        Scores of signal and of noise samples (at least one each).

    Returns
    -------
    fpr, tpr : (K + 1,) ndarray
        False- and true-positive rates, non-decreasing.
    threshold : (K + 1,) ndarray
        Score of each point (a sample is called positive when its score ≥ threshold); +inf first.

    Raises
    ------
    ValueError
        No positive or no negative score.
    """
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("roc_curve needs at least one positive and one negative score")
    scores = np.concatenate([pos, neg])
    is_pos = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    order = np.argsort(-scores, kind="stable")
    scores, is_pos = scores[order], is_pos[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]  # last index of each distinct score
    tp = np.cumsum(is_pos)[last]
    fp = (last + 1) - tp
    return np.r_[0.0, fp / neg.size], np.r_[0.0, tp / pos.size], np.r_[np.inf, scores[last]]


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float, n_negative: int) -> float | None:
    """Highest TPR with FPR ≤ ``target``; None when ``n_negative`` < 1/target (not resolved).

    Parameters
    ----------
    fpr, tpr : ndarray
        A ROC curve (:func:`roc_curve`).
    target : float
        False-positive rate.
    n_negative : int
        Negatives the curve was measured on.

    Returns
    -------
    float or None
    """
    if n_negative * target < 1:
        return None
    return float(tpr[fpr <= target + 1e-12].max())


def roc_summary(positive: np.ndarray, negative: np.ndarray, n_grid: int = 60) -> dict:
    """AUC, TPR at :data:`FPR_POINTS` and the curve on a log FPR grid (step interpolation).

    Parameters
    ----------
    positive, negative : (N,) array_like
        Scores of signal and of noise samples.
    n_grid : int, optional
        Log-spaced FPR points from 1/len(negative) to 1 (0 is added). Default 60.

    Returns
    -------
    dict
        ``auc``, ``tpr_at_fpr`` ({'0.01': float or None, '0.001': ...}), ``n_signal``, ``n_noise`` and
        ``curve`` ({'fpr': list, 'tpr': list}).

    Raises
    ------
    ValueError
        No positive or no negative score.
    """
    fpr, tpr, _ = roc_curve(positive, negative)
    grid = np.unique(np.r_[0.0, np.logspace(np.log10(1.0 / len(negative)), 0.0, n_grid)])
    tpr_grid = [float(tpr[fpr <= g + 1e-12].max()) for g in grid]
    return {"auc": float(np.trapezoid(tpr, fpr)),
            "tpr_at_fpr": {f"{f:g}": tpr_at_fpr(fpr, tpr, f, len(negative)) for f in FPR_POINTS},
            "n_signal": int(len(positive)), "n_noise": int(len(negative)),
            "curve": {"fpr": grid.tolist(), "tpr": tpr_grid}}


def accuracy_by_snr(labels: np.ndarray, predicted: np.ndarray, snr: np.ndarray,
                    edges: np.ndarray = SNR_EDGES) -> dict:
    """Accuracy of signal samples per network-SNR bin, per signal class and 'overall'.

    Bins are [e_i, e_i+1), the last one closed; samples outside the edges and noise samples are left out.

    Parameters
    ----------
    labels, predicted : (N,) int array_like
        True and predicted class indices.
    snr : (N,) array_like
        Target network optimal SNR of each sample.
    edges : (B + 1,) ndarray, optional
        Bin edges. Default ``SNR_EDGES`` (8, 9, ..., 24).

    Returns
    -------
    dict
        ``edges``; ``accuracy``: {name: B values, None for empty bins}; ``counts``: {name: B ints}; ``note``.
    """
    labels, predicted, snr = map(np.asarray, (labels, predicted, snr))
    b = np.clip(np.searchsorted(edges, snr, side="right") - 1, 0, len(edges) - 2)
    inside = (snr >= edges[0]) & (snr <= edges[-1]) & (labels > 0)
    acc, counts = {}, {}
    for name in (*SIGNAL_CLASSES, "overall"):
        sel = inside & ((labels == CLASSES.index(name)) if name != "overall" else True)
        n = np.bincount(b[sel], minlength=len(edges) - 1)
        k = np.bincount(b[sel], weights=(predicted[sel] == labels[sel]), minlength=len(edges) - 1)
        counts[name] = n.tolist()
        acc[name] = [float(k_ / n_) if n_ else None for k_, n_ in zip(k, n)]
    return {"edges": np.asarray(edges, dtype=float).tolist(), "accuracy": acc, "counts": counts,
            "note": "signal samples only, binned by their target network optimal SNR; 'overall' pools the "
                    "signal classes; null: empty bin"}


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(4, 4) int64 counts, rows true class, columns predicted class.

    ``labels`` and ``predicted`` are (N,) class indices in 0..3.
    """
    m = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    np.add.at(m, (np.asarray(labels), np.asarray(predicted)), 1)
    return m


def rule_metrics(labels: np.ndarray, predicted: np.ndarray, snr: np.ndarray) -> dict:
    """Accuracy, per-class accuracy, noise FPR, confusion matrix and accuracy per SNR bin of one rule.

    The predictions are those of one decision rule (argmax or calibrated).

    Parameters
    ----------
    labels, predicted : (N,) int ndarray
        True and predicted class indices.
    snr : (N,) ndarray
        Target network optimal SNR of each sample.

    Returns
    -------
    dict
        ``accuracy``, ``per_class_accuracy`` ({class: float or None}), ``noise_false_positive_rate`` (None
        without noise samples), ``confusion_matrix`` (nested lists) and ``snr_bins`` (:func:`accuracy_by_snr`).
    """
    cm = confusion_matrix(labels, predicted)
    rows = cm.sum(1)
    noise = labels == 0
    return {"accuracy": float((predicted == labels).mean()),
            "per_class_accuracy": {c: (float(cm[i, i] / rows[i]) if rows[i] else None) for i, c in enumerate(CLASSES)},
            "noise_false_positive_rate": float((predicted[noise] != 0).mean()) if noise.any() else None,
            "confusion_matrix": cm.tolist(), "snr_bins": accuracy_by_snr(labels, predicted, snr)}
