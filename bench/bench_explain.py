"""Speed of explaining on the CPU: what the app pays per click.

    python bench/bench_explain.py [--weights PATH] [--repeats 20] [--threads 1 2] [--out bench/results/explain.json]

Measures (median and quartiles over ``repeats`` runs after one warm-up, wall clock):

1. ``explain_raw``: Classifier.explain(16 s of raw H1/L1/V1 strain) with Grad-CAM, i.e. whitening
   (median-Welch PSD of the 16 s) + forward + backward; also its parts ``whiten`` and
   ``explain_window`` (Grad-CAM of an already whitened window);
2. ``classify_then_explain`` / ``classify_and_explain``: the app's decision and HiResCAM map of one
   whitened window, as two calls (two forward passes, before 2026-12-03) and as one pass
   (Classifier.classify_and_explain_window), with their ratio;
3. ``app_update_<class>``: one app update, make_sample (waveform + injection + whitening, the CPU
   path) + classify_and_explain_window, per class.

Weights do not change the timing: without shipped weights the random-init model is timed.
Timed once per torch thread count: on a CPU shared with other busy processes, more threads than
idle cores can be many times slower (threads wait on each other), one thread is the robust choice.
Numbers depend on the machine's load (load average recorded in the JSON; compare the min on a
shared machine).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from gwviz.classifier import load_classifier
from gwviz.network_input import whiten_window
from gwviz.paths import write_text_atomic
from gwviz.constants import CLASSES, DETECTORS, SAMPLE_RATE, SEGMENT_DURATION
from gwviz.data.noise import SimulatedNoise
from gwviz.data.synth import make_sample


def timed(fn, repeats: int) -> dict:
    """Median/quartiles/min of fn()'s wall time [s] over ``repeats`` calls after one warm-up."""
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [ts[0]] * 3
    # min too: on a shared machine the median can be set by other processes, the min by the code
    return {"median_s": statistics.median(ts), "q25_s": q[0], "q75_s": q[2], "min_s": min(ts), "repeats": repeats}


def run(clf, repeats: int) -> dict:
    """All timings with the current torch thread count."""
    noise = SimulatedNoise()
    seg = noise.segment(SEGMENT_DURATION, np.random.default_rng(0))
    raw = {d: seg.strain[i] for i, d in enumerate(DETECTORS)}
    window, _ = whiten_window(raw, SAMPLE_RATE)
    res = {
        "explain_raw": timed(lambda: clf.explain(raw, SAMPLE_RATE, method="gradcam"), repeats),
        "whiten": timed(lambda: whiten_window(raw, SAMPLE_RATE), repeats),
        "explain_window": timed(lambda: clf.explain_window(window), repeats),
        "classify_window": timed(lambda: clf.classify_window(window), repeats),
        # old vs new of the app's decision + map: two calls (two forward passes) or one pass
        "classify_then_explain": timed(lambda: clf.explain_window(window, clf.classify_window(window).label, "hirescam"),
                                       repeats),
        "classify_and_explain": timed(lambda: clf.classify_and_explain_window(window, "hirescam"), repeats),
    }
    seeds = iter(range(10**6))
    for kind in CLASSES:
        def update(kind: str = kind) -> None:
            s = make_sample(kind, noise, seed=next(seeds), snr_range=(15.0, 15.0))
            clf.classify_and_explain_window(s.data, "hirescam")  # what gwviz.session.explore runs
        res[f"app_update_{kind}"] = timed(update, repeats)
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="torch CPU thread counts to time (each a separate block of results)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "explain.json"))
    args = ap.parse_args(argv)
    clf = load_classifier(args.weights, "cpu", allow_untrained=True)
    results = {}
    for n in args.threads:
        torch.set_num_threads(n)
        results[f"threads_{n}"] = res = run(clf, args.repeats)
        for k, v in res.items():
            print(f"threads {n}  {k:22s} median {v['median_s'] * 1e3:8.1f} ms  (IQR {v['q25_s'] * 1e3:.1f}–"
                  f"{v['q75_s'] * 1e3:.1f}, min {v['min_s'] * 1e3:.1f})")
        print(f"threads {n}  one pass / two calls: {res['classify_and_explain']['median_s'] / res['classify_then_explain']['median_s']:.2f}"
              f" of the time ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    out = {
        "what": "CPU wall time per call [s]; explain = Grad-CAM of the predicted class",
        "results": results,
        "model": {"trained": bool(clf.trained), "weights": str(args.weights or "shipped/untrained"),
                  "config": clf.config},
        "machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine(),
                    "load_average_1_5_15": list(os.getloadavg())},
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(out, indent=1))
    print(f"-> {path}")
    return out


if __name__ == "__main__":
    main()
