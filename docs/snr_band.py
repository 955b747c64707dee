"""Where a signal's optimal SNR comes from, against simulated O3 noise and against real 4-kHz GWOSC strain.

Usage: python docs/snr_band.py [--n 100] [--seed 3] [--real runs/h200/real.npz]

For signals drawn from the training distributions by the one synthesis path (``gwviz.data.synth.make_sample``),
the fraction of the optimal SNR^2 (20 Hz to Nyquist) that lies above 1.2 kHz and above ``F_UPPER_SNR`` (1.5 kHz),
with the simulated O3 PSDs and with the median-Welch PSD of the real stretch (its held-out ``val_range``, as the
trainer's and the evaluation's real rows estimate it), and how much SNR the cutoff at ``F_UPPER_SNR`` takes from a
signal in simulated noise; for signals made as before the fix (full band) and as now (band-limited like the
data, ``gwviz.data.projection.SIGNAL_BAND``). GWOSC's 4-kHz data is anti-alias filtered from ~1.6 kHz: its PSD there is tiny, so
counted up to Nyquist the SNR of a signal *injected* into it is mostly SNR no real signal could have (a real one
went through the same filter). ~1 min on a 2-core CPU.
"""
import argparse

import numpy as np
import torch

from gwviz.constants import DETECTORS, F_UPPER_SNR, SAMPLE_RATE, STRAIN_SCALE, WINDOW_SAMPLES
from gwviz.data.batch import load_real
from gwviz.data.noise import SimulatedNoise
from gwviz.data.psd import analytic_psd, interpolate_psd, welch_psd
from gwviz.data import synth
from gwviz.data.synth import make_sample, optimal_snr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="signals per class")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--real", default="runs/h200/real.npz", help="trainer-style real-noise file (docs/make_real_npz.py)")
    a = ap.parse_args()
    n_f = WINDOW_SAMPLES // 2 + 1
    strain, _, (lo, hi) = load_real(a.real)
    seg = torch.as_tensor(strain[None, :, lo:lo + 16 * SAMPLE_RATE] * STRAIN_SCALE)
    psds = {"simulated O3": np.stack([analytic_psd(d, SAMPLE_RATE / WINDOW_SAMPLES, n_f) for d in DETECTORS]),
            "real GW190521": interpolate_psd(welch_psd(seg, SAMPLE_RATE), n_f)[0].numpy() / STRAIN_SCALE ** 2}
    psds = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in psds.items()}
    for name, band in (("signals as injected before 2026-12-03 (full band)", None),
                       (f"signals band-limited as now (synth.SIGNAL_BAND {synth.SIGNAL_BAND})", synth.SIGNAL_BAND)):
        synth.SIGNAL_BAND = band  # the one synthesis path, with or without the fix; the same signals both times
        print(f"{name}: fraction of the optimal SNR^2 (20 Hz-Nyquist) above 1.2 kHz / above {F_UPPER_SNR:g} Hz, "
              f"median (max) of {a.n} signals per class; SNR left in simulated noise after the {F_UPPER_SNR:g}-Hz cutoff")
        report(a.n, np.random.default_rng(a.seed), psds)


def report(n: int, rng: np.random.Generator, psds: dict) -> None:
    """One line per class: SNR^2 fractions above 1.2 kHz and F_UPPER_SNR under each PSD."""
    noise = SimulatedNoise()
    for kind in ("BBH", "NSBH", "BNS"):
        rows = {k: ([], []) for k in psds}
        kept = []
        for _ in range(n):
            s = make_sample(kind, noise, rng=rng, snr_range=(10.0, 10.0))
            h = torch.as_tensor(s.signal, dtype=torch.float64)
            for k, psd in psds.items():  # network SNR^2 up to f_high, by the pipeline's own optimal_snr
                snr2 = lambda f_high: float(optimal_snr(h, psd, SAMPLE_RATE, f_high=f_high).square().sum())  # noqa: E731
                full = snr2(SAMPLE_RATE / 2)
                rows[k][0].append(1 - snr2(1200.0) / full)
                rows[k][1].append(1 - snr2(F_UPPER_SNR) / full)
                if k == "simulated O3":
                    kept.append(np.sqrt(1 - rows[k][1][-1]))
        print(f"{kind:5s} " + "  ".join(f"{k}: {np.median(v[0]):.4f} ({np.max(v[0]):.4f}) / {np.median(v[1]):.4f} "
                                       f"({np.max(v[1]):.4f})" for k, v in rows.items())
              + f"  | SNR kept (sim.) median {np.median(kept):.5f}, min {np.min(kept):.5f}")


if __name__ == "__main__":
    main()
