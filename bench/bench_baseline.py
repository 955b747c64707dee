"""CPU time per sample of the matched-filter baseline (gwviz.baseline), next to the CNN's.

    python bench/bench_baseline.py [--n 4] [--bank PATH] [--threads 2] [--json OUT.json]

Loads the bank (default: the cached default bank; built first if missing, which takes minutes),
makes ``n`` noise windows and ``n`` per signal class at network SNR 12 with gwviz.data.synth, and times
the filter alone on each (process CPU time, summed over threads, and wall time). The CNN
(shipped weights, or the untrained model if none are shipped: same cost) is timed on the same
windows with predict_windows. Prints JSON; no pass/fail: the numbers go to docs/baseline.md.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from gwviz.baseline import GRID, MatchedFilter, load_or_build_bank, make_samples
from gwviz.constants import CLASSES, SAMPLE_RATE, WINDOW_SAMPLES


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=4, help="noise windows and windows per signal class")
    p.add_argument("--bank", default=None, help="bank .npz (default: the cached default bank)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the result here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    bank = load_or_build_bank(a.bank)
    samples = make_samples(a.n, seed=123, snr_values=(12.0,), n_noise=a.n, progress=False)
    mf = MatchedFilter(bank)
    mf(samples.windows[0], samples.psds[0])  # warm-up (FFT plans, allocator)
    cpu, wall = [], []
    for x, psd in zip(samples.windows, samples.psds):
        c0, w0 = time.process_time(), time.perf_counter()
        mf(x, psd)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    # the same correlation with pycbc.filter.matched_filter, one template and one detector per call
    from pycbc.filter import matched_filter
    from pycbc.types import FrequencySeries, TimeSeries
    prep = mf.prepare(samples.windows[0], samples.psds[0])
    data = TimeSeries(np.pad(samples.windows[0][0].astype(np.float64), (0, GRID - WINDOW_SAMPLES)), delta_t=1 / SAMPLE_RATE)
    flat = FrequencySeries(np.full(GRID // 2 + 1, 2.0 / SAMPLE_RATE), delta_f=SAMPLE_RATE / GRID)
    tws = torch.fft.irfft(mf.specs[:10] * prep[1][0], n=GRID).double().numpy()
    c0 = time.process_time()
    for tw in tws:
        matched_filter(TimeSeries(tw, delta_t=1 / SAMPLE_RATE), data, psd=flat, low_frequency_cutoff=20.0)
    pycbc_ms = 1e3 * (time.process_time() - c0) / len(tws)
    from gwviz.classifier import load_classifier
    clf = load_classifier(allow_untrained=True)
    clf.predict_windows(samples.windows[:1])
    c0, w0 = time.process_time(), time.perf_counter()
    clf.predict_windows(samples.windows)
    n = len(samples.windows)
    out = {
        "threads": a.threads, "cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0], "samples": n,
        "bank_size": len(bank), "bank_per_class": {c: int((bank.label == i).sum()) for i, c in enumerate(CLASSES) if i},
        "mf_cpu_s_per_sample": float(np.mean(cpu)), "mf_wall_s_per_sample": float(np.mean(wall)),
        "mf_wall_s_min": float(np.min(wall)), "mf_cpu_ms_per_template": 1e3 * float(np.mean(cpu)) / len(bank),
        "mf_cpu_ms_per_template_detector": 1e3 * float(np.mean(cpu)) / len(bank) / 3,
        "pycbc_matched_filter_cpu_ms_per_template_detector": pycbc_ms,
        "cnn_cpu_s_per_sample": (time.process_time() - c0) / n, "cnn_wall_s_per_sample": (time.perf_counter() - w0) / n,
        "cnn_trained": clf.trained,
    }
    print(json.dumps(out, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
