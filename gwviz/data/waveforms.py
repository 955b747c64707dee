"""Time-domain polarisations from LALSimulation, cut to what a 4-s window needs.

A waveform only has to start early enough to cover the window plus the whitening filter's reach:
a BNS from 20 Hz lasts 281 s, but the model sees 4 s. So each waveform starts at the frequency
whose chirp time covers :data:`PRE_PEAK` seconds before the peak (never below :data:`F_FLOOR`), is
tapered at its start, and lands in a fixed buffer with its amplitude peak at index
``PRE_PEAK * sample_rate``.

We call lalsimulation directly (pycbc's ``get_td_waveform`` wraps the same function): the GPU
machines that train the model carry lalsuite but not pycbc, and one code path must serve both.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import lal
import lalsimulation as lalsim
import numpy as np

from ..constants import SAMPLE_RATE
from .params import SignalParams

#: Seconds of signal kept before the amplitude peak: 4-s window + 1-s half whitening filter + slack.
PRE_PEAK: float = 7.0
#: Seconds kept after the peak (ringdown is over within ~0.1 s for these masses).
POST_PEAK: float = 1.0
#: Lowest start frequency [Hz]: whitening removes everything below ~15 Hz anyway.
F_FLOOR: float = 15.0
#: Reference distance [Mpc]; irrelevant since every signal is rescaled to a target SNR.
DISTANCE_MPC: float = 100.0


@dataclass
class Polarisations:
    """Output of :func:`polarisations`: h+ and h× in a fixed buffer with the amplitude peak at ``peak_index``.

    Attributes
    ----------
    hp, hc : (n,) ndarray
        Plus and cross polarisations [strain], float64, tapered at the start.
    sample_rate : int
        Sample rate [Hz].
    peak_index : int
        Sample of the amplitude peak (the merger) in ``hp``/``hc``.
    f_start : float
        Frequency the waveform was generated from [Hz].
    """

    hp: np.ndarray
    hc: np.ndarray
    sample_rate: int
    peak_index: int
    f_start: float


def check_approximant(name: str) -> int:
    """LAL's number for the approximant ``name``; ValueError for anything LAL does not know.

    Parameters
    ----------
    name : str
        Exact LAL approximant name, e.g. 'SEOBNRv4_opt' or 'SpinTaylorT4'.

    Returns
    -------
    int
        LAL's enum value of the approximant.

    Raises
    ------
    ValueError
        ``name`` is not a string or not an approximant LAL can generate in the time domain
        (directly or from its frequency-domain form), or LAL would read it as another name
        (LAL finds a known name inside any string: 'SEOBNRv4_optt' -> 'SEOBNRv4_opt').
    """
    if not isinstance(name, str):
        raise ValueError(f"approximant must be a LAL approximant name (str), got {name!r}")
    try:
        approx = lalsim.GetApproximantFromString(name)
    except RuntimeError:  # XLAL's "Invalid argument"; the name is what the user needs to see
        approx = None
    if approx is None or not (lalsim.SimInspiralImplementedTDApproximants(approx)
                              or lalsim.SimInspiralImplementedFDApproximants(approx)):
        raise ValueError(f"unknown approximant {name!r}: not a waveform model LAL can generate; use e.g. "
                         "'SEOBNRv4_opt' (BBH) or 'SpinTaylorT4' (NSBH, BNS)")
    exact = lalsim.GetStringFromApproximant(approx)
    if exact != name:  # LAL finds a known name inside any string ('SEOBNRv4_optt' -> SEOBNRv4_opt)
        raise ValueError(f"unknown approximant {name!r}: LAL would read it as {exact!r}; give the exact name")
    if not lalsim.SimInspiralImplementedTDApproximants(approx):  # LAL said only "Invalid argument"
        raise ValueError(f"approximant {name!r} is a frequency-domain model; gwviz injects time-domain waveforms "
                         "(e.g. 'SEOBNRv4_opt', 'SpinTaylorT4', 'TaylorT4', 'IMRPhenomTPHM')")
    return approx


def start_frequency(mass1: float, mass2: float, duration: float = PRE_PEAK + 0.5) -> float:
    """Frequency from which a non-spinning inspiral lasts at least ``duration``.

    ``SimInspiralChirpStartFrequencyBound`` inverts a bound on the chirp time; 0.9 of it makes the
    signal ~30 % longer than asked for (duration ∝ f^-8/3), a margin against the bound's slack.

    Parameters
    ----------
    mass1, mass2 : float
        Component masses [M☉].
    duration : float, optional
        Minimum duration [s]. Default ``PRE_PEAK + 0.5`` (7.5 s).

    Returns
    -------
    float
        Start frequency [Hz], never below ``F_FLOOR`` (15 Hz).

    Raises
    ------
    ValueError
        LAL cannot handle the masses.
    """
    try:
        f = lalsim.SimInspiralChirpStartFrequencyBound(duration, mass1 * lal.MSUN_SI, mass2 * lal.MSUN_SI)
    except RuntimeError as err:  # XLAL domain error for masses LAL cannot handle
        raise ValueError(f"no start frequency for masses ({mass1:g}, {mass2:g}) M☉: {err}") from err
    return max(F_FLOOR, 0.9 * f)


def _generate(mass1: float, mass2: float, inclination: float, coa_phase: float, approximant: str,
              sample_rate: int, f_start: float) -> tuple[np.ndarray, np.ndarray]:
    """(h+, h×) from LAL, non-spinning, at ``DISTANCE_MPC``; ValueError with the masses when LAL fails."""
    code = check_approximant(approximant)
    try:
        hp, hc = lalsim.SimInspiralChooseTDWaveform(
            mass1 * lal.MSUN_SI, mass2 * lal.MSUN_SI, 0, 0, 0, 0, 0, 0,
            DISTANCE_MPC * 1e6 * lal.PC_SI, inclination, coa_phase, 0.0, 0.0, 0.0,
            1.0 / sample_rate, f_start, f_start, None, code)
    except RuntimeError as err:  # LAL reports domain errors as a bare XLAL error
        raise ValueError(f"{approximant} failed for m1={mass1:g}, m2={mass2:g} M☉ "
                         f"from {f_start:.1f} Hz: {err}") from err
    p, c = hp.data.data, hc.data.data
    # A model outside its domain can return NaN or nothing rather than fail: never pass that on.
    if p.size == 0 or not (np.isfinite(p).all() and np.isfinite(c).all()) or not (p.any() or c.any()):
        raise ValueError(f"{approximant} returned an empty, zero or non-finite waveform for "
                         f"m1={mass1:g}, m2={mass2:g} M☉ from {f_start:.1f} Hz")
    return p, c


def polarisations(params: SignalParams, sample_rate: int = SAMPLE_RATE) -> Polarisations:
    """Generate (h+, h×) for ``params`` in a buffer of (PRE_PEAK + POST_PEAK) s, peak at PRE_PEAK s.

    The waveform starts at :func:`start_frequency`, is cut to the buffer (zero-padded where it is
    shorter) and tapered at its start so that its onset does not ring through the whitening filter.
    The last 16 waveforms are kept (by masses, inclination, coalescence phase, approximant and rate):
    a new SNR, sky position or merger time reuses them; every call returns its own copies.

    Parameters
    ----------
    params : SignalParams
        Masses, inclination, coalescence phase and approximant (distance is fixed at ``DISTANCE_MPC``:
        every signal is rescaled to a target SNR later).
    sample_rate : int, optional
        Sample rate [Hz]. Default ``SAMPLE_RATE`` (4096).

    Returns
    -------
    Polarisations
        ``hp``, ``hc`` of (PRE_PEAK + POST_PEAK) · sample_rate samples [strain], ``peak_index`` =
        PRE_PEAK · sample_rate.

    Raises
    ------
    ValueError
        Unknown approximant, masses LAL cannot handle, or a waveform that is empty, zero or not finite.
    """
    hp, hc, peak, f_start = _intrinsic(float(params.mass1), float(params.mass2), float(params.inclination),
                                       float(params.coa_phase), params.approximant, int(sample_rate))
    # copies: the cached arrays stay as LAL made them whatever a caller does with its own
    return Polarisations(hp.copy(), hc.copy(), sample_rate, peak, f_start)


@functools.lru_cache(maxsize=16)
def _intrinsic(mass1: float, mass2: float, inclination: float, coa_phase: float, approximant: str,
               sample_rate: int) -> tuple[np.ndarray, np.ndarray, int, float]:
    """(hp, hc, peak_index, f_start) of :func:`polarisations`, cached on the intrinsic parameters only.

    The waveform does not depend on SNR, sky position, polarisation angle or merger time, which are
    what the app's sliders move most: with the last 16 waveforms kept (each 2 × 7.5 s × 4096 samples,
    0.5 MB) such a move reuses the waveform instead of regenerating it (0.04–0.05 s, two LAL calls for
    an inclined system). Random draws (datasets, evaluations) miss the cache and pay a copy.
    """
    f_start = start_frequency(mass1, mass2)
    p, c = _generate(mass1, mass2, inclination, coa_phase, approximant, sample_rate, f_start)
    # The merger is the peak of the face-on amplitude |h+ - i h×|: at an inclination h+ and h× carry
    # different weights and h+² + h×² oscillates, so its argmax can miss the peak by ~10 samples.
    if inclination != 0.0:
        p0, c0 = _generate(mass1, mass2, 0.0, coa_phase, approximant, sample_rate, f_start)
        peak = int(np.argmax(p0 * p0 + c0 * c0))
    else:
        peak = int(np.argmax(p * p + c * c))
    n_pre, n_post = int(PRE_PEAK * sample_rate), int(POST_PEAK * sample_rate)
    first = max(0, peak - n_pre)
    last = min(len(p), peak + n_post)
    out_p = np.zeros(n_pre + n_post)
    out_c = np.zeros(n_pre + n_post)
    lo = n_pre - (peak - first)
    out_p[lo:lo + last - first] = p[first:last]
    out_c[lo:lo + last - first] = c[first:last]
    # Taper the (possibly cut) start so its onset does not ring through the whitening filter.
    for arr in (out_p, out_c):
        vec = lal.CreateREAL8Vector(len(arr))
        vec.data = arr
        lalsim.SimInspiralREAL8WaveTaper(vec, lalsim.SIM_INSPIRAL_TAPER_START)
        arr[:] = vec.data
        arr.setflags(write=False)  # cached: read-only, so that no later code can change it by mistake
    return out_p, out_c, n_pre, f_start
