"""Speed of scanning long strain (gwviz.scan.scan): windows per second, and what an hour costs.

    python bench/bench_scan.py [--duration 3600] [--stride 0.5] [--device cuda] [--batch 256 32]
                               [--weights PATH] [--out bench/results/scan.json]
    python bench/bench_scan.py --from-disk [--block 256] [--compare-whole] [--duration 3600] ...

Simulated O3 noise (gwviz.data.noise.SimulatedNoise) of ``duration`` seconds in H1, L1 and V1 is scanned
once per batch size after a short warm-up scan; every window is whitened from its own 16-s segment
(Welch PSD) and classified, as the CLI does. Prints, from one run, the old default batch (32, the
first value) against the others, windows/s, and the time an hour of 3-detector strain at this
stride would take, with the machine named. The attribution of triggers is switched off
(``method=None``) so that the number measures the scan itself, not how many triggers noise made.

``--from-disk``: the noise is written as three GWOSC HDF5 files (gzip, as GWOSC's) to a temporary
folder by a child process, then scanned from those files ``--block`` seconds at a time
(gwviz.data.stream) in a fresh process, timing the reads too; ``--compare-whole`` scans them again,
read whole (gwviz.data.strain.read_detectors, the old path), in another fresh process. Each reports
windows/s and its peak RSS (resource.getrusage ru_maxrss: the process's high-water mark, so that
writing the files, done elsewhere, does not count), and the RSS it had reached before the scan
(Python, torch, the weights, a 20-s warm-up scan), its CPU time and the load average.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from gwviz.classifier import load_classifier
from gwviz.constants import DETECTORS
from gwviz.data.noise import SimulatedNoise
from gwviz.data.strain import read_detectors
from gwviz.data.stream import DEFAULT_BLOCK, check_block, open_detectors, write_gwosc_hdf5
from gwviz.paths import write_text_atomic
from gwviz.scan import scan

#: GPS start of the simulated files (O3a, clear of the known events) [s]
GPS_START = 1238170000


def peak_rss_mb() -> float:
    """This process's peak resident memory so far [MiB] (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU time of this process so far, all threads [s]: with the wall time, it shows whether other
    processes took the cores (the load average says how many ran)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def write_files(folder: str, duration: float, seed: int) -> list[str]:
    """``duration`` s of simulated H1/L1/V1 noise as GWOSC HDF5 files in ``folder`` (run in a child)."""
    x = SimulatedNoise().segment(duration, np.random.default_rng(seed), gps_start=GPS_START).strain
    return [str(write_gwosc_hdf5(Path(folder) / f"{d[0]}-{d}_SIMULATED-{GPS_START}-{int(duration)}.hdf5", d, row,
                                 GPS_START)) for d, row in zip(DETECTORS, x)]


def scan_files(files: list[str], block: float | None, stride: float, batch: int | None, device: str,
               weights: str | None, threads: int | None = None) -> dict:
    """Scan ``files`` in blocks of ``block`` s (None: read whole, the old path), reads included in
    the time, with ``threads`` torch threads (None: torch's default); run in a fresh process so that
    its peak RSS is this scan's."""
    if threads:
        torch.set_num_threads(threads)
    clf = load_classifier(weights, device=device, allow_untrained=True)
    warm = SimulatedNoise().segment(20.0, np.random.default_rng(0)).strain
    scan(clf, dict(zip(DETECTORS, warm)), stride=stride, batch=batch, method=None)  # warm-up (caches, cuDNN)
    del warm
    before, cpu = peak_rss_mb(), cpu_s()
    t = time.perf_counter()
    strain = read_detectors(files)[0] if block is None else open_detectors(files, block)
    res = scan(clf, strain, stride=stride, batch=batch, method=None)
    dt, cpu = time.perf_counter() - t, cpu_s() - cpu
    n = len(res.statistic)
    return {"mode": "whole files" if block is None else f"blocks of {block:g} s", "block_s": block, "windows": n,
            "seconds": dt, "windows_per_s": n / dt, "cpu_s": cpu, "load_1min_after": os.getloadavg()[0],
            "triggers": len(res.triggers),
            "rss_before_scan_mib": before, "peak_rss_mib": peak_rss_mb(), "scan_rss_mib": peak_rss_mb() - before}


def in_child(fn, *args):
    """``fn(*args)`` in a fresh process (spawned: no memory inherited), its result returned."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def from_disk(a) -> dict:
    """The --from-disk benchmark: write the files, scan them in blocks (and whole, with --compare-whole)."""
    load = os.getloadavg()[0]  # other processes on the machine slow the scan down: recorded
    with tempfile.TemporaryDirectory(prefix="gwviz-bench-scan-") as folder:
        t = time.perf_counter()
        files = in_child(write_files, folder, a.duration, 1)
        written = time.perf_counter() - t
        size = sum(Path(f).stat().st_size for f in files) / 2**20
        print(f"wrote {a.duration:g} s of H1/L1/V1 in {written:.0f} s: {size:.0f} MiB of GWOSC HDF5 (gzip)")
        rows = []
        for block in [a.block] + ([None] if a.compare_whole else []):
            rows.append(in_child(scan_files, files, block, a.stride, a.batch[0], a.device, a.weights, a.threads))
            r = rows[-1]
            print(f"{r['mode']}: {r['windows']} windows in {r['seconds']:.1f} s = {r['windows_per_s']:,.1f} windows/s; "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB ({r['rss_before_scan_mib']:.0f} MiB before the scan); "
                  f"{r['cpu_s']:.0f} CPU s, load average {r['load_1min_after']:.2f} after")
    if a.threads:
        torch.set_num_threads(a.threads)  # for machine(), which names the thread count
    return {"machine": machine(a.device), "device": a.device, "duration_s": a.duration, "stride_s": a.stride,
            "batch": a.batch[0], "detectors": list(DETECTORS), "format": "GWOSC HDF5 (gzip, 1-s chunks), float64",
            "files_mib": size, "strain_float64_mib": 3 * a.duration * 4096 * 8 / 2**20, "write_s": written,
            "load_1min_before": load, "cpus": os.cpu_count(),
            "torch": torch.__version__, "rows": rows}


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} torch threads"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=3600.0, help="strain to scan [s]")
    ap.add_argument("--stride", type=float, default=0.5, help="scan stride [s]")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, nargs="+", default=None, help="windows per batch; the first is the "
                    "baseline (default 32 256; --from-disk: the scan's default, one run)")
    ap.add_argument("--weights", default=None, help="default: the shipped weights")
    ap.add_argument("--out", default=None, help="JSON file for the results")
    ap.add_argument("--from-disk", action="store_true", help="write GWOSC HDF5 files and scan them block by block")
    ap.add_argument("--block", type=float, default=DEFAULT_BLOCK, help="with --from-disk: seconds read at once")
    ap.add_argument("--compare-whole", action="store_true", help="with --from-disk: also scan the files read whole")
    ap.add_argument("--threads", type=int, default=None, help="with --from-disk: torch threads of the scans (default: "
                    "torch's; 1 keeps a shared machine's other processes from stalling torch's thread pool)")
    a = ap.parse_args()
    if a.from_disk:
        check_block(a.block)  # before an hour of noise is written
        a.batch = a.batch or [None]
        report = from_disk(a)
        print(json.dumps(report, indent=1))
        if a.out:
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(a.out, json.dumps(report, indent=1))
        return
    a.batch = a.batch or [32, 256]
    clf = load_classifier(a.weights, device=a.device, allow_untrained=True)
    strain = SimulatedNoise().segment(a.duration, np.random.default_rng(1)).strain
    data = dict(zip(DETECTORS, strain))
    scan(clf, {d: x[: 4096 * 20] for d, x in data.items()}, stride=a.stride, method=None)  # warm-up (cuDNN, caches)
    rows = []
    for b in a.batch:
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        res = scan(clf, data, stride=a.stride, batch=b, method=None)
        dt = time.perf_counter() - t
        n = len(res.statistic)
        rows.append({"batch": b, "windows": n, "seconds": dt, "windows_per_s": n / dt,
                     "hour_at_stride_s": 3600.0 / a.stride / (n / dt), "triggers": len(res.triggers)})
        print(f"batch {b:5d}: {n} windows in {dt:.1f} s = {n / dt:,.0f} windows/s; an hour at {a.stride:g}-s stride: "
              f"{rows[-1]['hour_at_stride_s']:.1f} s")
    base = rows[0]["windows_per_s"]
    for r in rows[1:]:
        print(f"batch {r['batch']} vs {rows[0]['batch']}: {r['windows_per_s'] / base:.2f}x")
    report = {"machine": machine(a.device), "device": a.device, "duration_s": a.duration, "stride_s": a.stride,
              "torch": torch.__version__, "rows": rows}
    print(json.dumps(report, indent=1))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(a.out, json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
