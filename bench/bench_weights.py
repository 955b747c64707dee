"""Inference and attribution speed of two weights files, old against new, from one run.

    git show 9dc848b:models/gwviz-resnet54.safetensors > runs/run1-12648.safetensors   # shipped until 2026-12-03
    python bench/bench_weights.py --old runs/run1-12648.safetensors [--new models/gwviz-resnet54.safetensors] \
        [--device cpu] [--n 64] [--n-maps 8] [--out bench/results/weights_cpu.json]

What the app pays per window when the shipped network changes (here: the paper's ResNet-54 against the
dilated one with a detector mask, same parameters and FLOPs): windows/s through
:meth:`gwviz.classifier.Classifier.logits` (the one inference path) and seconds per HiResCAM map
(:meth:`~gwviz.classifier.Classifier.explain_window`), on the same random windows. Each is timed twice,
alternating old and new; the better run counts. Prints both, their ratio and the machine.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from bench_inference import timed  # items/s of one call, GPU-synchronised (this folder is on sys.path as a script)
from bench_scan import machine  # the scan bench's machine label
from gwviz.classifier import DEFAULT_WEIGHTS, load_classifier
from gwviz.paths import write_text_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="weights file timed as 'old'")
    ap.add_argument("--new", default=str(DEFAULT_WEIGHTS), help="weights file timed as 'new' (default: the shipped ones)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=64, help="windows classified per timing")
    ap.add_argument("--n-maps", type=int, default=8, help="HiResCAM maps per timing")
    ap.add_argument("--out", default=None, help="JSON file for the results")
    a = ap.parse_args()
    if a.n < 1 or a.n_maps < 1:
        ap.error("--n and --n-maps must be positive")
    clfs = {"old": load_classifier(a.old, a.device), "new": load_classifier(a.new, a.device)}
    # whitened-like windows (σ = 1): random, as only the speed is measured
    x = torch.randn(a.n, 3, 16384, generator=torch.Generator().manual_seed(0))
    for c in clfs.values():  # warm-up (allocator, oneDNN primitives)
        c.logits(x[:8]), c.explain_window(x[0].numpy(), target="BBH", method="hirescam")
    best = {k: {"windows_per_s": 0.0, "maps_per_s": 0.0} for k in clfs}
    def per_s(fn, n: int) -> float:  # timed() reports items/s under the key windows_per_s
        return timed(fn, n, a.device)[0]["windows_per_s"]

    for _ in range(2):
        for k, c in clfs.items():
            best[k]["windows_per_s"] = max(best[k]["windows_per_s"], per_s(lambda: c.logits(x), a.n))
            maps = lambda: [c.explain_window(x[i].numpy(), target="BBH", method="hirescam")  # noqa: E731
                            for i in range(a.n_maps)]
            best[k]["maps_per_s"] = max(best[k]["maps_per_s"], per_s(maps, a.n_maps))
    label = machine(a.device)
    report = {"machine": label, "device": a.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "n": a.n, "n_maps": a.n_maps,
              **{k: {"weights": Path(getattr(a, k)).name, "model": clfs[k].model.config.to_dict(), **best[k]} for k in clfs},
              "ratio_windows": best["new"]["windows_per_s"] / best["old"]["windows_per_s"],
              "ratio_maps": best["new"]["maps_per_s"] / best["old"]["maps_per_s"]}
    for k in clfs:
        print(f"{k} ({Path(getattr(a, k)).name}): {best[k]['windows_per_s']:.1f} windows/s, "
              f"{1 / best[k]['maps_per_s']:.3f} s per HiResCAM map")
    print(f"new vs old on {label}: classify {report['ratio_windows']:.2f}x, "
          f"maps {report['ratio_maps']:.2f}x")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(a.out, json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
