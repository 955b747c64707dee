"""How much of each signal class one position of the ResNet's last map can see (issue 12, "what limits it").

Usage: python docs/receptive_field.py [--n 40] [--snr 10] [--seed 3] [--weights FILE ...]

Prints the receptive field of the paper's ResNet-54 and of ``model.dilate=1`` (analytic; the gradient
check is tests/test_model.py), then, for signals drawn from the training distributions by the one
synthesis path (``gwviz.data.synth.make_sample``, simulated O3 noise), the fraction of the whitened
network energy (rho^2 summed over H1, L1, V1) inside the best span of that length, and the SNR that
span carries at the given network SNR. With ``--weights``, each network's detection rate at its
calibrated thresholds (FPR 1e-2 and 1e-3 per window) for the same windows three ways: the whole signal,
only the best receptive-field span of it, and the signal without that span (the noise is the same).
If the network combined the whole chirp, the span alone would be detected less often than the whole.
Takes ~1 min on a 2-core CPU (a few more with --weights).
"""
import argparse

import numpy as np
import torch

from gwviz.classifier import load_classifier
from gwviz.constants import SAMPLE_RATE
from gwviz.evaluation.calibration import detection_statistic
from gwviz.data.noise import SimulatedNoise
from gwviz.data.synth import make_sample
from gwviz.model.network import GWNet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="signals per class")
    ap.add_argument("--snr", type=float, default=10.0, help="network optimal SNR of each signal")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--weights", nargs="*", default=[], help="calibrated weights files to test on the same windows")
    a = ap.parse_args()
    classifiers = [(w, load_classifier(w)) for w in a.weights]
    rf = GWNet().resnet.receptive_field
    print(f"receptive field: paper {rf} samples = {rf / SAMPLE_RATE:.2f} s; "
          f"dilate=1 {GWNet(dilate=1).resnet.receptive_field / SAMPLE_RATE:.2f} s (the window is 4 s)")
    rng, noise = np.random.default_rng(a.seed), SimulatedNoise()
    for kind in ("BBH", "NSBH", "BNS"):
        frac, t90, windows = [], [], {"whole": [], "span only": [], "span removed": []}
        for _ in range(a.n):
            s = make_sample(kind, noise, rng=rng, snr_range=(a.snr, a.snr))
            e = (s.white_signal.astype(np.float64) ** 2).sum(0)  # network rho^2 per sample
            c = np.concatenate([[0.0], np.cumsum(e)])
            start = int(np.argmax(c[rf:] - c[:-rf]))
            frac.append((c[start + rf] - c[start]) / c[-1])
            if classifiers:  # whitening is linear: data = whitened noise + whitened signal
                inside = np.zeros(e.shape, np.float32)
                inside[start:start + rf] = 1
                white_noise = s.data - s.white_signal
                windows["whole"].append(s.data)
                windows["span only"].append(white_noise + s.white_signal * inside)
                windows["span removed"].append(white_noise + s.white_signal * (1 - inside))
            t90.append((len(e) - np.searchsorted(c / c[-1], 0.10)) / SAMPLE_RATE)  # span of the last 90 %
        f = np.array(frac)
        print(f"{kind:5s} energy in the best {rf / SAMPLE_RATE:.2f} s: median {np.median(f):.2f} "
              f"(10-90 %: {np.quantile(f, 0.1):.2f}-{np.quantile(f, 0.9):.2f}), SNR there "
              f"{a.snr * np.sqrt(np.median(f)):.1f} of {a.snr:g}; 90 % of the energy in the last {np.median(t90):.2f} s")
        for name, clf in classifiers:
            th = clf.calibration.thresholds
            with torch.no_grad():
                lam = {k: detection_statistic(clf.model(torch.as_tensor(np.stack(v))).double())
                       for k, v in windows.items()}
            print(f"      {name}: detected at FPR 1e-2 / 1e-3: " + "; ".join(
                f"{k} {np.mean(v >= th['0.01']):.2f} / {np.mean(v >= th['0.001']):.2f}" for k, v in lam.items()))


if __name__ == "__main__":
    main()
