"""The matched filter of the baseline: batched FFT correlation of whitened windows with the bank
(:class:`MatchedFilter`), the statistic of :mod:`gwviz.baseline`, and the PSD it whitens with."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..constants import DETECTORS, SAMPLE_RATE, WINDOW_SAMPLES
from ..data.psd import welch_psd
from ..constants import STRAIN_SCALE
from ..data.whiten import whitening_filter
from .bank import DELAY, GRID, LAG_HI, LAG_LO, POST, PRE, TC_LO, TemplateBank, WELCH_SECONDS, _band, spectra


@dataclass
class FilterResult:
    """Best match of one window against the bank.

    Attributes
    ----------
    stat : float
        Max network SNR √Σρ_d².
    template : int
        Best template index.
    label : int
        Its class index.
    rho : (3,) ndarray
        Per-detector |ρ| of the best template at their maxima.
    tc : int
        Geocentric time of the best (sample index in the window).
    """

    stat: float
    template: int
    label: int
    rho: np.ndarray
    tc: int


class MatchedFilter:
    """Matched filter of whitened windows with a :class:`TemplateBank` (see the module docstring).

    Parameters
    ----------
    bank : TemplateBank
        Non-empty.
    chunk : int, optional
        Templates filtered at once. Default 64.

    Raises
    ------
    ValueError
        An empty bank.
    """

    def __init__(self, bank: TemplateBank, chunk: int = 64):
        if len(bank) == 0:
            raise ValueError("empty template bank")
        self.bank, self.chunk = bank, chunk
        self.specs = spectra(bank.waveforms)
        self.band = _band(GRID)
        self.lags = torch.arange(LAG_LO, LAG_HI + 1)
        # Whitened templates live at offsets m (sample - peak) in [-HEAD, TAIL]: the raw cut plus the
        # whitening filter's half length. Before-window offsets m < -k, after-window m > 16383 - k.
        half = int(SAMPLE_RATE * WELCH_SECONDS) // 2
        head0, tail1 = -(PRE + half), POST + half
        self.head_idx = torch.arange(head0, -LAG_LO) % GRID
        self.head_pos = -self.lags - head0  # head(k) = Σ_{head0 <= m < -k}
        self.tail_idx = torch.arange(WINDOW_SAMPLES - LAG_HI, tail1 + 1) % GRID
        self.tail_pos = LAG_HI - self.lags  # tail(k) = Σ_{16384 - k <= m <= tail1}

    def response(self, psd: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Per-detector whitening response × band mask from a Welch PSD of the segment.

        Parameters
        ----------
        psd : (3, 2049) array or tensor
            PSD [1/Hz × STRAIN_SCALE²] (:func:`segment_psd`).

        Returns
        -------
        (3, GRID // 2 + 1) float32 tensor

        Raises
        ------
        ValueError
            ``psd`` is not (3, F).
        """
        psd = torch.as_tensor(psd, dtype=torch.float64)
        if psd.ndim != 2 or psd.shape[0] != len(DETECTORS):
            raise ValueError(f"psd must be ({len(DETECTORS)}, F), got {tuple(psd.shape)}")
        return whitening_filter(psd, SAMPLE_RATE, GRID).float() * self.band

    def prepare(self, window: np.ndarray | torch.Tensor, psd: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Whitening response of ``psd`` and the window's spectrum times that response.

        The spectrum is the rFFT of the zero-padded whitened ``window`` (3, 16384); the filter applies the
        response to the template side.

        Returns
        -------
        window_spectrum : (3, GRID // 2 + 1) complex tensor
        response : (3, GRID // 2 + 1) tensor

        Raises
        ------
        ValueError
            The window is not finite or not (3, 16384), or ``psd`` is not (3, F).
        """
        x = torch.as_tensor(window, dtype=torch.float32)
        if x.shape != (len(DETECTORS), WINDOW_SAMPLES) or not torch.isfinite(x).all():
            raise ValueError(f"window must be finite, shape ({len(DETECTORS)}, {WINDOW_SAMPLES}), got {tuple(x.shape)}")
        resp = self.response(psd)
        return torch.fft.rfft(x, n=GRID, dim=-1) * resp, resp

    def rho2(self, window: np.ndarray | torch.Tensor, psd: np.ndarray | torch.Tensor,
             templates: slice | None = None, prepared: tuple | None = None) -> torch.Tensor:
        """|ρ_d(k)|² with the template peak at sample k in [LAG_LO, LAG_HI] of the whitened window.

        Normalised by the template energy inside the window.

        Parameters
        ----------
        window : (3, 16384) array or tensor
            Whitened window.
        psd : (3, 2049) array or tensor
            Welch PSD of its segment (:func:`segment_psd`).
        templates : slice or None, optional
            Templates to filter; default None: all.
        prepared : tuple or None, optional
            :meth:`prepare` output, to skip recomputing it. Default None.

        Returns
        -------
        (T, 3, LAG_HI - LAG_LO + 1) tensor
        """
        dr, resp = prepared if prepared is not None else self.prepare(window, psd)
        s = self.specs[templates or slice(None)]
        x = dr * s.conj()[:, None]  # (C, 3, F) window x whitened template, one-sided
        re = torch.fft.irfft(x, n=GRID, dim=-1)[..., self.lags]  # Σ_n window(n) t_w(n - k)
        im = torch.fft.irfft(-1j * x, n=GRID, dim=-1)[..., self.lags]  # same, template shifted by 90°
        e = torch.fft.irfft(s[:, None] * resp, n=GRID, dim=-1).square()  # whitened template energy
        # sigma²(k) = energy of t_w(m) over the window, offsets -k <= m <= 16383 - k: all of it minus
        # the part before the window start (head) and after its end (tail)
        head = torch.nn.functional.pad(e[..., self.head_idx].cumsum(-1), (1, 0))[..., self.head_pos]
        tail = e[..., self.tail_idx].flip(-1).cumsum(-1).flip(-1)[..., self.tail_pos]
        sigma2 = e.sum(-1, keepdim=True) - head - tail
        return (re.square() + im.square()) / sigma2.clamp_min(1e-30)

    def __call__(self, window: np.ndarray | torch.Tensor, psd: np.ndarray | torch.Tensor) -> FilterResult:
        """Best network SNR over templates and geocentric times in [TC_LO, TC_HI] of one window.

        Each detector's |ρ|² is maximised over ±DELAY samples around t_c, then summed over detectors.

        Parameters
        ----------
        window : (3, 16384) array or tensor
            Whitened window.
        psd : (3, 2049) array or tensor
            Welch PSD [1/Hz × STRAIN_SCALE²] of its segment (:func:`segment_psd`).

        Returns
        -------
        FilterResult
        """
        prepared = self.prepare(window, psd)
        best = (-1.0, 0, 0, None)
        for i in range(0, len(self.bank), self.chunk):
            r2 = self.rho2(window, psd, slice(i, i + self.chunk), prepared)  # (C, 3, n_lag)
            # max over each detector's ±DELAY around t_c, then sum over detectors
            pooled = torch.nn.functional.max_pool1d(r2, 2 * DELAY + 1, stride=1)  # (C, 3, n_tc)
            net = pooled.sum(1)
            v, flat = net.flatten().max(0)
            if float(v) > best[0]:
                j, t = divmod(int(flat), net.shape[-1])
                best = (float(v), i + j, t, pooled[j, :, t].sqrt().numpy())
        v, j, t, rho = best
        return FilterResult(math.sqrt(v), j, int(self.bank.label[j]), rho, TC_LO + t)


def segment_psd(strain: np.ndarray) -> torch.Tensor:
    """Median-Welch PSD (3, 2049) [1/Hz × STRAIN_SCALE²] of a raw segment (3, N) [strain], 1-s segments."""
    return welch_psd(torch.as_tensor(strain * STRAIN_SCALE, dtype=torch.float64), SAMPLE_RATE, WELCH_SECONDS)


# --------------------------------------------------------------------------------------------
