"""Scan long H1/L1/V1 strain with the classifier: the detection statistic every ``stride`` seconds,
clustered triggers with their class, false-positive rate and attribution map.

Each scanned window is made exactly as in training and in :meth:`Classifier.classify`: a 16-s
segment whitened with its own median-Welch PSD, and the 4 s ending 2 s before the segment's end.
Segments are cut batch by batch (a copy of one batch's span, never of the whole strain) and whitened
and classified on the classifier's device, so the scan's own memory stays bounded by ``batch``
whatever the length of the strain. Strain from files is read ``--block`` seconds at a time
(:mod:`gwviz.data.stream`: the same samples and checks as a whole-file read, the same numbers), so
hours of strain scan with memory bounded by the block, not the files.

    python -m gwviz.scan H1.hdf5 L1.hdf5 V1.hdf5 --out scan-out [--stride 0.1] [--rate 0.01] [--block 256]

writes ``scan.json`` (the statistic time series and the triggers) and ``scan.html`` (timeline and
one strain + attribution figure per trigger). The default stride is 0.1 s because the network
was trained with the merger in the last 0.1 s of its window: with a 0.5-s stride GW190521 fell
0.5 s before a window's end and came out as the wrong class (BNS; NSBH with the paper network), with
0.1 s it is BBH at p = 1.00.

Any subset of H1, L1, V1 can be scanned with weights trained with the detector mask (the shipped
ones are): an absent detector is an all-zero channel that the network knows means "did not
observe", and the calibration of that subset sets the threshold. Weights trained without the mask
(configs/paper.yaml) refuse a missing detector rather than read zeros as data.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .evaluation.calibration import DEFAULT_RATES, detection_statistic
from .network_input import pad_detectors, present_detectors, whiten_segments
from .constants import (CLASSES, DETECTORS, MERGER_SPAN, SAMPLE_RATE, SEGMENT_DURATION, WINDOW_DURATION,
                        window_start_index)
from .paths import OVERWRITE_HELP, run_cli, writable_dir, write_text_atomic
from .data.params import is_real_number
from .data.checks import check_strain
from .data.stream import DEFAULT_BLOCK, ArrayStrain, StrainStream, block_plan, check_block, open_detectors

#: merger estimate inside a window [s before its end]: training put mergers in the last 0.1 s
MERGER_BEFORE_END = 0.05


@dataclass
class Trigger:
    """The loudest window of a cluster of windows above the threshold.

    Attributes: ``time`` estimated merger time [s after the strain's first sample] (window end − 0.05 s);
    ``gps`` the same in GPS [s] (``t0`` + time); ``window_start`` [s after the first sample]; ``label`` class
    under the scan's rule; ``statistic`` λ; ``fpr`` false-positive rate per window of λ (None without a
    calibration); ``probabilities`` {class: p}; ``n_windows`` windows in the cluster; ``cam`` (16384,) map
    and ``window`` (3, 16384) whitened strain of the loudest window (both None for a background run);
    ``far`` false-alarm rate [1/s] from time slides (None until :func:`assign_far`); ``far_is_upper_limit``.
    """

    time: float
    gps: float
    window_start: float
    label: str
    statistic: float
    fpr: float | None
    probabilities: dict[str, float]
    n_windows: int
    cam: np.ndarray | None = field(default=None, repr=False)
    window: np.ndarray | None = field(default=None, repr=False)  # (3, 16384) whitened, what the map explains
    far: float | None = None  # [1/s] from the time-slide background (see time_slide_background)
    far_is_upper_limit: bool = False  # no background trigger as loud: far = 1 / live time


@dataclass
class ScanResult:
    """A scan's windows, statistic, decisions and triggers (W windows).

    Attributes: ``t0`` GPS of the first sample [s]; ``stride`` [s]; ``window_starts`` (W,) [s after the
    first sample]; ``statistic`` (W,) λ; ``fpr`` (W,) per window (NaN without a calibration);
    ``probabilities`` (W, 4); ``labels`` (W,) class indices under the rule; ``rule`` 'calibrated' at
    ``rate`` or 'argmax' (``rate`` None); ``threshold`` λ threshold (None for argmax); ``triggers``
    loudest first; ``method`` attribution map; ``fpr_floor``, ``detectors`` (e.g. "H1L1V1").
    """

    t0: float
    stride: float
    window_starts: np.ndarray
    statistic: np.ndarray
    fpr: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray
    rule: str
    rate: float | None
    threshold: float | None
    triggers: list[Trigger]
    method: str
    fpr_floor: float | None = None  # 1 / calibration windows: the smallest FPR the calibration resolves
    detectors: str = "H1L1V1"  # the detector network scanned

    def to_dict(self) -> dict:
        """JSON-ready dict of the result (triggers without their map and window)."""
        triggers = [{k: v for k, v in asdict(t).items() if k not in ("cam", "window")} for t in self.triggers]
        return {"t0": self.t0, "stride": self.stride, "detectors": self.detectors, "rule": self.rule, "rate": self.rate, "threshold": self.threshold,
                "fpr_floor": self.fpr_floor,
                "attribution_method": self.method, "n_windows": int(len(self.statistic)),
                "window_start": self.window_starts.tolist(), "statistic": self.statistic.tolist(),
                "fpr": [None if not np.isfinite(v) else float(v) for v in self.fpr],
                "label": [CLASSES[i] for i in self.labels], "triggers": triggers,
                "note": "times in s after the strain's first sample (GPS = t0 + time); a trigger's time is its "
                        f"window's end - {MERGER_BEFORE_END} s; fpr is per window on simulated O3 noise"}


def cluster(starts: np.ndarray, above: np.ndarray, gap: float) -> list[np.ndarray]:
    """Index arrays of runs of windows with ``above`` true, broken where consecutive hits are more than ``gap`` s apart.

    Clustering is by time only; the loudest window of each run (the trigger) is picked by the caller
    (:func:`scan`) from its statistic.

    Parameters
    ----------
    starts : (W,) ndarray
        Window starts [s], increasing.
    above : (W,) bool ndarray
        Windows that pass the threshold.
    gap : float
        Largest spacing [s] of consecutive hits inside one run.

    Returns
    -------
    list of ndarray
        Window indices of each run, in time order (empty when no window is above).
    """
    idx = np.flatnonzero(above)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(starts[idx]) > gap) + 1
    return np.split(idx, breaks)


def _detectors(strain) -> tuple[str, ...]:
    """The detectors of a strain dict or of files from open_detectors, before any strain is read."""
    return strain.detectors if isinstance(strain, (StrainStream, ArrayStrain)) else present_detectors(strain)


def _reader(strain, sample_rate: float, dets: tuple[str, ...]) -> StrainStream | ArrayStrain:
    """A dict is checked whole (:func:`check_strain`, no stacked copy) and read as views; files
    (:class:`StrainStream`) are checked block by block as they are read."""
    if isinstance(strain, (StrainStream, ArrayStrain)):
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"strain from files is read at {SAMPLE_RATE} Hz, got sample_rate={sample_rate!r}")
        return strain
    return ArrayStrain(tuple(check_strain(strain, sample_rate, SEGMENT_DURATION, dets, stack=False)), dets)


def scan(classifier, strain, sample_rate: float = SAMPLE_RATE, stride: float = MERGER_SPAN,
         rate: float = DEFAULT_RATES[0], t0: float = 0.0, batch: int | None = None, gap: float = 1.0,
         method: str = "hirescam", progress: bool = False) -> ScanResult:
    """Scan strain every ``stride`` s with ``classifier``: λ per window, clustered triggers and their maps.

    ``strain``: {'H1','L1','V1'} or a subset the weights accept, equal-length raw arrays ≥ 16 s at
    ``sample_rate`` = 4096 Hz, checked as by :meth:`Classifier.classify`; or files from
    :func:`gwviz.data.stream.open_detectors`, read and checked block by block. ``stride`` [s] (default
    MERGER_SPAN, 0.1 s). Triggers: windows whose λ passes the threshold of false-positive rate ``rate``
    per window (default DEFAULT_RATES[0]) in that detector network's calibration (argmax ≠ noise without
    one), clustered when closer than ``gap`` s (default 1), each with the ``method`` attribution map
    (default "hirescam"; None: no maps) of its loudest window. ``t0``: GPS of the first sample [s]
    (default 0). ``batch``: windows whitened and classified at once (default 4 on the CPU, 256 on CUDA:
    bench/bench_scan.py). ``progress``: a tqdm bar. Returns a :class:`ScanResult`. ValueError for a stride
    under one sample, a ``gap`` that is not a finite number ≥ 0 s, a ``t0`` that is not a finite number, a
    bad batch, detectors or a rate the weights refuse, and the strain checks; FloatingPointError if the
    network returns non-finite logits.
    """
    if isinstance(stride, bool) or not (isinstance(stride, (int, float)) and math.isfinite(stride)
                                        and stride * sample_rate >= 1):
        raise ValueError(f"stride must be a number of seconds ≥ one sample, got {stride!r}")
    # a NaN gap merged every hit into one trigger, a negative one split each window into its own
    if not (is_real_number(gap) and gap >= 0):
        raise ValueError(f"gap must be a finite number of seconds >= 0, got {gap!r}")
    if not is_real_number(t0):
        raise ValueError(f"t0 must be the GPS time of the first sample, a finite number of seconds, got {t0!r}")
    if batch is None:  # measured (bench/bench_scan.py): small batches stay in the CPU's caches, big ones fill a GPU
        batch = 256 if torch.device(classifier.device).type == "cuda" else 4
    if isinstance(batch, bool) or not (isinstance(batch, int) and batch >= 1):
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    dets = _detectors(strain)
    subset = classifier.check_detectors(dets)  # before reading the strain
    calibration = classifier.calibration_for(subset)
    threshold = calibration.threshold(rate) if calibration is not None else None
    src = _reader(strain, sample_rate, dets)
    n_seg, step = int(SEGMENT_DURATION * sample_rate), int(round(stride * sample_rate))
    i0 = window_start_index(n_seg, int(sample_rate))
    n_win = (src.n - n_seg) // step + 1

    def segments(rows: list, a: int, w0: int, w1: int) -> torch.Tensor:
        """(w1 - w0, k, n_seg) raw segments of windows w0 … w1 − 1 from ``rows`` (samples a … of the
        strain): a copy of their span only, so memory stays bounded by the batch."""
        lo, hi = w0 * step - a, (w1 - 1) * step + n_seg - a
        return torch.as_tensor(np.stack([r[lo:hi] for r in rows])).unfold(-1, n_seg, step).permute(1, 0, 2)

    logits = []
    with tqdm(total=n_win, desc="scan", unit="window", disable=not progress) as bar:
        for a, b, w0, w1 in block_plan(src.n, n_seg, step, src.block, batch):
            rows = src.read(a, b)  # one block of every detector (from files: read and checked now)
            for s in range(w0, w1, batch):
                seg = segments(rows, a, s, min(s + batch, w1)).to(classifier.device)
                white = pad_detectors(whiten_segments(seg, sample_rate, i0, dets), dets)
                out = classifier.logits(white)  # FloatingPointError for non-finite logits
                logits.append(out)
                bar.update(len(out))
            rows = seg = None  # before the next read: one block in memory, not two
    z = torch.cat(logits).numpy()
    probs = torch.softmax(torch.as_tensor(z, dtype=torch.float64), -1).numpy()
    stat = detection_statistic(z)
    starts = (np.arange(n_win) * step + i0) / sample_rate
    if threshold is None:
        labels, fpr, above = probs.argmax(1), np.full(n_win, np.nan), probs.argmax(1) != 0
    else:
        labels, fpr = calibration.decide(z, rate), calibration.fpr(stat)
        above = stat > threshold
    triggers = []
    for run in cluster(starts, above, gap):
        k = int(run[np.argmax(stat[run])])
        label = CLASSES[int(labels[k])]
        window = cam = None
        if method:  # no method: a background run, which needs the statistic only
            rows = src.read(k * step, k * step + n_seg)  # this window's segment only
            window = pad_detectors(whiten_segments(segments(rows, k * step, k, k + 1), sample_rate, i0, dets),
                                   dets)[0].numpy()
            cam = classifier.explain_window(window, target=label, method=method)
        t = float(starts[k] + WINDOW_DURATION - MERGER_BEFORE_END)
        triggers.append(Trigger(t, t0 + t, float(starts[k]), label, float(stat[k]),
                                None if threshold is None else float(fpr[k]),
                                {c: float(p) for c, p in zip(CLASSES, probs[k])}, len(run), cam, window))
    triggers.sort(key=lambda tr: -tr.statistic)
    floor = None if threshold is None else 1.0 / calibration.n_noise
    return ScanResult(t0, step / sample_rate, starts, stat, fpr, probs, labels, "argmax" if threshold is None else "calibrated",
                      None if threshold is None else float(rate), threshold, triggers, method, floor, subset)


def time_slide_background(classifier, strain, slide: float = 3.0, n_slides: int | None = None,
                          sample_rate: float = SAMPLE_RATE, **scan_kwargs) -> dict:
    """Background of the scan from time slides of the strain itself, the way searches estimate a false-alarm rate.

    The second detector (L1 of H1L1V1) is shifted circularly by k·``slide`` s (default 3) and the third
    by 2k·``slide`` s (k = 1 … ``n_slides``; default: as many as fit, 2k·slide < duration), so no real
    coincidence survives, then scanned as usual (no maps; ``scan_kwargs`` go to :func:`scan`). A
    circular shift joins the data's end to its start, a jump that whitening turns into a loud glitch,
    so only the stretches between those joins (≥ 16 s) are scanned (from files: each stretch read block
    by block again). Returns {slides, slide_s, live_time_s, statistics: the background triggers' λ,
    sorted}. A signal in the data stays in the background as single-detector content: the FAR is
    conservative. ValueError for fewer than two detectors, a bad ``slide`` or ``n_slides``, or no
    stretch of ≥ 16 s between the joins.
    """
    dets = _detectors(strain)
    if len(dets) < 2:
        raise ValueError(f"time slides need two or more detectors; {dets[0]} alone has no coincidence to break")
    classifier.check_detectors(dets)
    src = _reader(strain, sample_rate, dets)
    duration = src.n / sample_rate
    ok = isinstance(slide, (int, float)) and not isinstance(slide, bool) and math.isfinite(slide) and slide > 0
    most = int(math.floor((duration - 1e-9) / (2 * slide))) if ok else 0
    if most < 1:
        raise ValueError(f"slide must be > 0 s and leave room for one slide (2 × slide < {duration:g} s), got {slide!r}")
    n_slides = most if n_slides is None else n_slides
    if isinstance(n_slides, bool) or not (isinstance(n_slides, int) and 1 <= n_slides <= most):
        raise ValueError(f"n_slides must be an integer in [1, {most}] for {duration:g} s and {slide:g}-s slides, "
                         f"got {n_slides!r}")
    stats, live = [], 0.0
    n, n_seg = src.n, int(SEGMENT_DURATION * sample_rate)
    for k in range(1, n_slides + 1):
        shifts = [int(round(j * k * slide * sample_rate)) % n for j in range(len(dets))]
        joins = sorted({0, n, *shifts})
        for a, b in zip(joins[:-1], joins[1:]):  # stretches without a join: views (or block reads) of the strain
            if b - a < n_seg:
                continue
            res = scan(classifier, src.shifted(a, b, shifts), sample_rate, method=None, **scan_kwargs)
            stats += [t.statistic for t in res.triggers]
            live += len(res.statistic) * res.stride
    if live == 0:
        raise ValueError(f"no stretch of ≥ {SEGMENT_DURATION:g} s between the circular joins of {slide:g}-s slides in "
                         f"{duration:g} s of strain: use smaller slides or longer strain")
    return {"slides": n_slides, "slide_s": float(slide), "live_time_s": live, "statistics": sorted(stats)}


def assign_far(result: ScanResult, background: dict) -> None:
    """Give each trigger of ``result`` its false-alarm rate [1/s] from ``background`` (in place):
    background triggers at least as loud per second of slid live time (1 / live time, an upper limit, if none).
    """
    bg, live = np.asarray(background["statistics"]), background["live_time_s"]
    for t in result.triggers:
        n = int((bg >= t.statistic).sum())
        t.far, t.far_is_upper_limit = max(n, 1) / live, n == 0


def window_rate(result: ScanResult) -> dict:
    """Windows whose λ passes the threshold, against the calibrated rate (a dict; empty without a calibration).

    On pure noise the count should be ``rate`` × windows within its Poisson error (adjacent windows
    overlap, so they are not independent and the true scatter is larger).
    """
    if result.threshold is None:
        return {}
    n, above = len(result.statistic), int((result.statistic > result.threshold).sum())
    expected = result.rate * n
    return {"windows_above_threshold": above, "expected_on_noise": expected,
            "poisson_sigma": math.sqrt(expected), "fraction_above": above / n}


def report_figures(result: ScanResult, n_windows: int = 10) -> list:
    """plotly figures: λ against time with threshold and triggers, then the ``n_windows`` (10) loudest maps."""
    import plotly.graph_objects as go

    from .plots import strain_cam_figure
    ends = result.window_starts + WINDOW_DURATION
    fig = go.Figure(go.Scatter(x=ends, y=result.statistic, mode="lines", name="λ (window end)"))
    if result.threshold is not None:
        fig.add_hline(y=result.threshold, line_dash="dash", annotation_text=f"FPR {result.rate:g} per window")
    fig.add_trace(go.Scatter(x=[t.time for t in result.triggers], y=[t.statistic for t in result.triggers],
                             mode="markers+text", text=[t.label for t in result.triggers], textposition="top center",
                             marker=dict(size=11, color="red"), name="triggers"))
    fig.update_layout(title=f"Detection statistic every {result.stride:.3g} s (GPS t0 = {result.t0:.3f})",
                      xaxis_title="time after the first sample [s]", yaxis_title="λ = log((1-p_noise)/p_noise)")
    figs = [fig]
    for i, t in enumerate(result.triggers[:n_windows]):
        if t.window is not None:
            merger = int((WINDOW_DURATION - MERGER_BEFORE_END) * SAMPLE_RATE)
            figs.append(strain_cam_figure(t.window, None if t.cam is None else {f"{result.method} for {t.label}": t.cam},
                                          merger, f"Trigger {i + 1}: {t.label} at {t.time:.2f} s (GPS {t.gps:.3f}), "
                                          f"λ = {t.statistic:.2f}" + _fpr_text(t.fpr, result.fpr_floor)
                                          + ("" if t.far is None else f", FAR {'< ' if t.far_is_upper_limit else ''}"
                                             f"{t.far:.2g}/s (time slides)"),
                                          display_step=4))
    return figs


def _fpr_text(fpr: float | None, floor: float | None) -> str:
    if fpr is None:
        return ""
    if floor is not None and fpr <= floor * 1.0001:
        return f", FPR ≤ {floor:.2g} per window (louder than every calibration noise window)"
    return f", FPR {fpr:.2g} per window"


def main(argv: list[str] | None = None) -> dict:
    """The command line (see the module docstring); returns the report written to scan.json."""
    from .classifier import DEFAULT_WEIGHTS, load_classifier
    from .plots import write_page
    ap = argparse.ArgumentParser(prog="python -m gwviz.scan", description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", help="strain files, one per detector: H1, L1 and V1 or a subset of them "
                    "(GWOSC HDF5, gwpy HDF5 or GWF)")
    ap.add_argument("--simulated", type=float, default=None, metavar="SECONDS",
                    help="instead of files: scan this much simulated O3 noise (H1, L1, V1; --seed) and compare the "
                         "fraction of windows above the threshold with the calibrated rate")
    ap.add_argument("--seed", type=int, default=0, help="noise seed of --simulated")
    ap.add_argument("--detectors", nargs="+", choices=DETECTORS, default=None,
                    help="with --simulated: the detectors to keep (default all three)")
    ap.add_argument("--gwosc", default=None, metavar="EVENT|GPS",
                    help="instead of files: fetch open strain around a known event (e.g. GW190521) or a GPS time from "
                         "GWOSC with gwpy (online; cached under $GWVIZ_CACHE)")
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds of --gwosc strain, centred on the event (default 32; rounded up to whole seconds)")
    ap.add_argument("--out", required=True, help="folder for scan.json and scan.html")
    ap.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    ap.add_argument("--weights", default=None, help="weights (default: the shipped ones, which take any detector "
                    "subset)")
    ap.add_argument("--stride", type=float, default=MERGER_SPAN,
                    help="seconds between windows (≤ 0.1 s puts every merger where training put it)")
    ap.add_argument("--rate", type=float, default=DEFAULT_RATES[0], help="false-positive rate per window of a trigger")
    ap.add_argument("--method", default="hirescam", choices=["hirescam", "gradcam"], help="attribution map of triggers")
    ap.add_argument("--slides", type=int, default=0, help="time slides for a background FAR (0: none; each costs a scan)")
    ap.add_argument("--slide", type=float, default=3.0, help="time-slide step [s]")
    ap.add_argument("--block", type=float, default=DEFAULT_BLOCK, metavar="SECONDS",
                    help="strain read from the files at once; memory grows with it, not with the files (3 detectors: "
                         "98 kB per second)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    if not (math.isfinite(a.stride) and a.stride * SAMPLE_RATE >= 1):  # before reading hours of strain
        raise ValueError(f"--stride must be a number of seconds ≥ one sample, got {a.stride}")
    try:
        check_block(a.block)
    except ValueError as err:
        raise ValueError(f"--{err}") from None
    if a.slides < 0 or not (math.isfinite(a.slide) and a.slide > 0):
        raise ValueError(f"--slides must be >= 0 and --slide > 0 s, got {a.slides} and {a.slide}")
    if len(a.files) > len(DETECTORS):
        raise ValueError(f"give at most {len(DETECTORS)} files (one per detector), got {len(a.files)}")
    if sum((bool(a.files), a.simulated is not None, a.gwosc is not None)) != 1:
        raise ValueError("give strain files, --simulated SECONDS or --gwosc EVENT|GPS (one of them)")
    if a.simulated is not None and not (math.isfinite(a.simulated) and SEGMENT_DURATION <= a.simulated <= 86400):
        raise ValueError(f"--simulated must be {SEGMENT_DURATION:g} s to one day, got {a.simulated}")
    if a.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {a.seed}")
    if a.detectors is not None and (a.simulated is None or len(set(a.detectors)) != len(a.detectors)):
        raise ValueError("--detectors goes with --simulated and names each detector once")
    if a.duration is not None and a.gwosc is None:  # it was ignored, silently
        raise ValueError("--duration goes with --gwosc (files and --simulated give their own length)")
    a.duration = 32.0 if a.duration is None else a.duration
    if a.gwosc is not None and not (math.isfinite(a.duration) and SEGMENT_DURATION <= a.duration <= 4096):
        raise ValueError(f"--duration must be a number of seconds from {SEGMENT_DURATION:g} to 4096, got {a.duration}")
    for f in a.files:  # "no such file" for a folder of strain files said the wrong thing
        if Path(f).is_dir():
            raise ValueError(f"{f}: a directory; give one strain file per detector (e.g. H1.hdf5 L1.hdf5 V1.hdf5)")
    kept = tuple(d for d in DETECTORS if d in (a.detectors or DETECTORS))
    out = writable_dir(a.out, results=("scan.json",), overwrite=a.overwrite)
    # the weights and the rate are checked before any strain is read (the shipped weights take any
    # detector subset, each network calibrated at the same rates; scan() checks the subset first)
    failed = {}
    if a.gwosc is not None:  # fetched first: which detectors observed decides the network
        from .data.gwosc import fetch_event_strain
        fetched, failed = fetch_event_strain(a.gwosc, a.duration)
        a.files = [str(p) for p in fetched]
        for det, why in failed.items():
            print(f"{det}: {why}", file=sys.stderr)
    clf = load_classifier(a.weights, a.device)  # checks the device too; the shipped weights take any subset
    if clf.calibration is not None:
        clf.calibration.threshold(a.rate)
    if a.simulated is not None:
        from .data.noise import SimulatedNoise
        noise = SimulatedNoise().segment(a.simulated, np.random.default_rng(a.seed), gps_start=0.0)
        strain, t0 = {d: x for d, x in zip(DETECTORS, noise.strain) if d in kept}, 0.0
    else:
        strain = open_detectors(a.files, a.block)  # metadata only: the scan reads it block by block
        t0 = strain.t0
    res = scan(clf, strain, stride=a.stride, rate=a.rate, t0=t0, method=a.method, progress=not a.no_progress)
    background = None
    if a.slides:
        background = time_slide_background(clf, strain, a.slide, a.slides, stride=a.stride, rate=a.rate)
        assign_far(res, background)
    report = {**res.to_dict(), "background": background, "files": list(a.files),
              "weights": str(a.weights) if a.weights else f"models/{DEFAULT_WEIGHTS.name}", **window_rate(res),
              **({"block_s": a.block} if a.files else {}),
              **({"gwosc": {"event": a.gwosc, "duration": a.duration, "not_fetched": failed}} if a.gwosc else {})}
    if a.simulated is not None:
        report["simulated_noise"] = {"seconds": a.simulated, "seed": a.seed, "source": noise.source}
    write_text_atomic(out / "scan.json", json.dumps(report, indent=1))
    what = (f"Files: {', '.join(Path(f).name for f in a.files)}" if a.files else
            f"{a.simulated:g} s of simulated O3 noise (seed {a.seed})")
    write_page(out / "scan.html", report_figures(res), "gwviz scan", "inline",  # the ten loudest get a figure
               [f"{what}; detectors {', '.join(_detectors(strain))}; rule: {res.rule}"])
    loudest = res.triggers[0] if res.triggers else None
    print(f"{len(res.statistic)} windows, {len(res.triggers)} triggers"
          + (f"; loudest {loudest.label} at GPS {loudest.gps:.2f}, λ = {loudest.statistic:.2f}" if loudest else "")
          + f" -> {out}")
    return report


if __name__ == "__main__":
    run_cli(main, "python -m gwviz.scan")
