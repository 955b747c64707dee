"""Detector strain from the two polarisations: antenna patterns times h+ and h×, each detector's
delay applied as a fractional shift in the frequency domain (batched torch, any device).
"""
from __future__ import annotations

import torch

from ..constants import F_SIGNAL_STOP, F_UPPER_SNR

#: (f_pass, f_stop) [Hz] of every injected signal (``project(..., band=SIGNAL_BAND)``): 4-kHz strain is
#: anti-alias filtered from ~1.6 kHz, and a real signal in it with it (``gwviz.constants.F_SIGNAL_STOP``).
SIGNAL_BAND: tuple[float, float] = (F_UPPER_SNR, F_SIGNAL_STOP)


def project(hp: torch.Tensor, hc: torch.Tensor, fp: torch.Tensor, fc: torch.Tensor, shift: torch.Tensor,
            n: int, sample_rate: float, band: tuple[float, float] | None = None) -> torch.Tensor:
    """Detector strains F+·h+(t−τ) + F×·h×(t−τ), with fractional shifts done in the frequency domain.

    The shift is circular over the ``n``-sample buffer. Each row is shifted by whole samples (its
    earliest detector's delay, less :data:`SHIFT_PAD`) by placing it, and by the rest (a fraction of a
    sample plus the detectors' relative delays) in the frequency domain on a buffer just longer than
    the waveform: for the trainer's 8-s waveforms in 16-s segments that is 8.5 s of FFT per transform
    instead of 16 s. The result differs from shifting on the whole buffer by < 1e-6 of the peak (the
    periodic interpolation of the shift wraps on a shorter period; tested), as long as a row's
    detector delays differ by less than :data:`SHIFT_PAD` samples (light needs 0.043 s, 176 samples,
    from one end of the Earth to the other). Places rows with no host round trip.

    Parameters
    ----------
    hp, hc : (B, L) tensor
        Polarisations (any common scale, e.g. × STRAIN_SCALE).
    fp, fc : (B, D) tensor
        Antenna patterns.
    shift : (B, D) tensor
        Delays τ [s] (positive: later).
    n : int
        Output samples (≥ L; the buffer is zero-padded).
    sample_rate : float
        Sample rate [Hz].
    band : (float, float) or None, optional
        (f_pass, f_stop) [Hz]: the strain is band-limited, 1 up to f_pass, a raised cosine to 0 at f_stop
        (:func:`band_response`), as the anti-alias filter of 4-kHz data limits a real signal; applied in the
        same transform as the shift. None (default): not.

    Returns
    -------
    (B, D, n) tensor
    """
    b, d, length = shift.shape[0], shift.shape[1], hp.shape[-1]
    m = fft_length(length + 2 * SHIFT_PAD)
    whole = None
    if m < n:  # place each row at its whole-sample shift, less the pad, and shift the rest by FFT
        whole = torch.floor(shift.amin(-1) * sample_rate).long() - SHIFT_PAD  # (B,) no host round trip
        shift = shift - whole[:, None].to(shift.dtype) / sample_rate
    else:
        m = n
    hpf = torch.fft.rfft(hp, n=m, dim=-1)[:, None]  # (B, 1, F)
    hcf = torch.fft.rfft(hc, n=m, dim=-1)[:, None]
    f = torch.fft.rfftfreq(m, 1.0 / sample_rate, device=hp.device, dtype=hp.dtype)
    phase = torch.polar(torch.ones_like(shift[..., None] * f), -2 * torch.pi * shift[..., None] * f)
    if band is not None:
        phase = phase * band_response(f, *band)
    h = torch.fft.irfft((fp[..., None] * hpf + fc[..., None] * hcf) * phase, n=m, dim=-1)
    if whole is None:
        return h
    idx = torch.remainder(whole[:, None, None] + torch.arange(m, device=h.device), n).expand(b, d, m)
    return torch.zeros(b, d, n, dtype=h.dtype, device=h.device).scatter_(-1, idx, h)


def band_response(f: torch.Tensor, f_pass: float, f_stop: float) -> torch.Tensor:
    """Amplitude response 1 for f ≤ f_pass, 0 for f ≥ f_stop, a raised cosine between (f in Hz).

    Raises
    ------
    ValueError
        ``f_stop`` not above ``f_pass`` (> 0).
    """
    if not 0 < f_pass < f_stop:
        raise ValueError(f"band must be 0 < f_pass < f_stop, got ({f_pass!r}, {f_stop!r})")
    u = ((f - f_pass) / (f_stop - f_pass)).clamp(0.0, 1.0)
    return 0.5 * (1.0 + torch.cos(torch.pi * u))


#: Samples of room on each side of a waveform shifted in the frequency domain by :func:`project`.
SHIFT_PAD: int = 1024


def fft_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c 7^d ≥ ``n``: lengths that FFT libraries transform fast."""
    best = 1 << max(n - 1, 0).bit_length()
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                v = p3
                while v < n:
                    v *= 2
                best = min(best, v)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best
