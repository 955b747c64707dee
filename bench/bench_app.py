"""Speed of the app: first load of the Explore page and one Explore update (the whole page rerun, and
its compute alone: inject + whiten + classify + the default attribution map), on an idle CPU and with every
core busy.

Usage: python bench/bench_app.py [--repeats 20] [--first-loads 3] [--threads 1]
                                 [--out bench/results/bench_app.json] [--profile]

Phase "idle", then phase "loaded" (one busy-looping process per core, as on a shared CI machine).
In each: the first load is a fresh process running the page with Streamlit's AppTest (imports of
gwviz and torch, the model, the first sample and map: what the first visitor waits for on the
server, timed after Streamlit itself is imported), ``first-loads`` times, each in a new process
(median reported: one run on a shared 2-core host varies by ±30 %); ``torch_import_s`` is the median
time of ``import torch`` alone in as many fresh processes after Streamlit's import, the part of the
first load no app change can remove. The page update is what a user's slider move costs the server:
``repeats`` whole reruns of the Explore page (AppTest, a fresh process, after its first run) each with
a new network SNR, so the sample, map, figures and Streamlit's serialisation are all redone. The
compute alone is ``repeats`` calls per class of :func:`gwviz.session.explore` after a warm-up (new SNR
and seed each time), on simulated O3 noise with the app's cached noise source and thread count
(GWVIZ_TORCH_THREADS, default 1). ``--profile`` also prints the cProfile top 25 of one extra (untimed)
first load, the page's own thread.
Targets (issue 16): median page update ≤ 0.25 s and first load ≤ 3 s, loaded. Writes JSON per phase.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing as mp
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from gwviz import session
from gwviz.constants import CLASSES
from gwviz.data.noise import noise_source
from gwviz.paths import write_text_atomic

TARGET_S = 0.25
TARGET_FIRST_LOAD_S = 3.0
REPO = Path(__file__).resolve().parents[1]
_FIRST_LOAD = """
import time
from streamlit.testing.v1 import AppTest
t = time.perf_counter()
at = AppTest.from_file("app/main.py", default_timeout=600).run()
assert not at.exception, at.exception
print(time.perf_counter() - t)
"""
_TORCH_IMPORT = """
import time
import streamlit.testing.v1
t = time.perf_counter()
import torch
print(time.perf_counter() - t)
"""
# A user's slider move as the server sees it: the whole Explore page re-run (compute, figures, Streamlit's
# serialisation), after one first run; one new network SNR per rerun, so every rerun misses the cache.
_PAGE_UPDATES = """
import json, sys, time
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("app/main.py", default_timeout=600).run()
assert not at.exception, at.exception
times, server = [], []
for i in range(int(sys.argv[1])):
    at.slider(key="snr").set_value(8.0 + 0.5 * (i % 32))
    t = time.perf_counter()
    at.run()
    times.append(time.perf_counter() - t)
    assert not at.exception, at.exception
    server.append(at.session_state["_gwviz_run_s"])
print(json.dumps([server, times]))
"""
# AppTest runs the page in a thread of its own, which cProfile.Profile.enable() in the main thread
# does not see: the profile is switched on inside the page's thread instead
_PROFILE_FIRST_LOAD = """
import cProfile, pstats, threading
from streamlit.testing.v1 import AppTest
prof = cProfile.Profile()
run = threading.Thread.run
def profiled(self):
    prof.enable()
    try:
        run(self)
    finally:
        prof.disable()
threading.Thread.run = profiled
at = AppTest.from_file("app/main.py", default_timeout=600).run()
assert not at.exception, at.exception
pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
"""


def _python(code: str, *args: str) -> str:
    """stdout of ``code`` run by a fresh interpreter in the repository, with the app's thread count."""
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, check=True,
                         env={**os.environ, "GWVIZ_TORCH_THREADS": str(torch.get_num_threads())})
    return out.stdout


def first_load_s() -> float:
    """Seconds for a fresh process to run the Explore page once (after importing Streamlit)."""
    return float(_python(_FIRST_LOAD).strip().splitlines()[-1])


def page_updates_s(n: int) -> tuple[list[float], list[float]]:
    """Seconds of ``n`` whole-page reruns of Explore after a network-SNR change, in a fresh process: the
    script's own time (what the server spends, timed by app/main.py) and AppTest's wall time around it
    (which adds the test harness: it recompiles the page on every run, a server does not, and parses
    every message into its element tree)."""
    server, wall = json.loads(_python(_PAGE_UPDATES, str(n)).strip().splitlines()[-1])
    return server, wall


def torch_import_s() -> float:
    """Seconds for a fresh process to import torch after Streamlit: the floor under :func:`first_load_s`."""
    return float(_python(_TORCH_IMPORT).strip().splitlines()[-1])


def _spin() -> None:
    while True:
        pass
MASSES = {"noise": (0.0, 0.0), "BBH": (36.0, 29.0), "NSBH": (10.0, 1.4), "BNS": (1.5, 1.3)}


def run(repeats: int, profile: bool = False) -> dict:
    clf = session.default_classifier()
    source = noise_source("simulated")  # the app caches this object (st.cache_resource)
    for kind in CLASSES:  # warm-up: first LAL waveform, first Grad-CAM, allocator
        session.explore(kind, *MASSES[kind], 12.0, noise=source, seed=0, classifier=clf, method=session.DEFAULT_METHOD)
    prof = cProfile.Profile() if profile else None
    per_class: dict[str, list[float]] = {k: [] for k in CLASSES}
    jobs = [(k, i) for i in range(repeats) for k in CLASSES]
    for kind, i in tqdm(jobs, desc="explore updates", unit="update"):
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        session.explore(kind, *MASSES[kind], 8.0 + i % 16, ra=0.3 * i, dec=0.1, noise=source, seed=i + 1,
                        classifier=clf, method=session.DEFAULT_METHOD)
        if prof:
            prof.disable()
        per_class[kind].append(time.perf_counter() - t0)
    times = sorted(t for v in per_class.values() for t in v)
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(20)
    median = statistics.median(times)
    return {
        "benchmark": f"app explore update (make_sample + classify_window + {session.DEFAULT_METHOD})",
        "median_s": median, "p90_s": times[int(0.9 * (len(times) - 1))], "min_s": times[0], "n": len(times),
        "per_class_median_s": {k: statistics.median(v) for k, v in per_class.items()},
        "target_s": TARGET_S, "ok": median <= TARGET_S, "model_trained": clf.trained,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "python": sys.version.split()[0], "torch": torch.__version__,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=20, help="updates per class")
    ap.add_argument("--first-loads", type=int, default=3, help="fresh processes timed per phase (median reported)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "bench_app.json")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("GWVIZ_TORCH_THREADS", "1")),
                    help="torch intra-op threads (the app's default: 1)")
    ap.add_argument("--profile", action="store_true", help="print the cProfile top 20 of the updates and top 25 of one more first load")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.first_loads < 1:
        raise SystemExit("--repeats and --first-loads must be >= 1")
    if args.threads < 1:
        raise SystemExit("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    result = {}
    for phase in ("idle", "loaded"):
        spinners = [mp.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)] if phase == "loaded" else []
        for p in spinners:
            p.start()
        try:
            firsts = [first_load_s() for _ in range(args.first_loads)]
            imports = [torch_import_s() for _ in range(args.first_loads)]
            if args.profile:
                print(f"--- first load, {phase}: the page's thread ---\n" + _python(_PROFILE_FIRST_LOAD))
            pages, walls = page_updates_s(args.repeats)
            result[phase] = {**run(args.repeats, args.profile), "first_load_s": statistics.median(firsts),
                             "page_update_median_s": statistics.median(pages), "page_update_runs_s": pages,
                             "page_update_apptest_median_s": statistics.median(walls),
                             "page_update_ok": statistics.median(pages) <= TARGET_S,
                             "first_load_runs_s": firsts, "torch_import_s": statistics.median(imports),
                             "target_first_load_s": TARGET_FIRST_LOAD_S,
                             "first_load_ok": statistics.median(firsts) <= TARGET_FIRST_LOAD_S,
                             "busy_processes": len(spinners)}
        finally:
            for p in spinners:
                p.terminate()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    for phase, r in result.items():
        print(f"{phase:6s} first load {r['first_load_s']:.1f} s (target {TARGET_FIRST_LOAD_S} s; import torch alone "
              f"{r['torch_import_s']:.1f} s), median page update {r['page_update_median_s']:.3f} s "
              f"(AppTest wall {r['page_update_apptest_median_s']:.3f} s, compute alone {r['median_s']:.3f} s; "
              f"target {TARGET_S} s) on {r['machine']}, "
              f"{r['cpu_count']} cores -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
