"""Batches of training samples made on the fly on any torch device, through :func:`synthesize`.

Waveforms are the expensive part on the CPU and the cheap part to reuse: a
:class:`gwviz.data.bank.WaveformBank` holds polarisations of many intrinsic draws (masses, inclination,
coalescence phase); every batch then draws fresh sky positions, polarisation angles, merger times, SNRs
and noise, so no two samples repeat. No dataset on disk.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..constants import (CLASSES, DETECTORS, MERGER_SPAN, SAMPLE_RATE, SEGMENT_DURATION, SUBSETS, WINDOW_SAMPLES,
                        subset_detectors)
from .detectors import antenna_patterns, time_delays, uniform_gmst
from .noise import coloured_noise
from .checks import check_channel
from .params import SIGNAL_CLASSES, SNR_RANGE
from .psd import analytic_psd, check_psd_jitter, interpolate_psd, psd_tilts, welch_psd
from ..constants import STRAIN_SCALE
from .bank import WaveformBank
from .synth import Injection, synthesize


def subset_probabilities(detector_dropout: float) -> torch.Tensor:
    """(len(SUBSETS),) float32 probabilities of each detector network for a training sample.

    All three with 1 − ``detector_dropout``; the rest goes two thirds to the three pairs and one third to
    the three single detectors (a pair was the common O3 case when one detector was off). ValueError
    unless ``detector_dropout`` is in [0, 1].
    """
    p = float(detector_dropout)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"detector_dropout must be in [0, 1], got {detector_dropout!r}")
    n_det = [len(subset_detectors(s)) for s in SUBSETS]
    return torch.tensor([1 - p if k == 3 else (2 * p / 9 if k == 2 else p / 9) for k in n_det], dtype=torch.float32)


class BatchMaker:
    """Draw labelled batches: x (n, 3, 16384) float32 whitened, y (n,) class index, snr (n,).

    A call makes no host-device synchronisation (labels, waveform rows and noise kinds are all drawn
    on the device), so the trainer can make the next batch on a side CUDA stream while the model
    trains on this one.

    Parameters
    ----------
    bank : WaveformBank
        Waveforms (copied to ``device``); all classes of one shape.
    device, dtype : optional
        Device (default 'cpu') and precision (default torch.float32) of the synthesis; batches are float32.
    real_strain : (D, N) ndarray or None, optional
        Real noise [strain] (e.g. from :func:`load_real`). A fraction ``p_real`` of the rows of every
        batch is in real noise (mixed within the batch, so BatchNorm statistics never depend on which
        kind of batch came last), cut at independent random
        starts per detector (time slides) with random signs. Default None: simulated noise only.
    real_range : (int, int) or None, optional
        (lo, hi): limits of the segment start sample in ``real_strain`` (train/test split). Default: all.
    p_real : float, optional
        Fraction of rows in real noise (round(p_real · n) of each batch); default 0 (and 0 without
        ``real_strain``).
    segment_duration : float, optional
        Raw segment per sample [s]; its whole length estimates the PSD. Default 16.
    class_weights : sequence of float or None, optional
        Relative frequency of each class of ``CLASSES``; default None (uniform).
    detector_dropout : float, optional
        Probability that a sample is observed by fewer than three detectors (:func:`subset_probabilities`);
        the absent detectors' channels are zero and the network SNR counts the present ones only. For
        training a ``detector_mask`` network. Default 0.
    subset : str or None, optional
        Every sample observed by this network (e.g. "H1L1"), for evaluating one subset; excludes
        ``detector_dropout``. Default None.
    psd_jitter : float, optional
        σ of random smooth reshapes of the simulated noise's PSD, per row and detector: the O3 fit times
        exp(Σ c_j P_j(log f)), c_j ~ N(0, σ²), j = 1..3 (:func:`gwviz.data.psd.psd_tilts`; σ = 0.5 tilts it
        by ~e^±0.5 at the band's ends). The SNR reference of those rows is their own PSD. For training that
        does not learn one PSD shape; default 0 (the O3 fits, and the random stream of before).

    Raises
    ------
    ValueError
        Both ``detector_dropout`` and ``subset``; ``detector_dropout`` outside [0, 1]; an unknown subset; a
        ``real_range`` that does not fit; bank classes of different shapes; ``psd_jitter`` not in [0, 2].
    """

    def __init__(self, bank: WaveformBank, device="cpu", dtype=torch.float32, real_strain: np.ndarray | None = None,
                 real_range: tuple[int, int] | None = None, p_real: float = 0.0,
                 segment_duration: float = SEGMENT_DURATION, class_weights=None, detector_dropout: float = 0.0,
                 subset: str | None = None, psd_jitter: float = 0.0):
        self.psd_jitter = check_psd_jitter(psd_jitter)
        self.bank, self.device, self.dtype = bank, torch.device(device), dtype
        if subset is not None and detector_dropout:
            raise ValueError("give detector_dropout (random networks) or subset (one network), not both")
        probs = subset_probabilities(detector_dropout)
        if subset is not None:
            subset_detectors(subset)  # ValueError for an unknown name
            probs = torch.tensor([float(s == subset) for s in SUBSETS])
        self._some_absent = bool(probs[0] < 1)  # decided on the host: no device sync per batch
        self.subset_p = probs.to(self.device)
        self.subset_table = torch.tensor([[d in subset_detectors(s) for d in DETECTORS] for s in SUBSETS],
                                         device=self.device)  # (7, 3) bool
        self.n_seg = int(segment_duration * SAMPLE_RATE)
        f = SAMPLE_RATE / self.n_seg
        self.noise_psd = torch.as_tensor(np.stack([analytic_psd(d, f, self.n_seg // 2 + 1) for d in DETECTORS])
                                         * STRAIN_SCALE ** 2, dtype=dtype, device=self.device)
        self.snr_psd = torch.as_tensor(np.stack([analytic_psd(d, SAMPLE_RATE / WINDOW_SAMPLES, WINDOW_SAMPLES // 2 + 1)
                                                 for d in DETECTORS]) * STRAIN_SCALE ** 2, dtype=dtype, device=self.device)[None]
        # the shapes psd_jitter draws from, on the noise (16-s) and the SNR (4-s) frequency grids
        self._tilts = [psd_tilts(torch.arange(m, dtype=dtype) * (SAMPLE_RATE / k)).to(self.device)
                       for m, k in ((self.n_seg // 2 + 1, self.n_seg), (WINDOW_SAMPLES // 2 + 1, WINDOW_SAMPLES))
                       ] if self.psd_jitter else None
        self.p_real = float(p_real) if real_strain is not None else 0.0
        if real_strain is not None:
            self.real = torch.as_tensor(real_strain * STRAIN_SCALE, dtype=dtype, device=self.device)
            lo, hi = real_range or (0, self.real.shape[-1] - self.n_seg)
            if hi < lo or hi + self.n_seg > self.real.shape[-1]:
                raise ValueError(f"real_range {real_range} does not fit {self.real.shape[-1]} samples")
            self.real_range = (lo, hi)
        self.class_p = torch.tensor(class_weights or [1.0] * len(CLASSES), dtype=torch.float32, device=self.device)
        # One (3, K, L) tensor per polarisation, so a row's waveform is one gather by (class, index)
        # with no per-class boolean masks (those need the row count on the host: a synchronisation).
        sizes = {tuple(bank.hp[k].shape) for k in SIGNAL_CLASSES}
        if len(sizes) != 1:
            raise ValueError(f"waveform bank classes differ in shape {sorted(sizes)}; build them with one size")
        self._hp = torch.stack([bank.hp[k] for k in SIGNAL_CLASSES]).to(self.device)
        self._hc = torch.stack([bank.hc[k] for k in SIGNAL_CLASSES]).to(self.device)
        # (3, K, 4) mass1, mass2 [M☉], inclination, coa_phase [rad] of the same rows, for metadata
        self._params = np.stack([np.asarray(bank.params[k], dtype=np.float64) for k in SIGNAL_CLASSES])

    def _simulated_noise(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, D, n_seg) simulated noise and the (n or 1, D, 16384 // 2 + 1) PSD of its SNR reference."""
        if not self.psd_jitter:
            return coloured_noise(self.noise_psd, self.n_seg, SAMPLE_RATE, g, n), self.snr_psd
        c = self.psd_jitter * torch.randn(n, len(DETECTORS), self._tilts[0].shape[0], generator=g,
                                          device=self.device, dtype=self.dtype)
        psd = self.noise_psd * torch.exp(c @ self._tilts[0])
        return coloured_noise(psd, self.n_seg, SAMPLE_RATE, g, n), self.snr_psd * torch.exp(c @ self._tilts[1])

    def _real_noise(self, n: int, g: torch.Generator) -> torch.Tensor:
        """(n, D, n_seg) real strain: each detector cut at its own random start, random sign."""
        lo, hi = self.real_range
        starts = torch.randint(lo, hi + 1, (n, len(DETECTORS)), generator=g, device=self.device)
        windows = self.real.unfold(-1, self.n_seg, 1)  # (D, N - n_seg + 1, n_seg), a view
        seg = windows[torch.arange(len(DETECTORS), device=self.device), starts]  # (n, D, n_seg)
        signs = torch.randint(0, 2, (n, len(DETECTORS), 1), generator=g, device=self.device) * 2 - 1
        return seg * signs

    def __call__(self, n: int, generator: torch.Generator, snr_range: tuple[float, float] = SNR_RANGE,
                 labels: torch.Tensor | None = None, real: bool | torch.Tensor | None = None, meta: bool = False):
        """One batch of ``n`` rows drawn with ``generator`` (on ``device``).

        Parameters
        ----------
        snr_range : (float, float), optional
            Network optimal SNR of signal rows, uniform; default ``SNR_RANGE`` (8, 24).
        labels : (n,) int tensor or None, optional
            Class of each row; default None: drawn with ``class_weights``.
        real : bool, (n,) bool tensor or None, optional
            True all-real, False all-simulated, a tensor row by row, None (default): the first
            round(``p_real`` · n) rows real and the rest simulated (rows are exchangeable: their labels
            and parameters are drawn independently of the row), so every batch mixes both kinds in a
            fixed proportion and only the real rows pay for real noise and its PSD estimate.
            ValueError if real rows are asked for without ``real_strain``.
        meta : bool, optional
            Also return a dict of (n,) float64 arrays describing every row (:meth:`_meta`; a host
            synchronisation, for the dataset builder). Default False.

        Returns
        -------
        x, y, snr[, meta]
            (n, 3, 16384) float32 whitened windows, (n,) class indices, (n,) target network SNR (0 for noise).
        """
        g, dev, dt = generator, self.device, self.dtype
        if labels is None:
            labels = torch.multinomial(self.class_p, n, replacement=True, generator=g)
        labels = labels.to(dev)
        if not hasattr(self, "real") and (isinstance(real, torch.Tensor) or (real is not None and bool(real))):
            raise ValueError("real noise asked for, but this BatchMaker was made without real_strain")
        # The trainer's mix (real=None) makes only what each row uses: real noise for the first n_real
        # rows, simulated for the rest (with 20 % real rows the PSD estimates of all rows were 28 % of
        # the data time on the H200, bench/profile_data.py). The explicit forms keep their random
        # stream, so the evaluations' fixed sets (seeded) stay the same samples.
        n_real = round(self.p_real * n) if real is None else None
        if n_real is not None:
            # drawn and unused: the per-row coin of the old mix, kept so that simulated-only makers
            # (evaluations, dataset builder, seeded) still make exactly the samples they made before
            torch.rand(n, generator=g, device=dev)
            parts = [self._real_noise(n_real, g)] if n_real else []
            sim_psd = self.snr_psd
            if n_real < n:
                sim, sim_psd = self._simulated_noise(n - n_real, g)
                parts.append(sim)
            noise = torch.cat(parts) if len(parts) > 1 else parts[0]
        else:
            is_real = real.to(dev, torch.bool) if isinstance(real, torch.Tensor) else \
                torch.full((n,), bool(real), device=dev)
            noise, sim_psd = self._simulated_noise(n, g)
            if hasattr(self, "real"):
                noise = torch.where(is_real[:, None, None], self._real_noise(n, g), noise)
        # A waveform for every row from its own class's bank; noise rows take any (scaled to 0 below).
        k = torch.randint(0, self._hp.shape[1], (n,), generator=g, device=dev)
        cls = (labels - 1).clamp_min(0)
        hp, hc = self._hp[cls, k].to(dt), self._hc[cls, k].to(dt)
        u = lambda: torch.rand(n, generator=g, device=dev, dtype=torch.float64)  # noqa: E731
        ra, dec, psi, gm = 2 * math.pi * u(), torch.asin(2 * u() - 1), math.pi * u(), uniform_gmst(n, g, dev)
        fp, fc = antenna_patterns(ra, dec, psi, gm)
        delays = time_delays(ra, dec, gm)
        snr = (snr_range[0] + (snr_range[1] - snr_range[0]) * u()).to(dt)
        # SNR reference PSD: the true one for simulated rows, a Welch estimate of the noise for real rows
        snr_psd = sim_psd
        if n_real:
            est = interpolate_psd(welch_psd(noise[:n_real], SAMPLE_RATE), WINDOW_SAMPLES // 2 + 1)
            snr_psd = torch.cat([est, sim_psd.expand(n - n_real, -1, -1)])
        elif n_real is None and hasattr(self, "real"):
            est = interpolate_psd(welch_psd(noise, SAMPLE_RATE), WINDOW_SAMPLES // 2 + 1)
            snr_psd = torch.where(is_real[:, None, None], est, sim_psd)
        present = None
        if self._some_absent:
            present = self.subset_table[torch.multinomial(self.subset_p, n, replacement=True, generator=g)]
        inj = Injection(hp=hp, hc=hc, peak_index=self.bank.peak_index, fp=fp.to(dt), fc=fc.to(dt), delays=delays.to(dt),
                        merger_offset=(MERGER_SPAN * u()).to(dt), snr=snr, snr_psd=snr_psd, is_signal=labels > 0)
        out = synthesize(noise, SAMPLE_RATE, inj, white_signal=False, present=present)
        snr = torch.where(labels > 0, snr, torch.zeros_like(snr))
        if meta:
            return out.data.float(), labels, snr, self._meta(labels, cls, k, ra, dec, psi, gm, inj, out.snr)
        return out.data.float(), labels, snr

    def _meta(self, labels, cls, k, ra, dec, psi, gm, inj: Injection, snr_det: torch.Tensor) -> dict[str, np.ndarray]:
        """Per-row metadata in the dataset's columns (masses [M☉], angles [rad], SNRs, merger samples in
        the window; NaN where a column does not apply, e.g. a noise row's masses). ``gps`` is NaN: a
        simulated batch has a sidereal time (``gmst`` [rad]) but no GPS time."""
        is_sig = (labels > 0).cpu().numpy()
        p = self._params[cls.cpu().numpy(), k.cpu().numpy()]  # (n, 4): mass1, mass2, inclination, coa_phase
        sig = lambda v: np.where(is_sig, np.asarray(v, dtype=np.float64), np.nan)  # noqa: E731
        rho = snr_det.double().cpu().numpy()
        offset = inj.merger_offset.double().cpu().numpy()
        merger = WINDOW_SAMPLES - offset * SAMPLE_RATE
        delays = inj.delays.double().cpu().numpy()
        m1, m2 = p[:, 0], p[:, 1]
        out = {"mass1": sig(m1), "mass2": sig(m2), "chirp_mass": sig((m1 * m2) ** 0.6 / (m1 + m2) ** 0.2),
               "snr": sig(inj.snr.double().cpu().numpy()), "snr_network": sig(np.sqrt((rho ** 2).sum(1))),
               **{f"snr_{d}": sig(rho[:, i]) for i, d in enumerate(DETECTORS)},
               "ra": sig(ra.cpu().numpy()), "dec": sig(dec.cpu().numpy()), "polarization": sig(psi.cpu().numpy()),
               "inclination": sig(p[:, 2]), "coa_phase": sig(p[:, 3]), "gmst": gm.double().cpu().numpy(),
               "gps": np.full(len(is_sig), np.nan), "gps_window_start": np.full(len(is_sig), np.nan),
               "merger_offset": sig(offset), "merger_index": sig(np.round(merger)),
               **{f"merger_index_{d}": sig(np.round(merger + delays[:, i] * SAMPLE_RATE)) for i, d in enumerate(DETECTORS)}}
        return out


def load_real(path: str) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """Real noise for BatchMaker from an .npz, with its training and validation ranges.

    The file at ``path`` holds ``strain`` (3, N) [strain] of H1, L1, V1 at 4096 Hz (``sample_rate`` [Hz]
    checked if present) and optional ``train_range`` / ``val_range`` (lo, hi): the
    allowed first samples of 16-s segments. Without them the first 75 % of the strain trains and
    the rest validates, with no sample shared.

    Returns
    -------
    strain : (3, N) float64 ndarray
    train_range, val_range : (int, int)

    Raises
    ------
    ValueError
        A missing file, a directory or a file that is not an .npz archive, no ``strain``, a dtype that
        loses strain (integer, float16, ...), another sample rate or shape, a channel with NaN/inf or flat
        (zero-padded) data, a range that does not fit.
    """
    if not Path(path).is_file():
        raise ValueError(f"{path}: " + ("a directory, not an" if Path(path).is_dir() else "no such") + " .npz file")
    try:
        d = np.load(path)  # allow_pickle stays False: no pickle code runs
    except Exception as err:  # noqa: BLE001 - zip, pickle and OS errors come in many types
        raise ValueError(f"{path}: not a readable .npz archive ({type(err).__name__}: {err})") from err
    if not isinstance(d, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: a single .npy array, not an .npz archive with 'strain' (3, N)")
    with d:
        if "strain" not in d.files:
            raise ValueError(f"{path}: real_data needs an array 'strain' (3, N)")
        strain = d["strain"]
        if strain.dtype.kind != "f" or strain.dtype.itemsize < 4:  # an integer cast truncated ~1e-21 to 0
            raise ValueError(f"{path}: 'strain' has dtype {strain.dtype}; real noise must be float32 or float64 "
                             "strain [dimensionless]")
        strain = strain.astype(np.float64)
        if "sample_rate" in d.files and int(d["sample_rate"]) != SAMPLE_RATE:
            raise ValueError(f"{path}: strain must be at {SAMPLE_RATE} Hz, got {int(d['sample_rate'])}")
        ranges = [tuple(int(v) for v in d[k]) if k in d.files else None for k in ("train_range", "val_range")]
    if strain.ndim != 2 or strain.shape[0] != len(DETECTORS):
        raise ValueError(f"{path}: strain must have shape ({len(DETECTORS)}, N), got {strain.shape}")
    for det, row in zip(DETECTORS, strain):  # NaN/inf, a zero-padded or flat detector: never train on it
        check_channel(f"{path}: {det}", row, SAMPLE_RATE)
    n, n_seg = strain.shape[1], int(SEGMENT_DURATION * SAMPLE_RATE)
    cut = int(0.75 * n)
    tr = ranges[0] or (0, cut - n_seg)
    va = ranges[1] or (cut, n - n_seg)
    for name, (lo, hi) in (("train_range", tr), ("val_range", va)):
        if not 0 <= lo <= hi <= n - n_seg:
            raise ValueError(f"{path}: {name} ({lo}, {hi}) does not fit {n} samples with {n_seg}-sample segments "
                             f"(give train_range/val_range, or at least {4 * n_seg / SAMPLE_RATE:.0f} s of strain)")
    return strain, tr, va
