"""Real strain from GWOSC (needs the internet; everything is cached, so a second run reads the disk).

:func:`cached_open_strain` (one detector, one GPS span, one HDF5 file under $GWVIZ_CACHE),
:func:`fetch_event_strain` (the strain around an event, for the scan and the app) and
:class:`GwoscNoise` (a noise source of fetched strain, :func:`gwviz.data.noise.noise_source` "gwosc").
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..constants import DETECTORS, KNOWN_EVENTS, SAMPLE_RATE, SEGMENT_DURATION
from ..paths import CACHE_ENV
from ..paths import root as paths_root
from .noise import StrainFiles
from .params import O3_GPS_SPAN, is_real_number
from .checks import check_detector


class GwoscNoise(StrainFiles):
    """Real O3 strain fetched from GWOSC with gwpy and cached as HDF5 under ``cache_dir``.

    Downloads H1, L1 and V1 unless they are cached; a second run reads the cache.

    Parameters
    ----------
    gps_span : (float, float), optional
        GPS span [s] the random start is drawn in. Default: the paper's 1238163456–1239879680.
    chunk : float, optional
        Seconds fetched per detector [s]. Default 64.
    cache_dir : str or os.PathLike, optional
        Default $GWVIZ_CACHE.
    seed : int, optional
        Seed of the random start. Default None.
    gps_start : float, optional
        GPS start [s]; default None: a random start drawn with ``seed`` inside ``gps_span``.
    **kwargs
        Go to :class:`StrainFiles`.

    Raises
    ------
    ValueError
        When a detector cannot be fetched.
    """

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
    """GWOSC open strain [start, start + duration) GPS [s] of ``detector``, cached as one HDF5 file.

    The file, ``<cache>/<det>-<start>-<duration>.hdf5`` (GPS to 0.1 ms, no trailing zeros), is fetched
    with :func:`fetch_to_cache` unless it is there already.

    Parameters
    ----------
    detector : str
        H1, L1 or V1 (K1 is refused: the network does not know it).
    start, duration : float
        GPS start and length [s].
    cache_dir : str or os.PathLike, optional
        Default $GWVIZ_CACHE (created if needed).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        A detector other than H1, L1, V1; from the fetch, when the strain cannot be had.
    """
    check_detector(detector)
    cache = Path(cache_dir) if cache_dir else paths_root(CACHE_ENV)  # $GWVIZ_CACHE or its default
    cache.mkdir(parents=True, exist_ok=True)
    # the exact span in the name: int(start) let two fractional starts share one file
    name = lambda v: f"{float(v):.4f}".rstrip("0").rstrip(".")  # noqa: E731 - 1242442951.0 -> "1242442951"
    path = cache / f"{detector}-{name(start)}-{name(duration)}.hdf5"
    if not path.exists():
        fetch_to_cache(detector, start, start + duration, path)
    return path


def fetch_to_cache(detector: str, start: float, end: float, path: Path) -> None:
    """Download open strain [start, end) GPS [s] at 4096 Hz with gwpy and write it atomically to ``path``.

    Written in gwpy's HDF5 layout, named ``<detector>:GWOSC-4KHZ_R1_STRAIN``.

    Raises
    ------
    ValueError
        When the fetch fails (network errors come in many types).
    """
    from gwpy.timeseries import TimeSeries
    try:
        ts = TimeSeries.fetch_open_data(detector, start, end, sample_rate=SAMPLE_RATE)
    except Exception as err:  # noqa: BLE001 - network errors come in many types
        raise ValueError(f"could not fetch {detector} GPS {start}-{end} from GWOSC: {err}") from err
    tmp = path.with_suffix(".tmp.hdf5")
    ts.name = f"{detector}:GWOSC-4KHZ_R1_STRAIN"
    try:
        ts.write(str(tmp), format="hdf5", overwrite=True)
        os.replace(tmp, path)
    except OSError as err:  # a full disk or an unwritable cache: say so, and leave no partial file
        tmp.unlink(missing_ok=True)
        raise ValueError(f"could not write {detector} GPS {start}-{end} to the cache {path.parent}: {err}") from err


def fetch_event_strain(event: str | float, duration: float = 32.0, detectors: tuple[str, ...] = DETECTORS,
                       cache_dir: str | os.PathLike | None = None) -> tuple[list[Path], dict[str, str]]:
    """GWOSC open strain (4096 Hz) of ``duration`` s centred on ``event``.

    Each detector is fetched with gwpy and cached as HDF5; a second call reads the cache.

    Parameters
    ----------
    event : str or float
        A name in :data:`KNOWN_EVENTS` or a GPS time [s].
    duration : float, optional
        Seconds [s], 16 to 4096. Default 32. GWOSC serves strain in whole GPS seconds, so ⌈duration⌉
        whole seconds are fetched from ⌊GPS − duration / 2⌋: a fractional duration such as 32.5 s gets
        33 s, never less than asked for (it was rounded down, silently, before), and the cache holds
        whole-second files that other calls can reuse.
    detectors : tuple of str, optional
        Some of H1, L1, V1; default all three. K1 is refused before anything is fetched (the network
        does not know it).
    cache_dir : str or os.PathLike, optional
        Default $GWVIZ_CACHE.

    Returns
    -------
    paths : list of pathlib.Path
        Files of the detectors fetched.
    failed : dict of str to str
        {detector: why not} for those that failed (e.g. not observing).

    Raises
    ------
    ValueError
        Unknown event, a GPS time outside the LIGO/Virgo era, a bad duration, a detector other than H1,
        L1, V1, or no detector could be fetched.
    """
    if isinstance(event, str) and event in KNOWN_EVENTS:
        gps = KNOWN_EVENTS[event]
    else:
        try:
            gps = float(event)
        except (TypeError, ValueError):
            raise ValueError(f"event must be one of {sorted(KNOWN_EVENTS)} or a GPS time, got {event!r}") from None
    if not (math.isfinite(gps) and 6e8 < gps < 2e9):
        raise ValueError(f"GPS time {gps!r} is outside the LIGO/Virgo era")
    if not (is_real_number(duration) and SEGMENT_DURATION <= duration <= 4096):
        raise ValueError(f"duration must be a number of seconds from {SEGMENT_DURATION:g} to 4096, got {duration!r}")
    if isinstance(detectors, str) or not detectors:
        raise ValueError(f"detectors must be a non-empty tuple of {list(DETECTORS)}, got {detectors!r}")
    for det in detectors:
        check_detector(det, "detectors")
    start = int(math.floor(gps - duration / 2))
    seconds = int(math.ceil(duration))  # whole GPS seconds, at least the duration asked for
    paths, failed = [], {}
    for det in detectors:
        try:
            paths.append(cached_open_strain(det, start, seconds, cache_dir))
        except ValueError as err:
            failed[det] = str(err)
    if not paths:
        raise ValueError(f"no detector could be fetched for GPS {start}+{seconds} s: " + "; ".join(failed.values()))
    return paths, failed
