"""The template bank of the matched-filter baseline: templates through the one waveform path, whitened
with the data's filter, stochastic placement per class, and its fitting factors (:mod:`gwviz.baseline`)."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..constants import CLASSES, F_LOWER_SNR, MERGER_SPAN, SAMPLE_RATE, WINDOW_SAMPLES
from ..data.detectors import detector_geometry
from ..data.params import MASS_RANGES, SIGNAL_CLASSES, SignalParams, chirp_mass, draw_sky
from ..data.psd import analytic_psd
from ..constants import STRAIN_SCALE
from ..data.waveforms import polarisations
from ..data.whiten import whitening_filter

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
#: Welch segment of the PSD used for whitening [s] (what gwviz.data.synth uses).
WELCH_SECONDS: float = 1.0


def _band(n: int, f_low: float = F_LOWER_SNR) -> torch.Tensor:
    """Bool mask (n // 2 + 1,) of rFFT bins with f_low <= f < Nyquist on an n-sample grid."""
    f = torch.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    return (f >= f_low) & (f < SAMPLE_RATE / 2)


def template(kind: str, mass1: float, mass2: float) -> np.ndarray:
    """Raw face-on h+ of a non-spinning binary, cut around its peak, start tapered, unit peak.

    Scaled to unit peak because the filter normalises anyway.

    Parameters
    ----------
    kind : {'BBH', 'NSBH', 'BNS'}
        Signal class (picks the approximant).
    mass1, mass2 : float
        Component masses [M☉] (swapped as :class:`SignalParams` does).

    Returns
    -------
    (PRE + POST,) float32 ndarray
        Amplitude peak at index PRE.

    Raises
    ------
    ValueError
        Masses invalid for the class, or the waveform cannot be made.
    """
    pol = polarisations(SignalParams(kind, mass1, mass2, snr=10.0))
    h = pol.hp[pol.peak_index - PRE:pol.peak_index + POST].copy()
    h[:TAPER] *= 0.5 * (1 - np.cos(np.pi * np.arange(TAPER) / TAPER))
    return (h / np.abs(h).max()).astype(np.float32)


def spectra(waveforms: np.ndarray | torch.Tensor, n: int = GRID) -> torch.Tensor:
    """rFFT of templates placed with their peak at index 0 of an ``n``-sample grid.

    Parameters
    ----------
    waveforms : (T, PRE + POST) array or tensor
        Templates (:func:`template`).
    n : int, optional
        FFT grid [samples]. Default ``GRID`` (24576).

    Returns
    -------
    (T, n // 2 + 1) complex64 tensor
    """
    w = torch.as_tensor(waveforms, dtype=torch.float32)
    buf = torch.zeros(w.shape[0], n)
    buf[:, :w.shape[1]] = w
    return torch.fft.rfft(torch.roll(buf, -PRE, dims=-1), dim=-1)


def reference_response(n: int, detector: str = "H1") -> torch.Tensor:
    """Whitening response of the O3 fit of ``detector`` (bank placement's metric), times the 20-Hz band mask.

    Parameters
    ----------
    n : int
        FFT grid [samples].
    detector : str, optional
        Default 'H1'.

    Returns
    -------
    (n // 2 + 1,) float32 tensor
    """
    psd = torch.tensor(analytic_psd(detector, 1.0 / WELCH_SECONDS, int(SAMPLE_RATE * WELCH_SECONDS) // 2 + 1))
    return whitening_filter(psd * STRAIN_SCALE ** 2, SAMPLE_RATE, n).float() * _band(n)


def window_cut(specs: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """Whitened templates from spectra on GRID: the 4 s before the peak + POST.

    Parameters
    ----------
    specs : (T, GRID // 2 + 1) complex tensor
        :func:`spectra` output.
    response : (GRID // 2 + 1,) tensor
        Whitening response (:func:`reference_response`).

    Returns
    -------
    (T, CUT + POST) tensor
        Peak at index CUT.
    """
    tw = torch.fft.irfft(specs * response, n=GRID, dim=-1)
    return torch.roll(tw, CUT, dims=-1)[:, :CUT + POST]


def match_spectra(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Band-limited (≥ 20 Hz), unit-norm rFFTs on MATCH_GRID of real vectors.

    Matches are max-over-lag |Σ a b*| of these (the normalisation of pycbc.filter.match).

    Parameters
    ----------
    x : (..., L) array or tensor
        Real vectors, L ≤ MATCH_GRID.

    Returns
    -------
    (..., MATCH_GRID // 2 + 1) complex64 tensor
    """
    s = torch.fft.rfft(torch.as_tensor(x, dtype=torch.float32), n=MATCH_GRID, dim=-1) * _band(MATCH_GRID)
    return s / s.abs().square().sum(-1, keepdim=True).sqrt()


def matches(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Match (maximised over time and phase) of each row of ``a`` with each row of ``b``.

    Parameters
    ----------
    a : (F,) or (A, F) complex tensor
        From :func:`match_spectra`.
    b : (B, F) complex tensor
        From :func:`match_spectra`.

    Returns
    -------
    (B,) or (A, B) tensor
        Matches in [0, 1].
    """
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
    """Templates of the matched-filter baseline with their classes and masses.

    Attributes
    ----------
    waveforms : (T, PRE + POST) float32 ndarray
        Raw face-on h+, unit peak at index PRE.
    label : (T,) int ndarray
        Class index in ``CLASSES``.
    mass1, mass2 : (T,) ndarray
        Component masses [M☉].
    info : dict
        Placement info (min_match, seed, proposals, ...); per class after :meth:`concat`.
    """

    waveforms: np.ndarray
    label: np.ndarray
    mass1: np.ndarray
    mass2: np.ndarray
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.label)

    def save(self, path: str | os.PathLike) -> None:
        """Write the bank to ``path`` as .npz, atomically (a temporary file renamed); the folder is created."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, waveforms=self.waveforms, label=self.label, mass1=self.mass1, mass2=self.mass2,
                 info=json.dumps(self.info))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TemplateBank":
        """Read a bank written by :meth:`save`.

        Raises
        ------
        ValueError
            Not a readable gwviz template bank, or waveforms of the wrong shape.
        """
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
        """One bank of several single-class banks; ``info`` becomes {class name: that bank's info}."""
        return cls(np.concatenate([b.waveforms for b in banks]), np.concatenate([b.label for b in banks]),
                   np.concatenate([b.mass1 for b in banks]), np.concatenate([b.mass2 for b in banks]),
                   {CLASSES[int(b.label[0])]: b.info for b in banks})


def build_class_bank(kind: str, min_match: float = MIN_MATCH, seed: int = 0, patience: int = PATIENCE,
                     max_proposals: int = 20000, progress: bool = True, ranges=None) -> TemplateBank:
    """Stochastic bank of class ``kind``: a proposal joins unless some template matches it at ≥ ``min_match``.

    Placement stops after ``patience`` rejections in a row (covers ~1 - 1/patience of the proposal measure)
    or ``max_proposals``. Matches use the H1 O3 fit as metric (:func:`reference_response`).

    Parameters
    ----------
    kind : {'BBH', 'NSBH', 'BNS'}
    min_match : float, optional
        Minimal match, in (0, 1). Default ``MIN_MATCH`` (0.9).
    seed : int, optional
        Seed of the proposals (with the class). Default 0.
    patience : int, optional
        Rejections in a row that end the class. Default ``PATIENCE`` (100).
    max_proposals : int, optional
        Default 20000.
    progress : bool, optional
        Show a progress bar. Default True.
    ranges : ((float, float), (float, float)) or None, optional
        ((m1 lo, hi), (m2 lo, hi)) [M☉] inside the class range; default None: the whole class range
        (:data:`gwviz.data.params.MASS_RANGES`).

    Returns
    -------
    TemplateBank

    Raises
    ------
    ValueError
        Unknown class, ranges outside the class range, ``min_match`` outside (0, 1).
    """
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
    """Banks of all three signal classes (:func:`build_class_bank`, same arguments), concatenated."""
    return TemplateBank.concat([build_class_bank(k, min_match, seed, patience, progress=progress)
                                for k in SIGNAL_CLASSES])


def default_bank_path(min_match: float, seed: int, patience: int) -> Path:
    """Cache file of a bank built with these settings (``min_match``, ``seed``, ``patience``).

    ``$GWVIZ_CACHE/banks/mf-bank-mm<mm>-seed<s>-p<p>.npz`` (``~/.cache/gwviz`` when $GWVIZ_CACHE is unset).
    """
    cache = Path(os.environ.get("GWVIZ_CACHE", Path.home() / ".cache" / "gwviz"))
    return cache / "banks" / f"mf-bank-mm{min_match:g}-seed{seed}-p{patience}.npz"


def load_or_build_bank(path: str | os.PathLike | None = None, min_match: float = MIN_MATCH, seed: int = 0,
                       patience: int = PATIENCE) -> TemplateBank:
    """Load the bank at ``path``, or build it (:func:`build_bank`) and save it there.

    ``path`` defaults to :func:`default_bank_path` of the settings; ValueError for an unreadable bank file.
    """
    path = Path(path) if path is not None else default_bank_path(min_match, seed, patience)
    if path.exists():
        return TemplateBank.load(path)
    bank = build_bank(min_match, seed, patience)
    bank.save(path)
    return bank


def fitting_factors(bank: TemplateBank, kind: str, n: int, seed: int = 1, top: int = 3,
                    progress: bool = True, ranges=None) -> np.ndarray:
    """Fitting factor of ``n`` random injections of class ``kind`` against the whole bank.

    Injections have masses uniform in ``ranges`` (default the class range) and isotropic orientation (a
    random mix of h+ and h×). The torch matches pick the ``top`` best templates; the reported value is
    pycbc.filter.match (white PSD, from 20 Hz) of the 4-s whitened injection with those templates.

    Parameters
    ----------
    bank : TemplateBank
        The bank under test.
    kind : {'BBH', 'NSBH', 'BNS'}
    n : int
        Injections.
    seed : int, optional
        Default 1.
    top : int, optional
        Candidates checked with pycbc. Default 3.
    progress : bool, optional
        Default True.
    ranges : ((float, float), (float, float)) or None, optional
        ((m1 lo, hi), (m2 lo, hi)) [M☉]. Default None: ``MASS_RANGES[kind]``.

    Returns
    -------
    (n,) ndarray
        Fitting factors in [0, 1].
    """
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
