"""Compare two `gwviz.evaluation.evaluate` metrics.json files on the issue-12 figures (one line each).

Usage: python docs/compare_eval.py OLD.json NEW.json
"""
import json
import sys


def figures(m):
    """The figures issue 12 asks for, from one metrics.json (calibrated rule at FPR 1e-2, ROC at 1e-3)."""
    cal = m["calibrated"]["0.01"]
    bins = cal["snr_bins"]
    i10 = bins["edges"].index(10.0)
    i13 = bins["edges"].index(13.0)
    out = {"acc_cal": cal["accuracy"], "fpr_cal": cal["noise_false_positive_rate"]}
    for cls in ("BBH", "NSBH", "BNS"):
        out[f"{cls}10"] = bins["accuracy"][cls][i10]
        acc, n = bins["accuracy"][cls][i13:], bins["counts"][cls][i13:]
        out[f"{cls}>=13"] = sum(a * c for a, c in zip(acc, n)) / sum(n)
    for snr in ("snr_12", "snr_8"):
        for cls in ("BBH", "NSBH", "BNS"):
            roc = m["roc"][snr][cls]["1-p_noise"]
            out[f"{snr}_{cls}_tpr1e-3"] = roc["tpr_at_fpr"]["0.001"]
            out[f"{snr}_{cls}_auc"] = roc["auc"]
    return out


if __name__ == "__main__":
    old, new = (figures(json.load(open(p))) for p in sys.argv[1:3])
    print(f"{sys.argv[1]} vs {sys.argv[2]}")
    for k in old:
        print(f"  {k:22s} {old[k]:.4f} {new[k]:.4f}")
