"""Where in the held-out real stretch does each network miss loud BNS?

    python docs/ablation/real_noise_where.py NPZ OUT.json      (from the repository root)

NPZ: a trainer-style real-noise file (``docs/make_real_npz.py``, or a phase-randomised copy of it, see
``docs/ablation/dilate-15624-real-noise.txt``). At 17 segment starts across its ``val_range`` (all detectors cut
at the same start, random signs): the statistic λ of 48 BNS at network SNR 16 and of 48 noise windows, for
the dilated weights (environment ``DIL``, default ``runs/dilcal15624/best-calibrated.safetensors``: run 2 at
step 15,624, calibrated on the CPU) and run 1's end (environment ``RUN1``, default ``runs/run1-27900.safetensors``:
``git show 9dc848b:models/gwviz-resnet54-subsets.safetensors > runs/run1-27900.safetensors``, shipped until 2026-12-03).
"found" = above the 99th percentile of this file's 816 noise windows (a per-file threshold: the comparison
is between bands of one stretch, not an absolute FPR). Writes the λ values to OUT.json.
"""
import json
import os
import sys

import numpy as np
import torch

from gwviz.classifier import load_classifier
from gwviz.evaluation.calibration import detection_statistic
from gwviz.evaluation.evaluate import build_maker


def lambdas(maker, feeds: dict, g: torch.Generator, starts=None, real: bool = True, n: int = 48) -> dict:
    """λ of ``n`` BNS at network SNR 16 and ``n`` noise windows per segment start (17 draws when ``starts`` is
    None), for each ``feeds`` entry (name -> function of the (B, 3, T) windows giving λ): name -> bns/noise lists."""
    out = {k: {"bns": [], "noise": []} for k in feeds}
    for s in starts if starts is not None else [None] * 17:
        if s is not None:
            maker.real_range = (int(s), int(s))  # one start for every row: misses can be placed in time
        for kind, lab in (("bns", 3), ("noise", 0)):
            x, _, _ = maker(n, g, snr_range=(16.0, 16.0), labels=torch.full((n,), lab), real=real)
            for k, feed in feeds.items():
                out[k][kind].append(np.asarray(feed(x)).tolist())
    return out


def found(v: dict) -> np.ndarray:
    """Per start and BNS: λ above the 99th percentile of all of this variant's noise windows."""
    return np.array(v["bns"]) > np.quantile(np.array(v["noise"]), 0.99)


def main() -> None:
    torch.set_num_threads(2)
    maker, _ = build_maker("files", "cpu", 200, 2**20 + 7, "runs/evalbank200.pt", real_npz=sys.argv[1], progress=False)
    starts = np.linspace(*maker.real_range, 17).astype(int)
    clfs = {"dilated": load_classifier(os.environ.get("DIL", "runs/dilcal15624/best-calibrated.safetensors")),
            "run1": load_classifier(os.environ.get("RUN1", "runs/run1-27900.safetensors"))}
    feeds = {k: (lambda x, c=c: detection_statistic(c.logits(x).numpy())) for k, c in clfs.items()}
    out = {"start_s": (starts / 4096).tolist(), **lambdas(maker, feeds, torch.Generator().manual_seed(3), starts)}
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)
    for k in clfs:
        hit, b = found(out[k]), np.array(out[k]["bns"])
        print(f"{k}: found {hit.mean():.2f} (per start {hit.mean(1).min():.2f}-{hit.mean(1).max():.2f}), "
              f"median λ BNS {np.median(b):.2f}")
        for s, h, bs, n in zip(out["start_s"], hit, b, out[k]["noise"]):
            print(f"  start {s:6.2f} s  BNS found {h.mean():.2f}  median λ BNS {np.median(bs):6.2f} noise {np.median(n):6.2f}")


if __name__ == "__main__":
    main()
