"""Does the dilated network find loud BNS in real noise when the whitened band above 1 kHz is not the real one?

    python docs/ablation/band_fill.py NPZ OUT.json      (from the repository root; ~15 min on a 2-core CPU)

The test of ``real_noise_where.py`` (its ``lambdas`` and ``found``: 17 segment starts across NPZ's ``val_range`` x 48 BNS at network SNR 16
and 48 noise windows, generator seed 3; "found" = above the 99th percentile of the same variant's 816 noise
windows), plus the same counts in simulated O3 noise, for run 2's dilated weights (environment ``DIL``) fed
(a) the whitened windows as they are, (b) low-passed at 1,024 Hz (raised cosine 992-1,056 Hz), (c) low-passed
and the band above filled with one fixed realisation of unit-variance white noise (seed 0, the same in every
window; an absent detector stays zero), (d) filled with fresh white noise per window; and run 1's end as it
is (environment ``RUN1``, as in ``real_noise_where.py``). A network that is fed nothing of the real band above
1 kHz cannot react to it; (c) and (d) keep the
whitened input's variance where training put it (the band holds half of it). A test-time probe of the
cause, not a shipped path.
"""
import json
import os
import sys

import numpy as np
import torch

from gwviz.classifier import load_classifier
from gwviz.constants import DETECTORS, SAMPLE_RATE, WINDOW_SAMPLES
from gwviz.evaluation.calibration import detection_statistic
from gwviz.evaluation.evaluate import build_maker
from gwviz.data.projection import band_response
from real_noise_where import found, lambdas  # the same test, in this folder

torch.set_num_threads(2)
R = band_response(torch.fft.rfftfreq(WINDOW_SAMPLES, 1 / SAMPLE_RATE, dtype=torch.float64), 992.0, 1056.0)
KEEP, FILL = R, (1 - R ** 2).clamp_min(0).sqrt()  # power-complementary: a white input stays white
FIXED = torch.fft.rfft(torch.randn(len(DETECTORS), WINDOW_SAMPLES, generator=torch.Generator().manual_seed(0),
                                   dtype=torch.float64), dim=-1)


def fed(x: torch.Tensor, how: str, g: torch.Generator) -> torch.Tensor:
    """The windows ``x`` (B, 3, T) as variant ``how`` feeds them."""
    if how == "as is":
        return x
    spec = torch.fft.rfft(x.double(), dim=-1) * KEEP
    if how == "fixed fill":
        spec = spec + FIXED * FILL
    elif how == "fresh fill":
        spec = spec + torch.fft.rfft(torch.randn(x.shape, generator=g, dtype=torch.float64), dim=-1) * FILL
    present = (x != 0).any(dim=-1, keepdim=True)
    return (torch.fft.irfft(spec, n=x.shape[-1], dim=-1) * present).float()


def main() -> None:
    dil = load_classifier(os.environ.get("DIL", "runs/dilcal15624/best-calibrated.safetensors"))
    run1 = load_classifier(os.environ.get("RUN1", "runs/run1-27900.safetensors"))
    variants = [("dilated", dil, h) for h in ("as is", "low-passed", "fixed fill", "fresh fill")] + [("run1", run1, "as is")]
    out = {}
    for noise in ("files", "simulated"):
        maker, _ = build_maker(noise, "cpu", 200, 2**20 + 7, "runs/evalbank200.pt",
                               real_npz=sys.argv[1] if noise == "files" else None, progress=False)
        gf = torch.Generator().manual_seed(4)
        feeds = {f"{n} {h}": (lambda x, clf=clf, h=h: detection_statistic(clf.logits(fed(x, h, gf)).numpy()))
                 for n, clf, h in variants}
        starts = np.linspace(*maker.real_range, 17).astype(int) if noise == "files" else None
        out[noise] = lam = lambdas(maker, feeds, torch.Generator().manual_seed(3), starts, real=noise == "files")
        for k, v in lam.items():
            print(f"{'real' if noise == 'files' else 'simulated':9s} {k:22s} loud BNS found {found(v).mean():.2f}  "
                  f"median λ BNS {np.median(v['bns']):6.2f}  noise {np.median(v['noise']):6.2f}", flush=True)
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
