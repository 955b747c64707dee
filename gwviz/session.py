"""The thin function layer behind the Streamlit app (``app/``): one call per user action.

Every function here only wires existing gwviz pieces together — injection and whitening go
through :func:`gwviz.data.synth.make_sample`, classification and attribution through
:class:`gwviz.classifier.Classifier` — so the app stays a view and the same results can be had
from a notebook:

>>> from gwviz.session import explore
>>> r = explore("BBH", mass1=36, mass2=29, snr=12, seed=1)
>>> r.prediction.label, r.sample.meta["snr_network"], r.cam.shape      # (16384,)

Units: masses M☉, angles rad, times s, frequencies Hz.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .classifier import DEFAULT_WEIGHTS, Classifier, Prediction, load_classifier
from .constants import CLASSES, DETECTORS, SAMPLE_RATE, SEGMENT_DURATION, WINDOW_DURATION, WINDOW_SAMPLES
from .explain.attribution import METHODS, normalise, randomisation_check
from .data.noise import DATA_DIR_ENV, KNOWN_EVENTS, SimulatedNoise, resolve_data_dir
from .data.strain import Strain, read_strain, refuse_pickled_channel, resample
from .data.params import OUTSIDE_HINT, SignalParams
from .paths import BUNDLED_DATA, files_within
from .constants import window_start_index
from .data.synth import Sample, make_sample

#: Environment variable naming a weights file to use instead of the shipped one.
WEIGHTS_ENV = "GWVIZ_WEIGHTS"
#: The attribution method the app opens on: the one whose CAM statistics on the shipped weights
#: reproduce the paper's claim (docs/gradcam.md: HiResCAM holds; the paper's Grad-CAM does not
#: for this fully connected head). Every method stays one choice away.
DEFAULT_METHOD = "hirescam"
#: Environment variable with the number of torch intra-op threads of the app (default 1).
THREADS_ENV = "GWVIZ_TORCH_THREADS"
#: Where the merger of a real event is put inside the 4-s window: this many seconds before its end,
#: like the training data (mergers in the last 0.1 s).
EVENT_OFFSET: float = 0.05


@lru_cache(maxsize=4)
def default_classifier(path: str | None = None) -> Classifier:
    """The app's classifier: ``path``, else $GWVIZ_WEIGHTS, else the shipped weights, else an
    untrained model (``.trained`` is False: the app must say so)."""
    path = path or os.environ.get(WEIGHTS_ENV) or None
    return load_classifier(path, allow_untrained=path is None)


def subset_classifier(clf: Classifier | None = None) -> Classifier | None:
    """A classifier that takes one or two detectors: ``clf`` where its weights were trained with the
    detector mask (``clf.subsets`` lists every network), else the shipped weights
    (:data:`gwviz.classifier.DEFAULT_WEIGHTS`, trained with detectors dropped at random) where they are
    installed and take subsets, else None."""
    if clf is not None and len(clf.subsets) > 1:
        return clf
    if not DEFAULT_WEIGHTS.exists():
        return None
    shipped = load_classifier(DEFAULT_WEIGHTS)
    return shipped if len(shipped.subsets) > 1 else None


def app_classifier(weights: str | None = None) -> tuple[Classifier, str | None]:
    """The app's classifier and, if ``weights`` (the value of $GWVIZ_WEIGHTS) is unusable, why.

    A bad setting must not take every page down: the message says what is wrong and the shipped
    weights (or, without them, the labelled untrained model) are used instead. The message names
    the file as ``$GWVIZ_WEIGHTS``, not by its server path."""
    weights = (weights or "").strip()
    if not weights:
        return load_classifier(None, allow_untrained=True), None
    path = Path(weights).expanduser()
    try:
        if not path.exists():
            raise ValueError("no such file")
        if path.is_dir():
            raise ValueError("is a directory, not a weights file")
        return load_classifier(path), None
    # load_weights raises ValueError for foreign files; KeyError/TypeError/RuntimeError come from a
    # gwviz-format file with a broken config (GWNet.from_config), OSError from unreadable files
    except (ValueError, KeyError, TypeError, RuntimeError, OSError) as err:
        reason = str(err)
        for form in sorted({weights, str(path), str(path.resolve())}, key=len, reverse=True):
            reason = reason.replace(form + ": ", "").replace(form, f"${WEIGHTS_ENV}")
        fallback = load_classifier(None, allow_untrained=True)
        instead = "the shipped weights" if fallback.trained else "an UNTRAINED model"
        return fallback, (f"${WEIGHTS_ENV} does not name usable weights ({type(err).__name__}: {reason}). "
                          f"Using {instead} instead; fix or unset ${WEIGHTS_ENV} and restart the app.")


def torch_threads(raw: str | None, cpus: int | None = None) -> int:
    """The thread count asked for by ``raw`` (the text of $GWVIZ_TORCH_THREADS); empty -> 1.

    Raises ValueError for anything but a whole number from 1 to the CPU count (``cpus``, default
    os.cpu_count()): 0, negative, 'abc' or 10**9 threads are mistakes, not requests."""
    text = (raw or "").strip()
    if not text:
        return 1
    cpus = cpus or os.cpu_count() or 1
    shown = text if len(text) <= 20 else text[:20] + "…"
    try:
        n = int(text, 10)
    except ValueError:
        raise ValueError(f"${THREADS_ENV}={shown!r} is not a whole number; use 1 to {cpus}") from None
    if not 1 <= n <= cpus:
        raise ValueError(f"${THREADS_ENV}={shown!r} is out of range; use 1 to {cpus} (this machine's CPUs)")
    return n


def signal_params(kind: str, mass1: float, mass2: float, snr: float, ra: float = 0.0, dec: float = 0.0,
                  polarization: float = 0.0, inclination: float = 0.0, merger_offset: float = 0.05,
                  coa_phase: float = 0.0) -> SignalParams | None:
    """Validated :class:`SignalParams` for a signal class (None for 'noise'); ValueError on bad values."""
    if kind not in CLASSES:
        raise ValueError(f"unknown class {kind!r}; expected one of {CLASSES}")
    if kind == "noise":
        return None
    try:
        return SignalParams(kind=kind, mass1=mass1, mass2=mass2, snr=snr, ra=ra, dec=dec, polarization=polarization,
                            inclination=inclination, merger_offset=merger_offset, coa_phase=coa_phase)
    except ValueError as err:  # a page user cannot pass allow_outside: say why the range holds instead
        if OUTSIDE_HINT not in str(err):
            raise
        raise ValueError(str(err).replace(OUTSIDE_HINT, "") + ". The network was trained only inside these "
                         "ranges, so its answer outside them would mean little; choose masses inside them") from None


@dataclass
class ExploreResult:
    """One Explore update. sample: the whitened window and its metadata; raw: (3, 16384) raw
    strain of the window (noise + injected signal) [strain]; prediction: the model's output;
    cam: (16384,) attribution of ``target`` normalised to [0, 1]; elapsed: seconds spent."""

    sample: Sample
    raw: np.ndarray
    prediction: Prediction
    cam: np.ndarray
    target: str
    method: str
    elapsed: float

    @property
    def time(self) -> np.ndarray:
        """(16384,) seconds since the window's start."""
        return np.arange(WINDOW_SAMPLES) / SAMPLE_RATE

    def merger_times(self) -> dict[str, float]:
        """Merger time in each detector [s since the window's start]; empty for noise."""
        m = self.sample.meta
        return {d: m[f"merger_index_{d}"] / SAMPLE_RATE for d in DETECTORS if f"merger_index_{d}" in m}

    @property
    def noise_label(self) -> str:
        m = self.sample.meta
        return ("SIMULATED noise: " if m["simulated_noise"] else "REAL noise: ") + m["noise_source"]


def explore(kind: str, mass1: float = 30.0, mass2: float = 25.0, snr: float = 12.0, ra: float = 0.0, dec: float = 0.0,
            polarization: float = 0.0, inclination: float = 0.0, merger_offset: float = 0.05, noise=None,
            seed: int = 0, classifier: Classifier | None = None, method: str = "gradcam",
            target: str | None = None) -> ExploreResult:
    """Inject a signal of class ``kind`` into noise, whiten, classify and explain.

    ``noise``: a noise source (see :func:`noise_source`) or None for simulated O3 noise; masses and
    SNR are ignored for 'noise'. ``target``: the class to explain (default: the predicted one)."""
    t0 = time.perf_counter()
    params = signal_params(kind, mass1, mass2, snr, ra, dec, polarization, inclination, merger_offset)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if target is not None and target not in CLASSES:
        raise ValueError(f"target must be one of {CLASSES}, got {target!r}")
    clf = classifier or default_classifier()
    source = noise if noise is not None else SimulatedNoise()
    rng = np.random.default_rng(seed)
    seg = source.segment(SEGMENT_DURATION, rng)
    raw_noise = seg.strain.copy()  # make_sample leaves the strain alone, the copy makes that explicit
    sample = make_sample(kind, source, params=params, rng=rng, segment=seg)
    i0 = window_start_index(raw_noise.shape[-1], SAMPLE_RATE)
    raw = raw_noise[:, i0:i0 + WINDOW_SAMPLES] + sample.signal
    pred, cam = clf.classify_and_explain_window(sample.data, method, target)
    target = target or pred.label
    cam = normalise(cam)
    return ExploreResult(sample, raw, pred, cam, target, method, time.perf_counter() - t0)


def q_transform(x: np.ndarray, sample_rate: float = SAMPLE_RATE, whiten: bool = False,
                frange: tuple[float, float] = (20.0, 1024.0), outseg: tuple[float, float] | None = None,
                qrange: tuple[float, float] = (4, 64)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """gwpy Q-transform of one detector's strain (N,) starting at t = 0: returns (times [s] (T,),
    frequencies [Hz] (F,), normalised energy (F, T)). ``whiten``: let gwpy whiten it (for raw
    strain); ``outseg``: the span [s] to return (default: all of ``x``, so a merger 0.05 s before a
    window's end stays on the plot)."""
    from gwpy.timeseries import TimeSeries
    x = np.asarray(x, dtype=np.float64)
    dur = len(x) / sample_rate
    pad = 0
    if outseg is None:
        # gwpy transforms the whole series at once (circularly): 0.5 s of zeros at either end keeps
        # the wrap-around away from the first and last samples instead of cutting them off
        pad = int(0.5 * sample_rate)
        x, outseg = np.pad(x, pad), (0.0, dur)
    ts = TimeSeries(x, t0=-pad / sample_rate, sample_rate=sample_rate)
    kw = dict(fftlength=1.0, overlap=0.5) if whiten else {}
    # log-spaced frequencies and 10-ms bins keep the figure small (~350 x 128) and the call ~0.1 s
    q = ts.q_transform(whiten=whiten, frange=frange, qrange=qrange, outseg=outseg, logf=True,
                       fres=128, tres=0.01, **kw)
    return np.asarray(q.times.value), np.asarray(q.frequencies.value), np.asarray(q.value).T


# --- Learn page --------------------------------------------------------------------------------

def asd(x: np.ndarray, sample_rate: float = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Median-Welch ASD of x (D, T) [strain]: (frequencies [Hz] (F,), ASD [1/√Hz] (D, F)), 1-s segments."""
    from .data.psd import welch_psd
    from .constants import STRAIN_SCALE
    psd = welch_psd(torch.as_tensor(np.asarray(x) * STRAIN_SCALE), sample_rate).numpy() / STRAIN_SCALE ** 2
    return np.arange(psd.shape[-1]) * 1.0, np.sqrt(psd)


def design_asd(freqs: np.ndarray) -> np.ndarray:
    """The O3 design ASDs (3, F) [1/√Hz] the simulated noise is drawn from, on 1-Hz-spaced ``freqs``."""
    return np.sqrt(SimulatedNoise().psd(1.0, len(freqs)))


def antenna_map(gps: float, polarization: float = 0.0, n_ra: int = 72, n_dec: int = 36) -> dict:
    """Sky maps of the antenna response √(F+² + F×²) of each detector at GPS ``gps`` [s].

    Returns dict ra (n_ra,) [rad], dec (n_dec,) [rad], response (3, n_dec, n_ra)."""
    from .data.detectors import antenna_patterns, gmst
    ra = np.linspace(0, 2 * np.pi, n_ra)
    dec = np.linspace(-np.pi / 2, np.pi / 2, n_dec)
    rr, dd = (torch.as_tensor(a.ravel()) for a in np.meshgrid(ra, dec))
    g = torch.full_like(rr, float(gmst(gps)))
    fp, fc = antenna_patterns(rr, dd, torch.full_like(rr, polarization), g)
    resp = (fp ** 2 + fc ** 2).sqrt().T.reshape(len(DETECTORS), n_dec, n_ra).numpy()
    return {"ra": ra, "dec": dec, "response": resp}


def compare_attributions(clf: Classifier, window: np.ndarray, target: str,
                         cheap: bool = False) -> dict[str, np.ndarray]:
    """Grad-CAM, integrated gradients and occlusion profiles (16384,) of one window, each in [0, 1].
    ``cheap``: fewer IG steps and coarser occlusion (tests, slow machines)."""
    kw = {"gradcam": {}, "hirescam": {}, "integrated_gradients": dict(n_steps=4 if cheap else 16, internal_batch_size=4),
          "occlusion": dict(occlusion_window=2048, occlusion_stride=2048) if cheap else {}}
    return {m: normalise(clf.explain_window(window, target, m, **kw[m])) for m in METHODS}


def sanity_check(clf: Classifier, window: np.ndarray, target: str, seed: int = 0) -> float:
    """Spearman ρ between the Grad-CAM of the model and of a weight-randomised copy (near 1: the map
    shows the architecture, not what was learned)."""
    return randomisation_check(clf.model, window, CLASSES.index(target), "gradcam", seed=seed)


# --- Real events --------------------------------------------------------------------------------

@dataclass
class RealEvent:
    """Raw strain of a real event: strain {det: (N,)} [strain] at ``sample_rate`` [Hz] from GPS ``t0``
    [s]; ``event_time`` [s after t0]; ``window_start`` [s after t0] puts the merger
    :data:`EVENT_OFFSET` s before the window's end; ``files`` the paths read."""

    name: str
    strain: dict[str, np.ndarray]
    sample_rate: float
    t0: float
    event_time: float
    window_start: float
    files: list[str]


def event_window_start(event_time: float, offset: float = EVENT_OFFSET) -> float:
    """Window start [s] that puts a merger at ``event_time`` [s] ``offset`` s before the 4-s window's end."""
    return event_time - WINDOW_DURATION + offset


def _find(root: Path, pattern: str) -> Path:
    hits = files_within(root, pattern=pattern)  # bounded, symlinks out of the root skipped
    if not hits:
        raise ValueError(f"no file matching `{pattern}` under {root}")  # `: a glob's * is not markdown
    return refuse_pickled_channel(hits[0])


def event_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where the example events are read: ``data_dir``, else $GWVIZ_DATA_DIR, else the copies
    bundled with gwviz (:data:`gwviz.paths.BUNDLED_DATA`), so the real events work on a fresh clone."""
    if data_dir or os.environ.get(DATA_DIR_ENV, ""):
        return resolve_data_dir(data_dir)
    return BUNDLED_DATA


def load_gw190521(data_dir: str | os.PathLike | None = None) -> RealEvent:
    """GW190521 in H1, L1, V1: the 32 s of ``*GW190521*/{det}_data_32s.hdf5`` under
    :func:`event_data_dir` (GWOSC O3a strain at 4096 Hz, the event ~16 s in)."""
    root = event_data_dir(data_dir)
    parts = [read_strain(_find(root, f"*GW190521*/{d}_data_32s.hdf5")) for d in DETECTORS]
    t0s = {round(s.t0, 3) for s in parts}
    if len(t0s) != 1 or {s.sample_rate for s in parts} != {SAMPLE_RATE}:
        got = [(s.t0, s.sample_rate) for s in parts]
        raise ValueError(f"GW190521 files must share start time and {SAMPLE_RATE} Hz, got {got}")
    t0 = parts[0].t0
    ev = KNOWN_EVENTS["GW190521"] - t0
    return RealEvent("GW190521", {s.detector: s.data for s in parts}, SAMPLE_RATE, t0, ev, event_window_start(ev),
                     [s.path for s in parts])


def analyse_event(clf: Classifier, event: RealEvent, window_start: float | None = None, method: str = "gradcam",
                  target: str | None = None) -> tuple[Prediction, np.ndarray, np.ndarray]:
    """Classify and explain a real event's window: (prediction, attribution (16384,) in [0, 1],
    whitened window (3, 16384)). ValueError on bad strain or window."""
    start = event.window_start if window_start is None else window_start
    pred, cam, window = clf.analyse(event.strain, event.sample_rate, start, target, method)
    return pred, normalise(cam), window


def load_gw190425_l1(data_dir: str | os.PathLike | None = None) -> tuple[Strain, Strain]:
    """GW190425's L1 strain under :func:`event_data_dir`: (as read, at 4096 Hz). The GWOSC 16-kHz
    frame file ``L-L1_*1240215487*.gwf`` if there is one (resampled with gwpy), else the bundled
    4096-Hz copy ``*GW190425*/L1_data_32s.hdf5`` (made from that frame file the same way)."""
    root = event_data_dir(data_dir)
    patterns = ("L-L1_*1240215487*.gwf", "*GW190425*/L1_data_32s.hdf5")
    hits = [h for p in patterns for h in files_within(root, pattern=p)]
    if not hits:
        raise ValueError(f"no file matching `{patterns[0]}` or `{patterns[1]}` under {root}")
    raw = read_strain(refuse_pickled_channel(hits[0]))
    return raw, raw if raw.sample_rate == SAMPLE_RATE else resample(raw, SAMPLE_RATE)


def refusal_message(clf: Classifier, strain: dict[str, np.ndarray], sample_rate: float = SAMPLE_RATE) -> str | None:
    """The error :meth:`Classifier.classify` raises for ``strain`` (e.g. missing detectors), or None
    if it classifies."""
    try:
        clf.classify(strain, sample_rate)
    except ValueError as err:
        return str(err)
    return None


def fill_missing(strain: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """WHAT-IF ONLY: add simulated O3 noise (same length, 4096 Hz) for the detectors that ``strain`` lacks."""
    n = len(next(iter(strain.values())))
    seg = SimulatedNoise().segment(n / SAMPLE_RATE, np.random.default_rng(seed))
    return {d: np.asarray(strain[d]) if d in strain else seg.strain[i] for i, d in enumerate(DETECTORS)}


def gw190425_what_if(l1: Strain, seed: int = 0) -> RealEvent:
    """WHAT-IF ONLY: GW190425's real L1 (4096 Hz) with simulated O3 noise for H1 and V1."""
    if l1.sample_rate != SAMPLE_RATE:
        raise ValueError(f"resample L1 to {SAMPLE_RATE} Hz first, got {l1.sample_rate:g} Hz")
    ev = KNOWN_EVENTS["GW190425"] - l1.t0
    return RealEvent("GW190425 what-if (H1, V1 simulated)", fill_missing({"L1": l1.data}, seed), SAMPLE_RATE,
                     l1.t0, ev, event_window_start(ev), [l1.path])
