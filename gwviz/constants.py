"""Fixed conventions shared by every part of gwviz (units in names: s, Hz)."""
from __future__ import annotations

#: Detectors in the order of the model's input channels.
DETECTORS: tuple[str, ...] = ("H1", "L1", "V1")
#: Detector networks the model may be asked about, all three first: every non-empty subset of
#: DETECTORS, written as the detectors' names run together ("H1L1", "V1").
SUBSETS: tuple[str, ...] = ("H1L1V1", "H1L1", "H1V1", "L1V1", "H1", "L1", "V1")
#: Class names in the order of the model's logits.
CLASSES: tuple[str, ...] = ("noise", "BBH", "NSBH", "BNS")
#: Sample rate of everything the model sees [Hz].
SAMPLE_RATE: int = 4096
#: Duration of the window the model sees [s].
WINDOW_DURATION: float = 4.0
#: Samples in the window: 4 s x 4096 Hz.
WINDOW_SAMPLES: int = int(WINDOW_DURATION * SAMPLE_RATE)
#: Default raw-strain segment that surrounds one window [s]; the whole segment
#: estimates the PSD (Welch), the window is the 4 s ending 2 s before its end.
SEGMENT_DURATION: float = 16.0
#: Gap between the window's end and the segment's end [s]: keeps the window
#: clear of the whitening filter's wrap-around at the segment edge.
WINDOW_END_MARGIN: float = 2.0
#: Lower frequency cutoff of matched-filter SNRs [Hz].
F_LOWER_SNR: float = 20.0
#: Upper frequency cutoff of optimal SNRs [Hz]. GWOSC's 4-kHz strain is anti-alias filtered from ~1.6 kHz (the
#: GW190521 PSDs fall 100x from 1.6 to 1.8 kHz), a real signal in it too; counted up to Nyquist against that PSD,
#: 43 % of a BNS's SNR^2 (median) came from above 1.5 kHz, where no real signal can have it. In O3's noise a
#: signal loses <= 0.1 % of its SNR to the cutoff (docs/ablation/snr-band.txt).
F_UPPER_SNR: float = 1500.0
#: Injected signals are band-limited like the 4-kHz data they go into: 1 up to F_UPPER_SNR, a raised cosine to 0
#: here [Hz] (where the GWOSC anti-alias filter starts). Unlimited, a signal whitened by real data's tiny PSD up there
#: carried a loud merger no real event has (run 1 then found real-noise BNS at SNR 10-11 3.5x as often as simulated).
F_SIGNAL_STOP: float = 1600.0
#: Merger time lands uniformly in the last this-many seconds of the window [s].
MERGER_SPAN: float = 0.1
#: Confident events (GPS [s]) near the data we use; noise windows never contain them (± EVENT_GUARD s [s]).
KNOWN_EVENTS: dict[str, float] = {
    "GW190408_181802": 1238782700.3, "GW190412": 1239082262.2, "GW190413_052954": 1239168612.5,
    "GW190413_134308": 1239198206.7, "GW190425": 1240215503.0, "GW190521": 1242442967.4,
}
EVENT_GUARD: float = 2.0
#: Strain is multiplied by this inside torch (PSDs by its square): O3 PSDs (~1e-47 /Hz) underflow
#: float32, strain × 1e21 is O(1).
STRAIN_SCALE: float = 1e21


def window_start_index(n_segment: int, sample_rate: int = SAMPLE_RATE) -> int:
    """First sample of the model's window in a segment of ``n_segment`` samples.

    The window is the 4 s ending 2 s before the segment's end (the one home of that rule).

    Parameters
    ----------
    n_segment : int
        Samples in the segment.
    sample_rate : int, optional
        Sample rate of the segment [Hz]. Default ``SAMPLE_RATE`` (4096).

    Returns
    -------
    int
        Index of the window's first sample; negative when the segment is shorter than
        ``WINDOW_DURATION + WINDOW_END_MARGIN`` (6 s).
    """
    return n_segment - int((WINDOW_END_MARGIN + WINDOW_DURATION) * sample_rate)


#: Start of the model's window in a 16-s segment [s after the segment's start] (10 s).
WINDOW_OFFSET: float = SEGMENT_DURATION - WINDOW_END_MARGIN - WINDOW_DURATION


def subset_detectors(subset: str) -> tuple[str, ...]:
    """The detectors of a network name such as "H1L1", in the order of ``DETECTORS``.

    Parameters
    ----------
    subset : str
        One of ``SUBSETS``.

    Returns
    -------
    tuple of str
        The detectors, e.g. ``("H1", "L1")``.

    Raises
    ------
    ValueError
        ``subset`` is not a str in ``SUBSETS``.
    """
    if not isinstance(subset, str) or subset not in SUBSETS:
        raise ValueError(f"detector subset must be one of {SUBSETS}, got {subset!r}")
    return tuple(d for d in DETECTORS if d in subset)


def subset_name(detectors) -> str:
    """Network name of an iterable of detector names ({"V1", "L1"} -> "L1V1").

    Parameters
    ----------
    detectors : iterable of str
        Detector names from ``DETECTORS``, in any order.

    Returns
    -------
    str
        The names run together in the order of ``DETECTORS``.

    Raises
    ------
    ValueError
        ``detectors`` is empty or names a detector not in ``DETECTORS``.
    """
    dets = set(detectors)
    if not dets or dets - set(DETECTORS):
        raise ValueError(f"detectors must be a non-empty subset of {DETECTORS}, got {sorted(dets)}")
    return "".join(d for d in DETECTORS if d in dets)
