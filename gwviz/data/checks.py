"""The checks every strain passes before it reaches the model or a noise source, and the one check of a
detector name. :func:`check_detector` refuses a detector the network does not know (K1, KAGRA:
:class:`UnknownDetectorError`) with one message; :func:`check_channel` refuses one channel with NaN/inf,
a flat channel or flat (zero-padded) run, or values beyond range; :func:`check_strain` checks several
detectors at once (exact detectors, 4096 Hz, dtypes that hold strain, 1-D, equal lengths, long enough)
and stacks them. Files are checked as they are read, by :mod:`gwviz.data.strain`.
"""
from __future__ import annotations

import re

import numpy as np

from ..constants import DETECTORS, SAMPLE_RATE

#: Detectors recognised in channel and file names but not known to the network (it uses ``DETECTORS``).
OTHER_DETECTORS: dict[str, str] = {"K1": "KAGRA"}
#: A detector name in a channel or file name: H1, L1, V1 or one of ``OTHER_DETECTORS``.
_DETECTOR_NAME = re.compile(r"(?<![A-Z0-9])(H1|L1|V1|K1)(?![0-9])")


class UnknownDetectorError(ValueError):
    """Strain of a detector the network does not know (e.g. K1, KAGRA): it uses H1, L1 and V1 only.

    A ValueError; the folder readers that skip other detectors' files
    (:func:`gwviz.data.strain.find_real_strains`, :class:`gwviz.data.noise.StrainFiles`) catch this one kind.
    """


def check_detector(detector, where: str = "") -> str:
    """The one check of a detector name: one of ``DETECTORS`` (H1, L1, V1).

    Every reader (:mod:`gwviz.data.strain`) and check of this module refuses K1 (KAGRA) strain, files or
    channels the same way.

    Parameters
    ----------
    detector : object
        The detector name.
    where : str, optional
        What holds it (a file name, 'strain'), for the message. Default "".

    Returns
    -------
    str
        ``detector`` unchanged.

    Raises
    ------
    UnknownDetectorError
        ``detector`` is not in ``DETECTORS`` (a ValueError saying the network uses H1, L1 and V1 only).
    """
    if isinstance(detector, str) and detector in DETECTORS:
        return detector
    known = f" ({OTHER_DETECTORS[detector]})" if isinstance(detector, str) and detector in OTHER_DETECTORS else ""
    raise UnknownDetectorError(f"{where + ': ' if where else ''}detector {detector!r}{known} is not one the network "
                               f"knows: it uses {', '.join(DETECTORS[:-1])} and {DETECTORS[-1]} only")


#: Longest run of identical consecutive samples a detector channel may hold [s]. Real strain
#: never repeats a float sample for long; a run this long is zero-padding, a filled gap or a flat
#: (missing) detector, and its median-Welch PSD is ~0, which whitening turns into inf/NaN or noise.
MAX_FLAT_RUN: float = 0.25
#: Largest |strain| accepted [strain]. gwviz multiplies strain by 1e21 and squares it (PSDs):
#: beyond this float64 overflows; real detector strain is ~1e-18 or less.
MAX_ABS_STRAIN: float = 1e60
#: Range of the root-mean-square of a channel that can be detector strain [dimensionless]. Raw O3
#: strain has rms ~ 2e-19 (bundled L1 around GW190425: 2.3e-19, dominated by < 10 Hz), band-passed
#: strain ~1e-21, and no detector's noise over 10–2048 Hz is below ~1e-23. Outside, the numbers are in
#: other units (whitened data: rms ~ 1; strain × 1e21) or scaled, and whitening, which cannot see a
#: scale, would classify them as if they were strain.
STRAIN_RMS_RANGE: tuple[float, float] = (1e-27, 1e-14)


def _as_float_strain(name: str, values) -> np.ndarray:
    """1-D float64 copy-free view of ``values``; ValueError saying why a dtype cannot hold strain."""
    try:
        a = np.asarray(values)
    except Exception as err:  # noqa: BLE001 - arbitrary objects fail in arbitrary ways
        raise ValueError(f"{name}: strain cannot be read as an array ({type(err).__name__}: {err}); "
                         "pass a 1-D float32/float64 numpy array") from err
    kind, dt = a.dtype.kind, a.dtype
    why = None
    if kind == "b":
        why = "bool samples carry no amplitude"
    elif kind in "iu":
        why = "integer samples are counts or a cast that truncated the ~1e-21 strain values to 0"
    elif kind == "c":
        why = "detector strain is real; dropping the imaginary part would be a silent guess"
    elif kind == "f" and dt.itemsize < 4:
        why = "float16 keeps 3 significant digits and flushes values below 6e-8 (strain is ~1e-21) to 0"
    elif kind != "f":
        why = "the samples are not numbers of one float type"
    if why:
        raise ValueError(f"{name}: strain has dtype {dt} ({why}); pass float32 or float64 strain "
                         "[dimensionless], e.g. np.asarray(x, dtype=np.float64)")
    if a.ndim != 1:
        raise ValueError(f"{name}: strain must be 1D, got shape {a.shape}")
    return a.astype(np.float64, copy=False)


def flat_runs(x: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """Runs [start, stop) (list of int pairs) of ≥ ``min_len`` identical consecutive samples of 1-D ``x``.

    Memory is O(len(x)) bytes (a bool and an int8 array), so it scans hour-long files too. NaN runs are
    not reported (the finiteness check reports them).
    """
    if len(x) < 2:
        return []
    same = x[1:] == x[:-1]  # NaN != NaN: NaN runs are reported by the finiteness check instead
    edges = np.diff(np.r_[np.int8(0), same.view(np.int8), np.int8(0)])
    # a True run same[s:e] means samples s .. e are equal: e - s + 1 of them
    return [(int(s), int(e) + 1) for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))
            if e - s + 1 >= min_len]


def check_channel(name: str, x: np.ndarray, sample_rate: float, start: float = 0.0, whole: bool = True) -> None:
    """Refuse a channel with NaN/inf, a flat channel or flat run, or values beyond range.

    ``x``: (N,) float64 [strain] of detector ``name`` at ``sample_rate`` [Hz]. ``name``: the detector, or a
    label ending in it ('path: H1'); a label without a detector name is only used in the messages.
    ``start`` [s], default 0: time of ``x[0]`` in the strain, for the times the messages give. ``whole``
    (default True): False when ``x`` is one block of a longer channel (:mod:`gwviz.data.stream`), so an
    all-equal block is reported as a flat run, not as a flat (missing) detector. Raises ValueError, saying
    which detector, what, where and what to pass instead, for a channel of a detector the network does
    not know (K1: :func:`check_detector`), NaN/inf, a flat channel (all equal), a flat run
    ≥ :data:`MAX_FLAT_RUN` s, |strain| above :data:`MAX_ABS_STRAIN`, or a root-mean-square outside
    :data:`STRAIN_RMS_RANGE` (not strain: whitened, rescaled or in other units).
    """
    named = _DETECTOR_NAME.findall(str(name))
    if named:
        check_detector(named[-1], str(name) if str(name) != named[-1] else "")
    bad = ~np.isfinite(x)
    if bad.any():
        n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: strain contains {n_nan} NaN and {n_inf} inf samples (first at "
                         f"{start + first / sample_rate:.4f} s); cut out the gap first")
    peak = float(np.abs(x).max()) if x.size else 0.0
    if whole and x.size and x.min() == x.max():
        raise ValueError(f"detector {name} is flat (all samples equal {x[0]:g}): a missing detector cannot be "
                         "padded with zeros or a constant; give real strain of H1, L1 and V1 (the model needs all "
                         "three) or use simulated noise for the missing one")
    if peak > MAX_ABS_STRAIN:
        raise ValueError(f"{name}: |strain| reaches {peak:.3g}, above {MAX_ABS_STRAIN:g}: whitening would overflow "
                         "float64; pass strain [dimensionless], not a scaled or corrupt series")
    # float64 sums without a copy of hours of strain (float32 squares of 1e-19 would underflow)
    rms = float(np.sqrt(np.einsum("i,i->", x, x, dtype=np.float64) / x.size)) if x.size else 0.0
    lo, hi = STRAIN_RMS_RANGE
    if rms > 0 and not lo <= rms <= hi:
        raise ValueError(f"{name}: rms {rms:.3g} is not detector strain (raw strain has rms ~ 1e-19, "
                         f"accepted {lo:g}–{hi:g}): pass strain [dimensionless], not whitened data (use "
                         "classify_window for that), strain × 1e21 or another unit")
    runs = flat_runs(x, max(2, int(MAX_FLAT_RUN * sample_rate)))
    if runs:
        a, b = max(runs, key=lambda r: r[1] - r[0])
        raise ValueError(f"{name}: {(b - a) / sample_rate:.3f} s of identical samples (value {x[a]:g}) from "
                         f"{start + a / sample_rate:.3f} s: zero-padding or a filled gap (longest allowed "
                         f"{MAX_FLAT_RUN:g} s); cut it out or give a span without it")


def check_strain(strain: dict[str, np.ndarray], sample_rate: float, min_duration: float,
                 detectors: tuple[str, ...] = DETECTORS, stack: bool = True) -> np.ndarray | list[np.ndarray]:
    """Validate the strain of several detectors and stack it to (D, N) float64.

    Parameters
    ----------
    strain : dict
        Detector -> 1-D float32/float64 array [strain]: exactly ``detectors``, equal lengths.
    sample_rate : float
        Must be 4096 Hz.
    min_duration : float
        Shortest strain accepted [s].
    detectors : tuple of str, optional
        Default ``DETECTORS`` (H1, L1, V1); a subset of them.
    stack : bool, optional
        False: the list of D float64 arrays, without the stacked copy (for hours of strain). Default True.

    Raises
    ------
    ValueError
        On a non-dict, a detector the network does not know (K1, in ``strain`` or ``detectors``:
        :func:`check_detector`), missing/extra detectors, a wrong sample rate, dtypes that lose strain (bool,
        integer, complex, float16, object), non-1-D, unequal or short arrays, and every
        :func:`check_channel` refusal (NaN/inf, flat or zero-padded channels, values beyond range).
    """
    if not isinstance(strain, dict):
        raise ValueError(f"strain must be a dict {{'H1': array, 'L1': array, 'V1': array}}, got {type(strain).__name__}")
    for d in detectors:
        check_detector(d, "detectors")
    for d in strain:
        if isinstance(d, str) and d in OTHER_DETECTORS:
            check_detector(d, "strain")
    if set(strain) != set(detectors):
        raise ValueError(f"strain must have exactly the detectors {list(detectors)}, got {sorted(map(str, strain))}")
    if (isinstance(sample_rate, (bool, np.bool_)) or not isinstance(sample_rate, (int, float, np.integer, np.floating))
            or sample_rate != SAMPLE_RATE):
        raise ValueError(f"sample_rate must be {SAMPLE_RATE} Hz, got {sample_rate!r}; resample first "
                         "(e.g. gwpy TimeSeries.resample(4096))")
    arrays = [_as_float_strain(d, strain[d]) for d in detectors]
    lengths = {d: len(a) for d, a in zip(detectors, arrays)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"detector arrays have different lengths: {lengths}; cut all detectors to the same GPS span")
    n = arrays[0].size
    if n < min_duration * sample_rate:
        raise ValueError(f"need at least {min_duration:g} s of strain ({int(min_duration * sample_rate)} samples), got {n}")
    for d, a in zip(detectors, arrays):
        check_channel(d, a, sample_rate)
    return np.stack(arrays) if stack else arrays
