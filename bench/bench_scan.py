"""Speed of scanning long strain (gwviz.scan.scan): windows per second, and what an hour costs.

    python bench/bench_scan.py [--duration 3600] [--stride 0.5] [--device cuda] [--batch 256 32]
                               [--weights PATH] [--out bench/results/scan.json]

Simulated O3 noise (gwviz.data.noise.SimulatedNoise) of ``duration`` seconds in H1, L1 and V1 is scanned
once per batch size after a short warm-up scan; every window is whitened from its own 16-s segment
(Welch PSD) and classified, as the CLI does. Prints, from one run, the old default batch (32, the
first value) against the others, windows/s, and the time an hour of 3-detector strain at this
stride would take, with the machine named. The attribution of triggers is switched off
(``method=None``) so that the number measures the scan itself, not how many triggers noise made.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from gwviz.classifier import load_classifier
from gwviz.constants import DETECTORS
from gwviz.data.noise import SimulatedNoise
from gwviz.scan import scan


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} torch threads"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=3600.0, help="strain to scan [s]")
    ap.add_argument("--stride", type=float, default=0.5, help="scan stride [s]")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 256], help="windows per batch; the first is the baseline")
    ap.add_argument("--weights", default=None, help="default: the shipped weights")
    ap.add_argument("--out", default=None, help="JSON file for the results")
    a = ap.parse_args()
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
        Path(a.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
