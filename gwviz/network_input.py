"""What the network takes, and the one way raw strain becomes it.

:func:`present_detectors` (the detectors of a strain dict), :func:`window_tensor` (whitened windows as
float32 tensors; lossy dtypes refused), :func:`check_whitened` (channels that cannot be
whitened strain), :func:`pad_detectors` (absent detectors as all-zero channels,
for detector-mask weights) and the one whitening of real input: :func:`whiten_window` for one window of
checked strain, :func:`whiten_segments` for batches of segments (classify, explain, scan). Used by
:class:`gwviz.classifier.Classifier` and :mod:`gwviz.scan`.
"""
from __future__ import annotations

import numpy as np
import torch

from .constants import (DETECTORS, SAMPLE_RATE, SEGMENT_DURATION, STRAIN_SCALE, WINDOW_DURATION, WINDOW_SAMPLES,
                        window_start_index)
from .data.checks import OTHER_DETECTORS, check_detector, check_strain
from .data.psd import welch_psd
from .data.whiten import whiten_span

#: Seconds the window must keep from either end of the strain (half the 1-s whitening filter + taper).
EDGE_GUARD = 1.0


def present_detectors(strain) -> tuple[str, ...]:
    """The detectors of a strain dict in DETECTORS order. ValueError for a non-dict, unknown names or none."""
    if not isinstance(strain, dict):
        raise ValueError(f"strain must be a dict {{'H1': array, 'L1': array, 'V1': array}}, got {type(strain).__name__}")
    for k in strain:  # K1 (KAGRA): the one message of every reader and check
        if isinstance(k, str) and k in OTHER_DETECTORS:
            check_detector(k, "strain")
    if not strain or set(map(str, strain)) - set(DETECTORS) or not all(isinstance(k, str) for k in strain):
        raise ValueError(f"strain must map some of the detectors {list(DETECTORS)} to arrays, got "
                         f"{sorted(map(str, strain))}")
    return tuple(d for d in DETECTORS if d in strain)


def window_tensor(x, what: str = "window") -> torch.Tensor:
    """Whitened window(s) as a float32 tensor, refusing samples that are not float32 or float64.

    Whitened strain is O(1) with a fractional part that matters: integer or bool windows are a cast
    that truncated it (they were classified as they were before), complex ones a silent guess. Half
    precision (float16, bfloat16) is refused too, as for raw strain: its 3 significant digits are below
    the noise here, but a half-precision input says that something upstream rounded the data, and the
    house rule is one answer for every lossy dtype: pass what whitening returns.

    Parameters
    ----------
    x : array-like or tensor
        The window(s).
    what : str, optional
        Name for the message. Default 'window'.

    Returns
    -------
    tensor
        float32, on the device of ``x``.

    Raises
    ------
    ValueError
        ``x`` is not an array of real floating-point samples.
    """
    if isinstance(x, torch.Tensor):
        ok, dtype = x.dtype in (torch.float32, torch.float64), x.dtype
    else:
        x = np.asarray(x)
        ok, dtype = x.dtype in (np.float32, np.float64), x.dtype
    if not ok:
        raise ValueError(f"{what} has dtype {dtype}: whitened strain is float32 or float64 (an integer or bool "
                         "window is a cast that truncated it, a half-precision one was rounded); pass the float32 "
                         "window that whitening returns")
    return torch.as_tensor(x, dtype=torch.float32)


#: Longest strain [s] that classify / explain / analyse whiten in one piece. Its PSD estimate needs far less,
#: and a day of three detectors would have meant ~8 GB of float64 copies and FFTs before anything could fail;
#: longer strain is what ``gwviz.scan`` reads block by block.
MAX_WHITEN_DURATION: float = 4096.0


#: A whitened channel is noise of σ ≈ 1 (a few hundred at most inside a loud glitch); below this it is
#: not whitened at all (raw strain has σ ~ 1e-21).
MIN_WHITENED_STD = 1e-3
#: Beyond this no whitened data reaches, and float32 squares in DAIN's statistics would overflow.
MAX_WHITENED_ABS = 1e15


def check_whitened(x: torch.Tensor, what: str = "window") -> None:
    """Refuse channels that cannot be whitened strain: constant, far too small (raw strain) or absurdly large.

    An all-zero channel is an absent detector and passes (the weights decide whether they accept it).

    Parameters
    ----------
    x : (..., 3, T) float tensor
        Finite whitened window(s).
    what : str, optional
        Name for the message. Default 'window'.

    Raises
    ------
    ValueError
        Naming the first offending detector (and window, for a batch) and what to do instead.
    """
    if not x.numel():
        return
    lo, hi = torch.aminmax(x)  # no |x| copy: batches of windows can be gigabytes
    big = max(-float(lo), float(hi))
    if big > MAX_WHITENED_ABS:
        raise ValueError(f"{what} reaches |x| = {big:.3g}: whitened strain is O(1) (σ ≈ 1); pass raw strain to "
                         "classify(), which whitens it")
    present = (x != 0).any(-1)
    # float32 is enough below MAX_WHITENED_ABS (squares stay finite); chunks bound the temporaries
    flat = x.reshape(-1, x.shape[-1])
    std = torch.cat([flat[i:i + 1024].std(-1) for i in range(0, len(flat), 1024)]).reshape(x.shape[:-1])
    for bad, why in ((present & (std == 0), "is constant: whitened strain is noise with σ ≈ 1 (a missing detector "
                                            "is an all-zero channel, for weights trained with the detector mask)"),
                     (present & (std < MIN_WHITENED_STD), "has σ = {s:.3g}: not whitened strain (σ ≈ 1); raw strain "
                                                         "(σ ~ 1e-21) goes to classify(), which whitens it")):
        if bool(bad.any()):
            idx = bad.nonzero()[0].tolist()
            where = (f"{what} {idx[0]}: " if len(idx) > 1 else f"{what}: ") + f"{DETECTORS[idx[-1]]}"
            raise ValueError(f"{where} {why.format(s=float(std[tuple(idx)]))}")


def pad_detectors(white: torch.Tensor, detectors: tuple[str, ...]) -> torch.Tensor:
    """(B, k, T) windows of ``detectors`` -> (B, 3, T) with all-zero channels for the absent ones.

    How a detector-mask network is told that a detector did not observe; ``white`` itself when all three.
    """
    if tuple(detectors) == DETECTORS:
        return white
    out = white.new_zeros(white.shape[0], len(DETECTORS), white.shape[-1])
    out[:, [DETECTORS.index(d) for d in detectors]] = white
    return out


def whiten_window(strain: dict, sample_rate: float = SAMPLE_RATE, window_start: float | None = None,
                  min_duration: float = SEGMENT_DURATION) -> tuple[np.ndarray, float]:
    """Validate raw strain, whiten it with a median-Welch PSD of the whole input and cut the 4-s window.

    ``strain``: dict H1/L1/V1 -> equal-length 1-D arrays [strain] at ``sample_rate`` [Hz] (default 4096),
    ≥ ``min_duration`` s (default 16); a detector absent from ``strain`` is an all-zero channel (for
    detector-mask weights only). ``window_start``: window start after the first sample [s], at least
    ``EDGE_GUARD`` (1 s) from either end (default: the 4 s ending 2 s before the end).

    Returns
    -------
    window : (3, 16384) float32 ndarray
    start : float
        Window start after the first sample [s], on the sample grid.

    Raises
    ------
    ValueError
        Bad strain (:func:`gwviz.data.checks.check_strain`), strain longer than :data:`MAX_WHITEN_DURATION`,
        a bad ``window_start``, or a window that whitens to non-finite or flat values.
    """
    dets = present_detectors(strain)
    # before check_strain's float64 copies: the length is known without touching the samples
    longest = max((len(strain[d]) for d in dets if hasattr(strain[d], "__len__")), default=0)
    if sample_rate == SAMPLE_RATE and longest > MAX_WHITEN_DURATION * SAMPLE_RATE:
        raise ValueError(f"{longest / SAMPLE_RATE:g} s of strain: classify/explain whiten at most "
                         f"{MAX_WHITEN_DURATION:g} s around the window in one piece; cut the strain around it, "
                         "or scan long strain with gwviz.scan (python -m gwviz.scan), which reads it block by block")
    x = check_strain(strain, sample_rate, min_duration, dets)
    n = x.shape[-1]
    if window_start is None:
        i0 = window_start_index(n, int(sample_rate))
    else:
        if (isinstance(window_start, (bool, np.bool_)) or not isinstance(window_start, (int, float, np.integer, np.floating))
                or not np.isfinite(window_start)):
            raise ValueError(f"window_start must be a finite number of seconds (int or float) or None, "
                             f"got {window_start!r} ({type(window_start).__name__})")
        i0 = int(round(window_start * sample_rate))
        lo, hi = EDGE_GUARD, n / sample_rate - EDGE_GUARD - WINDOW_DURATION
        if not lo <= window_start <= hi:
            raise ValueError(f"window_start must be in [{lo:g}, {hi:g}] s for {n / sample_rate:g} s of strain "
                             f"(the window keeps {EDGE_GUARD:g} s from the edges), got {window_start:g}")
    white = pad_detectors(whiten_segments(torch.as_tensor(x)[None], sample_rate, i0, dets), dets)[0]
    return white.numpy(), i0 / sample_rate


def whiten_segments(segments: torch.Tensor, sample_rate: float, i0: int,
                    detectors: tuple[str, ...] = DETECTORS) -> torch.Tensor:
    """Whiten checked raw strain segments with each one's own median-Welch PSD and cut the 4-s windows.

    ``segments`` (B, k, N) [strain] of ``detectors`` -> (B, k, 16384) float32 windows starting at sample
    ``i0``, on the segments' device. The one whitening of real input (classify, explain, scan). ValueError
    naming the detectors (and segments) whose window came out non-finite or flat.
    """
    t = segments.to(torch.float64) * STRAIN_SCALE
    white = whiten_span(t, welch_psd(t, sample_rate), sample_rate, i0, WINDOW_SAMPLES).float()
    # check_strain refuses what is known to break whitening; this catches what it cannot foresee
    # (e.g. a PSD that is zero in band), so the model never sees a NaN window.
    ok = torch.isfinite(white).all(-1) & (white.std(-1) > 0)  # (B, 3)
    if not ok.all():
        rows, dets = torch.nonzero(~ok, as_tuple=True)
        bad = sorted({detectors[int(d)] for d in dets})
        where = "" if len(white) == 1 else f" in segment(s) {sorted({int(r) for r in rows})[:5]}"
        raise ValueError(f"whitening {bad} gave a non-finite or flat window{where}: the strain has no usable "
                         "noise power (is it noise-free or mostly constant?)")
    return white
