"""Print the model card's tables (models/README.md) from one `gwviz.evaluation.evaluate` metrics.json.

Usage: python docs/card_tables.py METRICS.json

Accuracy [%] per network-SNR bin under the calibrated rule at 1e-2 and under argmax, the summary line
of every rule, and the ROC table (AUC, TPR at FPR 1e-2 and 1e-3 at SNR 8 and 12).
"""
import json
import sys


def bin_table(rule: str, bins: dict, classes: list[str]) -> list[str]:
    """Markdown table: one row per signal class plus 'overall', one column per SNR bin."""
    edges = bins["edges"]
    heads = [f"{a:g}–{b:g}" for a, b in zip(edges[:-1], edges[1:])]
    rows = [f"| {rule} | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    signal = [c for c in classes if c != "noise"]
    for cls in signal:
        rows.append(f"| {cls} | " + " | ".join(f"{100 * a:.1f}" for a in bins["accuracy"][cls]) + " |")
    overall = []
    for i in range(len(heads)):
        n = sum(bins["counts"][c][i] for c in signal)
        overall.append(sum(bins["accuracy"][c][i] * bins["counts"][c][i] for c in signal) / n)
    rows.append("| overall | " + " | ".join(f"{100 * a:.1f}" for a in overall) + " |")
    return rows


def summary(name: str, r: dict, classes: list[str]) -> str:
    per = ", ".join(f"{c} {100 * r['per_class_accuracy'][c]:.1f}" for c in classes)
    return (f"{name}: accuracy {100 * r['accuracy']:.2f} %, noise FPR {100 * r['noise_false_positive_rate']:.2f} %, "
            f"per class {per}")


def main(path: str) -> None:
    m = json.load(open(path))
    classes = m["classes"]
    cal = m["calibrated"]
    print("\n".join(bin_table("calibrated 1e-2", cal["0.01"]["snr_bins"], classes)), end="\n\n")
    print("\n".join(bin_table("argmax", m["snr_bins"], classes)), end="\n\n")
    print(summary("argmax", m, classes))
    for rate in sorted(cal, key=float, reverse=True):
        print(summary(f"calibrated {float(rate):.0e}".replace("e-0", "e-"), cal[rate], classes))
    print("\n| ROC | class | AUC | TPR @ FPR 1e-2 | TPR @ FPR 1e-3 |\n|---|---|---|---|---|")
    for snr in ("snr_8", "snr_12"):
        for cls in [c for c in classes if c != "noise"]:
            roc = m["roc"][snr][cls]["1-p_noise"]
            print(f"| SNR {snr[4:]} | {cls} | {roc['auc']:.3f} | {roc['tpr_at_fpr']['0.01']:.3f} | "
                  f"{roc['tpr_at_fpr']['0.001']:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1])
