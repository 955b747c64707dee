"""The matched filter and the shipped CNN on the same windows of real O3 noise.

    python docs/baseline_real.py OUT [--n 50] [--n-noise 1000] [--seed 7]      (from the repository root)

`gwviz.baseline.run` (the one comparison: same samples, both scored through `gwviz.evaluation.metrics`) with
its noise from the bundled GW190521 strain (H1, L1, V1) held out of training: model windows inside
[t0 + 18, t0 + 30) s of the 32-s files (the trainer's real rows use windows before the event at t0 + 16 s),
each detector at its own start (time slides), signals injected as in the model card's real-noise evaluation
(`gwviz.data.synth`: SNR to 1.5 kHz against the noise's own Welch PSD, band-limited like 4-kHz data).
Writes OUT/{mf,cnn}.npz, OUT/metrics.json and OUT/roc.html, and prints the CNN/MF TPR ratios.
"""
import argparse
import json

from gwviz.baseline.compare import run
from gwviz.classifier import load_classifier
from gwviz.constants import DETECTORS
from gwviz.data.noise import StrainFiles
from gwviz.paths import BUNDLED_DATA

FILES = [BUNDLED_DATA / "gwpy_format" / "GW190521_data" / f"{d}_data_32s.hdf5" for d in DETECTORS]
HELD_OUT = (18.0, 30.0)  # s after the files' start: after the event (16 s), never in training


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=50, help="signals per class and SNR")
    ap.add_argument("--n-noise", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    probe = StrainFiles([str(p) for p in FILES])
    t0 = min(s.t0 for v in probe.strain.values() for s in v)  # GPS [s] of the files' first sample
    src = StrainFiles([str(p) for p in FILES], gps_range=(t0 + HELD_OUT[0], t0 + HELD_OUT[1]), time_slides=True)
    res = run(a.n, a.seed, (8.0, 12.0), load_classifier(), a.n_noise, out=a.out, noise_source=src)
    print(json.dumps(res["tpr_ratio_cnn_over_mf"], indent=1))


if __name__ == "__main__":
    main()
