"""Matched-filter baseline (issue 7): a non-spinning template bank per class, filtered against the
very whitened windows the CNN sees, and compared with the CNN.

Choices (docs/baseline.md has the numbers):

* Data: the whitened (3, 16384) window of :func:`gwviz.synth.make_sample`, zero-padded, so the
  filter sees exactly the 4 s the CNN sees. Whitened noise is white with unit variance above
  15 Hz, so the optimal template is the raw template passed through the *same* whitening filter
  (:func:`gwviz.whiten.whitening_filter` of the segment's median-Welch PSD). The PSD is estimated
  on the noise-only segment we drew (make_sample does not return the raw segment with the signal
  in it; a signal barely moves the median of 31 periodograms).
* Templates: h+ from :func:`gwviz.waveforms.polarisations` (the one waveform path, the class
  approximants of :data:`gwviz.params.APPROXIMANTS`), face-on, cut to the 4.75 s before the
  amplitude peak (4 s of window + the whitening filter's 0.5-s reach + a 0.1-s start taper) and
  0.0625 s after it. Filtering is two-phase (complex), so h× of any orientation is covered.
* Bank: stochastic placement per class in (m1, m2) with the match of 4-s whitened templates
  (reference PSD: O3 H1 fit, from 20 Hz); its minimal match is measured on random injections
  with ``pycbc.filter.match``.
* Statistic: per detector |ρ_d(t)|², normalised by the template energy that falls inside the
  window; ρ_d² maximised over ±21.3 ms (Earth radius / c) around a common geocentric time t_c,
  summed over detectors, maximised over t_c in the last 0.1 s of the window and over templates:
  stat = max √Σ_d ρ_d². The class is that of the best template; 'noise' below a threshold.
* The filter is a batched torch FFT correlation (pycbc.filter.matched_filter, one template and one
  detector at a time, gives the same ρ(t): tests/test_baseline.py checks it) because it is ~10x
  faster on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .constants import CLASSES, DETECTORS, F_LOWER_SNR, MERGER_SPAN, SAMPLE_RATE, SEGMENT_DURATION, WINDOW_SAMPLES
from .detectors import detector_geometry
from .params import MASS_RANGES, SIGNAL_CLASSES, SignalParams, chirp_mass, draw_sky
from .psd import analytic_psd, welch_psd
from .synth import STRAIN_SCALE, make_sample
from .waveforms import polarisations
from .whiten import whitening_filter

#: Raw template kept before / after the amplitude peak [samples]: 4.75 s and 0.0625 s at 4096 Hz.
PRE: int = 19456
POST: int = 256
#: Hann ramp on the template's cut start [samples] (0.1 s): stops the cut from ringing through the filter.
TAPER: int = 410
#: FFT grid of the filter [samples] (6 s): the window, zero-padded so no template wraps into it.
GRID: int = 24576
#: Whitened template length compared during bank placement: the 4 s before the peak + POST.
CUT: int = WINDOW_SAMPLES
#: FFT grid of template-template matches: > 2 x (CUT + POST), no circular overlap.
MATCH_GRID: int = 32768
#: Geocentric merger times searched: the last MERGER_SPAN s of the window [samples].
TC_LO: int = WINDOW_SAMPLES - math.ceil(MERGER_SPAN * SAMPLE_RATE)
TC_HI: int = WINDOW_SAMPLES
#: Largest arrival delay w.r.t. the geocentre [samples] (Earth radius / c ~ 21.3 ms).
DELAY: int = math.ceil(float(detector_geometry()[1].norm(dim=-1).max()) / 299792458.0 * SAMPLE_RATE)
LAG_LO, LAG_HI = TC_LO - DELAY, TC_HI + DELAY
#: Welch segment of the PSD used for whitening [s] (what gwviz.synth uses).
WELCH_SECONDS: float = 1.0


def _band(n: int, f_low: float = F_LOWER_SNR) -> torch.Tensor:
    """Bool mask (n // 2 + 1,) of rFFT bins with f_low <= f < Nyquist on an n-sample grid."""
    f = torch.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    return (f >= f_low) & (f < SAMPLE_RATE / 2)


def template(kind: str, mass1: float, mass2: float) -> np.ndarray:
    """Raw face-on h+ of a non-spinning binary [masses in M☉], shape (PRE + POST,), amplitude peak
    at index PRE, start tapered, scaled to unit peak (the filter normalises anyway)."""
    pol = polarisations(SignalParams(kind, mass1, mass2, snr=10.0))
    h = pol.hp[pol.peak_index - PRE:pol.peak_index + POST].copy()
    h[:TAPER] *= 0.5 * (1 - np.cos(np.pi * np.arange(TAPER) / TAPER))
    return (h / np.abs(h).max()).astype(np.float32)


def spectra(waveforms: np.ndarray | torch.Tensor, n: int = GRID) -> torch.Tensor:
    """rFFT (T, n // 2 + 1) complex64 of templates (T, PRE + POST) placed with their peak at index 0."""
    w = torch.as_tensor(waveforms, dtype=torch.float32)
    buf = torch.zeros(w.shape[0], n)
    buf[:, :w.shape[1]] = w
    return torch.fft.rfft(torch.roll(buf, -PRE, dims=-1), dim=-1)


def reference_response(n: int, detector: str = "H1") -> torch.Tensor:
    """Whitening response (n // 2 + 1,) of the O3 fit of ``detector`` (bank placement's metric),
    times the 20-Hz band mask."""
    psd = torch.as_tensor(analytic_psd(detector, 1.0 / WELCH_SECONDS, int(SAMPLE_RATE * WELCH_SECONDS) // 2 + 1))
    return whitening_filter(psd * STRAIN_SCALE ** 2, SAMPLE_RATE, n).float() * _band(n)


def window_cut(specs: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """Whitened templates (T, CUT + POST) from spectra on GRID: the 4 s before the peak + POST."""
    tw = torch.fft.irfft(specs * response, n=GRID, dim=-1)
    return torch.roll(tw, CUT, dims=-1)[:, :CUT + POST]


def match_spectra(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Band-limited (≥ 20 Hz), unit-norm rFFTs on MATCH_GRID of real vectors x (..., L); matches are
    max-over-lag |Σ a b*| of these (the normalisation of pycbc.filter.match)."""
    s = torch.fft.rfft(torch.as_tensor(x, dtype=torch.float32), n=MATCH_GRID, dim=-1) * _band(MATCH_GRID)
    return s / s.abs().square().sum(-1, keepdim=True).sqrt()


def matches(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Match (maximised over time and phase) of each row of a (F,) or (A, F) with each of b (B, F);
    a, b from :func:`match_spectra`. Returns (B,) or (A, B)."""
    prod = a[..., None, :] * b.conj()
    full = torch.zeros(*prod.shape[:-1], MATCH_GRID, dtype=prod.dtype)
    full[..., :prod.shape[-1]] = prod
    return (torch.fft.ifft(full, dim=-1).abs().amax(-1) * MATCH_GRID)


def _propose(kind: str, rng: np.random.Generator) -> tuple[float, float]:
    """Masses [M☉] in the class rectangle: half uniform in (m1, m2), half uniform in
    (Mc^(-5/3), m2/m1) — the chirp time, along which low-mass templates crowd."""
    (lo1, hi1), (lo2, hi2) = MASS_RANGES[kind]
    while True:
        if rng.random() < 0.5:
            m1, m2 = rng.uniform(lo1, hi1), rng.uniform(lo2, hi2)
        else:
            mcs = [chirp_mass(a, b) for a in (lo1, hi1) for b in (lo2, hi2)]
            qs = [min(a, b) / max(a, b) for a in (lo1, hi1) for b in (lo2, hi2)]
            mc = rng.uniform(max(mcs) ** (-5 / 3), min(mcs) ** (-5 / 3)) ** (-3 / 5)
            q = rng.uniform(min(qs), 1.0 if kind != "NSBH" else max(qs))
            m1 = mc * (1 + q) ** 0.2 / q ** 0.6  # heavier mass from chirp mass and q
            m2 = q * m1
        if kind != "NSBH" and m2 > m1:
            m1, m2 = m2, m1
        if lo1 <= m1 <= hi1 and lo2 <= m2 <= hi2:
            return float(m1), float(m2)


@dataclass
class TemplateBank:
    """Templates (T, PRE + POST) float32 (raw face-on h+, unit peak at index PRE) with their class
    index (T,), masses mass1, mass2 (T,) [M☉] and placement info."""

    waveforms: np.ndarray
    label: np.ndarray
    mass1: np.ndarray
    mass2: np.ndarray
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.label)

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, waveforms=self.waveforms, label=self.label, mass1=self.mass1, mass2=self.mass2,
                 info=json.dumps(self.info))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TemplateBank":
        try:
            z = np.load(path)
            bank = cls(z["waveforms"], z["label"], z["mass1"], z["mass2"], json.loads(str(z["info"])))
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"{path}: not a gwviz template bank ({err})") from err
        if bank.waveforms.shape != (len(bank), PRE + POST):
            raise ValueError(f"{path}: waveforms {bank.waveforms.shape}, expected ({len(bank)}, {PRE + POST})")
        return bank

    @classmethod
    def concat(cls, banks: list["TemplateBank"]) -> "TemplateBank":
        return cls(np.concatenate([b.waveforms for b in banks]), np.concatenate([b.label for b in banks]),
                   np.concatenate([b.mass1 for b in banks]), np.concatenate([b.mass2 for b in banks]),
                   {CLASSES[int(b.label[0])]: b.info for b in banks})


def build_class_bank(kind: str, min_match: float = 0.97, seed: int = 0, patience: int = 300,
                     max_proposals: int = 20000, progress: bool = True) -> TemplateBank:
    """Stochastic bank of class ``kind``: a proposal joins unless some template matches it at
    ≥ ``min_match``; stops after ``patience`` rejections in a row (covers ~1 - 1/patience of the
    proposal measure) or ``max_proposals``."""
    if kind not in SIGNAL_CLASSES:
        raise ValueError(f"kind must be one of {SIGNAL_CLASSES}, got {kind!r}")
    if not 0 < min_match < 1:
        raise ValueError(f"min_match must be in (0, 1), got {min_match}")
    rng = np.random.default_rng([seed, CLASSES.index(kind)])
    resp = reference_response(GRID)
    waves, masses, keys = [], [], []
    mcs = np.zeros(0)
    rejected = n_prop = 0
    bar = tqdm(total=max_proposals, desc=f"bank {kind} (MM {min_match})", disable=not progress)
    while n_prop < max_proposals and rejected < patience:
        n_prop += 1
        bar.update()
        m1, m2 = _propose(kind, rng)
        w = template(kind, m1, m2)
        key = match_spectra(window_cut(spectra(w[None]), resp))[0]
        best = 0.0
        if keys:
            bank_keys = torch.stack(keys)
            order = np.argsort(np.abs(np.log(mcs / chirp_mass(m1, m2))))  # near chirp mass first: early exit
            for i in range(0, len(order), 64):
                best = max(best, float(matches(key, bank_keys[order[i:i + 64]]).max()))
                if best >= min_match:
                    break
        if best >= min_match:
            rejected += 1
            continue
        rejected = 0
        waves.append(w)
        masses.append((m1, m2))
        keys.append(key)
        mcs = np.append(mcs, chirp_mass(m1, m2))
        bar.set_postfix(templates=len(waves))
    bar.close()
    m = np.array(masses)
    info = {"min_match": min_match, "seed": seed, "proposals": n_prop, "patience": patience,
            "stopped": "patience" if rejected >= patience else "max_proposals"}
    return TemplateBank(np.stack(waves), np.full(len(m), CLASSES.index(kind)), m[:, 0], m[:, 1], info)


def build_bank(min_match: float = 0.97, seed: int = 0, patience: int = 300, progress: bool = True) -> TemplateBank:
    """Banks of all three signal classes, concatenated."""
    return TemplateBank.concat([build_class_bank(k, min_match, seed, patience, progress=progress)
                                for k in SIGNAL_CLASSES])


def default_bank_path(min_match: float, seed: int, patience: int) -> Path:
    cache = Path(os.environ.get("GWVIZ_CACHE", Path.home() / ".cache" / "gwviz"))
    return cache / "banks" / f"mf-bank-mm{min_match:g}-seed{seed}-p{patience}.npz"


def load_or_build_bank(path: str | os.PathLike | None = None, min_match: float = 0.97, seed: int = 0,
                       patience: int = 300) -> TemplateBank:
    """Load the bank at ``path`` (default: a cache file named by the settings) or build and save it."""
    path = Path(path) if path is not None else default_bank_path(min_match, seed, patience)
    if path.exists():
        return TemplateBank.load(path)
    bank = build_bank(min_match, seed, patience)
    bank.save(path)
    return bank


def fitting_factors(bank: TemplateBank, kind: str, n: int, seed: int = 1, top: int = 3,
                    progress: bool = True) -> np.ndarray:
    """Fitting factor of ``n`` random injections of class ``kind`` (masses uniform in the class
    range, isotropic orientation: F+ h+ + F× h× with random weights) against the whole bank.

    The torch matches pick the ``top`` best templates; the reported value is pycbc.filter.match
    (white PSD, from 20 Hz) of the 4-s whitened injection with those templates. Returns (n,)."""
    from pycbc.filter import match
    from pycbc.types import TimeSeries

    rng = np.random.default_rng([seed, CLASSES.index(kind)])
    resp = reference_response(GRID)
    bank_cut = window_cut(spectra(bank.waveforms), resp)
    bank_keys = match_spectra(bank_cut)
    (lo1, hi1), (lo2, hi2) = MASS_RANGES[kind]
    out = np.zeros(n)
    for i in tqdm(range(n), desc=f"fitting factors {kind}", disable=not progress):
        p = SignalParams(kind, rng.uniform(lo1, hi1), rng.uniform(lo2, hi2), 10.0, **draw_sky(rng))
        pol = polarisations(p)
        psi = rng.uniform(0, 2 * np.pi)
        h = np.cos(psi) * pol.hp + np.sin(psi) * pol.hc
        h = h[pol.peak_index - PRE:pol.peak_index + POST].copy()
        h[:TAPER] *= 0.5 * (1 - np.cos(np.pi * np.arange(TAPER) / TAPER))
        inj = window_cut(spectra((h / np.abs(h).max())[None]), resp)
        cand = torch.topk(matches(match_spectra(inj)[0], bank_keys), min(top, len(bank))).indices
        pad = lambda v: TimeSeries(np.pad(v.double().numpy(), (0, MATCH_GRID - v.shape[-1])),  # noqa: E731
                                   delta_t=1.0 / SAMPLE_RATE)
        out[i] = max(match(pad(inj[0]), pad(bank_cut[j]), low_frequency_cutoff=F_LOWER_SNR)[0] for j in cand.tolist())
    return out


@dataclass
class FilterResult:
    """stat: max network SNR √Σρ_d²; template: best template index; label: its class index;
    rho: (3,) per-detector |ρ| of the best template at their maxima; tc: geocentric time of the best
    (sample index in the window)."""

    stat: float
    template: int
    label: int
    rho: np.ndarray
    tc: int


class MatchedFilter:
    """Matched filter of whitened windows with a :class:`TemplateBank` (see the module docstring)."""

    def __init__(self, bank: TemplateBank, chunk: int = 64):
        if len(bank) == 0:
            raise ValueError("empty template bank")
        self.bank, self.chunk = bank, chunk
        self.specs = spectra(bank.waveforms)
        self.band = _band(GRID)
        # Template offsets m (sample - peak) that window samples reach at the searched lags.
        self.m_lin = torch.arange(-LAG_HI - 1, WINDOW_SAMPLES - LAG_LO) % GRID
        self.lags = torch.arange(LAG_LO, LAG_HI + 1)

    def response(self, psd: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Per-detector whitening response (3, GRID // 2 + 1) × band mask from a Welch PSD
        (3, 2049) [1/Hz × STRAIN_SCALE²] of the segment."""
        psd = torch.as_tensor(psd, dtype=torch.float64)
        if psd.ndim != 2 or psd.shape[0] != len(DETECTORS):
            raise ValueError(f"psd must be ({len(DETECTORS)}, F), got {tuple(psd.shape)}")
        return whitening_filter(psd, SAMPLE_RATE, GRID).float() * self.band

    def prepare(self, window: np.ndarray | torch.Tensor, psd: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """rFFT of the zero-padded window (3, 16384) and the whitening response of ``psd``."""
        x = torch.as_tensor(window, dtype=torch.float32)
        if x.shape != (len(DETECTORS), WINDOW_SAMPLES) or not torch.isfinite(x).all():
            raise ValueError(f"window must be finite, shape ({len(DETECTORS)}, {WINDOW_SAMPLES}), got {tuple(x.shape)}")
        return torch.fft.rfft(x, n=GRID, dim=-1), self.response(psd)

    def rho2(self, window: np.ndarray | torch.Tensor, psd: np.ndarray | torch.Tensor,
             templates: slice | None = None, prepared: tuple | None = None) -> torch.Tensor:
        """|ρ_d(k)|² (T, 3, LAG_HI - LAG_LO + 1) with the template peak at sample k in [LAG_LO, LAG_HI]
        of the whitened window (3, 16384), normalised by the template energy inside the window."""
        d, resp = prepared if prepared is not None else self.prepare(window, psd)
        tw = self.specs[templates or slice(None)][:, None] * resp  # (C, 3, F) whitened templates
        full = torch.zeros(*tw.shape[:-1], GRID, dtype=tw.dtype)
        full[..., :tw.shape[-1]] = d * tw.conj()  # one-sided: ifft gives the complex (two-phase) correlation
        z = 2 * torch.fft.ifft(full, dim=-1)[..., self.lags]  # real part = Σ_n x(n) t_w(n - k)
        # sigma²(k) = Σ over window samples n of t_w(n - k)²: cumulative energy over template offsets
        e = torch.fft.irfft(tw, n=GRID, dim=-1)[..., self.m_lin].square()
        c = torch.nn.functional.pad(e.cumsum(-1, dtype=torch.float64), (1, 0))
        lo = LAG_HI + 1 - self.lags  # position of offset -k in m_lin
        sigma2 = c[..., lo + WINDOW_SAMPLES] - c[..., lo]
        return (z.abs().square() / sigma2.clamp_min(1e-30)).float()

    def __call__(self, window: np.ndarray | torch.Tensor, psd: np.ndarray | torch.Tensor) -> FilterResult:
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
    """Median-Welch PSD (3, 2049) [1/Hz × STRAIN_SCALE²] of a raw segment (3, N) [strain]."""
    return welch_psd(torch.as_tensor(strain * STRAIN_SCALE, dtype=torch.float64), SAMPLE_RATE, WELCH_SECONDS)
