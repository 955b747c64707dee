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
    freqs = torch.fft.rfftfreq(n_filt, 1.0 / sample_rate).to(psd.device)
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


__all__ = ["whiten", "whitening_filter", "interpolate_psd", "F_LOW_WHITEN"]
