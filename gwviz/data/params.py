"""Source classes, their parameter ranges (M☉) and the isotropic draws of the paper.

Sasaoka et al. (2023): non-spinning binaries; BBH with both masses uniform in 5–80 M☉ (SEOBNRv4),
NSBH with a 5–35 M☉ black hole and a 1–2 M☉ neutron star, BNS with both masses in 1–2 M☉
(SpinTaylorT4); sky position uniform on the sphere; network SNR uniform in 8–24.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..constants import CLASSES, MERGER_SPAN, WINDOW_DURATION

SIGNAL_CLASSES: tuple[str, ...] = tuple(c for c in CLASSES if c != "noise")

#: (mass1 range, mass2 range) in M☉ per class; mass1 is the heavier (BH) component.
MASS_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "BBH": ((5.0, 80.0), (5.0, 80.0)),
    "NSBH": ((5.0, 35.0), (1.0, 2.0)),
    "BNS": ((1.0, 2.0), (1.0, 2.0)),
}
#: Default LAL approximant per class. SEOBNRv4_opt is the optimised implementation of SEOBNRv4
#: (same model, ~20x faster); SEOBNRv4_ROM would need a data file that is not always available.
APPROXIMANTS: dict[str, str] = {"BBH": "SEOBNRv4_opt", "NSBH": "SpinTaylorT4", "BNS": "SpinTaylorT4"}
#: Network optimal SNR range of the paper.
SNR_RANGE: tuple[float, float] = (8.0, 24.0)
#: Largest network optimal SNR an injection may ask for. The loudest events observed reach ~80; far above
#: 1000 the signal dominates the Welch PSD estimate that whitens it (at SNR 1e14 the whitened peak is 30 %
#: below its value at SNR 10, relative to the SNR), and near 1e20 the window is nonsense.
MAX_SNR: float = 1000.0
#: The paper's O3 noise span, GPS seconds (H1, L1 and V1 observing).
O3_GPS_SPAN: tuple[int, int] = (1238163456, 1239879680)


#: GPS times [s] LAL can turn into sidereal time (its GPS seconds are a 32-bit int; 0 is 1980-01-06).
GPS_LIMITS: tuple[float, float] = (0.0, float(2**31 - 1))

#: How a Python caller overrides the class mass ranges (the app, which cannot, replaces it).
OUTSIDE_HINT = " (pass allow_outside=True to override)"

def is_real_number(x) -> bool:
    """True for a finite int/float (Python or numpy), False for bool, NaN, inf, str, arrays, None.

    Parameters
    ----------
    x : object
        Any value.

    Returns
    -------
    bool
    """
    return (isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))
            and math.isfinite(x))


def check_class(kind: str) -> str:
    """Check a class name.

    Parameters
    ----------
    kind : str
        One of ``CLASSES`` ('noise', 'BBH', 'NSBH', 'BNS').

    Returns
    -------
    str
        ``kind`` unchanged.

    Raises
    ------
    ValueError
        ``kind`` is not a str in ``CLASSES``.
    """
    if not isinstance(kind, str) or kind not in CLASSES:
        raise ValueError(f"unknown class {kind!r}; expected one of {CLASSES}")
    return kind


def check_masses(kind: str, mass1: float, mass2: float, allow_outside: bool = False) -> tuple[float, float]:
    """Validate the component masses of a signal class.

    Parameters
    ----------
    kind : str
        Signal class, one of ``SIGNAL_CLASSES`` ('BBH', 'NSBH', 'BNS').
    mass1, mass2 : float
        Component masses [M☉].
    allow_outside : bool, optional
        Accept masses outside the class range of ``MASS_RANGES``. Default False.

    Returns
    -------
    mass1 : float
        The heavier mass for BBH/BNS (swapped if needed), the black hole for NSBH (never swapped) [M☉].
    mass2 : float
        The other mass [M☉].

    Raises
    ------
    ValueError
        ``kind`` is not a signal class; a mass is a bool, NaN, inf, non-numeric or non-positive (always); the
        masses are outside the class range and ``allow_outside`` is False.
    """
    if kind not in SIGNAL_CLASSES:
        raise ValueError(f"class {kind!r} has no masses; signal classes are {SIGNAL_CLASSES}")
    for name, m in (("mass1", mass1), ("mass2", mass2)):
        if not (is_real_number(m) and m > 0):
            raise ValueError(f"{name} must be a positive finite number of solar masses, got {m!r}")
    if kind != "NSBH" and mass2 > mass1:
        mass1, mass2 = mass2, mass1
    if not allow_outside:
        (lo1, hi1), (lo2, hi2) = MASS_RANGES[kind]
        if not (lo1 <= mass1 <= hi1 and lo2 <= mass2 <= hi2):
            raise ValueError(
                f"masses ({mass1:g}, {mass2:g}) M☉ are outside the {kind} range: mass1 in [{lo1:g}, {hi1:g}], "
                f"mass2 in [{lo2:g}, {hi2:g}] M☉{OUTSIDE_HINT}")
    return float(mass1), float(mass2)


def check_snr(snr: float) -> float:
    """The network optimal SNR as a float.

    Parameters
    ----------
    snr : float
        Network optimal SNR (dimensionless).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``snr`` is not a finite number in (0, :data:`MAX_SNR`] (bools refused).
    """
    if not (is_real_number(snr) and snr > 0):
        raise ValueError(f"network SNR must be a finite number > 0, got {snr!r}")
    if snr > MAX_SNR:
        raise ValueError(f"network SNR {snr:g} is above {MAX_SNR:g}: the signal would dominate the PSD estimate "
                         "that whitens it (the loudest events observed reach ~80)")
    return float(snr)


def chirp_mass(mass1: float, mass2: float) -> float:
    """Chirp mass (m1 m2)^(3/5) / (m1 + m2)^(1/5) of two component masses.

    Parameters
    ----------
    mass1, mass2 : float
        Component masses [M☉].

    Returns
    -------
    float
        Chirp mass [M☉].
    """
    return (mass1 * mass2) ** 0.6 / (mass1 + mass2) ** 0.2


@dataclass
class SignalParams:
    """Everything that defines one injected signal.

    Every number must be finite; an explicit approximant must be known to LAL. ``__post_init__``
    validates and normalises the fields (floats; mass1 the heavier for BBH/BNS).

    Attributes
    ----------
    kind : str
        Signal class: 'BBH', 'NSBH' or 'BNS'.
    mass1, mass2 : float
        Component masses [M☉]; mass1 is the heavier (BBH, BNS) or the black hole (NSBH).
    snr : float
        Target network optimal SNR (> 0).
    ra, dec : float, optional
        Right ascension and declination [rad], dec in [-π/2, π/2]. Default 0.
    polarization, inclination, coa_phase : float, optional
        Polarisation angle, inclination and coalescence phase [rad]. Default 0.
    gps : float, optional
        GPS time of the geocentric merger [s], in ``GPS_LIMITS`` (1980 to 2048). Default the start of
        ``O3_GPS_SPAN``.
    merger_offset : float, optional
        How far before the window's end the geocentric merger lands [s], in [0, 4) (training used
        [0, ``MERGER_SPAN``]). Default 0.05.
    approximant : str or None, optional
        LAL approximant name; None (default) becomes ``APPROXIMANTS[kind]``.
    allow_outside : bool, optional
        Accept masses outside ``MASS_RANGES[kind]``. Default False; not in ``to_dict`` or the repr.

    Raises
    ------
    ValueError
        Unknown class; invalid masses or SNR (see ``check_masses``, ``check_snr``); a non-finite angle or
        time; dec outside [-π/2, π/2]; gps outside ``GPS_LIMITS``; merger_offset outside [0, 4) s;
        ``allow_outside`` not a bool; an unknown approximant.
    """

    kind: str
    mass1: float
    mass2: float
    snr: float
    ra: float = 0.0
    dec: float = 0.0
    polarization: float = 0.0
    inclination: float = 0.0
    coa_phase: float = 0.0
    gps: float = float(O3_GPS_SPAN[0])
    merger_offset: float = 0.05
    approximant: str | None = None
    allow_outside: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        check_class(self.kind)
        if not isinstance(self.allow_outside, (bool, np.bool_)):
            raise ValueError(f"allow_outside must be True or False, got {self.allow_outside!r}")
        self.mass1, self.mass2 = check_masses(self.kind, self.mass1, self.mass2, self.allow_outside)
        self.snr = check_snr(self.snr)
        # Every angle and time must be a finite number: NaN/inf here made NaN samples before.
        for name in ("ra", "dec", "polarization", "inclination", "coa_phase", "gps", "merger_offset"):
            v = getattr(self, name)
            if not is_real_number(v):
                raise ValueError(f"{name} must be a finite number ({'s' if name in ('gps', 'merger_offset') else 'rad'}), "
                                 f"got {v!r}")
            setattr(self, name, float(v))
        if not (-math.pi / 2 <= self.dec <= math.pi / 2):
            raise ValueError(f"dec must be in [-pi/2, pi/2] rad, got {self.dec}")
        # outside it LAL's sidereal time failed deep in the synthesis with "Input domain error"
        if not GPS_LIMITS[0] <= self.gps <= GPS_LIMITS[1]:
            raise ValueError(f"gps must be a GPS time in [{GPS_LIMITS[0]:.0f}, {GPS_LIMITS[1]:.0f}] s (1980 to 2048, "
                             f"what LAL handles), got {self.gps:g}")
        # The merger must land inside the 4-s window (offset is measured back from its end); beyond
        # it the window holds no signal while the metadata would still claim the requested SNR.
        if not 0 <= self.merger_offset < WINDOW_DURATION:
            raise ValueError(f"merger_offset must be in [0, {WINDOW_DURATION:g}) s (seconds before the window's end "
                             f"at which the merger lands; training used [0, {MERGER_SPAN:g}]), got {self.merger_offset:g}")
        if self.approximant is None:
            self.approximant = APPROXIMANTS[self.kind]
        else:
            from .waveforms import check_approximant  # lalsimulation is heavy: only for explicit names
            check_approximant(self.approximant)

    @property
    def chirp_mass(self) -> float:
        """Chirp mass [M☉] of ``mass1`` and ``mass2``."""
        return chirp_mass(self.mass1, self.mass2)

    def to_dict(self) -> dict:
        """The fields as a dict, without ``allow_outside``, with ``chirp_mass`` [M☉] added.

        Returns
        -------
        dict
        """
        d = asdict(self)
        d.pop("allow_outside")
        d["chirp_mass"] = self.chirp_mass
        return d


def draw_sky(rng: np.random.Generator) -> dict[str, float]:
    """Isotropic sky position and orientation.

    ra uniform in [0, 2π), dec with sin(dec) uniform in [-1, 1], polarization uniform in [0, π),
    inclination with cos(inclination) uniform in [-1, 1], coa_phase uniform in [0, 2π).

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    dict of str to float
        Keys ra, dec, polarization, inclination, coa_phase [rad].
    """
    return dict(
        ra=rng.uniform(0, 2 * math.pi),
        dec=math.asin(rng.uniform(-1, 1)),
        polarization=rng.uniform(0, math.pi),
        inclination=math.acos(rng.uniform(-1, 1)),
        coa_phase=rng.uniform(0, 2 * math.pi),
    )


def check_draw_ranges(snr_range: tuple[float, float] = SNR_RANGE, merger_span: float = MERGER_SPAN,
                      gps_span: tuple[float, float] = O3_GPS_SPAN) -> None:
    """Check the ranges :func:`draw_params` draws from (numpy's own errors said "high - low < 0").

    Parameters
    ----------
    snr_range : (float, float), optional
        Network SNR range, 0 < lo ≤ hi.
    merger_span : float, optional
        Merger offsets are drawn in [0, merger_span] [s], merger_span ≥ 0.
    gps_span : (float, float), optional
        GPS range [s], lo ≤ hi.

    Raises
    ------
    ValueError
        Naming the range and what is wrong (not two finite numbers, lo > hi, an SNR ≤ 0 or > MAX_SNR, a negative span).
    """
    for name, pair in (("snr_range", snr_range), ("gps_span", gps_span)):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(is_real_number(v) for v in pair)
                and pair[0] <= pair[1]):
            raise ValueError(f"{name} must be (lo, hi), two finite numbers with lo <= hi, got {pair!r}")
    if snr_range[0] <= 0:
        raise ValueError(f"snr_range {tuple(snr_range)!r}: network SNR must be a finite number > 0, got {snr_range[0]!r}")
    if snr_range[1] > MAX_SNR:
        raise ValueError(f"snr_range {tuple(snr_range)!r}: network SNR above {MAX_SNR:g} is refused (the signal would "
                         "dominate the PSD estimate that whitens it)")
    if not (is_real_number(merger_span) and merger_span >= 0):
        raise ValueError(f"merger_span must be a finite number of seconds >= 0, got {merger_span!r}")


def draw_params(kind: str, rng: np.random.Generator, snr_range: tuple[float, float] = SNR_RANGE,
                merger_span: float = MERGER_SPAN, gps_span: tuple[float, float] = O3_GPS_SPAN) -> SignalParams:
    """Draw one signal of class ``kind`` from the paper's distributions.

    Masses uniform in ``MASS_RANGES[kind]``, sky from :func:`draw_sky`, SNR, GPS time and merger offset
    uniform in their ranges.

    Parameters
    ----------
    kind : str
        Signal class: 'BBH', 'NSBH' or 'BNS'.
    rng : numpy.random.Generator
        Random source.
    snr_range : (float, float), optional
        Range of the network optimal SNR. Default ``SNR_RANGE`` (8, 24).
    merger_span : float, optional
        The merger offset is uniform in [0, merger_span] [s]. Default ``MERGER_SPAN`` (0.1 s).
    gps_span : (float, float), optional
        Range of the GPS time [s]. Default ``O3_GPS_SPAN``.

    Returns
    -------
    SignalParams

    Raises
    ------
    ValueError
        ``kind`` is not a signal class, ``rng`` is not a numpy Generator, ``snr_range`` or ``gps_span`` is
        not a pair of finite numbers lo ≤ hi (SNRs > 0), ``merger_span`` is not a finite number ≥ 0, or the
        drawn values fail :class:`SignalParams`'s checks (e.g. a ``merger_span`` reaching 4 s).
    """
    if kind not in SIGNAL_CLASSES:
        raise ValueError(f"draw_params needs a signal class {SIGNAL_CLASSES}, got {kind!r}")
    check_draw_ranges(snr_range, merger_span, gps_span)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    (lo1, hi1), (lo2, hi2) = MASS_RANGES[kind]
    m1, m2 = rng.uniform(lo1, hi1), rng.uniform(lo2, hi2)
    return SignalParams(kind=kind, mass1=m1, mass2=m2, snr=rng.uniform(*snr_range), **draw_sky(rng),
                        gps=rng.uniform(*gps_span), merger_offset=rng.uniform(0, merger_span))
