"""Frequency-domain whitening with inverse-spectrum truncation (batched torch).

The whitening filter is 1/ASD built on the Welch grid (``filter_duration`` long), tapered with a
Hann window in the time domain (inverse-spectrum truncation: a short filter corrupts only
``filter_duration / 2`` at each edge) and applied by FFT to the whole segment. Output has unit
variance for Gaussian noise of the given PSD.
"""
from __future__ import annotations

import torch

from .psd import interpolate_psd

#: Frequencies below this [Hz] are removed by the whitening filter (O3 data is unusable there).
F_LOW_WHITEN: float = 15.0


def whitening_filter(psd: torch.Tensor, sample_rate: float, n_data: int, f_low: float = F_LOW_WHITEN) -> torch.Tensor:
    """Frequency response of the truncated whitening filter.

    Parameters
    ----------
    psd : (..., F) tensor
        One-sided PSD [1/Hz] on 0..Nyquist: the grid of a 2(F-1)-sample filter.
    sample_rate : float
        Sample rate [Hz].
    n_data : int
        Samples of the data the filter will be applied to.
    f_low : float, optional
        Frequencies below this are removed [Hz]. Default ``F_LOW_WHITEN`` (15 Hz).

    Returns
    -------
    (..., n_data // 2 + 1) tensor
        Real, zero-phase response: √(2 / (S fs)) (which maps Gaussian noise of PSD S to unit variance), zeroed
        below ``f_low``, at Nyquist and where S is 0 before the Hann truncation smooths it.

    Raises
    ------
    ValueError
        The filter (2(F-1) samples) is longer than ``n_data``.
    """
    n_filt = 2 * (psd.shape[-1] - 1)
    if n_filt > n_data:
        raise ValueError(f"whitening filter ({n_filt} samples) longer than the data ({n_data})")
    freqs = torch.fft.rfftfreq(n_filt, 1.0 / sample_rate, device=psd.device)  # made there: no host copy
    # sqrt(2 / (S fs)) maps Gaussian noise of PSD S to unit variance.
    inv = torch.where((freqs >= f_low) & (psd > 0), (2.0 / (psd.clamp_min(1e-300) * sample_rate)).sqrt(),
                      torch.zeros((), dtype=psd.dtype, device=psd.device))
    inv[..., -1] = 0.0  # Nyquist bin carries no usable signal and aliases the filter
    q = torch.fft.irfft(inv, n=n_filt, dim=-1)  # zero-phase, centred on sample 0
    q = torch.fft.fftshift(q, dim=-1) * torch.hann_window(n_filt, periodic=True, dtype=q.dtype, device=q.device)
    padded = torch.zeros(*q.shape[:-1], n_data, dtype=q.dtype, device=q.device)
    padded[..., :n_filt] = q
    padded = torch.roll(padded, -n_filt // 2, dims=-1)  # back to zero phase
    return torch.fft.rfft(padded, dim=-1).real


def whiten(x: torch.Tensor, psd: torch.Tensor, sample_rate: float, f_low: float = F_LOW_WHITEN,
           taper: float = 0.5) -> torch.Tensor:
    """Whiten strain segments.

    Parameters
    ----------
    x : (..., T) tensor
        Strain.
    psd : (..., F) tensor
        One-sided PSD [1/Hz] of ``x`` on 0..Nyquist (typically median Welch, 1 s).
    sample_rate : float
        Sample rate [Hz].
    f_low : float, optional
        Frequencies below this are removed [Hz]. Default ``F_LOW_WHITEN`` (15 Hz).
    taper : float, optional
        Length of the Hann (Tukey) taper at each end of ``x`` [s]; 0 for none. Default 0.5.

    Returns
    -------
    (..., T) tensor
        Whitened data, dimensionless, unit variance away from the edges.

    Raises
    ------
    ValueError
        The filter (2(F-1) samples) is longer than ``x``.
    """
    n = x.shape[-1]
    resp = whitening_filter(psd, sample_rate, n, f_low)
    m = int(taper * sample_rate)
    if m:
        ramp = 0.5 * (1 - torch.cos(torch.pi * torch.arange(m, dtype=x.dtype, device=x.device) / m))
        w = torch.ones(n, dtype=x.dtype, device=x.device)
        w[:m], w[n - m:] = ramp, ramp.flip(0)
        x = x * w
    return torch.fft.irfft(torch.fft.rfft(x, dim=-1) * resp, n=n, dim=-1)


def whiten_span(x: torch.Tensor, psd: torch.Tensor, sample_rate: float, start: int, length: int,
                f_low: float = F_LOW_WHITEN, taper: float = 0.5) -> torch.Tensor:
    """``whiten(x, psd, ...)[..., start:start + length]``, transforming only the samples the filter reaches.

    The truncated filter is 2(F-1) samples long, so output sample i depends on the input within
    (F-1) samples of i. When that reach stays clear of the tapered ends, whitening just
    ``[start - (F-1), start + length + (F-1))`` with the same filter gives the same samples (to float
    rounding) as whitening everything: for the trainer's 16-s segment and 4-s window that is 5 s of FFT
    instead of 16 s. Otherwise the whole ``x`` is whitened.

    Parameters
    ----------
    x, psd, sample_rate, f_low, taper
        As for :func:`whiten`.
    start, length : int
        First sample and number of samples of the span to return.

    Returns
    -------
    (..., length) tensor

    Raises
    ------
    ValueError
        The span does not fit in ``x``, or the filter is longer than ``x``.
    """
    n = x.shape[-1]
    if not (0 <= start and length > 0 and start + length <= n):
        raise ValueError(f"span [{start}, {start + length}) does not fit {n} samples")
    half = psd.shape[-1] - 1
    lo, hi = start - half, start + length + half
    edge = int(taper * sample_rate)
    if lo < edge or hi > n - edge:  # the filter reaches the taper or wraps around: the full transform
        return whiten(x, psd, sample_rate, f_low, taper)[..., start:start + length]
    resp = whitening_filter(psd, sample_rate, hi - lo, f_low)
    return torch.fft.irfft(torch.fft.rfft(x[..., lo:hi], dim=-1) * resp, n=hi - lo, dim=-1)[..., half:half + length]


__all__ = ["whiten", "whiten_span", "whitening_filter", "interpolate_psd", "F_LOW_WHITEN"]
