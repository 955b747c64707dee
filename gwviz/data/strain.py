"""Real detector strain: read it (GWOSC HDF5, gwpy HDF5, GWF) and resample it. Every strain that reaches
the model or the noise sources passes :func:`gwviz.data.checks.check_strain` or
:func:`gwviz.data.checks.check_channel` (NaN/inf, flat or zero-padded channels, lossy dtypes, wrong rates,
short or unequal arrays); every file passes :func:`read_strain` or, read block by block,
:func:`gwviz.data.stream.open_strain_file`: neither runs pickle code. Several detectors at once:
:func:`read_detectors` (files read whole and cut to their common span, :func:`overlap`: the app's and
the evaluations' reader; the scan CLI reads them block by block, :mod:`gwviz.data.stream`) and
:func:`read_real_strain` with the held-out window ranges of the evaluations
(:func:`default_window_range`, :func:`segment_start_range`). Uploads: :func:`cache_upload`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import (DETECTORS, EVENT_GUARD, KNOWN_EVENTS, SAMPLE_RATE, SEGMENT_DURATION, WINDOW_DURATION,
                        WINDOW_END_MARGIN, WINDOW_OFFSET)
from ..paths import DATA_ENV as DATA_DIR_ENV
from ..paths import files_within
from .checks import _DETECTOR_NAME, UnknownDetectorError, _as_float_strain, check_detector
from .params import is_real_number

#: file suffixes read as strain (HDF5 first: the layouts :func:`refuse_pickled_channel` inspects)
STRAIN_SUFFIXES: tuple[str, ...] = (".hdf5", ".h5", ".gwf")


@dataclass
class Strain:
    """One detector's strain [strain] from GPS ``t0`` [s] at ``sample_rate`` [Hz].

    Attributes: ``detector`` str ('H1', 'L1' or 'V1': anything else, such as K1, is refused by
    :func:`gwviz.data.checks.check_detector`), ``data`` (N,) ndarray [strain], ``t0`` float [s],
    ``sample_rate`` float [Hz], ``path`` str (the file read; default "").
    """

    detector: str
    data: np.ndarray
    t0: float
    sample_rate: float
    path: str = ""

    def __post_init__(self) -> None:
        check_detector(self.detector, self.path)

    @property
    def t1(self) -> float:
        """GPS time just after the last sample [s]."""
        return self.t0 + len(self.data) / self.sample_rate


def _detector_of(path: Path, name: str | None, known_only: bool = True) -> str:
    """The detector of a strain file, from its channel ``name``, else its file name, else its path.

    ``known_only`` (default True): refuse (:func:`gwviz.data.checks.check_detector`) a detector the
    network does not know, such as K1; False returns it, for the folder readers that skip such files.
    """
    for text in (name or "", path.name, str(path)):
        m = _DETECTOR_NAME.search(text)
        if m:
            return check_detector(m.group(1), str(path)) if known_only else m.group(1)
    raise ValueError(f"{path}: cannot tell which detector this strain is from (name it H1/L1/V1)")


def read_strain(path: str | os.PathLike) -> Strain:
    """Read one detector's strain from a GWOSC HDF5, gwpy-written HDF5 or GWF file (via gwpy).

    ``path`` (str or os.PathLike): the file; the detector comes from its channel name, else the file
    name. Returns a :class:`Strain` of float64 samples at the file's own rate.

    Raises
    ------
    ValueError
        With the file name, for missing, unreadable or corrupt files, HDF5 files whose 'channel'
        attribute is not text (:func:`refuse_pickled_channel`: gwpy would unpickle it), dtypes that
        cannot hold strain, and strain whose detector cannot be told.
        :class:`gwviz.data.checks.UnknownDetectorError` (a ValueError) for strain of a detector other
        than H1, L1, V1, such as K1.
    """
    from gwpy.timeseries import TimeSeries

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: a directory, not a strain file")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    refuse_pickled_channel(path)  # before gwpy sees the file
    try:
        if path.suffix == ".gwf":
            ts = TimeSeries.read(str(path), gwf_strain_channel(path))
        else:
            try:
                ts = TimeSeries.read(str(path), format="hdf5.gwosc")
            except Exception:  # noqa: BLE001 - not GWOSC layout: try gwpy's own HDF5 layout
                ts = TimeSeries.read(str(path), format="hdf5")
    except Exception as err:  # noqa: BLE001 - h5py/lalframe raise many types on corrupt files
        raise ValueError(f"{path}: not a readable strain file ({type(err).__name__}: {err})") from err
    name = str(ts.channel) if ts.channel is not None else (ts.name or None)
    det = _detector_of(path, name)  # K1 is refused before the samples are converted
    data = _as_float_strain(str(path), ts.value)  # integer/float16 channels would lose the strain
    return Strain(det, data, float(ts.t0.value), float(ts.sample_rate.value), str(path))


def gwf_strain_channel(path: Path) -> str:
    """The strain channel of a frame file: the first whose name holds STRAIN (ValueError if none)."""
    from gwpy.io.gwf import get_channel_names
    chans = [c for c in get_channel_names(str(path)) if "STRAIN" in c.upper()]
    if not chans:
        raise ValueError("no strain channel in frame file")
    return chans[0]


def resample(strain: Strain, sample_rate: int = SAMPLE_RATE) -> Strain:
    """Resample with gwpy (anti-aliasing FIR) to ``sample_rate`` [Hz] (default 4096); returns a new Strain."""
    from gwpy.timeseries import TimeSeries

    ts = TimeSeries(strain.data, t0=strain.t0, sample_rate=strain.sample_rate).resample(sample_rate)
    return Strain(strain.detector, np.asarray(ts.value), strain.t0, float(sample_rate), strain.path)




def refuse_pickled_channel(path: Path) -> Path:
    """Refuse (ValueError) an HDF5 strain file whose 'channel' attribute is not text.

    gwpy's HDF5 reader (gwpy.types.io.hdf5, used by :func:`read_strain`) unpickles such a value, which
    runs code. Returns ``path``; other suffixes and files h5py cannot open are left to read_strain.
    """
    if path.suffix not in STRAIN_SUFFIXES[:2]:
        return path
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError:
        return path
    with f:
        # a returned name stops the visit (raising inside h5py's visit breaks its lock)
        bad = f.visititems(lambda name, obj: name if not isinstance(obj.attrs.get("channel", ""), str) else None)
    if bad:
        raise ValueError(f"{path}: attribute 'channel' of {bad!r} is not text (gwpy would unpickle it); refused")
    return path


#: Largest strain file accepted from a page upload [bytes] (an hour of one detector at 4096 Hz in
#: float64 is ~118 MB; the app's uploads are for minutes of data).
MAX_UPLOAD_BYTES: int = 64 * 2**20


def cache_upload(data: bytes, name: str, cache_dir: str | os.PathLike) -> Path:
    """Store uploaded strain bytes under ``cache_dir``/uploads as ``<sha256>.<suffix>`` (atomically); return the path.

    For :func:`read_strain` (gwpy reads files, not bytes). Nothing is written anywhere else; ``name`` only
    gives the suffix and, if it holds one, the detector (``_L1``). ValueError for other suffixes, empty
    data, or more than :data:`MAX_UPLOAD_BYTES`.
    """
    import hashlib
    suffix = Path(str(name)).suffix.lower()
    if suffix not in STRAIN_SUFFIXES:
        raise ValueError(f"{name!r}: a strain file must end in one of {', '.join(STRAIN_SUFFIXES)}")
    if not data:
        raise ValueError(f"{name!r} is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"{name!r} is {len(data) / 2**20:.0f} MiB; uploads are limited to {MAX_UPLOAD_BYTES // 2**20} MiB "
                         "(scan longer data with python -m gwviz.scan)")
    folder = Path(cache_dir) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    # the detector, when only the file name says it (GWOSC names: L-L1_..., L1_data_32s), stays in the name
    det = _DETECTOR_NAME.search(Path(str(name)).name)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:32]}{'_' + det.group(1) if det else ''}{suffix}"
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------
# several detectors at once: files cut to their common span, and the real-noise stretches of the
# evaluations (held-out windows, clear of known events)


def read_detectors(files: list[str]) -> tuple[dict[str, np.ndarray], float]:
    """One strain file per detector, resampled to 4096 Hz where needed and cut to their common span.

    ``files``: one to three of H1, L1, V1 (:func:`gwviz.data.strain.read_strain`). Returns
    ({det: (N,) ndarray}, GPS t0 [s]); ValueError from read_strain, :func:`one_file_per_detector`,
    :func:`overlap`.
    """
    strains = [read_strain(f) for f in files]
    one_file_per_detector([s.detector for s in strains])
    return common_span([s if s.sample_rate == SAMPLE_RATE else resample(s, SAMPLE_RATE) for s in strains])


def one_file_per_detector(dets: list[str]) -> None:
    """ValueError unless ``dets`` (the detectors of the files, in order) names each of H1, L1, V1 at most once.

    A detector the network does not know (K1) is refused by :func:`gwviz.data.checks.check_detector`.
    """
    for d in dets:
        check_detector(d, "files")
    if len(set(dets)) != len(dets):
        raise ValueError(f"need one file per detector, each of {list(DETECTORS)} at most once; got detectors {dets}")


def common_span(strains: list[Strain]) -> tuple[dict[str, np.ndarray], float]:
    """Strains at 4096 Hz cut to the span they all cover: ({det: (N,) ndarray}, GPS t0 [s]).

    ValueError when that span is shorter than one 16-s segment.
    """
    t0, n, firsts = overlap([(s.t0, s.t1) for s in strains])
    return {s.detector: s.data[i:i + n] for s, i in zip(strains, firsts)}, t0


def overlap(spans: list[tuple[float, float]]) -> tuple[float, int, list[int]]:
    """The GPS span that all of ``spans`` ((GPS start, end) [s] of strain at 4096 Hz) cover.

    Returns (t0 [s], length [samples], its first sample in each strain); ValueError when shorter than
    one 16-s segment. Shared by :func:`common_span` and the block reader (:mod:`gwviz.data.stream`), so
    both cut the same samples.
    """
    t0, t1 = max(a for a, _ in spans), min(b for _, b in spans)
    n = int(math.floor((t1 - t0) * SAMPLE_RATE + 1e-6))
    if n < SEGMENT_DURATION * SAMPLE_RATE:
        raise ValueError(f"the files overlap for {max(n, 0) / SAMPLE_RATE:g} s; a scan needs {SEGMENT_DURATION:g} s")
    return t0, n, [int(round((t0 - a) * SAMPLE_RATE)) for a, _ in spans]


@dataclass
class RealStrain:
    """Coincident real strain (3, N) [strain] of H1, L1, V1 from GPS ``t0`` [s] at ``sample_rate`` [Hz].

    Attributes: ``strain`` (3, N) float64 ndarray, ``t0`` float, ``sample_rate`` int, ``paths`` {detector: Path}.
    """

    strain: np.ndarray
    t0: float
    sample_rate: int
    paths: dict[str, Path]

    @property
    def duration(self) -> float:
        """Length [s]."""
        return self.strain.shape[-1] / self.sample_rate


def find_real_files(data_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Paths of :func:`find_real_strains`."""
    return {d: Path(s.path) for d, s in find_real_strains(data_dir).items()}


def find_real_strains(data_dir: str | os.PathLike | None = None) -> dict[str, Strain]:
    """One HDF5 strain file per detector (4096 Hz) under ``data_dir``, the three overlapping by ≥ a 16-s segment.

    ``data_dir``: default $GWVIZ_DATA_DIR. With the project's data folder (or the bundled copies, which
    also hold GW190425's L1 at another time) these are the three 32-s files around GW190521. Files of
    other detectors (K1) are skipped, as are files at other rates. Returns {detector: Strain}. Raises
    ValueError when no folder is given or found, and when no such triple, or more than one, exists
    (point ``data_dir`` at a folder with one each).
    """
    import itertools
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        raise ValueError(f"no data directory given and ${DATA_DIR_ENV} is not set")
    root = Path(data_dir)
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory")
    found: dict[str, list[Strain]] = {d: [] for d in DETECTORS}
    for p in files_within(root, STRAIN_SUFFIXES[:2]):  # bounded walk, no symlink out of the folder
        try:
            s = read_strain(p)
        except UnknownDetectorError:  # another detector's file (K1): not part of the triple
            continue
        if s.sample_rate == SAMPLE_RATE:
            found[s.detector].append(s)
    triples = [t for t in itertools.product(*found.values())
               if min(s.t1 for s in t) - max(s.t0 for s in t) >= SEGMENT_DURATION]
    if len(triples) != 1:
        listed = {d: [str(s.path) for s in v] for d, v in found.items()}
        raise ValueError(f"{root}: need exactly one set of {SAMPLE_RATE}-Hz HDF5 strain files of H1, L1 and V1 that "
                         f"overlap by {SEGMENT_DURATION:g} s, found {len(triples)} among {listed}")
    return dict(zip(DETECTORS, triples[0]))


def read_real_strain(data_dir: str | os.PathLike | None = None) -> RealStrain:
    """Read H1/L1/V1 (:func:`find_real_strains`: each file read once) and cut them to their common span.

    Returns a :class:`RealStrain`; ValueError on NaNs, no overlap and find_real_strains' refusals.
    """
    found = find_real_strains(data_dir)
    strain, t0 = common_span([found[d] for d in DETECTORS])
    paths = {d: Path(s.path) for d, s in found.items()}
    x = np.stack([np.asarray(strain[d], dtype=np.float64) for d in DETECTORS])
    if not np.isfinite(x).all():
        raise ValueError("real strain has NaN/inf samples; BatchMaker needs a finite stretch")
    return RealStrain(x, t0, SAMPLE_RATE, paths)


def default_window_range(real: RealStrain) -> tuple[float, float]:
    """GPS range (lo, hi) [s] for evaluation windows: the data's second half after a 2-s guard, to 2 s before the end.

    32 s around GW190521, event at ~16 s: windows in [t0 + 18, t0 + 30).
    """
    return real.t0 + real.duration / 2 + EVENT_GUARD, real.t0 + real.duration - WINDOW_END_MARGIN


def segment_start_range(real: RealStrain, gps_range: tuple[float, float]) -> tuple[int, int]:
    """BatchMaker ``real_range`` (first, last segment start sample) keeping every window inside ``gps_range``.

    ``gps_range`` = (lo, hi) GPS [s]. Raises ValueError if it is not two finite numbers lo < hi, if none
    fits or a known event (± EVENT_GUARD s) lies inside the range.
    """
    lo, hi = gps_range
    if not (is_real_number(lo) and is_real_number(hi) and lo < hi):  # NaN failed as "cannot convert float NaN"
        raise ValueError(f"GPS range must be two finite numbers lo < hi [s], got ({lo!r}, {hi!r})")
    tol = 1e-3  # event times are known to 0.1 s and file starts are snapped to samples: don't split hairs
    for name, t in KNOWN_EVENTS.items():
        if lo < t + EVENT_GUARD - tol and hi > t - EVENT_GUARD + tol:
            raise ValueError(f"GPS range [{lo}, {hi}) holds {name} (GPS {t}) within ±{EVENT_GUARD:g} s")
    first = math.ceil((lo - real.t0 - WINDOW_OFFSET) * real.sample_rate - 1e-6)
    last = math.floor((hi - real.t0 - WINDOW_OFFSET - WINDOW_DURATION) * real.sample_rate + 1e-6)
    n_seg = int(SEGMENT_DURATION * real.sample_rate)
    first, last = max(first, 0), min(last, real.strain.shape[-1] - n_seg)
    if last < first:
        raise ValueError(f"no 4-s window fits GPS range [{lo}, {hi}) in data GPS [{real.t0}, {real.t0 + real.duration})")
    return first, last
