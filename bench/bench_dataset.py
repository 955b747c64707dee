"""Dataset-builder throughput per class: samples/s of the one synthesis path on this machine.

    python bench/bench_dataset.py --n 40 --out bench/results/dataset.json

Old path: per class, one process, n samples of make_sample in simulated O3 noise (a fresh waveform +
projection + SNR rescaling + whitening per sample), and the same per-sample path over all cores
(``real-noise`` splits still take it). New path: the builder on simulated noise, which rides
BatchMaker with a cached waveform bank: its bank build (once per split, all cores) and its samples/s
with the bank cached, on --builder-n samples. Both from one run, with the machine named.
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
from gwviz.data.dataset import build_split
from gwviz.data.noise import SimulatedNoise
from gwviz.data.synth import make_sample
from gwviz.paths import write_text_atomic


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--builder-n", type=int, default=640, help="samples of the builder run (new path)")
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
    old = 1.0 / np.mean([1.0 / v for v in res["per_class_samples_per_s_1proc"].values()])
    res["old_per_sample_path_all_cores_samples_per_s"] = old * (os.cpu_count() or 1)  # ideal scaling, an upper bound
    with tempfile.TemporaryDirectory() as tmp:
        from gwviz.data.bank import get_bank
        from gwviz.data.dataset import BANK_PER_CLASS, SPLITS
        t = time.perf_counter()
        seed = int(np.random.SeedSequence([0, SPLITS["train"], 2**20]).generate_state(1)[0] >> 1)
        get_bank(Path(tmp) / "train.bank.pt", min(a.builder_n, BANK_PER_CLASS), seed, 0)
        res["new_bank_build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        build_split(Path(tmp), "train", a.builder_n, seed=0, progress=False)
        res["new_builder_all_cores_samples_per_s"] = a.builder_n / (time.perf_counter() - t)
    res["new_over_old"] = res["new_builder_all_cores_samples_per_s"] / res["old_per_sample_path_all_cores_samples_per_s"]
    print(f"old (per-sample, {os.cpu_count()} cores, ideal) {res['old_per_sample_path_all_cores_samples_per_s']:.1f}/s; "
          f"new (BatchMaker, bank cached) {res['new_builder_all_cores_samples_per_s']:.1f}/s "
          f"({res['new_over_old']:.1f}x; bank build {res['new_bank_build_s']:.0f} s once per split)")
    print(json.dumps(res, indent=1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(a.out, json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
