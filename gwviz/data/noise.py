"""Noise sources behind one interface: ``source.segment(duration, rng) -> NoiseSegment``.

1. :class:`SimulatedNoise` — Gaussian noise coloured by the O3 PSDs that lalsuite ships; the
   offline default, always labelled "simulated".
2. :class:`StrainFiles` — real strain from local files (GWOSC HDF5, gwpy-written HDF5, GWF),
   requiring H1, L1 and V1 over the chosen span, skipping NaN gaps and known events.
3. :class:`gwviz.data.gwosc.GwoscNoise` — real strain fetched from GWOSC with gwpy for a GPS span, cached on disk.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..constants import DETECTORS, EVENT_GUARD, KNOWN_EVENTS, SAMPLE_RATE, SEGMENT_DURATION, STRAIN_SCALE
from .params import O3_GPS_SPAN
from ..paths import DATA_ENV, files_within
from .psd import analytic_psd
from .checks import MAX_FLAT_RUN, UnknownDetectorError, check_detector, flat_runs
from .strain import STRAIN_SUFFIXES, Strain, read_strain, resample

#: Environment variable naming the directory of real strain files.
DATA_DIR_ENV = DATA_ENV  # one home: gwviz.paths


@dataclass
class NoiseSegment:
    """A stretch of noise from one source, all detectors on one time grid.

    Attributes
    ----------
    strain : (D, N) ndarray
        Strain [strain], not scaled by STRAIN_SCALE.
    sample_rate : int
        Sample rate [Hz].
    gps_start : float
        GPS time of the first sample [s].
    source : str
        Label of the noise source.
    simulated : bool
        True for simulated Gaussian noise.
    psd : callable or None, optional
        ``psd(delta_f, n_freq) -> (D, n_freq)``, the true one-sided PSD [1/Hz] on the grid k·delta_f [Hz], when
        it is known (simulated noise); None (default): the SNR uses a Welch estimate of this noise.
    """

    strain: np.ndarray
    sample_rate: int
    gps_start: float
    source: str
    simulated: bool
    psd: object | None = field(default=None, repr=False)  # callable (delta_f, n_freq) -> (D, n_freq)


def coloured_noise(psd: torch.Tensor, n: int, sample_rate: float, generator: torch.Generator | None = None,
                   batch: int = 1) -> torch.Tensor:
    """Stationary Gaussian noise of one-sided PSD ``psd``, shaped in the frequency domain.

    Circular, so the segment has no start-up transient.

    Parameters
    ----------
    psd : (D, n // 2 + 1) or (batch, D, n // 2 + 1) tensor
        One-sided PSD [1/Hz] (× STRAIN_SCALE² inside torch) on the grid k · sample_rate / n [Hz]: one per
        detector, or one per segment and detector.
    n : int
        Samples per segment.
    sample_rate : float
        Sample rate [Hz].
    generator : torch.Generator or None, optional
        Random source; default None (torch's global one).
    batch : int, optional
        Independent segments; default 1.

    Returns
    -------
    (batch, D, n) tensor
        Noise on the device and dtype of ``psd``.

    Raises
    ------
    ValueError
        Per-segment PSDs for another number of segments than ``batch``.
    """
    if psd.ndim == 3 and psd.shape[0] != batch:
        raise ValueError(f"per-segment PSDs {tuple(psd.shape)} for a batch of {batch}")
    white = torch.randn(batch, psd.shape[-2], n, generator=generator, dtype=psd.dtype, device=psd.device)
    amp = (psd * sample_rate / 2).sqrt()
    return torch.fft.irfft(torch.fft.rfft(white, dim=-1) * amp, n=n, dim=-1)


class SimulatedNoise:
    """Gaussian noise coloured by lalsimulation's O3 fits.

    H1/L1: aLIGOaLIGOO3LowT1800545, V1: AdVO3LowT1800545. Clearly simulated: ``simulated`` is True and the
    label says so.

    Parameters
    ----------
    detectors : tuple of str, optional
        Default ``DETECTORS``.
    sample_rate : int, optional
        Sample rate [Hz]; default ``SAMPLE_RATE`` (4096).
    """

    simulated = True

    def __init__(self, detectors: tuple[str, ...] = DETECTORS, sample_rate: int = SAMPLE_RATE):
        self.detectors, self.sample_rate = tuple(detectors), sample_rate
        self.name = "simulated Gaussian noise, O3 PSDs (lalsimulation T1800545)"

    def psd(self, delta_f: float, n_freq: int) -> np.ndarray:
        """True PSD (D, n_freq) [1/Hz] on the grid k·delta_f (``delta_f`` [Hz], k < ``n_freq``)."""
        return np.stack([analytic_psd(d, delta_f, n_freq) for d in self.detectors])

    def segment(self, duration: float = SEGMENT_DURATION, rng: np.random.Generator | None = None,
                gps_start: float | None = None) -> NoiseSegment:
        """A fresh noise segment of ``duration`` [s] (default 16), drawn with ``rng`` (default: unseeded).

        ``gps_start`` [s] is only a label (default: uniform in ``O3_GPS_SPAN``); the segment's ``psd`` is :meth:`psd`.
        """
        rng = rng or np.random.default_rng()
        n = int(round(duration * self.sample_rate))
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        # scaled inside torch: strain PSDs (~1e-47) underflow float32
        psd = torch.as_tensor(self.psd(self.sample_rate / n, n // 2 + 1) * STRAIN_SCALE ** 2)
        x = coloured_noise(psd, n, self.sample_rate, gen)[0].numpy() / STRAIN_SCALE
        if gps_start is None:
            gps_start = float(rng.uniform(*O3_GPS_SPAN))
        return NoiseSegment(x, self.sample_rate, gps_start, self.name, True, self.psd)


class StrainFiles:
    """Real strain from local files: every span where H1, L1 and V1 all have finite data.

    Flat stretches (zeros for a missing detector, a filled gap) count as gaps, like NaNs.

    Parameters
    ----------
    paths : path-like, list of path-like or None, optional
        Strain files, or a directory searched recursively for *.hdf5/*.h5/*.gwf (default: $GWVIZ_DATA_DIR).
    detectors : tuple of str, optional
        Detectors required, some of H1, L1, V1; default ``DETECTORS``. Files of the other detectors are
        skipped, K1 (KAGRA, which the network does not know) among them.
    exclude_gps : iterable of float or None, optional
        GPS times [s] that no window may contain (± ``EVENT_GUARD``); default :data:`KNOWN_EVENTS`.
    gps_range : (float, float) or None, optional
        Keep only windows whose 4 s lie inside [start, end) GPS [s] (train/test splits); default None.
    time_slides : bool, optional
        Draw each detector's segment independently (plus a random sign) to multiply the noise
        realisations of a short stretch; coincident (False, default) keeps real correlations.
    allow_resample : bool, optional
        Resample files that are not at ``sample_rate`` instead of raising; default False.
    sample_rate : int, optional
        Sample rate [Hz]; default ``SAMPLE_RATE`` (4096).

    Raises
    ------
    ValueError
        No paths and $GWVIZ_DATA_DIR unset; ``detectors`` naming one the network does not know (K1); a
        file at another sample rate without ``allow_resample``; a detector with no file, or with no
        stretch of finite, non-flat strain.
    """

    simulated = False

    def __init__(self, paths=None, detectors: tuple[str, ...] = DETECTORS, exclude_gps=None,
                 gps_range: tuple[float, float] | None = None, time_slides: bool = False,
                 allow_resample: bool = False, sample_rate: int = SAMPLE_RATE):
        detectors = tuple(check_detector(d, "detectors") for d in detectors)  # before any file is read
        if paths is None:
            paths = os.environ.get(DATA_DIR_ENV)
            if not paths:
                raise ValueError(f"no strain files given and ${DATA_DIR_ENV} is not set")
        if isinstance(paths, (str, os.PathLike)):
            p = Path(paths)
            paths = sorted(q for q in p.rglob("*") if q.suffix in (".hdf5", ".h5", ".gwf")) if p.is_dir() else [p]
        self.detectors, self.sample_rate = tuple(detectors), sample_rate
        self.exclude = list(KNOWN_EVENTS.values()) if exclude_gps is None else list(exclude_gps)
        self.gps_range, self.time_slides = gps_range, time_slides
        by_det: dict[str, list[Strain]] = {d: [] for d in self.detectors}
        paths = list(paths)  # an iterator would be used up before the error message counts it
        n_files = len(paths)
        for path in paths:
            try:
                s = read_strain(path)
            except UnknownDetectorError:  # a K1 file in the folder: not one of the network's detectors
                continue
            if s.detector not in by_det:
                continue
            if s.sample_rate != sample_rate:
                if not allow_resample:
                    raise ValueError(f"{path}: sample rate {s.sample_rate:g} Hz, expected {sample_rate} Hz "
                                     "(pass allow_resample=True to resample)")
                s = resample(s, sample_rate)
            by_det[s.detector].append(s)
        missing = [d for d, v in by_det.items() if not v]
        if missing:
            raise ValueError(f"no strain for {missing} among {n_files} files; all of {list(self.detectors)} are required")
        self.strain = by_det
        self.name = "real O3 strain: " + ", ".join(sorted({Path(s.path).name for v in by_det.values() for s in v}))
        # Usable spans once per file (a scan of the whole series): finite and not flat. A flat
        # stretch (zeros for a missing detector, a filled gap) is treated like a NaN gap, so no
        # segment holds it; a detector with no usable data at all is refused here, by name.
        self._runs = {d: [r for s in v for r in self._usable_runs(s)] for d, v in by_det.items()}
        for d, runs in self._runs.items():
            if not runs:
                files = ", ".join(s.path for s in by_det[d])
                flat = all(np.isfinite(s.data).any() and np.nanmin(s.data) == np.nanmax(s.data) for s in by_det[d])
                why = (f"detector {d} is flat (all samples equal): a missing detector cannot be padded with zeros"
                       if flat else f"{d} has no stretch of finite, non-constant strain")
                raise ValueError(f"{why} ({files}); all of {list(self.detectors)} need real strain over the same span")

    def _usable_runs(self, s: Strain) -> list[tuple[float, float]]:
        """GPS spans [s] of ``s`` that are finite and hold no flat run ≥ MAX_FLAT_RUN."""
        ok = np.isfinite(s.data)
        for a, b in flat_runs(s.data, max(2, int(MAX_FLAT_RUN * s.sample_rate))):
            ok[a:b] = False
        edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(np.int8), 0]))
        return [(s.t0 + a / s.sample_rate, s.t0 + b / s.sample_rate) for a, b in zip(edges[::2], edges[1::2])]

    def spans(self, detector: str | None = None) -> list[tuple[float, float]]:
        """GPS spans [s] with usable (finite, not flat) data in ``detector`` (None: in all at once)."""
        runs = self._runs
        if detector is not None:
            return runs[detector]
        out = runs[self.detectors[0]]
        for d in self.detectors[1:]:
            out = [(max(a, c), min(b, e)) for a, b in out for c, e in runs[d] if min(b, e) > max(a, c)]
        return out

    def _starts(self, spans, duration: float, window: tuple[float, float]) -> list[tuple[float, float]]:
        """Allowed GPS start intervals for a segment of ``duration`` whose window (offsets [s]) is clean."""
        out = []
        for a, b in spans:
            lo, hi = a, b - duration
            if self.gps_range is not None:
                lo, hi = max(lo, self.gps_range[0] - window[0]), min(hi, self.gps_range[1] - window[1])
            pieces = [(lo, hi)] if hi >= lo else []
            for t in self.exclude:  # window [s+w0, s+w1) must miss t ± guard
                bad = (t - EVENT_GUARD - window[1], t + EVENT_GUARD - window[0])
                pieces = [q for lo_, hi_ in pieces for q in ((lo_, min(hi_, bad[0])), (max(lo_, bad[1]), hi_)) if q[1] >= q[0]]
            out += pieces
        return out

    def _cut(self, detector: str, start: float, n: int) -> np.ndarray:
        for s in self.strain[detector]:
            i = int(round((start - s.t0) * s.sample_rate))
            if 0 <= i and i + n <= len(s.data):
                seg = s.data[i:i + n]
                if np.isfinite(seg).all() and not flat_runs(seg, max(2, int(MAX_FLAT_RUN * s.sample_rate))):
                    return seg.copy()
        raise ValueError(f"{detector}: no finite, non-flat data for GPS {start}+{n / self.sample_rate} s")

    def segment(self, duration: float = SEGMENT_DURATION, rng: np.random.Generator | None = None,
                window: tuple[float, float] | None = None) -> NoiseSegment:
        """A random segment of ``duration`` [s] (default 16), drawn with ``rng``, its model window clear of events.

        ``window`` = (start, end) offsets [s] of the model's window inside the segment (default: the 4 s ending 2 s
        before the end). The segment's ``gps_start`` is the first detector's (each has its own with ``time_slides``).
        ValueError when no span of ``duration`` has finite data in every detector, clear of known events and
        inside ``gps_range``.
        """
        from ..constants import WINDOW_DURATION, window_start_index
        rng = rng or np.random.default_rng()
        n = int(round(duration * self.sample_rate))
        if window is None:
            start = window_start_index(n, int(self.sample_rate)) / self.sample_rate
            window = (start, start + WINDOW_DURATION)

        def draw(spans) -> float:
            starts = self._starts(spans, duration, window)
            total = sum(b - a for a, b in starts)
            if not starts:
                raise ValueError(f"no {duration:g}-s span with finite {list(self.detectors)} data clear of known events "
                                 f"(spans: {spans}, range {self.gps_range})")
            u = rng.uniform(0, total) if total > 0 else 0.0
            for a, b in starts:
                if u <= b - a:
                    # (_cut rounds the start to the sample grid of the data)
                    return a + u
                u -= b - a
            return starts[-1][1]

        if self.time_slides:
            starts = [draw(self.spans(d)) for d in self.detectors]
            signs = rng.choice([-1.0, 1.0], size=len(self.detectors))
        else:
            starts = [draw(self.spans())] * len(self.detectors)
            signs = np.ones(len(self.detectors))
        data = np.stack([sg * self._cut(d, t, n) for d, t, sg in zip(self.detectors, starts, signs)])
        label = self.name + (" (time-slid, sign-flipped)" if self.time_slides else "")
        return NoiseSegment(data, self.sample_rate, float(starts[0]), label, False, None)


#: Kinds of :func:`noise_source`: one vocabulary for the dataset builder, the evaluations and the app.
NOISE_KINDS: tuple[str, ...] = ("simulated", "files", "gwosc")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The real-data directory (``~`` expanded): ``data_dir``, else $GWVIZ_DATA_DIR.

    ValueError, saying how to set it, when neither is set or the directory does not exist or is a file.
    """
    raw = str(data_dir) if data_dir else os.environ.get(DATA_DIR_ENV, "")
    if not raw:
        raise ValueError(f"no data directory: set ${DATA_DIR_ENV} (e.g. export {DATA_DIR_ENV}=/path/to/o3) "
                         "or pass data_dir")
    path = Path(raw).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"data directory {path} is a file, not a directory: give the folder that holds the strain "
                         f"files (set ${DATA_DIR_ENV} or pass data_dir)")
    if not path.is_dir():
        raise ValueError(f"data directory {path} does not exist (set ${DATA_DIR_ENV} or pass data_dir)")
    return path


def noise_source(kind: str = "simulated", *, data_dir: str | os.PathLike | None = None, files=None,
                 gps: float | None = None, gps_range: tuple[float, float] | None = None,
                 cache_dir: str | os.PathLike | None = None, seed: int | None = None):
    """The one factory of noise sources (``source.segment(duration, rng)``).

    Parameters
    ----------
    kind : {'simulated', 'files', 'gwosc'}, optional
        'simulated' (default): Gaussian noise coloured by the O3 PSDs (offline). 'files': real strain from
        ``files`` or from every strain file under ``data_dir`` (16-kHz files are resampled; files that
        would make gwpy unpickle are refused). 'gwosc': 64 s fetched from GWOSC with gwpy.
    data_dir : str, path-like or None, optional
        'files': default $GWVIZ_DATA_DIR; the walk is bounded and never follows a symlink out of it
        (:func:`gwviz.paths.files_within`).
    files : iterable of path-like or None, optional
        'files': the strain files, instead of ``data_dir``.
    gps : float or None, optional
        'gwosc': GPS start [s] (truncated to an int); default: a random O3a time drawn with ``seed``.
    gps_range : (float, float), optional
        'files': model windows only inside this GPS range [s] (e.g. a held-out stretch).
    cache_dir : str, path-like or None, optional
        'gwosc': default $GWVIZ_CACHE.
    seed : int or None, optional
        'gwosc': seed of the random start when ``gps`` is None.

    Returns
    -------
    SimulatedNoise, StrainFiles or GwoscNoise

    Raises
    ------
    ValueError
        Unknown kind, a non-finite ``gps``, no or unusable data, GWOSC unreachable (with what to do instead).
    """
    if kind == "simulated":
        return SimulatedNoise()
    if kind == "files":
        found = list(files) if files is not None else files_within(resolve_data_dir(data_dir), STRAIN_SUFFIXES)
        return StrainFiles(found, gps_range=gps_range, allow_resample=True)
    if kind == "gwosc":
        from .gwosc import GwoscNoise  # gwosc imports this module (StrainFiles)
        if gps is not None and not (isinstance(gps, (int, float, np.integer, np.floating)) and math.isfinite(gps)):
            raise ValueError(f"GWOSC noise needs a finite GPS start time [s], got {gps!r}")
        try:
            if gps is None:
                return GwoscNoise(seed=seed, cache_dir=cache_dir)
            return GwoscNoise(gps_start=float(int(gps)), chunk=64.0, cache_dir=cache_dir)
        except ValueError as err:
            raise ValueError(f"{err} — GWOSC needs internet access; offline, use simulated noise or local "
                             "files") from err
    raise ValueError(f"noise must be one of {NOISE_KINDS}, got {kind!r}")
