# docs/ablation/real_noise_where.py NPZ OUT.json (from the repository root; DIL= the dilated weights, default runs/dilcal15624/best-calibrated.safetensors: run 2 step 15,624 calibrated on CPU; against run 1 = models/gwviz-resnet54-subsets.safetensors)
"""Where in the held-out real stretch does each network miss loud BNS? Per segment start (all detectors
cut at the same start, random signs): the statistic of 48 BNS at network SNR 16 and of 48 noise windows."""
import json, sys
import numpy as np, torch
from gwviz.classifier import load_classifier
from gwviz.evaluation.calibration import detection_statistic
from gwviz.evaluation.evaluate import build_maker
torch.set_num_threads(2)
maker, _ = build_maker("files", "cpu", 200, 2**20 + 7, "runs/evalbank200.pt", real_npz=sys.argv[1], progress=False)
lo, hi = maker.real_range
starts = np.linspace(lo, hi, 17).astype(int)
clfs = {"dilated": load_classifier(__import__("os").environ.get("DIL", "runs/dilcal15624/best-calibrated.safetensors")),
        "run1": load_classifier("models/gwviz-resnet54-subsets.safetensors")}
out = {"start_s": (starts / 4096).tolist()}
for k in clfs: out[k] = {"bns": [], "noise": []}
g = torch.Generator().manual_seed(3)
for s in starts:
    maker.real_range = (int(s), int(s))
    for kind, lab in (("bns", 3), ("noise", 0)):
        x, y, snr = maker(48, g, snr_range=(16.0, 16.0), labels=torch.full((48,), lab), real=True)
        for k, c in clfs.items():
            out[k][kind].append(detection_statistic(c.logits(x).numpy()).tolist())
json.dump(out, open(sys.argv[2], "w"))
for k in clfs:
    nz = np.array(out[k]["noise"]); thr = np.quantile(nz, 0.99)
    print(k, "thr(99% of these noise)", round(float(thr), 2))
    for s, b, n in zip(out["start_s"], out[k]["bns"], out[k]["noise"]):
        print(f"  start {s:6.2f} s  BNS found {np.mean(np.array(b) > thr):.2f}  median λ BNS {np.median(b):6.2f} noise {np.median(n):6.2f}")
