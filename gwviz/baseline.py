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
* The filter is a batched torch FFT correlation: pycbc.filter.matched_filter, one template and one
  detector at a time, gives the same ρ(t) (tests/test_baseline.py checks it) but is ~5x slower per
  template and detector (bench/bench_baseline.py).
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
from .metrics import roc_curve, tpr_at_fpr
from .psd import analytic_psd, welch_psd
from .constants import STRAIN_SCALE
from .synth import make_sample
from .waveforms import polarisations
from .whiten import whitening_filter
from .paths import run_cli, writable_dir

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
#: Default minimal match of the bank: 1684 templates, ~1.2 CPU s per window on one core (docs/baseline.md).
MIN_MATCH: float = 0.9
#: Default stochastic-placement patience (rejections in a row that end a class; ~1 % left uncovered).
PATIENCE: int = 100
#: During placement, a 64-template chunk (ordered by chirp-mass distance) matching below this ends the scan.
FAR_MATCH: float = 0.5
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
    psd = torch.tensor(analytic_psd(detector, 1.0 / WELCH_SECONDS, int(SAMPLE_RATE * WELCH_SECONDS) // 2 + 1))
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
    x = a[..., None, :] * b.conj()
    re = torch.fft.irfft(x, n=MATCH_GRID, dim=-1)
    im = torch.fft.irfft(-1j * x, n=MATCH_GRID, dim=-1)
    return (re.square() + im.square()).amax(-1).sqrt() * (MATCH_GRID / 2)


def _propose(kind: str, rng: np.random.Generator, ranges) -> tuple[float, float]:
    """Masses [M☉] in the rectangle ``ranges`` ((lo1, hi1), (lo2, hi2)): half uniform in (m1, m2),
    half uniform in (Mc^(-5/3), m2/m1) — the chirp time, along which low-mass templates crowd."""
    (lo1, hi1), (lo2, hi2) = ranges
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


def build_class_bank(kind: str, min_match: float = MIN_MATCH, seed: int = 0, patience: int = PATIENCE,
                     max_proposals: int = 20000, progress: bool = True, ranges=None) -> TemplateBank:
    """Stochastic bank of class ``kind``: a proposal joins unless some template matches it at
    ≥ ``min_match``; stops after ``patience`` rejections in a row (covers ~1 - 1/patience of the
    proposal measure) or ``max_proposals``. ``ranges``: ((m1 lo, hi), (m2 lo, hi)) [M☉] inside the
    class range (default: the whole class range, :data:`gwviz.params.MASS_RANGES`)."""
    if kind not in SIGNAL_CLASSES:
        raise ValueError(f"kind must be one of {SIGNAL_CLASSES}, got {kind!r}")
    ranges = MASS_RANGES[kind] if ranges is None else tuple(tuple(map(float, r)) for r in ranges)
    for (lo, hi), (clo, chi) in zip(ranges, MASS_RANGES[kind]):
        if not clo <= lo <= hi <= chi:
            raise ValueError(f"mass ranges {ranges} must lie inside the {kind} range {MASS_RANGES[kind]} M☉")
    if not 0 < min_match < 1:
        raise ValueError(f"min_match must be in (0, 1), got {min_match}")
    rng = np.random.default_rng([seed, CLASSES.index(kind)])
    resp = reference_response(GRID)
    waves, masses = [], []
    keys = torch.zeros(256, MATCH_GRID // 2 + 1, dtype=torch.complex64)  # grown by doubling
    mcs = np.zeros(0)
    rejected = n_prop = 0
    bar = tqdm(total=max_proposals, desc=f"bank {kind} (MM {min_match})", disable=not progress)
    while n_prop < max_proposals and rejected < patience:
        n_prop += 1
        bar.update()
        m1, m2 = _propose(kind, rng, ranges)
        w = template(kind, m1, m2)
        key = match_spectra(window_cut(spectra(w[None]), resp))[0]
        best = 0.0
        if waves:
            order = torch.as_tensor(np.argsort(np.abs(np.log(mcs / chirp_mass(m1, m2)))))  # near chirp mass first
            for i in range(0, len(order), 64):
                chunk = float(matches(key, keys[order[i:i + 64]]).max())
                best = max(best, chunk)
                # Far in chirp mass nothing matches: stop scanning once a whole chunk is poor. This
                # can only add a redundant template, never leave a hole (the fitting factors check).
                if best >= min_match or (i and chunk < FAR_MATCH):
                    break
        if best >= min_match:
            rejected += 1
            continue
        rejected = 0
        if len(waves) == len(keys):
            keys = torch.cat([keys, torch.zeros_like(keys)])
        keys[len(waves)] = key
        waves.append(w)
        masses.append((m1, m2))
        mcs = np.append(mcs, chirp_mass(m1, m2))
        bar.set_postfix(templates=len(waves))
    bar.close()
    m = np.array(masses)
    info = {"min_match": min_match, "seed": seed, "proposals": n_prop, "patience": patience, "ranges": ranges,
            "stopped": "patience" if rejected >= patience else "max_proposals"}
    return TemplateBank(np.stack(waves), np.full(len(m), CLASSES.index(kind)), m[:, 0], m[:, 1], info)


def build_bank(min_match: float = MIN_MATCH, seed: int = 0, patience: int = PATIENCE, progress: bool = True) -> TemplateBank:
    """Banks of all three signal classes, concatenated."""
    return TemplateBank.concat([build_class_bank(k, min_match, seed, patience, progress=progress)
                                for k in SIGNAL_CLASSES])


def default_bank_path(min_match: float, seed: int, patience: int) -> Path:
    cache = Path(os.environ.get("GWVIZ_CACHE", Path.home() / ".cache" / "gwviz"))
    return cache / "banks" / f"mf-bank-mm{min_match:g}-seed{seed}-p{patience}.npz"


def load_or_build_bank(path: str | os.PathLike | None = None, min_match: float = MIN_MATCH, seed: int = 0,
                       patience: int = PATIENCE) -> TemplateBank:
    """Load the bank at ``path`` (default: a cache file named by the settings) or build and save it."""
    path = Path(path) if path is not None else default_bank_path(min_match, seed, patience)
    if path.exists():
        return TemplateBank.load(path)
    bank = build_bank(min_match, seed, patience)
    bank.save(path)
    return bank


def fitting_factors(bank: TemplateBank, kind: str, n: int, seed: int = 1, top: int = 3,
                    progress: bool = True, ranges=None) -> np.ndarray:
    """Fitting factor of ``n`` random injections of class ``kind`` (masses uniform in ``ranges``,
    default the class range; isotropic orientation: a random mix of h+ and h×) against the whole bank.

    The torch matches pick the ``top`` best templates; the reported value is pycbc.filter.match
    (white PSD, from 20 Hz) of the 4-s whitened injection with those templates. Returns (n,)."""
    from pycbc.filter import match
    from pycbc.types import TimeSeries

    rng = np.random.default_rng([seed, CLASSES.index(kind)])
    resp = reference_response(GRID)
    bank_cut = window_cut(spectra(bank.waveforms), resp)
    bank_keys = match_spectra(bank_cut)
    (lo1, hi1), (lo2, hi2) = MASS_RANGES[kind] if ranges is None else ranges
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
        """Per-detector whitening response (3, GRID // 2 + 1) × band mask from a Welch PSD
        (3, 2049) [1/Hz × STRAIN_SCALE²] of the segment."""
        psd = torch.as_tensor(psd, dtype=torch.float64)
        if psd.ndim != 2 or psd.shape[0] != len(DETECTORS):
            raise ValueError(f"psd must be ({len(DETECTORS)}, F), got {tuple(psd.shape)}")
        return whitening_filter(psd, SAMPLE_RATE, GRID).float() * self.band

    def prepare(self, window: np.ndarray | torch.Tensor, psd: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Whitening response (3, F) of ``psd`` and the rFFT of the zero-padded whitened window
        (3, 16384) times that response (the filter applies it to the template side)."""
        x = torch.as_tensor(window, dtype=torch.float32)
        if x.shape != (len(DETECTORS), WINDOW_SAMPLES) or not torch.isfinite(x).all():
            raise ValueError(f"window must be finite, shape ({len(DETECTORS)}, {WINDOW_SAMPLES}), got {tuple(x.shape)}")
        resp = self.response(psd)
        return torch.fft.rfft(x, n=GRID, dim=-1) * resp, resp

    def rho2(self, window: np.ndarray | torch.Tensor, psd: np.ndarray | torch.Tensor,
             templates: slice | None = None, prepared: tuple | None = None) -> torch.Tensor:
        """|ρ_d(k)|² (T, 3, LAG_HI - LAG_LO + 1) with the template peak at sample k in [LAG_LO, LAG_HI]
        of the whitened window (3, 16384), normalised by the template energy inside the window."""
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


# --------------------------------------------------------------------------------------------
# Evaluation on samples made with gwviz.synth.make_sample, side by side with the CNN.

@dataclass
class SampleSet:
    """Samples in a fixed order: labels (N,) class index; snr (N,) target network SNR (0 for
    noise); windows (N, 3, 16384) float32 whitened; psds (N, 3, 2049) median-Welch PSD of each
    noise segment [1/Hz × STRAIN_SCALE²]; meta: one dict per sample."""

    labels: np.ndarray
    snr: np.ndarray
    windows: np.ndarray
    psds: np.ndarray
    meta: list


def sample_plan(n: int, snr_values, n_noise: int) -> list[tuple[str, float]]:
    """(class, network SNR) of every sample: n_noise noise, then n of each signal class at each SNR."""
    if n < 0 or n_noise < 0 or n + n_noise == 0:
        raise ValueError(f"need n >= 0 and n_noise >= 0, not both 0; got n={n}, n_noise={n_noise}")
    snrs = [float(s) for s in snr_values]
    if n and (not snrs or any(not (math.isfinite(s) and s > 0) for s in snrs)):
        raise ValueError(f"snr values must be finite and > 0, got {snr_values}")
    return [("noise", 0.0)] * n_noise + [(k, s) for s in snrs for k in SIGNAL_CLASSES for _ in range(n)]


def make_samples(n: int, seed: int, snr_values=(8.0, 12.0), n_noise: int | None = None,
                 noise_source=None, progress: bool = True) -> SampleSet:
    """Deterministic samples from ``seed``: each gets its own generator (SeedSequence(seed).spawn),
    a 16-s segment from ``noise_source`` (default SimulatedNoise) and make_sample with that
    segment; n_noise defaults to 3 n len(snr_values) (as many noise as signal samples)."""
    from .noise import SimulatedNoise
    noise_source = noise_source if noise_source is not None else SimulatedNoise()
    n_noise = 3 * n * len(snr_values) if n_noise is None else n_noise
    plan = sample_plan(n, snr_values, n_noise)
    seqs = np.random.SeedSequence(seed).spawn(len(plan))
    windows = np.zeros((len(plan), len(DETECTORS), WINDOW_SAMPLES), np.float32)
    psds, meta = [], []
    for i, ((kind, snr), sq) in enumerate(tqdm(list(zip(plan, seqs)), desc="samples", disable=not progress)):
        rng = np.random.default_rng(sq)
        seg = noise_source.segment(SEGMENT_DURATION, rng)
        psds.append(segment_psd(seg.strain).numpy())  # before make_sample: noise only
        s = make_sample(kind, noise_source, rng=rng, segment=seg, **({"snr_range": (snr, snr)} if snr else {}))
        windows[i] = s.data
        meta.append(s.meta)
    return SampleSet(np.array([CLASSES.index(k) for k, _ in plan]), np.array([s for _, s in plan]),
                     windows, np.stack(psds), meta)


def score_mf(samples: SampleSet, bank: TemplateBank, progress: bool = True) -> dict[str, np.ndarray]:
    """Matched-filter outputs per sample: score (network SNR), best_class, template, rho (N, 3),
    tc, cpu_s and wall_s (process CPU time and wall time of the filter alone [s])."""
    mf = MatchedFilter(bank)
    rows = []
    for x, psd in tqdm(list(zip(samples.windows, samples.psds)), desc="matched filter", disable=not progress):
        t0, w0 = time.process_time(), time.perf_counter()
        r = mf(x, psd)
        rows.append((r.stat, r.label, r.template, r.rho, r.tc, time.process_time() - t0, time.perf_counter() - w0))
    cols = list(zip(*rows))
    return {"score": np.array(cols[0]), "best_class": np.array(cols[1]), "template": np.array(cols[2]),
            "rho": np.stack(cols[3]), "tc": np.array(cols[4]), "cpu_s": np.array(cols[5]), "wall_s": np.array(cols[6])}


def score_cnn(samples: SampleSet, classifier) -> dict[str, np.ndarray]:
    """Classifier outputs on the same windows: probs (N, 4), score = 1 - p(noise), pred, cpu_s and
    wall_s per sample [s] (batch time / N)."""
    t0, w0 = time.process_time(), time.perf_counter()
    probs = classifier.predict_windows(samples.windows)
    n = len(probs)
    return {"probs": probs, "score": 1.0 - probs[:, 0], "pred": probs.argmax(1),
            "cpu_s": np.full(n, (time.process_time() - t0) / n), "wall_s": np.full(n, (time.perf_counter() - w0) / n)}


def save_outputs(path: str | os.PathLike, samples: SampleSet, outputs: dict, **extra) -> None:
    """Per-sample outputs as .npz: labels, snr, the method's arrays, and extra scalars/strings."""
    np.savez(path, labels=samples.labels, snr=samples.snr, **outputs,
             **{k: np.asarray(v) for k, v in extra.items()})


def _load_outputs(src) -> dict | None:
    """An outputs .npz (or dict) with CNN-style (probs) or MF-style (best_class) keys, as a dict.
    gwviz.evaluate's files ('<set>/probabilities', ...) are read with all their sets pooled."""
    if src is None:
        return None
    z = dict(np.load(src, allow_pickle=False)) if not isinstance(src, dict) else dict(src)
    sets = sorted({k.split("/")[0] for k in z if "/" in k})
    if sets:  # gwviz.evaluate layout: '<set>/probabilities', '<set>/labels', ...: pool all sets
        z = {f: np.concatenate([z[f"{n}/{f}"] for n in sets]) for f in ("probabilities", "labels", "snr")
             if all(f"{n}/{f}" in z for n in sets)}
    alias = {"labels": ("labels", "label", "y"), "snr": ("snr", "snrs", "snr_network"),
             "probs": ("probs", "probabilities", "p")}
    out = {}
    for key, names in alias.items():
        hit = next((z[k] for k in names if k in z), None)
        if hit is not None:
            out[key] = np.asarray(hit)
    if "labels" not in out or "snr" not in out:
        raise ValueError(f"{src if not isinstance(src, dict) else 'outputs'}: need 'labels' and 'snr' arrays, "
                         f"have {sorted(z)}")
    if out["labels"].dtype.kind in "US":  # class names instead of indices
        out["labels"] = np.array([CLASSES.index(str(c)) for c in out["labels"]])
    out["score"] = np.asarray(z["score"], float) if "score" in z else 1.0 - out["probs"][:, 0]
    if "best_class" in z:
        out["best_class"] = np.asarray(z["best_class"])
    elif "pred" in z or "probs" in out:
        out["pred"] = np.asarray(z["pred"]) if "pred" in z else out["probs"].argmax(1)
    else:
        raise ValueError("outputs need 'probs', 'pred' or 'best_class'")
    for k in ("cpu_s", "wall_s"):
        if k in z:
            out[k] = float(np.mean(z[k]))
    out["snr"] = np.nan_to_num(out["snr"].astype(float))
    out["info"] = {k: np.asarray(z[k]).item() for k in ("trained", "note") if k in z and np.ndim(z[k]) == 0}
    return out


def roc(noise: np.ndarray, signal: np.ndarray, fprs=(1e-2, 1e-3), max_points: int = 400) -> tuple[dict, dict]:
    """Signal-vs-noise ROC through :mod:`gwviz.metrics` (the one home of ROC and TPR at FPR):
    ({fpr, tpr lists (≤ max_points), auc}, {'1e-2': TPR or None, ...}); (None, None...) for no signals."""
    if len(signal) == 0:
        return {"fpr": [], "tpr": [], "auc": None}, {f"{f:g}": None for f in fprs}
    fpr, tpr, _ = roc_curve(signal, noise)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), max_points)).astype(int))
    curve = {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(), "auc": float(np.trapezoid(tpr, fpr))}
    return curve, {f"{f:g}": tpr_at_fpr(fpr, tpr, f, len(noise)) for f in fprs}


def method_metrics(o: dict, snr_points=(8.0, 12.0), fprs=(1e-2, 1e-3), snr_tol: float = 0.5,
                   threshold_fpr: float = 1e-2) -> dict:
    """ROC signal-vs-noise at each SNR in ``snr_points`` (signals within ± snr_tol), TPR at each FPR
    overall and per class, and accuracy per SNR bin. MF-style outputs are called 'noise' below the
    noise-score threshold of FPR ``threshold_fpr`` (the largest noise score if that is unresolved)."""
    labels, snr, score = o["labels"], o["snr"], o["score"]
    noise = score[labels == 0]
    if len(noise) == 0:
        raise ValueError("outputs contain no noise samples: no ROC")
    res: dict = {"n": int(len(labels)), "n_noise": int(len(noise)), "roc": {}, "tpr_at_fpr": {}}
    if "best_class" in o:
        k = max(int(math.floor(threshold_fpr * len(noise) + 1e-9)), 0)
        thr = float(np.sort(noise)[::-1][min(k, len(noise) - 1)])
        pred = np.where(score > thr, o["best_class"], 0)
        res["threshold"], res["threshold_fpr"] = thr, min(k, len(noise) - 1) / len(noise)
    else:
        pred = o["pred"]
    for s in snr_points:
        sel = (labels > 0) & (np.abs(snr - s) <= snr_tol)
        key = f"{s:g}"
        curve, tpr_all = roc(noise, score[sel], fprs)
        res["roc"][key] = {**curve, "n_signal": int(sel.sum())}
        per_class = {c: roc(noise, score[sel & (labels == CLASSES.index(c))], fprs)[1] for c in SIGNAL_CLASSES}
        res["tpr_at_fpr"][key] = {f"{f:g}": {"all": tpr_all[f"{f:g}"], **{c: per_class[c][f"{f:g}"] for c in SIGNAL_CLASSES}}
                                  for f in fprs}
    values = np.unique(snr[labels > 0])
    edges = values if len(values) <= 12 else np.arange(8.0, 26.0, 2.0)
    acc = {"noise": float(np.mean(pred[labels == 0] == 0))}
    for i, lo in enumerate(edges):
        sel = (labels > 0) & ((snr == lo) if len(values) <= 12 else (snr >= lo) & (snr < lo + 2.0))
        if sel.any():
            name = f"{lo:g}" if len(values) <= 12 else f"{lo:g}-{lo + 2:g}"
            acc[name] = {"all": float(np.mean(pred[sel] == labels[sel])),
                         **{c: float(np.mean(pred[sel & (labels == j)] == j)) for j, c in enumerate(CLASSES)
                            if j and (sel & (labels == j)).any()}}
    res["accuracy"] = acc
    res["cpu_s_per_sample"] = o.get("cpu_s")
    res["wall_s_per_sample"] = o.get("wall_s")
    res["info"] = o.get("info", {})
    return res


def compare(cnn_npz, mf_npz, snr_points=(8.0, 12.0), fprs=(1e-2, 1e-3), snr_tol: float = 0.5) -> dict:
    """Side-by-side metrics of the CNN (.npz with labels, snr, probs; None to skip) and the matched
    filter (.npz from :func:`run`): ROC at each SNR, TPR at each FPR (overall, per class and the
    CNN/MF ratio per class), accuracy per SNR bin, CPU time per sample."""
    out = {"settings": {"snr_points": list(snr_points), "fprs": list(fprs), "snr_tol": snr_tol}}
    for name, src in (("cnn", cnn_npz), ("mf", mf_npz)):
        o = _load_outputs(src)
        if o is not None:
            out[name] = method_metrics(o, snr_points, fprs, snr_tol)
    if "cnn" in out and "mf" in out:
        ratio = {}
        for s, per_f in out["cnn"]["tpr_at_fpr"].items():
            ratio[s] = {f: {c: (v / out["mf"]["tpr_at_fpr"][s][f][c]
                                if v is not None and out["mf"]["tpr_at_fpr"][s][f][c] else None)
                            for c, v in per_c.items()} for f, per_c in per_f.items()}
        out["tpr_ratio_cnn_over_mf"] = ratio
    return out


def write_plot(metrics: dict, path: str | os.PathLike) -> None:
    """Plotly HTML: ROC curves (log FPR) of both methods at each SNR, and accuracy per SNR bin."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    methods = [m for m in ("cnn", "mf") if m in metrics]
    if not methods:
        raise ValueError("metrics hold neither 'cnn' nor 'mf'")
    snrs = list(metrics[methods[0]]["roc"])
    fig = make_subplots(rows=1, cols=len(snrs) + 1,
                        subplot_titles=[f"ROC, network SNR {s}" for s in snrs] + ["accuracy per SNR"])
    names = {"cnn": "CNN" + ("" if metrics.get("cnn", {}).get("info", {}).get("trained", True) else " (untrained)"),
             "mf": "matched filter"}
    colours = {"cnn": "#d62728", "mf": "#1f77b4"}
    for m in methods:
        for i, s in enumerate(snrs, start=1):
            r = metrics[m]["roc"][s]
            fpr = np.maximum(r["fpr"], 0.5 / metrics[m]["n_noise"])  # log axis: 0 drawn at half a false alarm
            fig.add_trace(go.Scatter(x=fpr, y=r["tpr"], name=f"{names[m]} (AUC {r['auc']:.3f})",
                                     line=dict(color=colours[m]), legendgroup=m, showlegend=i == 1), 1, i)
            fig.update_xaxes(type="log", title_text="false-positive rate", row=1, col=i)
            fig.update_yaxes(title_text="true-positive rate", range=[0, 1.02], row=1, col=i)
        acc = metrics[m]["accuracy"]
        bins = list(acc)
        fig.add_trace(go.Bar(x=bins, y=[acc[b] if b == "noise" else acc[b]["all"] for b in bins], name=names[m],
                             marker_color=colours[m], legendgroup=m, showlegend=False), 1, len(snrs) + 1)
    fig.update_xaxes(title_text="network SNR bin", type="category", row=1, col=len(snrs) + 1)
    fig.update_yaxes(title_text="accuracy", range=[0, 1], row=1, col=len(snrs) + 1)
    fig.update_layout(title="Matched filter vs CNN on the same whitened windows", barmode="group",
                      width=480 * (len(snrs) + 1), height=460)
    fig.write_html(str(path), include_plotlyjs="cdn")


def run(n: int, seed: int, snr_values=(8.0, 12.0), classifier=None, n_noise: int | None = None,
        out: str | os.PathLike | None = None, bank: TemplateBank | None = None, noise_source=None,
        progress: bool = True) -> dict:
    """Make the samples once (:func:`make_samples`), score them with the matched filter and, if
    given, with ``classifier`` (a :class:`gwviz.classifier.Classifier`: predict_windows on the same
    whitened windows); write mf.npz, cnn.npz, metrics.json and roc.html to ``out``; return metrics."""
    bank = bank if bank is not None else load_or_build_bank()
    samples = make_samples(n, seed, snr_values, n_noise, noise_source, progress)
    mf = score_mf(samples, bank, progress)
    cnn = score_cnn(samples, classifier) if classifier is not None else None
    if cnn is not None:
        cnn.update(trained=bool(getattr(classifier, "trained", True)))
    points = tuple(float(s) for s in snr_values)
    metrics = compare({"labels": samples.labels, "snr": samples.snr, **cnn} if cnn else None,
                      {"labels": samples.labels, "snr": samples.snr, **mf}, points)
    metrics["settings"].update(n=n, seed=seed, snr_values=list(points), n_noise=int((samples.labels == 0).sum()),
                               bank_size=len(bank), bank=bank.info, noise_source=samples.meta[0]["noise_source"])
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_outputs(out / "mf.npz", samples, mf, seed=seed)
        if cnn is not None:
            save_outputs(out / "cnn.npz", samples, cnn, seed=seed)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        write_plot(metrics, out / "roc.html")
    return metrics


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m gwviz.baseline", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20, help="samples per signal class and SNR value")
    p.add_argument("--n-noise", type=int, default=None, help="noise samples (default: as many as signals)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snr", type=float, nargs="+", default=[8.0, 12.0], help="network SNR values")
    p.add_argument("--out", default="baseline-out", help="output directory")
    p.add_argument("--bank", default=None, help="bank .npz (built and saved there if missing)")
    p.add_argument("--min-match", type=float, default=MIN_MATCH)
    p.add_argument("--bank-seed", type=int, default=0)
    p.add_argument("--patience", type=int, default=PATIENCE)
    p.add_argument("--build-bank", action="store_true", help="only build the bank and measure its fitting factors")
    p.add_argument("--ff-injections", type=int, default=200, help="random injections per class for --build-bank")
    p.add_argument("--cnn", default=None, help="also score the CNN: a weights path, or 'shipped' (models/; an "
                   "untrained, flagged model if no weights are shipped yet)")
    p.add_argument("--compare", default=None, metavar="CNN_NPZ", help="only compare CNN outputs with --mf")
    p.add_argument("--mf", default=None, help="matched-filter outputs .npz for --compare")
    a = p.parse_args(argv)
    # cheap checks first: a bank takes minutes to build
    if a.n < 1 or (a.n_noise is not None and a.n_noise < 0):
        raise ValueError(f"--n must be >= 1 and --n-noise >= 0, got {a.n} and {a.n_noise}")
    if not all(math.isfinite(s) and s > 0 for s in a.snr):
        raise ValueError(f"--snr values must be finite and > 0, got {a.snr}")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    out = writable_dir(a.out)
    if a.compare:
        if not a.mf:
            p.error("--compare needs --mf MF_NPZ")
        metrics = compare(a.compare, a.mf, tuple(a.snr))
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        write_plot(metrics, out / "roc.html")
    else:
        bank_path = Path(a.bank) if a.bank else default_bank_path(a.min_match, a.bank_seed, a.patience)
        bank = load_or_build_bank(bank_path, a.min_match, a.bank_seed, a.patience)
        if a.build_bank:
            ff = {k: fitting_factors(bank, k, a.ff_injections) for k in SIGNAL_CLASSES if a.ff_injections}
            bank.info["fitting_factors"] = {k: {"n": len(v), "min": float(v.min()), "p01": float(np.quantile(v, 0.01)),
                                                "p05": float(np.quantile(v, 0.05)), "median": float(np.median(v))}
                                            for k, v in ff.items()}
            bank.save(bank_path)
            metrics = {"bank": str(bank_path), "size": {c: int((bank.label == CLASSES.index(c)).sum())
                                                        for c in SIGNAL_CLASSES}, "info": bank.info}
        else:
            clf = None
            if a.cnn:
                from .classifier import load_classifier
                clf = load_classifier(None if a.cnn == "shipped" else a.cnn, allow_untrained=a.cnn == "shipped")
            metrics = run(a.n, a.seed, tuple(a.snr), clf, a.n_noise, out, bank)
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("cnn", "mf")} | {
        m: {k: v for k, v in metrics[m].items() if k != "roc"} for m in ("cnn", "mf") if m in metrics}, indent=1))
    return metrics


if __name__ == "__main__":
    run_cli(main, "python -m gwviz.baseline")
