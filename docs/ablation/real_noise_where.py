"""Where in the held-out real stretch does each network miss loud BNS?

    python docs/ablation/real_noise_where.py NPZ OUT.json      (from the repository root)

NPZ: a trainer-style real-noise file (``docs/make_real_npz.py``, or a phase-randomised copy of it, see
``docs/ablation/dilate-15624-real-noise.txt``). At 17 segment starts across its ``val_range`` (all detectors cut
at the same start, random signs): the statistic λ of 48 BNS at network SNR 16 and of 48 noise windows, for
the dilated weights (environment ``DIL``, default ``runs/dilcal15624/best-calibrated.safetensors``: run 2 at
step 15,624, calibrated on the CPU) and run 1's end (``models/gwviz-resnet54-subsets.safetensors``).
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

torch.set_num_threads(2)
maker, _ = build_maker("files", "cpu", 200, 2**20 + 7, "runs/evalbank200.pt", real_npz=sys.argv[1], progress=False)
lo, hi = maker.real_range
starts = np.linspace(lo, hi, 17).astype(int)
clfs = {"dilated": load_classifier(os.environ.get("DIL", "runs/dilcal15624/best-calibrated.safetensors")),
        "run1": load_classifier("models/gwviz-resnet54-subsets.safetensors")}
out = {"start_s": (starts / 4096).tolist(), **{k: {"bns": [], "noise": []} for k in clfs}}
g = torch.Generator().manual_seed(3)
for s in starts:
    maker.real_range = (int(s), int(s))  # one start for every row: misses can be placed in time
    for kind, lab in (("bns", 3), ("noise", 0)):
        x, _, _ = maker(48, g, snr_range=(16.0, 16.0), labels=torch.full((48,), lab), real=True)
        for k, c in clfs.items():
            out[k][kind].append(detection_statistic(c.logits(x).numpy()).tolist())
with open(sys.argv[2], "w") as f:
    json.dump(out, f)
for k in clfs:
    b, thr = np.array(out[k]["bns"]), np.quantile(np.array(out[k]["noise"]), 0.99)
    print(f"{k}: found {np.mean(b > thr):.2f} (per start {(b > thr).mean(1).min():.2f}-{(b > thr).mean(1).max():.2f}), "
          f"median λ BNS {np.median(b):.2f}")
    for s, bs, n in zip(out["start_s"], b, out[k]["noise"]):
        print(f"  start {s:6.2f} s  BNS found {np.mean(bs > thr):.2f}  median λ BNS {np.median(bs):6.2f} noise {np.median(n):6.2f}")
