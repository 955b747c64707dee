"""Speed of one Explore update of the app (gwviz.session.explore: inject + whiten + classify + Grad-CAM).

Usage: python bench/bench_app.py [--repeats 20] [--threads 1] [--out bench/results/bench_app.json] [--profile]

Times ``repeats`` updates per class after a warm-up (model loaded, LAL and torch initialised),
as a user moving sliders would cause them (new SNR and seed each time), on simulated O3 noise
with the app's cached noise-source object and the app's torch thread count (GWVIZ_TORCH_THREADS,
default 1). Target: median ≤ 0.5 s on a laptop-class CPU.
Writes JSON {median_s, p90_s, per_class, target_s, ok, ...}.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from gwviz import session
from gwviz.constants import CLASSES

TARGET_S = 0.5
MASSES = {"noise": (0.0, 0.0), "BBH": (36.0, 29.0), "NSBH": (10.0, 1.4), "BNS": (1.5, 1.3)}


def run(repeats: int, profile: bool = False) -> dict:
    clf = session.default_classifier()
    source = session.noise_source("simulated")  # the app caches this object (st.cache_resource)
    for kind in CLASSES:  # warm-up: first LAL waveform, first Grad-CAM, allocator
        session.explore(kind, *MASSES[kind], 12.0, noise=source, seed=0, classifier=clf)
    prof = cProfile.Profile() if profile else None
    per_class: dict[str, list[float]] = {k: [] for k in CLASSES}
    jobs = [(k, i) for i in range(repeats) for k in CLASSES]
    for kind, i in tqdm(jobs, desc="explore updates", unit="update"):
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        session.explore(kind, *MASSES[kind], 8.0 + i % 16, ra=0.3 * i, dec=0.1, noise=source, seed=i + 1,
                        classifier=clf)
        if prof:
            prof.disable()
        per_class[kind].append(time.perf_counter() - t0)
    times = sorted(t for v in per_class.values() for t in v)
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(20)
    median = statistics.median(times)
    return {
        "benchmark": "app explore update (make_sample + classify_window + Grad-CAM)",
        "median_s": median, "p90_s": times[int(0.9 * (len(times) - 1))], "min_s": times[0], "n": len(times),
        "per_class_median_s": {k: statistics.median(v) for k, v in per_class.items()},
        "target_s": TARGET_S, "ok": median <= TARGET_S, "model_trained": clf.trained,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "python": sys.version.split()[0], "torch": torch.__version__,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20, help="updates per class")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "bench_app.json")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("GWVIZ_TORCH_THREADS", "1")),
                    help="torch intra-op threads (the app's default: 1)")
    ap.add_argument("--profile", action="store_true", help="print the cProfile top 20")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    if args.threads < 1:
        raise SystemExit("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    result = run(args.repeats, args.profile)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    verdict = "OK" if result["ok"] else "SLOW"
    print(f"median {result['median_s']:.3f} s per update (target {TARGET_S} s): {verdict} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
