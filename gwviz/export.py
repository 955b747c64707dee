"""Take a sample home and hear it: an Explore result as HDF5 and CSV, and whitened strain as sound.

Used by the app's Explore page (download buttons, audio players); plain functions of a
:class:`gwviz.session.ExploreResult`, so a notebook gets the same files.
"""
from __future__ import annotations

import io
import json

import numpy as np

from .constants import CLASSES, DETECTORS, SAMPLE_RATE

#: How much faster than real time the strain is played: a chirp sweeping 20–500 Hz is heard at
#: 80–2,000 Hz, where ears are most sensitive (GW outreach does the same).
SPEED_UP = 4
#: Band kept before playing [Hz]: below it whitened noise is a rumble, above it a hiss that buries the chirp.
AUDIO_BAND = (20.0, 500.0)


def sample_hdf5(res) -> bytes:
    """The sample of an Explore result as an HDF5 file (bytes).

    Parameters
    ----------
    res : gwviz.session.ExploreResult

    Returns
    -------
    bytes
        Datasets: whitened window ``data`` (3, 16384) [σ], raw strain ``raw`` (3, 16384) [strain], the
        clean injected ``signal`` and ``white_signal``, the attribution ``cam`` (16384,), the class
        ``probabilities`` (4,); attributes: metadata (JSON), method, target, label, rule, units.
    """
    import h5py
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for name, x in (("data", res.sample.data), ("raw", res.raw), ("signal", res.sample.signal),
                        ("white_signal", res.sample.white_signal), ("cam", res.cam)):
            f.create_dataset(name, data=np.asarray(x, dtype=np.float64 if name in ("raw", "signal") else np.float32),
                             compression="gzip")
        f.create_dataset("probabilities", data=np.array([res.prediction.probabilities[c] for c in CLASSES]))
        f.attrs.update({"classes": ",".join(CLASSES), "detectors": ",".join(DETECTORS), "sample_rate": SAMPLE_RATE,
                        "meta": json.dumps(res.sample.meta, default=float), "method": res.method, "target": res.target,
                        "label": res.prediction.label, "rule": res.prediction.rule_text,
                        "units": "data, white_signal: whitened strain [noise sigma]; raw, signal: strain; "
                                 "cam: attribution normalised to [0, 1]; times: sample / sample_rate [s]"})
    return buf.getvalue()


def explanation_csv(res) -> str:
    """The attribution map and the whitened strain of an Explore result as CSV text.

    Parameters
    ----------
    res : gwviz.session.ExploreResult

    Returns
    -------
    str
        Columns time [s], the attribution map (``<method>_<target>``) and the whitened strain of each
        detector; one row per sample.
    """
    t = np.arange(res.cam.shape[-1]) / SAMPLE_RATE
    cols = np.column_stack([t, res.cam, *res.sample.data])
    head = f"time_s,{res.method}_{res.target}," + ",".join(f"whitened_{d}" for d in DETECTORS)
    out = io.StringIO()
    np.savetxt(out, cols, delimiter=",", header=head, comments="", fmt="%.6g")
    return out.getvalue()


def audible(x: np.ndarray, sample_rate: float = SAMPLE_RATE, speed: int = SPEED_UP,
            band: tuple[float, float] = AUDIO_BAND) -> tuple[np.ndarray, int]:
    """Whitened strain as sound, to be played at ``speed`` × the sample rate.

    Band-passed to ``band`` with a real, smooth-edged mask in the frequency domain (zero phase, so the
    chirp stays where it was), faded in and out over 50 ms and scaled to ±0.9. numpy only: scipy.signal
    would add ~1 s to the app's first load.

    Parameters
    ----------
    x : (N,) array_like
        Whitened strain, finite, at least 0.25 s.
    sample_rate : float, optional
        Sample rate [Hz]. Default 4096.
    speed : int, optional
        Playback speed-up. Default :data:`SPEED_UP` (4).
    band : (float, float), optional
        Band kept [Hz]. Default :data:`AUDIO_BAND` (20–500 Hz).

    Returns
    -------
    samples : (N,) float32 ndarray
    rate : int
        Playback rate [Hz].

    Raises
    ------
    ValueError
        If ``x`` is not a finite 1-D series of at least 0.25 s.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < sample_rate / 4 or not np.isfinite(x).all():
        raise ValueError(f"need a finite 1-D series of at least 0.25 s, got shape {x.shape}")
    f = np.fft.rfftfreq(x.size, 1 / sample_rate)
    lo, hi = band
    edge = 0.2 * lo  # Hann-shaped edges, 4 Hz wide at 20 Hz: no ringing worth hearing
    mask = np.clip((f - (lo - edge)) / edge, 0, 1) * np.clip(((hi + edge) - f) / edge, 0, 1)
    mask = np.sin(0.5 * np.pi * mask) ** 2
    y = np.fft.irfft(np.fft.rfft(x) * mask, n=x.size)
    fade = int(0.05 * sample_rate)
    ramp = np.sin(np.linspace(0, np.pi / 2, fade)) ** 2
    y[:fade] *= ramp
    y[-fade:] *= ramp[::-1]
    peak = np.abs(y).max()
    return (0.9 * y / peak if peak > 0 else y).astype(np.float32), int(sample_rate * speed)
