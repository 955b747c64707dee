"""Noise sources behind one interface: ``source.segment(duration, rng) -> NoiseSegment``.

1. :class:`SimulatedNoise` — Gaussian noise coloured by the O3 PSDs that lalsuite ships; the
   offline default, always labelled "simulated".
2. :class:`StrainFiles` — real strain from local files (GWOSC HDF5, gwpy-written HDF5, GWF),
   requiring H1, L1 and V1 over the chosen span, skipping NaN gaps and known events.
3. :class:`GwoscNoise` — real strain fetched from GWOSC with gwpy for a GPS span, cached on disk.
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
from ..paths import CACHE_ENV, DATA_ENV, files_within
from ..paths import root as paths_root
from .psd import analytic_psd
from .strain import MAX_FLAT_RUN, STRAIN_SUFFIXES, Strain, flat_runs, read_strain, resample

#: Environment variable naming the directory of real strain files.
DATA_DIR_ENV = DATA_ENV  # one home: gwviz.paths


@dataclass
class NoiseSegment:
    """Strain (D, N) [strain] at ``sample_rate`` [Hz] starting at GPS ``gps_start`` [s].

    ``psd`` gives the true one-sided PSD [1/Hz] on a requested grid when it is known (simulated
    noise); otherwise None and the SNR uses a Welch estimate of this noise."""

    strain: np.ndarray
    sample_rate: int
    gps_start: float
    source: str
    simulated: bool
    psd: object | None = field(default=None, repr=False)  # callable (delta_f, n_freq) -> (D, n_freq)


def coloured_noise(psd: torch.Tensor, n: int, sample_rate: float, generator: torch.Generator | None = None,
                   batch: int = 1) -> torch.Tensor:
    """Stationary Gaussian noise of one-sided PSD ``psd`` (D, n // 2 + 1) [1/Hz]: returns (batch, D, n).

    White noise shaped in the frequency domain (circular, so the segment has no start-up transient)."""
    white = torch.randn(batch, psd.shape[0], n, generator=generator, dtype=psd.dtype, device=psd.device)
    amp = (psd * sample_rate / 2).sqrt()
    return torch.fft.irfft(torch.fft.rfft(white, dim=-1) * amp, n=n, dim=-1)


class SimulatedNoise:
    """Gaussian noise coloured by lalsimulation's O3 fits (H1/L1: aLIGOaLIGOO3LowT1800545, V1:
    AdVO3LowT1800545). Clearly simulated: ``simulated`` is True and the label says so."""

    simulated = True

    def __init__(self, detectors: tuple[str, ...] = DETECTORS, sample_rate: int = SAMPLE_RATE):
        self.detectors, self.sample_rate = tuple(detectors), sample_rate
        self.name = "simulated Gaussian noise, O3 PSDs (lalsimulation T1800545)"

    def psd(self, delta_f: float, n_freq: int) -> np.ndarray:
        """True PSD (D, n_freq) [1/Hz] on the grid k·delta_f [Hz]."""
        return np.stack([analytic_psd(d, delta_f, n_freq) for d in self.detectors])

    def segment(self, duration: float = SEGMENT_DURATION, rng: np.random.Generator | None = None,
                gps_start: float | None = None) -> NoiseSegment:
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

    Args:
        paths: strain files, or a directory searched recursively for *.hdf5/*.h5/*.gwf
            (default: $GWVIZ_DATA_DIR).
        exclude_gps: GPS times [s] that no window may contain (default: :data:`KNOWN_EVENTS`).
        gps_range: keep only windows whose 4 s lie inside [start, end) GPS [s] (train/test splits).
        time_slides: draw each detector's segment independently (plus a random sign) to multiply
            the noise realisations of a short stretch; coincident (False) keeps real correlations.
        allow_resample: resample files that are not at 4096 Hz instead of raising.
    """

    simulated = False

    def __init__(self, paths=None, detectors: tuple[str, ...] = DETECTORS, exclude_gps=None,
                 gps_range: tuple[float, float] | None = None, time_slides: bool = False,
                 allow_resample: bool = False, sample_rate: int = SAMPLE_RATE):
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
        for path in paths:
            s = read_strain(path)
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
            raise ValueError(f"no strain for {missing} among {len(list(paths))} files; all of {list(self.detectors)} are required")
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
        """A random segment of ``duration`` [s]; ``window`` = (start, end) offsets [s] of the model's
        window inside it (default: the 4 s ending 2 s before the end), which must avoid known events."""
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


class GwoscNoise(StrainFiles):
    """Real O3 strain fetched from GWOSC with gwpy and cached as HDF5 under ``cache_dir``.

    Downloads ``chunk`` seconds of H1, L1 and V1 at a random start inside ``gps_span`` (default:
    the paper's 1238163456–1239879680) unless they are cached; a second run reads the cache."""

    def __init__(self, gps_span: tuple[float, float] = O3_GPS_SPAN, chunk: float = 64.0, cache_dir=None,
                 seed: int | None = None, gps_start: float | None = None, **kwargs):
        from tqdm.auto import tqdm
        if gps_start is None:
            rng = np.random.default_rng(seed)
            gps_start = float(math.floor(rng.uniform(gps_span[0], gps_span[1] - chunk)))
        paths = [cached_open_strain(det, gps_start, chunk, cache_dir)
                 for det in tqdm(DETECTORS, desc=f"GWOSC {int(gps_start)}+{chunk:g}s", unit="det")]
        super().__init__(paths, **kwargs)
        self.name = f"real O3 strain from GWOSC, GPS {int(gps_start)}+{chunk:g} s (cached in {paths[0].parent})"


def cached_open_strain(detector: str, start: float, duration: float, cache_dir=None) -> Path:
    """``<cache>/<det>-<start>-<duration>.hdf5`` of GWOSC open strain [start, start + duration) GPS [s],
    fetched with :func:`fetch_to_cache` unless it is there already; ``cache_dir`` defaults to $GWVIZ_CACHE.
    ValueError (from the fetch) when it cannot be had."""
    cache = Path(cache_dir) if cache_dir else paths_root(CACHE_ENV)  # $GWVIZ_CACHE or its default
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{detector}-{int(start)}-{int(duration)}.hdf5"
    if not path.exists():
        fetch_to_cache(detector, start, start + duration, path)
    return path


def fetch_to_cache(detector: str, start: float, end: float, path: Path) -> None:
    """Download open strain with gwpy and write it atomically to ``path`` (gwpy HDF5 layout)."""
    from gwpy.timeseries import TimeSeries
    try:
        ts = TimeSeries.fetch_open_data(detector, start, end, sample_rate=SAMPLE_RATE)
    except Exception as err:  # noqa: BLE001 - network errors come in many types
        raise ValueError(f"could not fetch {detector} GPS {start}-{end} from GWOSC: {err}") from err
    tmp = path.with_suffix(".tmp.hdf5")
    ts.name = f"{detector}:GWOSC-4KHZ_R1_STRAIN"
    ts.write(str(tmp), format="hdf5", overwrite=True)
    os.replace(tmp, path)


def fetch_event_strain(event: str | float, duration: float = 32.0, detectors: tuple[str, ...] = DETECTORS,
                       cache_dir: str | os.PathLike | None = None) -> tuple[list[Path], dict[str, str]]:
    """GWOSC open strain (4096 Hz) of ``duration`` s centred on a known event (a name in
    :data:`KNOWN_EVENTS`) or a GPS time [s], fetched with gwpy and cached as HDF5 under ``cache_dir``
    ($GWVIZ_CACHE by default); a second call reads the cache. Returns (paths of the detectors
    fetched, {detector: why not} for those that failed, e.g. not observing). ValueError for an
    unknown event, a bad duration, or when no detector could be fetched."""
    if isinstance(event, str) and event in KNOWN_EVENTS:
        gps = KNOWN_EVENTS[event]
    else:
        try:
            gps = float(event)
        except (TypeError, ValueError):
            raise ValueError(f"event must be one of {sorted(KNOWN_EVENTS)} or a GPS time, got {event!r}") from None
    if not (math.isfinite(gps) and 6e8 < gps < 2e9):
        raise ValueError(f"GPS time {gps!r} is outside the LIGO/Virgo era")
    if not (isinstance(duration, (int, float)) and math.isfinite(duration) and SEGMENT_DURATION <= duration <= 4096):
        raise ValueError(f"duration must be {SEGMENT_DURATION:g} to 4096 s, got {duration!r}")
    start = int(math.floor(gps - duration / 2))
    paths, failed = [], {}
    for det in detectors:
        try:
            paths.append(cached_open_strain(det, start, int(duration), cache_dir))
        except ValueError as err:
            failed[det] = str(err)
    if not paths:
        raise ValueError(f"no detector could be fetched for GPS {start}+{int(duration)} s: " + "; ".join(failed.values()))
    return paths, failed


#: Kinds of :func:`noise_source`: one vocabulary for the dataset builder, the evaluations and the app.
NOISE_KINDS: tuple[str, ...] = ("simulated", "files", "gwosc")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The real-data directory: ``data_dir``, else $GWVIZ_DATA_DIR. Raises ValueError saying how to set it."""
    raw = str(data_dir) if data_dir else os.environ.get(DATA_DIR_ENV, "")
    if not raw:
        raise ValueError(f"no data directory: set ${DATA_DIR_ENV} (e.g. export {DATA_DIR_ENV}=/path/to/o3) "
                         "or pass data_dir")
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise ValueError(f"data directory {path} does not exist (set ${DATA_DIR_ENV} or pass data_dir)")
    return path


def noise_source(kind: str = "simulated", *, data_dir: str | os.PathLike | None = None, files=None,
                 gps: float | None = None, gps_range: tuple[float, float] | None = None,
                 cache_dir: str | os.PathLike | None = None, seed: int | None = None):
    """The one factory of noise sources (``source.segment(duration, rng)``).

    Parameters
    ----------
    kind : {'simulated', 'files', 'gwosc'}
        'simulated': Gaussian noise coloured by the O3 PSDs (offline). 'files': real strain from
        ``files`` or from every strain file under ``data_dir`` (default $GWVIZ_DATA_DIR; the walk is
        bounded and never follows a symlink out of it, :func:`gwviz.paths.files_within`; 16-kHz files
        are resampled; files that would make gwpy unpickle are refused). 'gwosc': 64 s fetched from
        GWOSC with gwpy at GPS ``gps`` [s] (default: a random O3a time drawn with ``seed``), cached in
        ``cache_dir`` (default $GWVIZ_CACHE).
    gps_range : (float, float), optional
        'files' only: model windows only inside this GPS range [s] (e.g. a held-out stretch).

    Raises
    ------
    ValueError
        Unknown kind, no or unusable data, GWOSC unreachable (with what to do instead).
    """
    if kind == "simulated":
        return SimulatedNoise()
    if kind == "files":
        found = list(files) if files is not None else files_within(resolve_data_dir(data_dir), STRAIN_SUFFIXES)
        return StrainFiles(found, gps_range=gps_range, allow_resample=True)
    if kind == "gwosc":
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
