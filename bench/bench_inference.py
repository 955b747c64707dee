"""Inference speed of the shipped network through :meth:`gwviz.classifier.Classifier.logits`.

    python bench/bench_inference.py [--device cpu] [--n 256] [--batch 256] [--out bench/results/inference_cpu.json]

From one run, on the same random windows: the old way, ``batch`` windows in one forward pass, against
the new one, ``Classifier.logits`` (on the CPU :data:`gwviz.classifier.CPU_FORWARD_BATCH` windows a
pass; on a GPU the same single pass), with windows/s, the ratio, the process's page faults and its
kernel (system) CPU time for each, the largest difference of the logits, and the machine named. Both
are timed twice, alternating; the better of the two runs counts.
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from bench_scan import machine  # the scan bench's machine label (this folder is on sys.path when run as a script)
from gwviz.classifier import CPU_FORWARD_BATCH, load_classifier
from gwviz.paths import write_text_atomic


def timed(fn, n: int, device: str) -> dict:
    """windows/s of ``fn()`` over ``n`` windows, with the page faults and system CPU time it cost."""
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt, r1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
    return {"windows_per_s": n / dt, "seconds": dt, "minor_page_faults": r1.ru_minflt - r0.ru_minflt,
            "system_cpu_s": r1.ru_stime - r0.ru_stime, "user_cpu_s": r1.ru_utime - r0.ru_utime}, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n", type=int, default=256, help="windows timed")
    ap.add_argument("--batch", type=int, default=256, help="windows a pass, the old way (predict_windows' default)")
    ap.add_argument("--out", default=None, help="JSON file for the results")
    a = ap.parse_args()
    if a.n < 1 or a.batch < 1:
        ap.error("--n and --batch must be positive")
    clf = load_classifier(device=a.device)
    x = torch.randn(a.n, 3, 16384, generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def old():
        return torch.cat([clf.model(x[i:i + a.batch].to(a.device)).float().cpu() for i in range(0, a.n, a.batch)])

    def new():
        return clf.logits(x)

    old(), new()  # warm-up (allocator, cuDNN)
    runs = {"old": [], "new": []}
    for _ in range(2):
        for name, fn in (("old", old), ("new", new)):
            res, out = timed(fn, a.n, a.device)
            runs[name].append(res)
            runs[name + "_out"] = out
    best = {k: max(runs[k], key=lambda r: r["windows_per_s"]) for k in ("old", "new")}
    diff = float((runs["old_out"] - runs["new_out"]).abs().max())
    label = machine(a.device)
    report = {"machine": label, "device": a.device, "torch": torch.__version__, "n": a.n,
              "old": {"windows_per_pass": a.batch, **best["old"]},
              "new": {"windows_per_pass": CPU_FORWARD_BATCH if torch.device(a.device).type == "cpu" else a.n, **best["new"]},
              "ratio": best["new"]["windows_per_s"] / best["old"]["windows_per_s"], "max_abs_logit_diff": diff}
    for k in ("old", "new"):
        r = report[k]
        print(f"{k}: {r['windows_per_pass']:4d} windows a pass: {r['windows_per_s']:7.1f} windows/s, "
              f"{r['minor_page_faults']:,} page faults, {r['system_cpu_s']:.1f} s system / {r['user_cpu_s']:.1f} s user CPU")
    print(f"new vs old: {report['ratio']:.2f}x on {label}; largest logit difference {diff:.2e}")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(a.out, json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
