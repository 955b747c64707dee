"""Power spectral densities [strain²/Hz]: O3 design fits from lalsimulation and the Welch median
estimate used for whitening (batched torch).

lalsimulation's O3 curves are zero below 10 Hz and at Nyquist; we mask those bins instead of
dividing by them (see :func:`analytic_psd`).
"""
from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
import torch

#: lalsimulation O3 sensitivity fits (LIGO-T1800545) per detector.
O3_PSD_NAMES: dict[str, str] = {"H1": "aLIGOaLIGOO3LowT1800545", "L1": "aLIGOaLIGOO3LowT1800545",
                                "V1": "AdVO3LowT1800545"}
#: Below this frequency [Hz] the O3 fits are undefined (zero); we hold the value at this frequency.
F_MIN_FIT: float = 10.0


@lru_cache(maxsize=32)
def _analytic(name: str, delta_f: float, n: int) -> np.ndarray:
    import lal
    import lalsimulation as lalsim
    series = lal.CreateREAL8FrequencySeries("psd", 0, 0, delta_f, lal.DimensionlessUnit, n)
    getattr(lalsim, "SimNoisePSD" + name)(series, F_MIN_FIT)
    psd = np.array(series.data.data)
    good = psd > 0
    if not good.any():
        raise ValueError(f"PSD {name} is zero everywhere on this grid")
    idx = np.nonzero(good)[0]
    # Hold the fit's end values outside its support: finite, positive, and the masked bins carry
    # no SNR because SNR integrals start at 20 Hz.
    psd[: idx[0]] = psd[idx[0]]
    psd[idx[-1] + 1:] = psd[idx[-1]]
    psd.setflags(write=False)
    return psd


def analytic_psd(detector: str, delta_f: float, n_freq: int) -> np.ndarray:
    """O3 design PSD of ``detector`` on the grid k·delta_f, k < n_freq (lalsimulation's LIGO-T1800545 fit).

    The fit is zero outside its support (below 10 Hz, at Nyquist); those bins hold the fit's end values,
    which carry no SNR because SNR integrals start at 20 Hz.

    Parameters
    ----------
    detector : str
        'H1', 'L1' or 'V1'.
    delta_f : float
        Frequency resolution [Hz].
    n_freq : int
        Number of frequency bins.

    Returns
    -------
    (n_freq,) ndarray
        One-sided PSD [1/Hz], float64, read-only (cached: shared between callers).

    Raises
    ------
    ValueError
        No O3 PSD for ``detector``, or the fit is zero everywhere on this grid.
    """
    if detector not in O3_PSD_NAMES:
        raise ValueError(f"no O3 PSD for detector {detector!r}; known: {sorted(O3_PSD_NAMES)}")
    return _analytic(O3_PSD_NAMES[detector], float(delta_f), int(n_freq))


#: Band [Hz] over which :func:`psd_tilts` vary (held flat outside): from the whitening cut to Nyquist.
TILT_BAND: tuple[float, float] = (15.0, 2048.0)


def check_psd_jitter(value) -> float:
    """σ of the log-PSD reshapes (``psd_jitter``) as a float; ValueError unless a number in [0, 2]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 2.0:
        raise ValueError(f"psd_jitter must be a number in [0, 2] (σ of the log-PSD reshapes), got {value!r}")
    return float(value)


def psd_tilts(freqs: torch.Tensor, n_terms: int = 3) -> torch.Tensor:
    """(n_terms, F) smooth shapes P_1..P_n (Legendre) of x = log f mapped to [-1, 1] over :data:`TILT_BAND`.

    ``exp(c @ psd_tilts(f))`` with c ~ N(0, σ²) multiplies a PSD by a random smooth tilt, curvature and
    wiggle in log frequency: how one detector's O3 noise differs from another's or from the design fit,
    for training that does not learn one PSD shape (``BatchMaker(psd_jitter=σ)``). The shapes have zero
    mean over log f in the band, so they reshape the PSD without a net level (which whitening removes).
    """
    lo, hi = TILT_BAND
    x = 2 * (freqs.clamp(lo, hi).log() - math.log(lo)) / math.log(hi / lo) - 1
    p = [torch.ones_like(x), x]
    for j in range(1, n_terms):  # Bonnet's recursion: (j + 1) P_{j+1} = (2j + 1) x P_j - j P_{j-1}
        p.append(((2 * j + 1) * x * p[j] - j * p[j - 1]) / (j + 1))
    return torch.stack(p[1:n_terms + 1])


def median_bias(n: int) -> float:
    """Bias of the median of n χ²₂ periodograms relative to their mean (arXiv:gr-qc/0509116, B).

    Parameters
    ----------
    n : int
        Number of periodograms.

    Returns
    -------
    float
        The bias factor; ln 2 for n ≥ 1000.
    """
    if n >= 1000:
        return float(np.log(2))
    return 1.0 + sum(1.0 / (2 * i + 1) - 1.0 / (2 * i) for i in range(1, (n - 1) // 2 + 1))


def welch_psd(x: torch.Tensor, sample_rate: float, seg_duration: float = 1.0, overlap: float = 0.5) -> torch.Tensor:
    """One-sided median-Welch PSD with a Hann window.

    1-s segments by default: whitening by 1/√Ŝ is biased high by the estimator's scatter (Jensen);
    with 31 half-overlapping 1-s segments of 16 s the whitened variance is ~1.02 (2-s: ~1.06).
    Each segment's mean is removed; the median is corrected by :func:`median_bias`. On a CUDA device
    the median comes from a compiled sorting network (:func:`merge_network`), 3× faster than sorting there.

    Parameters
    ----------
    x : (..., T) tensor
        Strain (any scale: the PSD scales with its square).
    sample_rate : float
        Sample rate [Hz].
    seg_duration : float, optional
        Length of a Welch segment [s]. Default 1.
    overlap : float, optional
        Overlap of consecutive segments (fraction). Default 0.5.

    Returns
    -------
    (..., n_seg // 2 + 1) tensor
        PSD [x²/Hz: 1/Hz for strain] on the grid k / seg_duration [Hz], n_seg = seg_duration · sample_rate.

    Raises
    ------
    ValueError
        ``x`` is shorter than ``seg_duration``.
    """
    n_seg = int(seg_duration * sample_rate)
    step = int(n_seg * (1 - overlap))
    if x.shape[-1] < n_seg:
        raise ValueError(f"need at least {seg_duration} s of data for a Welch PSD, got {x.shape[-1] / sample_rate} s")
    segs = x.unfold(-1, n_seg, step)  # (..., K, n_seg), a view
    win = torch.hann_window(n_seg, periodic=True, dtype=x.dtype, device=x.device)
    if n_seg > 2:
        # Each segment's mean m is removed after the FFT, which saves two passes over the segments:
        # FFT(w (s - m)) = FFT(w s) - m FFT(w), and a periodic Hann window's FFT is n/2 at bin 0,
        # -n/4 at bin 1 and 0 at every other bin up to Nyquist (n > 2).
        spec = torch.fft.rfft(segs * win, dim=-1)
        m = segs.mean(-1)
        spec[..., 0] -= m * (n_seg / 2)
        spec[..., 1] += m * (n_seg / 4)
    else:
        spec = torch.fft.rfft((segs - segs.mean(-1, keepdim=True)) * win, dim=-1)
    k = spec.shape[-2]
    med = _median_on_gpu(spec) if spec.is_cuda else None
    if med is None:
        per = spec.real ** 2 + spec.imag ** 2
        # odd k on the CPU: the middle value without a full sort, 1.8x faster than sorting there
        med = per.median(dim=-2).values if k % 2 and not per.is_cuda else sorted_median(per)
    # the periodogram's normalisation applied once, to the median (a positive scale commutes with it)
    bias = median_bias(k) if k % 2 else 0.5 * (median_bias(k - 1) + median_bias(k + 1))
    return med * (2.0 / (sample_rate * bias)) / (win ** 2).sum()  # a tensor: no device round trip


def sorted_median(per: torch.Tensor) -> torch.Tensor:
    """Median along axis -2 by sorting: the middle value for an odd count, the mean of the two middle
    ones for an even count. (Before 2026-12-03 the GPU averaged the two middle ones of an odd count
    too: its Welch PSDs were 4 % low.)"""
    k = per.shape[-2]
    srt = per.sort(dim=-2).values
    return srt[..., k // 2, :] if k % 2 else 0.5 * (srt[..., k // 2 - 1, :] + srt[..., k // 2, :])


def merge_network(n: int) -> list[tuple[int, int]]:
    """Comparators (i, j), i < j, of Batcher's odd-even merge sort of ``n`` values.

    Built for the next power of two; the comparators that touch the padding are dropped (padding
    holds +inf, which no comparator moves, so they are no-ops). Applying each as
    ``v[i], v[j] = min, max`` in order sorts ``v`` ascending.
    """
    p, out = 1 << max(n - 1, 0).bit_length(), []
    size = 1
    while size < p:
        step = size
        while step >= 1:
            for j in range(step % size, p - step, 2 * step):
                for i in range(min(step, p - j - step)):
                    if (i + j) // (2 * size) == (i + j + step) // (2 * size) and i + j + step < n:
                        out.append((i + j, i + j + step))
            step //= 2
        size *= 2
    return out


def _middle_values(per: torch.Tensor, comparators: tuple, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two middle values (equal for odd k) along axis -2 of (..., k, F) periodograms, by network."""
    v = list(per.unbind(-2))
    for i, j in comparators:
        v[i], v[j] = torch.minimum(v[i], v[j]), torch.maximum(v[i], v[j])
    return v[(k - 1) // 2], v[k // 2]


@lru_cache(maxsize=8)
def _middle_on_gpu(k: int):
    """``_middle_values`` for ``k`` periodograms compiled into one GPU kernel, or None without Triton.

    Hand-written because torch's sort and median along a short strided axis are slow on the GPU: on the
    H200 the median of 31 periodograms of a training batch takes 7.3 ms by ``sort`` (``median`` and
    ``kthvalue`` 8 ms) and 2.2 ms by this network (bench/profile_data.py).
    Values are exact: min and max only move them.
    """
    from functools import partial
    from importlib.util import find_spec
    if find_spec("triton") is None:  # torch.compile's GPU back end
        return None
    return torch.compile(partial(_middle_values, comparators=tuple(merge_network(k)), k=k))


def _median_on_gpu(spec: torch.Tensor) -> torch.Tensor | None:
    """Median over axis -2 of |spec|² by the compiled network; None where it cannot run (then sort)."""
    global _NETWORK_BROKEN
    k = spec.shape[-2]
    fn = None if _NETWORK_BROKEN else _middle_on_gpu(k)
    if fn is None:
        return None
    try:
        lo, hi = fn(spec.real ** 2 + spec.imag ** 2)
    except Exception as err:  # noqa: BLE001 - compiler failures come in many types; sort still works
        _NETWORK_BROKEN = True
        warnings.warn(f"the compiled Welch median failed ({type(err).__name__}: {err}); sorting instead")
        return None
    return lo if k % 2 else 0.5 * (lo + hi)


_NETWORK_BROKEN = False


def interpolate_psd(psd: torch.Tensor, n_out: int) -> torch.Tensor:
    """Linear interpolation of PSDs on 0..Nyquist onto ``n_out`` bins on the same span.

    Parameters
    ----------
    psd : (..., F) tensor
        PSDs [1/Hz] on 0..Nyquist.
    n_out : int
        Number of output bins.

    Returns
    -------
    (..., n_out) tensor
        ``psd`` itself when F == n_out.
    """
    if psd.shape[-1] == n_out:
        return psd
    shape = psd.shape
    out = torch.nn.functional.interpolate(psd.reshape(-1, 1, shape[-1]), size=n_out, mode="linear", align_corners=True)
    return out.reshape(*shape[:-1], n_out)
