"""Strain files read block by block, so that scanning hours of H1/L1/V1 strain keeps memory bounded
by the block, not by the length of the files.

:func:`open_detectors` opens one file per detector (GWOSC HDF5, gwpy HDF5 or GWF), reads only their
metadata (detector, GPS start, sample rate, length, dtype) and cuts them to their common span with
the rule of :func:`gwviz.data.strain.read_detectors` (:func:`gwviz.data.strain.overlap`), so both
give the same samples. :meth:`StrainStream.read` then reads any stretch of that span at 4096 Hz: HDF5
by h5py dataset slicing (gwpy's HDF5 readers load the whole dataset, then crop), GWF with gwpy's
``TimeSeries.read`` with start/end. Files at a whole multiple of 4096 Hz (GWOSC's 16 kHz) are
decimated with gwpy as read_detectors does, over the stretch plus a margin wider than the filter:
the same samples to the bit. Every stretch passes :func:`gwviz.data.checks.check_channel` (NaN/inf,
flat runs, range) before it is returned, and a read that fails or comes back short is a ValueError
naming the file and the GPS span. :func:`block_plan` says which stretches a scan reads and which
windows each completes: every sample of the span is read and checked, consecutive reads overlap by
more than the longest flat run allowed, and every window lies whole in one read.

    stream = open_detectors(["H1.hdf5", "L1.hdf5", "V1.hdf5"], block=256.0)
    gwviz.scan.scan(classifier, stream, t0=stream.t0)

:class:`ArrayStrain` gives strain already in memory the same interface (one block, views).
:func:`write_gwosc_hdf5` writes strain in GWOSC's HDF5 layout (tests, benchmarks, simulated noise).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..constants import DETECTORS, SAMPLE_RATE, SEGMENT_DURATION, WINDOW_DURATION
from .checks import MAX_FLAT_RUN, _as_float_strain, check_channel
from .strain import (Strain, _detector_of, gwf_strain_channel, one_file_per_detector, overlap, refuse_pickled_channel,
                     resample)

#: Default strain read at once [s]: 3 detectors × 256 s × 4096 Hz in float64 is 25 MB.
DEFAULT_BLOCK: float = 256.0
#: Shortest block [s]: one 16-s segment and one 4-s window, so that every read completes windows.
MIN_BLOCK: float = SEGMENT_DURATION + WINDOW_DURATION
#: Longest block [s]: a day (3 detectors: 8.5 GB in float64); longer is a typo, not a plan.
MAX_BLOCK: float = 86400.0
#: Samples consecutive reads share at least: a flat run across a read boundary is then seen at
#: MAX_FLAT_RUN or more in the later read, so the block-by-block check misses no run the
#: whole-file check finds.
FLAT_LOOKBACK: int = int(MAX_FLAT_RUN * SAMPLE_RATE)
#: Output samples (at 4096 Hz) read on each side of a stretch before decimating it: scipy's FIR
#: behind gwpy's resample reaches 10 input samples per unit of the factor, under 3 output samples.
RESAMPLE_MARGIN: int = 64


def check_block(block) -> float:
    """``block`` [s] as a float.

    Raises
    ------
    ValueError
        Unless ``block`` is a finite number (not a bool) in [MIN_BLOCK, MAX_BLOCK] s.
    """
    if (isinstance(block, (bool, np.bool_)) or not isinstance(block, (int, float, np.integer, np.floating))
            or not math.isfinite(block) or not MIN_BLOCK <= block <= MAX_BLOCK):
        raise ValueError(f"block must be a number of seconds in [{MIN_BLOCK:g}, {MAX_BLOCK:g}] (a 16-s segment "
                         f"and a 4-s window at least), got {block!r}")
    return float(block)


@dataclass(frozen=True)
class StrainFile:
    """One detector's strain file opened for slicing. Holds no samples and no open file.

    Attributes
    ----------
    path, detector : Path, str
    t0 : float
        GPS time of the first sample [s].
    sample_rate : float
        The file's own sample rate [Hz] (a whole multiple of 4096 Hz).
    n : int
        Samples at ``sample_rate``.
    dataset : str or None, optional
        HDF5 dataset holding the strain (None for GWF, the default).
    channel : str or None, optional
        GWF channel (None for HDF5, the default).
    """

    path: Path
    detector: str
    t0: float
    sample_rate: float
    n: int
    dataset: str | None = None
    channel: str | None = None

    @property
    def factor(self) -> int:
        """Decimation factor to 4096 Hz."""
        return int(round(self.sample_rate / SAMPLE_RATE))

    @property
    def n_out(self) -> int:
        """Samples at 4096 Hz: what gwpy's resample (scipy's decimate) makes of ``n``, ⌈n / factor⌉."""
        return -(-self.n // self.factor)

    def read_native(self, i0: int, i1: int) -> np.ndarray:
        """Samples [i0, i1) at the file's own rate, as a (i1 − i0,) float64 ndarray.

        Raises
        ------
        ValueError
            Naming the file and the GPS span when the read fails or comes back short (a file corrupt or
            truncated there, or changed since it was opened).
        """
        gps = f"GPS {self.t0 + i0 / self.sample_rate:.4f} to {self.t0 + i1 / self.sample_rate:.4f}"
        try:
            if self.dataset is not None:
                import h5py
                with h5py.File(self.path, "r") as f:
                    x = f[self.dataset][i0:i1]
            else:
                from gwpy.timeseries import TimeSeries
                x = TimeSeries.read(str(self.path), self.channel, start=self.t0 + i0 / self.sample_rate,
                                    end=self.t0 + i1 / self.sample_rate).value
        except Exception as err:  # noqa: BLE001 - h5py/lalframe raise many types on corrupt data
            raise ValueError(f"{self.path}: cannot read {gps} ({type(err).__name__}: {err}); the file is corrupt "
                             "there or changed since it was opened") from err
        if len(x) != i1 - i0:
            raise ValueError(f"{self.path}: reading {gps} gave {len(x)} samples, not {i1 - i0}: the file is "
                             "truncated or changed since it was opened")
        return _as_float_strain(str(self.path), x)

    def read(self, i0: int, i1: int) -> np.ndarray:
        """Samples [i0, i1) at 4096 Hz, float64 (decimated from ``RESAMPLE_MARGIN`` more on each side).

        ``i0``, ``i1`` count samples at 4096 Hz. ValueError as :meth:`read_native`.
        """
        q = self.factor
        if q == 1:
            return self.read_native(i0, i1)
        lo, hi = max(0, i0 - RESAMPLE_MARGIN) * q, min(self.n, (i1 + RESAMPLE_MARGIN) * q)
        x = resample(Strain(self.detector, self.read_native(lo, hi), self.t0, self.sample_rate)).data
        return x[i0 - lo // q:i1 - lo // q]


def _hdf5_meta(path: Path) -> tuple[str, tuple, np.dtype, float, float, str | None]:
    """(dataset, shape, dtype, t0 [s], sample rate [Hz], channel name) of an HDF5 strain file."""
    import h5py
    from gwpy.io.hdf5 import find_dataset
    from gwpy.timeseries import TimeSeries
    with h5py.File(path, "r") as f:
        if "strain/Strain" in f:  # GWOSC layout: what gwpy's hdf5.gwosc reader takes
            ds = f["strain/Strain"]
            t0, rate = float(ds.attrs["Xstart"]), 1.0 / float(ds.attrs["Xspacing"])
            det = f["meta/Detector"][()] if "meta/Detector" in f else b""
            name = det.decode() if isinstance(det, bytes) else str(det)
        else:  # gwpy's layout: one dataset whose attributes are TimeSeries arguments (x0, dx, channel, name)
            ds = find_dataset(f)
            attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in ds.attrs.items()}
            ts = TimeSeries(ds[:0], **attrs)  # gwpy parses the attributes; no sample is read
            t0, rate = float(ts.t0.value), float(ts.sample_rate.value)
            name = str(ts.channel) if ts.channel is not None else (ts.name or None)
        return ds.name, ds.shape, ds.dtype, t0, rate, name


def _gwf_meta(path: Path) -> tuple[str, tuple, np.dtype, float, float, str]:
    """(channel, shape, dtype, t0 [s], sample rate [Hz], channel) of a frame file (reads its first second)."""
    from gwpy.io.gwf import data_segments
    from gwpy.timeseries import TimeSeries
    channel = gwf_strain_channel(path)
    segments = data_segments([str(path)], channel, warn=False)
    if len(segments) != 1:
        raise ValueError(f"{channel} has {len(segments)} separate stretches in the file; give one contiguous span")
    t0, t1 = float(segments[0][0]), float(segments[0][1])
    first = TimeSeries.read(str(path), channel, start=t0, end=min(t1, t0 + 1.0))
    rate = float(first.sample_rate.value)
    return channel, (int(round((t1 - t0) * rate)),), first.dtype, t0, rate, channel


def open_strain_file(path) -> StrainFile:
    """Open one detector's strain file (GWOSC HDF5, gwpy HDF5 or GWF) for :meth:`StrainFile.read`: its metadata only.

    ``path``: str or os.PathLike. Returns a :class:`StrainFile`.

    Raises
    ------
    ValueError
        With the file name, for what :func:`gwviz.data.strain.read_strain` refuses (missing or unreadable
        files, pickled channel attributes, non-1-D data, dtypes that lose strain, an unknown detector),
        for a GWF channel in more than one stretch, and for sample rates that are not a whole multiple of
        4096 Hz (gwpy resamples those with one FFT over the whole file, which cannot be done block by block).
    """
    path = Path(path)
    if path.is_dir():  # the same words as read_strain
        raise ValueError(f"{path}: a directory, not a strain file")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    refuse_pickled_channel(path)  # read_strain's guard, before gwpy sees the file
    try:
        where, shape, dtype, t0, rate, name = (_gwf_meta if path.suffix == ".gwf" else _hdf5_meta)(path)
    except Exception as err:  # noqa: BLE001 - h5py/lalframe raise many types on corrupt files
        raise ValueError(f"{path}: not a readable strain file ({type(err).__name__}: {err})") from err
    if len(shape) != 1:
        raise ValueError(f"{path}: strain must be 1D, got shape {shape}")
    _as_float_strain(str(path), np.empty(0, dtype))  # the dtype refusals, before any sample is read
    if not (math.isfinite(rate) and rate >= SAMPLE_RATE and (rate / SAMPLE_RATE).is_integer()):
        raise ValueError(f"{path}: sample rate {rate:g} Hz is not a whole multiple of {SAMPLE_RATE} Hz, so it "
                         f"cannot be resampled block by block; resample the file to {SAMPLE_RATE} Hz first "
                         "(gwpy TimeSeries.resample)")
    gwf = path.suffix == ".gwf"
    return StrainFile(path, _detector_of(path, name), t0, rate, int(shape[0]), None if gwf else where,
                      where if gwf else None)


@dataclass(frozen=True)
class StrainStream:
    """Strain files of one to three detectors (DETECTORS order), cut to their common span at 4096 Hz.

    The scan reads it ``block`` samples at a time.

    Attributes
    ----------
    files : tuple of StrainFile
    firsts : tuple of int
        Each file's sample (at 4096 Hz) at the span's first.
    n : int
        Samples of the span (at 4096 Hz).
    t0 : float
        GPS start of the span [s].
    block : int
        Samples read at once.
    """

    files: tuple[StrainFile, ...]
    firsts: tuple[int, ...]
    n: int
    t0: float
    block: int

    @property
    def detectors(self) -> tuple[str, ...]:
        """The detectors of ``files``, in order."""
        return tuple(f.detector for f in self.files)

    def read(self, a: int, b: int) -> list[np.ndarray]:
        """Samples [a, b) of the span, one float64 array per detector, each checked.

        Each passes :func:`gwviz.data.checks.check_channel` (times in its messages from the span's start;
        ``whole`` only when [a, b) is the whole span).

        Returns
        -------
        list of (b − a,) float64 ndarray

        Raises
        ------
        ValueError
            When [a, b) is empty or outside [0, n), for a failed or short read, and for every check_channel refusal.
        """
        if not 0 <= a < b <= self.n:
            raise ValueError(f"samples [{a}, {b}) are outside the span [0, {self.n})")
        rows = []
        for f, first in zip(self.files, self.firsts):
            x = f.read(first + a, first + b)
            check_channel(f.detector, x, SAMPLE_RATE, start=a / SAMPLE_RATE, whole=(a, b) == (0, self.n))
            rows.append(x)
        return rows

    def shifted(self, a: int, b: int, shifts: list[int]) -> StrainStream:
        """Samples [a, b) with detector j delayed circularly by ``shifts[j]`` samples (a time slide).

        Its sample i is sample (i − shifts[j]) mod n, for a stretch that no circular join crosses. Returns a
        new StrainStream of b − a samples from GPS ``t0 + a / 4096`` [s]; ValueError when [a, b) crosses
        the join.
        """
        firsts = []
        for first, s in zip(self.firsts, shifts):
            c = (a - s) % self.n
            if c + b - a > self.n:
                raise ValueError(f"samples [{a}, {b}) cross the circular join of a {s}-sample shift")
            firsts.append(first + c)
        return replace(self, firsts=tuple(firsts), n=b - a, t0=self.t0 + a / SAMPLE_RATE)


@dataclass(frozen=True)
class ArrayStrain:
    """Strain already in memory and checked, with :class:`StrainStream`'s interface: one block, reads are views.

    Attributes
    ----------
    rows : tuple of (N,) float64 ndarray
        One per detector, equal lengths.
    detectors : tuple of str
    """

    rows: tuple[np.ndarray, ...]
    detectors: tuple[str, ...]

    @property
    def n(self) -> int:
        """Samples per detector."""
        return len(self.rows[0])

    @property
    def block(self) -> int:
        """``n``: the whole strain is one block."""
        return self.n

    def read(self, a: int, b: int) -> list[np.ndarray]:
        """Views of samples [a, b) of each row (the values were checked on the way in).

        ValueError, as :meth:`StrainStream.read`, when [a, b) is empty or outside [0, n): a numpy slice
        would silently return a short window.
        """
        if not 0 <= a < b <= self.n:
            raise ValueError(f"samples [{a}, {b}) are outside the strain's [0, {self.n})")
        return [r[a:b] for r in self.rows]

    def shifted(self, a: int, b: int, shifts: list[int]) -> ArrayStrain:
        """As :meth:`StrainStream.shifted`; equal to ``np.roll(row, shift)[a:b]`` without the copies.

        ValueError when [a, b) crosses the circular join of a shift.
        """
        c = [(a - s) % self.n for s in shifts]
        if any(ci + b - a > self.n for ci in c):
            raise ValueError(f"samples [{a}, {b}) cross the circular join of a shift {shifts}")
        return ArrayStrain(tuple(r[ci:ci + b - a] for r, ci in zip(self.rows, c)), self.detectors)


def open_detectors(files: list, block: float = DEFAULT_BLOCK) -> StrainStream:
    """Open one strain file per detector for reading ``block`` seconds at a time, cut to their common span.

    The span is cut as by :func:`gwviz.data.strain.read_detectors`.

    Parameters
    ----------
    files : list of str or os.PathLike
        One to three files of H1, L1, V1.
    block : float, optional
        Strain read at once [s], in [MIN_BLOCK, MAX_BLOCK]. Default ``DEFAULT_BLOCK`` (256 s).

    Returns
    -------
    StrainStream
        Files in DETECTORS order.

    Raises
    ------
    ValueError
        For a bad block (before any file is opened), unreadable files, duplicate detectors, rates that
        are not a whole multiple of 4096 Hz, or files that overlap for less than 16 s.
    """
    block = check_block(block)
    found = [open_strain_file(f) for f in files]
    one_file_per_detector([f.detector for f in found])
    found.sort(key=lambda f: DETECTORS.index(f.detector))
    t0, n, firsts = overlap([(f.t0, f.t0 + f.n_out / SAMPLE_RATE) for f in found])
    return StrainStream(tuple(found), tuple(firsts), n, t0, int(round(block * SAMPLE_RATE)))


def block_plan(n: int, n_seg: int, step: int, block: int, batch: int = 1) -> list[tuple[int, int, int, int]]:
    """The reads of a scan, at most ``block`` samples each, and the windows each completes.

    The reads cover [0, n), consecutive ones overlap by :data:`FLAT_LOOKBACK` samples or more (so the
    checks see every flat run), each window is in exactly one, and w1 − w0 is a multiple of ``batch``
    except in the last read where one fits, so the scan's batches, and hence its numbers, are those of
    a scan in one block.

    Parameters
    ----------
    n : int
        Samples scanned.
    n_seg : int
        Samples per segment; window w's segment is [w·step, w·step + n_seg).
    step : int
        Samples between segments.
    block : int
        Most samples per read (≥ n_seg and > FLAT_LOOKBACK).
    batch : int, optional
        Windows per model batch. Default 1.

    Returns
    -------
    list of (a, b, w0, w1)
        Samples [a, b) completing windows w0 … w1 − 1.

    Raises
    ------
    ValueError
        When no plan exists for these numbers (e.g. n < n_seg, or block too short).
    """
    if not (n >= n_seg >= 1 and step >= 1 and block >= max(n_seg, FLAT_LOOKBACK + 1) and batch >= 1):
        raise ValueError(f"no block plan for n={n}, n_seg={n_seg}, step={step}, block={block}, batch={batch}")
    n_win = (n - n_seg) // step + 1
    plan, a, w = [], 0, 0
    while True:
        b = min(n, a + block)
        w1 = max(w, min(n_win, (b - n_seg) // step + 1))
        if b < n and w1 - w >= batch:
            w1 = w + (w1 - w) // batch * batch
        plan.append((a, b, w, w1))
        if b == n:
            return plan
        # the next read starts at the next window (block ≥ n_seg: it fits) or, where windows are
        # sparser than reads, FLAT_LOOKBACK before this read's end: every sample is read
        w, a = w1, min(w1 * step, b - FLAT_LOOKBACK)


def write_gwosc_hdf5(path, detector: str, strain: np.ndarray, t0: float, sample_rate: float = SAMPLE_RATE) -> Path:
    """Write one detector's strain (N,) [strain] from GPS ``t0`` [s] at ``sample_rate`` [Hz] in GWOSC's HDF5 layout.

    The layout is strain/Strain with Xstart, Xspacing; meta/Detector, GPSstart, Duration, gzip-compressed
    in 1-s chunks as GWOSC's files are; gwpy's ``hdf5.gwosc`` reader and :func:`open_strain_file` read it.
    ``sample_rate`` defaults to 4096 Hz; ``path`` is overwritten and returned (as a Path).
    """
    import h5py
    x = np.asarray(strain)
    path = Path(path)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("strain/Strain", data=x, chunks=(min(len(x), int(sample_rate)),), compression="gzip")
        ds.attrs.update({"Xstart": t0, "Xspacing": 1.0 / sample_rate, "Npoints": len(x), "Xunits": "second",
                         "Yunits": "", "Xlabel": "GPS time", "Ylabel": "Strain"})
        f["meta/Detector"] = np.bytes_(detector)
        f["meta/GPSstart"] = t0
        f["meta/Duration"] = len(x) / sample_rate
    return path
