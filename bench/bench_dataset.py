"""Dataset-builder throughput per class: samples/s of the one synthesis path on this machine.

    python bench/bench_dataset.py --n 40 --out bench/results/dataset.json

Per class: one process, n samples in simulated O3 noise (waveform + projection + SNR rescaling +
whitening). Then the whole builder (all classes, all cores) on 4n samples.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gwviz.constants import CLASSES
from gwviz.dataset import build_split
from gwviz.noise import SimulatedNoise
from gwviz.synth import make_sample


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    noise = SimulatedNoise()
    rng = np.random.default_rng(0)
    make_sample("BBH", noise, rng=rng)  # warm-up: LAL and FFT plans
    res = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "torch": torch.__version__, "n_per_class": a.n, "per_class_samples_per_s_1proc": {}}
    for kind in CLASSES:
        t = time.perf_counter()
        for _ in range(a.n):
            make_sample(kind, noise, rng=rng)
        res["per_class_samples_per_s_1proc"][kind] = a.n / (time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        build_split(Path(tmp), "train", 4 * a.n, seed=0, progress=False)
        res["builder_all_cores_samples_per_s"] = 4 * a.n / (time.perf_counter() - t)
    print(json.dumps(res, indent=1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
