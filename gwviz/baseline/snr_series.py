"""The optimal filter beside the network: matched-filter SNR time series of a sample's own signal.

For an injection whose waveform is known, the matched filter with that exact template is the
optimal detector (the bar the CNN is measured against in :mod:`gwviz.baseline`, which searches a
template bank instead). In whitened data the filter is a correlation with the whitened template:

    ρ_d(k) = |Σ_n x_d(n) (w_d + i·H[w_d])(n − k)| / √(Σ_n w_d(n)²)

with x_d the whitened window of detector d, w_d the clean signal whitened by the same filter and
H the Hilbert transform (the 90°-shifted template, so the unknown phase is maximised over). In
Gaussian noise ρ_d is about 1 off the signal and about the detector's optimal SNR at it. Used by
the app's Explore page to show, on one time axis, where the filter and the network find the signal.
"""
from __future__ import annotations

import numpy as np

from ..constants import DETECTORS, SAMPLE_RATE


def _analytic(w: np.ndarray) -> np.ndarray:
    """Analytic signal w + i·H[w] along the last axis (as scipy.signal.hilbert; numpy only, which
    keeps scipy.signal's ~1 s import out of the app's first load)."""
    n = w.shape[-1]
    gain = np.zeros(n)
    gain[0] = 1.0
    gain[1:(n + 1) // 2] = 2.0
    if n % 2 == 0:
        gain[n // 2] = 1.0
    return np.fft.ifft(np.fft.fft(w, axis=-1) * gain, axis=-1)


def snr_series(data: np.ndarray, template: np.ndarray, merger_index: dict[str, int] | np.ndarray,
               sample_rate: float = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Matched-filter SNR of whitened data with its whitened template, against the template's merger position.

    Parameters
    ----------
    data : (3, N) ndarray
        Whitened data [σ].
    template : (3, N) ndarray
        The clean signal whitened with the data's filter, non-zero in every detector.
    merger_index : dict of str to int, or (3,) array
        Sample of each detector's merger in the window (:attr:`gwviz.data.synth.Sample.meta`'s
        ``merger_index_<det>``).
    sample_rate : float, optional
        Sample rate [Hz]. Default ``SAMPLE_RATE`` (4096).

    Returns
    -------
    times : (N,) ndarray
        Sample times in the window [s].
    rho : (3, N) ndarray
        Row d, column j is |ρ_d| with detector d's merger moved to sample j of the window
        (j = merger_index[d] means the true position). Columns whose shift moves the whole template out
        of the window are 0.

    Raises
    ------
    ValueError
        Shapes differ or are not (3, N), non-finite values, or a template that is zero in a detector
        (a noise sample).
    """
    x = np.asarray(data, dtype=np.float64)
    w = np.asarray(template, dtype=np.float64)
    if x.shape != w.shape or x.ndim != 2 or x.shape[0] != len(DETECTORS) or not np.isfinite(x).all() \
            or not np.isfinite(w).all():
        raise ValueError(f"data and template must be finite arrays of the same shape ({len(DETECTORS)}, N), "
                         f"got {x.shape} and {w.shape}")
    n = x.shape[-1]
    idx = np.array([merger_index[d] for d in DETECTORS] if isinstance(merger_index, dict) else merger_index, int)
    norm = np.sqrt((w ** 2).sum(-1, keepdims=True))
    if not (norm > 0).all():
        raise ValueError("the template is zero in a detector: a noise sample has no signal to filter for")
    # linear (not circular) correlation: zero-pad to 2N; c[k] = Σ x(n) h(n - k), k in (-N, N)
    h = _analytic(w)  # w + i·H[w]
    fx, fh = np.fft.fft(x, 2 * n, axis=-1), np.fft.fft(h, 2 * n, axis=-1)
    c = np.fft.ifft(fx * np.conj(fh), axis=-1)  # index k >= 0: shift k; index 2N + k: shift k < 0
    rho = np.zeros_like(x)
    for d in range(len(DETECTORS)):
        k = np.arange(n) - idx[d]  # shift that puts the merger at sample j
        rho[d] = np.abs(c[d, k % (2 * n)]) / norm[d, 0]
    return np.arange(n) / sample_rate, rho
