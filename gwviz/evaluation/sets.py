"""The evaluation's sets of samples: drawn from a torch generator seeded by (seed, set name), so the
same seed, batch size, bank and device give the same samples again, for the CNN evaluation
(:mod:`gwviz.evaluation.evaluate`), the calibration and the matched-filter baseline beside it.

Sets: 'main' (n samples, classes balanced, network SNR uniform in 8–24 for signals), 'roc_noise'
(noise only) and 'roc_<class>_snr<S>' (one signal class at network SNR exactly S).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from ..constants import CLASSES
from ..data.params import SIGNAL_CLASSES, SNR_RANGE


@dataclass
class EvalSet:
    """Outputs of one set: logits (N, 4) float32, labels (N,), snr (N,) float32 target network SNR (0: noise)."""

    logits: np.ndarray
    labels: np.ndarray
    snr: np.ndarray

    @property
    def probabilities(self) -> np.ndarray:
        """Softmax of the logits (N, 4), float64."""
        return torch.softmax(torch.as_tensor(self.logits, dtype=torch.float64), -1).numpy()

    @property
    def predicted(self) -> np.ndarray:
        """Argmax class indices (N,) (the paper's rule)."""
        return self.logits.argmax(1)


def set_seed(seed: int, name: str) -> int:
    """Generator seed of set ``name``: independent streams per set, stable across runs (CRC32 of the name)."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]).generate_state(1)[0])


def iter_set(maker, n: int, seed: int, name: str, labels: np.ndarray | None = None,
             snr_range: tuple[float, float] = SNR_RANGE, batch: int = 256, real: bool | None = None):
    """Yield the batches of set ``name``, deterministic from (seed, name, batch, the maker's bank and device).

    ``labels`` (n,): classes, default balanced (i % 4); ``snr_range``: network SNR of signals (default 8–24);
    ``real`` as in :meth:`BatchMaker.__call__`. ValueError unless ``n`` and ``batch`` (default 256) are ≥ 1.

    Yields
    ------
    x, y, snr : tensor
        (b, 3, 16384) whitened windows, (b,) classes, (b,) target network SNR.
    """
    if n < 1 or batch < 1:
        raise ValueError(f"n and batch must be >= 1, got n={n}, batch={batch}")
    if labels is None:
        labels = np.arange(n) % len(CLASSES)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    g = torch.Generator(device=maker.device).manual_seed(set_seed(seed, name))
    for i in range(0, n, batch):
        yield maker(min(batch, n - i), g, snr_range=snr_range, labels=labels[i:i + batch], real=real)


@torch.no_grad()
def predict_set(classifier, maker, n: int, seed: int, name: str, labels: np.ndarray | None = None,
                snr_range: tuple[float, float] = SNR_RANGE, batch: int = 256, real: bool | None = None,
                progress: bool = True) -> EvalSet:
    """Make set ``name`` (:func:`iter_set`, same arguments) and run ``classifier``'s network on it.

    Returns an :class:`EvalSet`; ``progress`` (default True) shows a bar. FloatingPointError for non-finite
    logits (one NaN would rank anywhere in a ROC).
    """
    from tqdm.auto import tqdm
    classifier.model.eval()
    out = ([], [], [])
    with tqdm(total=n, desc=name, unit="sample", disable=not progress) as bar:
        for x, y, snr in iter_set(maker, n, seed, name, labels, snr_range, batch, real):
            out[0].append(classifier.logits(x).numpy())  # FloatingPointError on a non-finite logit, at once
            out[1].append(y.cpu().numpy())
            out[2].append(snr.float().cpu().numpy())
            bar.update(len(y))
    return EvalSet(*(np.concatenate(o) for o in out))


def check_set_sizes(n: int, n_roc: int, n_roc_noise: int, roc_snrs: tuple[float, ...], batch: int) -> None:
    """ValueError for n < 4, batch < 1 or not an int, negative ROC sizes, a ROC SNR not finite and > 0."""
    if n < len(CLASSES):
        raise ValueError(f"n must be >= {len(CLASSES)} (balanced classes), got {n}")
    if not isinstance(batch, int) or batch < 1 or n_roc < 0 or n_roc_noise < 0:
        raise ValueError(f"batch must be >= 1 and n_roc, n_roc_noise >= 0, got {batch}, {n_roc}, {n_roc_noise}")
    bad = [s for s in roc_snrs if not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0)]
    if bad:
        raise ValueError(f"ROC SNRs must be finite and > 0, got {bad}")


def make_sets(classifier, maker, n: int, seed: int, n_roc: int = 1000, n_roc_noise: int = 10000,
              roc_snrs: tuple[float, ...] = (8.0, 12.0), batch: int = 256, real: bool | None = None,
              progress: bool = True) -> dict[str, EvalSet]:
    """The main set, the ROC noise set and one fixed-SNR set per signal class and ROC SNR.

    ``n`` samples in 'main' (≥ 4), ``n_roc_noise`` (default 10000) in 'roc_noise', ``n_roc`` (default 1000) per
    signal class at each of ``roc_snrs`` (default 8 and 12) in 'roc_<class>_snr<S>'; ``n_roc`` or ``n_roc_noise``
    0 skips the ROC sets. Other arguments as in :func:`predict_set`. Returns {set name: EvalSet}.
    """
    check_set_sizes(n, n_roc, n_roc_noise, roc_snrs, batch)
    kw = dict(batch=batch, real=real, progress=progress)
    sets = {"main": predict_set(classifier, maker, n, seed, "main", **kw)}
    if n_roc > 0 and n_roc_noise > 0:
        sets["roc_noise"] = predict_set(classifier, maker, n_roc_noise, seed, "roc_noise",
                                        labels=np.zeros(n_roc_noise, dtype=int), **kw)
        for s in roc_snrs:
            for kind in SIGNAL_CLASSES:
                name = roc_set_name(kind, s)
                sets[name] = predict_set(classifier, maker, n_roc, seed, name, snr_range=(s, s),
                                         labels=np.full(n_roc, CLASSES.index(kind)), **kw)
    return sets


def roc_set_name(kind: str, snr: float) -> str:
    """Name of the ROC set of signal class ``kind`` at network SNR ``snr``: 'roc_<kind>_snr<snr:g>'."""
    return f"roc_{kind}_snr{snr:g}"
