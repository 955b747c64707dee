"""One-off experiment behind models/README.md "BatchNorm statistics": one set of weights, four sets of
BatchNorm running statistics, evaluated on simulated and on held-out real O3 noise.

    python -m gwviz.training.bnstats W.safetensors W-bn-sim.safetensors --device cuda                      # simulated only
    python -m gwviz.training.bnstats W.safetensors W-bn.safetensors --device cuda --real-data real.npz --p-real 0.2
    python -m gwviz.training.bnstats W.safetensors W-bn-real.safetensors --device cuda --real-data real.npz --p-real 1
    python docs/bn/bn_variants.py real.npz W.safetensors W-bn-sim.safetensors W-bn.safetensors W-bn-real.safetensors

real.npz is the trainer's real-noise file (train.py load_real: strain, train_range, val_range); the
real-noise windows come from its val_range, which training never drew from. 20,000 samples per set
(balanced classes, SNR 8-24) plus 20,000 noise and 2,000 signals per class at SNR 8 and 12 for the
ROC, seed 7, waveform bank seed 2**20 + 7 (as gwviz.evaluation.evaluate). Writes bn_variants.json next to itself.
"""
import json
import sys
from pathlib import Path

from gwviz.data.bank import WaveformBank

from gwviz.data.batch import BatchMaker, load_real
from gwviz.classifier import load_classifier
from gwviz.evaluation.evaluate import evaluate

real_npz, weights = sys.argv[1], sys.argv[2:]
bank = WaveformBank.build(1000, seed=2**20 + 7, progress=False).to("cuda")
strain, _, val_range = load_real(real_npz)
makers = {"sim": BatchMaker(bank, "cuda"),
          "real": BatchMaker(bank, "cuda", real_strain=strain, real_range=val_range, p_real=1.0)}
res = {}
for w in weights:
    clf = load_classifier(w, device="cuda")
    for name, mk in makers.items():
        m = evaluate(clf, mk, 20000, 7, n_roc=2000, n_roc_noise=20000, batch=1024, real=name == "real", progress=False)
        roc = {f"{s[4:]}{c}": [round(m["roc"][s][c]["1-p_noise"]["auc"], 3)]
               + [m["roc"][s][c]["1-p_noise"]["tpr_at_fpr"][f] for f in ("0.01", "0.001")]
               for s in ("snr_8", "snr_12") for c in ("BBH", "NSBH", "BNS")}
        res[f"{w}:{name}"] = {"acc": m["accuracy"], "fpr": m["noise_false_positive_rate"],
                              "per_class": m["per_class_accuracy"], "roc_auc_tpr1e-2_tpr1e-3": roc}
        print(w, name, round(m["accuracy"], 4), round(m["noise_false_positive_rate"], 4), m["per_class_accuracy"],
              flush=True)
Path(__file__).with_suffix(".json").write_text(json.dumps(res, indent=1))
