"""Injections into real strain, found by a scan: does the network recover in long real data what the
model card says it recovers in single windows?

    python -m gwviz.evaluation.injections --out DIR [--n 40] [--snr 12] [--seed 0] [--weights W] [--data-dir D]

Each injection is a signal drawn as in training (:func:`gwviz.data.params.draw_params`: class, masses, sky,
orientation) at network optimal SNR ``--snr``, added to the real GW190521 H1/L1/V1 strain (bundled, or
``--data-dir``) with its merger in the held-out stretch 18–29 s after the data start (the trainer
never saw it; the event itself is at 16 s). The SNR is defined exactly as in training (the part of
the signal inside the 4-s window that ends ``merger_offset`` after the merger, 20 Hz to 1.5 kHz, with the
Welch PSD of the surrounding 16 s of noise; :func:`gwviz.data.synth.snr_scale`). The 17 s around it are
then scanned every 0.1 s (:func:`gwviz.scan.scan`): the injection is *found* when a trigger lies within
0.5 s of its merger (:data:`MATCH`), and *right* when that trigger has the injected class. Writes
``injections.json`` with the efficiency per class next to the model card's window-level accuracy at
the same SNR on the same real noise.
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
from tqdm.auto import tqdm

from ..constants import (DETECTORS, SAMPLE_RATE, SEGMENT_DURATION, STRAIN_SCALE, WINDOW_END_MARGIN, WINDOW_SAMPLES)
from ..data.detectors import antenna_patterns, gmst, time_delays
from ..data.params import SIGNAL_CLASSES, SignalParams, draw_params
from ..paths import OVERWRITE_HELP, run_cli, snr_arg, writable_dir, write_text_atomic
from ..data.psd import interpolate_psd, welch_psd
from ..data.projection import SIGNAL_BAND, project
from ..data.synth import snr_scale
from ..data.waveforms import polarisations

#: Merger times [s after the data start] of injections into the bundled 32 s of GW190521: the
#: stretch held out of training, ≥ 2 s after the event and with 16 s of data for every window.
HELD_OUT = (18.0, 29.0)
#: A trigger within this many seconds of the injected merger finds it. The scan times a merger as
#: its loudest window's end − 0.05 s, and the loudest window can end before the merger: up to ~0.15 s
#: for a loud, short signal (it sees the plunge at its edge; measured −0.17 s), more for a BNS, whose
#: SNR is spread over seconds of inspiral once it is band-limited like the data (measured −0.34 s).
MATCH = 0.5


def inject(strain: np.ndarray, params: SignalParams, window_end: int, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Add ``params``'s signal to real strain of H1, L1, V1.

    The window the SNR is defined on ends at sample ``window_end`` (its geocentric merger lands
    ``params.merger_offset`` s before that), and its PSD is the Welch estimate of the 16 s ending
    2 s after the window (how a scan whitens that window). Antenna patterns and delays are those of
    ``params.gps``.

    Parameters
    ----------
    strain : (D, N) array_like
        Real strain [strain], D = 3.
    params : SignalParams
        The signal; ``params.snr`` is its network optimal SNR in that window.
    window_end : int
        Sample at which the SNR's 4-s window ends.
    sample_rate : int, optional
        Sample rate [Hz]. Default ``SAMPLE_RATE`` (4096).

    Returns
    -------
    strain : (D, N) float64 ndarray
        The strain with the signal [strain].
    snr : (D,) ndarray
        Per-detector optimal SNR.

    Raises
    ------
    ValueError
        ``strain`` is not (3, N), or the window's 16-s segment does not fit in the data; from
        :func:`gwviz.data.waveforms.polarisations` when the waveform cannot be made.
    """
    x = np.asarray(strain, dtype=np.float64)
    n_seg, n = int(SEGMENT_DURATION * sample_rate), x.shape[-1]
    seg_end = window_end + int(WINDOW_END_MARGIN * sample_rate)
    if x.ndim != 2 or x.shape[0] != len(DETECTORS) or seg_end > n or seg_end - n_seg < 0:
        raise ValueError(f"strain {x.shape} has no 16-s segment ending at sample {seg_end} for a window ending at "
                         f"{window_end}")
    pol = polarisations(params, sample_rate)
    t = lambda v: torch.as_tensor(np.atleast_1d(v), dtype=torch.float64)  # noqa: E731
    g = t(gmst(params.gps))
    fp, fc = antenna_patterns(t(params.ra), t(params.dec), t(params.polarization), g)
    delays = time_delays(t(params.ra), t(params.dec), g)
    start = (window_end - pol.peak_index) / sample_rate - params.merger_offset  # buffer start -> waveform start [s]
    h = project(t(pol.hp * STRAIN_SCALE)[None], t(pol.hc * STRAIN_SCALE)[None], fp, fc, start + delays, n, sample_rate,
                band=SIGNAL_BAND)  # as synthesize: band-limited like the data
    noise = torch.as_tensor(x[None, :, seg_end - n_seg:seg_end] * STRAIN_SCALE)
    psd = interpolate_psd(welch_psd(noise, sample_rate), WINDOW_SAMPLES // 2 + 1)
    scale, rho = snr_scale(h[..., window_end - WINDOW_SAMPLES:window_end], psd, t(params.snr), sample_rate)
    return x + (h[0] * scale[0]).numpy() / STRAIN_SCALE, (rho[0] * scale[0]).numpy()


def run_injections(classifier, strain: dict[str, np.ndarray], t0: float, n: int, snr: float, seed: int = 0,
                   rate: float = 0.01, progress: bool = True) -> list[dict]:
    """``n`` injections per signal class into ``strain``, each scanned on its own.

    Each merger lands uniformly in :data:`HELD_OUT` s after ``t0``; the 17 s around it are scanned
    (:func:`gwviz.scan.scan`) and the loudest trigger within :data:`MATCH` s of the merger finds it.

    Parameters
    ----------
    classifier : Classifier
        The network that scans.
    strain : dict of str to (N,) ndarray
        H1/L1/V1 real strain [strain] at 4096 Hz (the bundled 32 s of GW190521).
    t0 : float
        GPS time of the first sample [s].
    n : int
        Injections per signal class.
    snr : float
        Network optimal SNR of every injection.
    seed : int, optional
        Seed of the draws. Default 0.
    rate : float, optional
        False-positive rate per window of a trigger (a calibrated one). Default 0.01.
    progress : bool, optional
        Show a progress bar. Default True.

    Returns
    -------
    list of dict
        One per injection: class, masses [M☉], merger time [s after t0], SNRs, found, label, λ, the number
        of other triggers and every trigger's offset from the merger [s].
    """
    from ..scan import scan
    x = np.stack([strain[d] for d in DETECTORS])
    rng = np.random.default_rng(seed)
    rows = []
    jobs = [(kind, i) for kind in SIGNAL_CLASSES for i in range(n)]
    for kind, _ in tqdm(jobs, desc="injections", disable=not progress):
        merger = rng.uniform(*HELD_OUT)  # [s after the data start]
        p = draw_params(kind, rng, snr_range=(snr, snr))
        p.gps = t0 + merger
        end = int(round((merger + p.merger_offset) * SAMPLE_RATE))
        y, rho = inject(x, p, end)
        lo = max(0, end + int((WINDOW_END_MARGIN - SEGMENT_DURATION - 0.5) * SAMPLE_RATE))
        hi = min(x.shape[-1], end + int((WINDOW_END_MARGIN + 0.5) * SAMPLE_RATE))
        res = scan(classifier, dict(zip(DETECTORS, y[:, lo:hi])), rate=rate, t0=t0 + lo / SAMPLE_RATE, method=None)
        near = [tr for tr in res.triggers if abs(tr.time + lo / SAMPLE_RATE - merger) <= MATCH]
        best = max(near, key=lambda tr: tr.statistic) if near else None
        rows.append({"class": kind, "mass1": p.mass1, "mass2": p.mass2, "merger_s": merger, "snr": snr,
                     "snr_detectors": rho.tolist(), "found": best is not None, "label": best.label if best else None,
                     "statistic": best.statistic if best else None, "other_triggers": len(res.triggers) - len(near),
                     "trigger_offsets_s": [round(tr.time + lo / SAMPLE_RATE - merger, 3) for tr in res.triggers]})
    return rows


def summarise(rows: list[dict]) -> dict:
    """Found and right-class fractions per signal class, with binomial standard errors.

    The error of the right-class fraction p of k injections is √(max(p(1 − p), 1/k) / k): never 0 at p = 0 or 1.

    Parameters
    ----------
    rows : list of dict
        :func:`run_injections` output, with at least one row per signal class.

    Returns
    -------
    dict
        {class: {'n', 'found', 'right_class', 'right_class_err'}}.
    """
    out = {}
    for kind in SIGNAL_CLASSES:
        r = [row for row in rows if row["class"] == kind]
        k = len(r)
        found = sum(row["found"] for row in r) / k
        right = sum(row["label"] == kind for row in r) / k
        out[kind] = {"n": k, "found": found, "right_class": right,
                     "right_class_err": math.sqrt(max(right * (1 - right), 1 / k) / k)}
    return out


def main(argv: list[str] | None = None) -> dict:
    """Command line (see the module docstring); returns the report also written to ``<out>/injections.json``."""
    from ..classifier import load_classifier
    from ..data.strain import read_real_strain
    from ..paths import BUNDLED_DATA
    ap = argparse.ArgumentParser(prog="python -m gwviz.evaluation.injections", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for injections.json")
    ap.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    ap.add_argument("--n", type=int, default=40, help="injections per signal class")
    ap.add_argument("--snr", type=snr_arg, default=12.0, help="network optimal SNR of every injection")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.01, help="false-positive rate per window of a trigger")
    ap.add_argument("--weights", default=None, help="weights (default: the shipped ones)")
    ap.add_argument("--data-dir", default=None, help="folder with GW190521 H1/L1/V1 (default: the bundled copy)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    if a.n < 1 or a.seed < 0:
        ap.error(f"--n must be >= 1 and --seed >= 0, got {a.n} and {a.seed}")
    out = writable_dir(a.out, results=("injections.json",), overwrite=a.overwrite)
    clf = load_classifier(a.weights)
    if clf.calibration is not None:
        clf.calibration.threshold(a.rate)
    real = read_real_strain(a.data_dir or BUNDLED_DATA / "gwpy_format" / "GW190521_data")
    rows = run_injections(clf, dict(zip(DETECTORS, real.strain)), real.t0, a.n, a.snr, a.seed, a.rate,
                          not a.no_progress)
    report = {"weights": str(a.weights or "shipped"), "snr": a.snr, "rate": a.rate, "seed": a.seed,
              "data": {d: str(p) for d, p in real.paths.items()}, "held_out_s": HELD_OUT, "match_s": MATCH,
              "per_class": summarise(rows), "injections": rows}
    write_text_atomic(out / "injections.json", json.dumps(report, indent=1))
    for kind, s in report["per_class"].items():
        print(f"{kind}: found {100 * s['found']:.0f} %, right class {100 * s['right_class']:.0f} ± "
              f"{100 * s['right_class_err']:.0f} % of {s['n']}")
    return report


if __name__ == "__main__":
    run_cli(main, "python -m gwviz.evaluation.injections")
