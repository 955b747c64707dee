"""What a low-pass in front of the network costs each signal class in SNR (``ModelConfig(lowpass_hz=...)``).

Usage: python docs/lowpass_snr.py [--n 100] [--seed 3] [--cutoffs 768 1024 1280 1536]

For signals drawn from the training distributions by the one synthesis path
(``gwviz.data.synth.make_sample``, simulated O3 noise), the fraction of the whitened network SNR that is
left after :class:`gwviz.model.lowpass.LowPass` at each cutoff: sqrt(sum |W(f)|^2 r(f)^2 / sum |W(f)|^2)
over H1, L1, V1, W the whitened signal's spectrum and r the filter's response. The matched filter's SNR
scales the same way, so this is the SNR a network behind the filter can at best reach. ~1 min on a 2-core CPU.
"""
import argparse

import numpy as np

from gwviz.data.noise import SimulatedNoise
from gwviz.data.synth import make_sample
from gwviz.model.lowpass import lowpass_response


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="signals per class")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--cutoffs", type=int, nargs="+", default=[768, 1024, 1280, 1536], help="Hz")
    a = ap.parse_args()
    rng, noise = np.random.default_rng(a.seed), SimulatedNoise()
    responses = {c: lowpass_response(c).double().numpy() ** 2 for c in a.cutoffs}
    print(f"SNR left after the low-pass, median (worst 10 % / worst) of {a.n} signals per class")
    for kind in ("BBH", "NSBH", "BNS"):
        kept = {c: [] for c in a.cutoffs}
        for _ in range(a.n):
            s = make_sample(kind, noise, rng=rng, snr_range=(10.0, 10.0))
            p = (np.abs(np.fft.rfft(s.white_signal.astype(np.float64), axis=-1)) ** 2).sum(0)
            for c in a.cutoffs:
                kept[c].append(np.sqrt((p * responses[c]).sum() / p.sum()))
        print(f"{kind:5s} " + "  ".join(f"{c} Hz: {np.median(v):.4f} ({np.quantile(v, 0.1):.4f} / {np.min(v):.4f})"
                                       for c, v in kept.items()))


if __name__ == "__main__":
    main()
