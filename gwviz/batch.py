"""Batches of training samples made on the fly on any torch device, through :func:`synthesize`.

Waveforms are the expensive part on the CPU and the cheap part to reuse: a :class:`WaveformBank`
holds polarisations of many intrinsic draws (masses, inclination, coalescence phase) made by
:func:`gwviz.waveforms.polarisations`; every batch then draws fresh sky positions, polarisation
angles, merger times, SNRs and noise, so no two samples repeat. No dataset on disk.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from .constants import CLASSES, DETECTORS, MERGER_SPAN, SAMPLE_RATE, SEGMENT_DURATION, WINDOW_SAMPLES
from .detectors import antenna_patterns, time_delays, uniform_gmst
from .noise import coloured_noise
from .params import SIGNAL_CLASSES, SNR_RANGE, draw_params
from .psd import analytic_psd
from .synth import STRAIN_SCALE, synthesize
from .waveforms import polarisations


def _one_waveform(args: tuple[str, int]) -> tuple[np.ndarray, np.ndarray, dict, int]:
    kind, seed = args
    p = draw_params(kind, np.random.default_rng(seed))
    pol = polarisations(p)
    return (pol.hp * STRAIN_SCALE).astype(np.float32), (pol.hc * STRAIN_SCALE).astype(np.float32), \
        {"mass1": p.mass1, "mass2": p.mass2, "inclination": p.inclination, "coa_phase": p.coa_phase}, pol.peak_index


@dataclass
class WaveformBank:
    """Polarisations per signal class: hp[kind], hc[kind] (K, L) × STRAIN_SCALE, peak at ``peak_index``;
    ``params[kind]`` (K, 4): mass1, mass2 [M☉], inclination, coa_phase [rad]."""

    hp: dict[str, torch.Tensor]
    hc: dict[str, torch.Tensor]
    params: dict[str, np.ndarray]
    peak_index: int

    @classmethod
    def build(cls, n_per_class: int, seed: int = 0, workers: int | None = None, progress: bool = True) -> "WaveformBank":
        from tqdm.auto import tqdm
        hp, hc, params, peak = {}, {}, {}, 0
        workers = workers or os.cpu_count() or 1
        with ProcessPoolExecutor(workers) as pool:
            for ci, kind in enumerate(SIGNAL_CLASSES):
                jobs = [(kind, int(s)) for s in np.random.SeedSequence([seed, ci]).generate_state(n_per_class)]
                res = list(tqdm(pool.map(_one_waveform, jobs, chunksize=8), total=n_per_class,
                                desc=f"waveforms {kind}", disable=not progress))
                hp[kind] = torch.from_numpy(np.stack([r[0] for r in res]))
                hc[kind] = torch.from_numpy(np.stack([r[1] for r in res]))
                params[kind] = np.array([[r[2][k] for k in ("mass1", "mass2", "inclination", "coa_phase")] for r in res])
                peak = res[0][3]
        return cls(hp, hc, params, peak)

    def to(self, device) -> "WaveformBank":
        return WaveformBank({k: v.to(device) for k, v in self.hp.items()}, {k: v.to(device) for k, v in self.hc.items()},
                            self.params, self.peak_index)

    def save(self, path) -> None:
        tmp = f"{path}.tmp"
        torch.save({"hp": self.hp, "hc": self.hc, "params": {k: torch.from_numpy(v) for k, v in self.params.items()},
                    "peak_index": self.peak_index}, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path) -> "WaveformBank":
        d = torch.load(path, weights_only=True)
        return cls(d["hp"], d["hc"], {k: v.numpy() for k, v in d["params"].items()}, int(d["peak_index"]))


class BatchMaker:
    """Draw labelled batches: x (n, 3, 16384) float32 whitened, y (n,) class index, snr (n,).

    Args:
        bank: waveforms on ``device``.
        real_strain: optional (D, N) real noise [strain] used for a fraction ``p_real`` of each
            batch, cut at independent random starts per detector (time slides) with random signs;
            ``real_range`` (lo, hi) limits the segment start sample (train/test split).
        segment_duration: raw segment per sample [s]; its whole length estimates the PSD.
    """

    def __init__(self, bank: WaveformBank, device="cpu", dtype=torch.float32, real_strain: np.ndarray | None = None,
                 real_range: tuple[int, int] | None = None, p_real: float = 0.0,
                 segment_duration: float = SEGMENT_DURATION, class_weights=None):
        self.bank, self.device, self.dtype = bank, torch.device(device), dtype
        self.n_seg = int(segment_duration * SAMPLE_RATE)
        f = SAMPLE_RATE / self.n_seg
        self.noise_psd = torch.as_tensor(np.stack([analytic_psd(d, f, self.n_seg // 2 + 1) for d in DETECTORS])
                                         * STRAIN_SCALE ** 2, dtype=dtype, device=self.device)
        self.snr_psd = torch.as_tensor(np.stack([analytic_psd(d, SAMPLE_RATE / WINDOW_SAMPLES, WINDOW_SAMPLES // 2 + 1)
                                                 for d in DETECTORS]) * STRAIN_SCALE ** 2, dtype=dtype, device=self.device)[None]
        self.p_real = p_real if real_strain is not None else 0.0
        if real_strain is not None:
            self.real = torch.as_tensor(real_strain * STRAIN_SCALE, dtype=dtype, device=self.device)
            lo, hi = real_range or (0, self.real.shape[-1] - self.n_seg)
            if hi < lo or hi + self.n_seg > self.real.shape[-1]:
                raise ValueError(f"real_range {real_range} does not fit {self.real.shape[-1]} samples")
            self.real_range = (lo, hi)
        self.class_p = torch.tensor(class_weights or [1.0] * len(CLASSES), dtype=torch.float64)

    def _real_noise(self, n: int, g: torch.Generator) -> torch.Tensor:
        lo, hi = self.real_range
        starts = torch.randint(lo, hi + 1, (n, len(DETECTORS)), generator=g, device=self.device)
        idx = starts[..., None] + torch.arange(self.n_seg, device=self.device)
        seg = torch.gather(self.real[None].expand(n, -1, -1), 2, idx)
        signs = torch.randint(0, 2, (n, len(DETECTORS), 1), generator=g, device=self.device) * 2 - 1
        return seg * signs

    def __call__(self, n: int, generator: torch.Generator, snr_range: tuple[float, float] = SNR_RANGE,
                 labels: torch.Tensor | None = None, real: bool | None = None):
        """One batch. ``real``: force all-real (True) or all-simulated (False) noise; None mixes by p_real."""
        g, dev, dt = generator, self.device, self.dtype
        if labels is None:
            labels = torch.multinomial(self.class_p, n, replacement=True, generator=torch.Generator().manual_seed(
                int(torch.randint(2**62, (1,), generator=g, device=dev).item())))
        labels = labels.to(dev)
        use_real = (real if real is not None else (torch.rand((), generator=g, device=dev).item() < self.p_real))
        noise = self._real_noise(n, g) if use_real else coloured_noise(self.noise_psd, self.n_seg, SAMPLE_RATE, g, n)
        # Pick a waveform for every row: its own class's bank for signals, any bank row for noise (scaled to 0).
        hp = torch.zeros(n, self.bank.hp[SIGNAL_CLASSES[0]].shape[-1], dtype=dt, device=dev)
        hc = torch.zeros_like(hp)
        for ci, kind in enumerate(CLASSES):
            rows = (labels == ci).nonzero().squeeze(1)
            if ci == 0 or rows.numel() == 0:
                continue
            k = torch.randint(0, self.bank.hp[kind].shape[0], (rows.numel(),), generator=g, device=dev)
            hp[rows], hc[rows] = self.bank.hp[kind][k].to(dt), self.bank.hc[kind][k].to(dt)
        u = lambda: torch.rand(n, generator=g, device=dev, dtype=torch.float64)  # noqa: E731
        ra, dec, psi, gm = 2 * math.pi * u(), torch.asin(2 * u() - 1), math.pi * u(), uniform_gmst(n, g, dev)
        fp, fc = antenna_patterns(ra, dec, psi, gm)
        delays = time_delays(ra, dec, gm)
        snr = (snr_range[0] + (snr_range[1] - snr_range[0]) * u()).to(dt)
        out = synthesize(noise, SAMPLE_RATE, hp, hc, self.bank.peak_index, fp.to(dt), fc.to(dt), delays.to(dt),
                         (MERGER_SPAN * u()).to(dt), snr, None if use_real else self.snr_psd, labels > 0,
                         white_signal=False)
        snr = torch.where(labels > 0, snr, torch.zeros_like(snr))
        return out.data.float(), labels, snr


def load_real(path: str) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """Real noise for BatchMaker from an .npz: ``strain`` (3, N) [strain] of H1, L1, V1 at 4096 Hz
    (``sample_rate`` checked if present) and optional ``train_range`` / ``val_range`` (lo, hi): the
    allowed first samples of 16-s segments. Without them the first 75 % of the strain trains and
    the rest validates, with no sample shared."""
    with np.load(path) as d:
        if "strain" not in d.files:
            raise ValueError(f"{path}: real_data needs an array 'strain' (3, N)")
        strain = d["strain"].astype(np.float64)
        if "sample_rate" in d.files and int(d["sample_rate"]) != SAMPLE_RATE:
            raise ValueError(f"{path}: strain must be at {SAMPLE_RATE} Hz, got {int(d['sample_rate'])}")
        ranges = [tuple(int(v) for v in d[k]) if k in d.files else None for k in ("train_range", "val_range")]
    if strain.ndim != 2 or strain.shape[0] != len(DETECTORS) or not np.isfinite(strain).all():
        raise ValueError(f"{path}: strain must be finite with shape ({len(DETECTORS)}, N), got {strain.shape}")
    n, n_seg = strain.shape[1], int(SEGMENT_DURATION * SAMPLE_RATE)
    cut = int(0.75 * n)
    tr = ranges[0] or (0, cut - n_seg)
    va = ranges[1] or (cut, n - n_seg)
    for name, (lo, hi) in (("train_range", tr), ("val_range", va)):
        if not 0 <= lo <= hi <= n - n_seg:
            raise ValueError(f"{path}: {name} ({lo}, {hi}) does not fit {n} samples with {n_seg}-sample segments "
                             f"(give train_range/val_range, or at least {4 * n_seg / SAMPLE_RATE:.0f} s of strain)")
    return strain, tr, va
