"""Test-set evaluation: accuracy (overall, per class, per network-SNR bin), confusion matrix and ROC.

    python -m gwviz.evaluation.evaluate --weights models/gwviz-resnet54.safetensors --n 40000 --noise simulated \\
        --seed 1 --out results/eval [--device cuda] [--batch 256]

Samples come fresh from :class:`gwviz.data.batch.BatchMaker` (the one synthesis path) with a waveform
bank built from its own seed. Every set is drawn from a torch generator seeded by (seed, set name),
so the same seed, batch size, bank and device give the same samples again
(:func:`gwviz.evaluation.sets.iter_set`),
e.g. for a matched-filter baseline beside the CNN (the raw outputs go to ``outputs.npz``).

Sets: 'main' (n samples, classes balanced, network SNR uniform in 8–24 for signals, i.e. flat
over the 16 unit SNR bins), 'roc_noise' (noise only) and 'roc_<class>_snr<S>' (one signal class at
network SNR exactly S, Sasaoka et al. 2023 Fig. 1 uses 8 and 12).

ROC statistics: '1-p_noise' and 'p_class'. Ranked through their log-odds from the logits
(logsumexp(z_signal) − z_noise, and z_c − logsumexp(z_other)), which are monotone in the
probabilities but do not saturate at 1.0 in floating point, so confident samples don't tie.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .calibration import detection_statistic
from .metrics import roc_summary, rule_metrics
from .sets import EvalSet, check_set_sizes, make_sets
from ..constants import CLASSES, SUBSETS
from ..data.noise import DATA_DIR_ENV
from ..data.strain import default_window_range, read_real_strain, segment_start_range
from ..data.params import SIGNAL_CLASSES
from ..paths import OVERWRITE_HELP, int_at_least, run_cli, writable_dir, write_text_atomic

ROC_STATISTICS: tuple[str, ...] = ("1-p_noise", "p_class")


# ---------------------------------------------------------------------------------------------
# metrics (the functions themselves live in gwviz.evaluation.metrics)


def roc_statistic(logits: np.ndarray, statistic: str, kind: str) -> np.ndarray:
    """Detection statistic (N,) from logits (N, 4): log-odds of 1 − p(noise) or of p(kind).

    The first is the calibrated statistic λ (:func:`gwviz.evaluation.calibration.detection_statistic`:
    non-finite logits refused). ``statistic`` is one of :data:`ROC_STATISTICS` ('1-p_noise', 'p_class');
    ValueError otherwise.
    """
    if statistic == "1-p_noise":
        return detection_statistic(logits)
    z = torch.as_tensor(logits, dtype=torch.float64)
    c = CLASSES.index(kind)
    if statistic == "p_class":
        others = [i for i in range(len(CLASSES)) if i != c]
        s = z[:, c] - torch.logsumexp(z[:, others], 1)
    else:
        raise ValueError(f"statistic must be one of {ROC_STATISTICS}, got {statistic!r}")
    return s.numpy()


def compute_metrics(sets: dict[str, EvalSet], calibration=None) -> dict:
    """metrics.json content from :func:`make_sets` output.

    The argmax rule; the ROC when the ROC sets are there. With a
    :class:`gwviz.evaluation.calibration.Calibration`, also the calibrated rule at each of its rates under
    ``calibrated``.
    """
    main = sets["main"]
    y, p = main.labels, main.predicted
    argmax = rule_metrics(y, p, main.snr)
    out = {
        "classes": list(CLASSES),
        "n": int(len(y)),
        **argmax,
        "counts": {c: int(n) for c, n in zip(CLASSES, np.bincount(y, minlength=len(CLASSES)))},
        "confusion_matrix_note": "rows: true class, columns: predicted class (argmax)",
        "rule": "argmax of the softmax (the paper's rule)",
    }
    if calibration is not None:
        out["calibrated"] = {rate: {"rule": f"signal iff log((1-p_noise)/p_noise) > {t:.4g} (FPR {rate} per window "
                                            f"on {calibration.n_noise:,} calibration noise windows), then the most "
                                            "probable signal class", "threshold": t,
                                    **rule_metrics(y, calibration.decide(main.logits, float(rate)), main.snr)}
                             for rate, t in calibration.thresholds.items()}
    if "roc_noise" in sets:
        neg = sets["roc_noise"]
        out["noise_false_positive_rate_roc_set"] = float((neg.predicted != 0).mean())
        roc: dict = {}
        for name, s in sets.items():
            if not name.startswith("roc_") or name == "roc_noise":
                continue
            _, kind, snr = name.split("_")
            entry = roc.setdefault(snr.replace("snr", "snr_"), {}).setdefault(kind, {})
            for stat in ROC_STATISTICS:
                entry[stat] = roc_summary(roc_statistic(s.logits, stat, kind), roc_statistic(neg.logits, stat, kind))
        out["roc"] = roc
        if calibration is not None:
            out["roc_noise_fpr_at_calibrated_thresholds"] = {
                k: float((detection_statistic(neg.logits) > t).mean())
                for k, t in calibration.thresholds.items()}
        out["roc_note"] = ("positives: one signal class at fixed network SNR; negatives: the roc_noise set. "
                           "'1-p_noise' ranks by log((1-p_noise)/p_noise), 'p_class' by log(p_c/(1-p_c)) "
                           "(monotone in the probabilities, no float saturation). tpr_at_fpr is null when "
                           "there are fewer than 1/FPR noise samples.")
    return out


def evaluate(classifier, maker, n: int, seed: int, **kwargs) -> dict:
    """Metrics (:func:`compute_metrics`) of ``classifier`` on fresh samples from ``maker``.

    kwargs go to :func:`make_sets` (n_roc, n_roc_noise, roc_snrs, batch, real, progress).
    """
    return compute_metrics(make_sets(classifier, maker, n, seed, **kwargs))


# ---------------------------------------------------------------------------------------------
# files


def save_outputs(sets: dict[str, EvalSet], path: str | os.PathLike, spec: dict) -> None:
    """Raw per-sample outputs of ``sets`` as npz at ``path``, written atomically.

    <set>/logits, <set>/probabilities, <set>/labels, <set>/snr, 'classes', plus 'spec' (JSON: everything
    needed to regenerate the same samples with :func:`iter_set`).
    """
    arrays = {"spec": np.array(json.dumps(spec)), "classes": np.array(CLASSES)}
    for name, s in sets.items():
        arrays.update({f"{name}/logits": s.logits, f"{name}/probabilities": s.probabilities.astype(np.float32),
                       f"{name}/labels": s.labels, f"{name}/snr": s.snr})
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def load_outputs(path: str | os.PathLike) -> tuple[dict[str, EvalSet], dict]:
    """Read :func:`save_outputs` files: ({set name: EvalSet}, spec dict)."""
    with np.load(path) as z:
        names = sorted({k.split("/")[0] for k in z.files if "/" in k})
        sets = {n: EvalSet(z[f"{n}/logits"], z[f"{n}/labels"], z[f"{n}/snr"]) for n in names}
        return sets, json.loads(str(z["spec"]))


def _json_clean(obj):
    """NaN/inf -> None so the file is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    return obj


def write_json(obj: dict, path: str | os.PathLike) -> None:
    """Write ``obj`` to ``path`` atomically as strict JSON (NaN/inf -> null), innermost lists on one line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_json_clean(obj), indent=1, allow_nan=False)
    # innermost lists on one line (16-bin rows stay readable); '[' + newline is always structural,
    # since JSON strings hold no raw newlines
    text = re.sub(r"\[\n([^\[\]{}]*?)\n\s*\]", lambda m: "[" + " ".join(ln.strip() for ln in m.group(1).splitlines()) + "]",
                  text)
    write_text_atomic(path, text)


def write_figures(metrics: dict, out: str | os.PathLike) -> list[Path]:
    """accuracy_vs_snr.html, confusion.html, roc.html in ``out`` from ``metrics``; returns their paths.

    ``metrics`` as :func:`compute_metrics`; plotly.min.js lies beside the pages. An untrained model's pages
    say so.
    """
    from ..plots import accuracy_vs_snr_figure, confusion_figure, roc_figure, write_page
    out = Path(out)
    bins = metrics["snr_bins"]
    note = [] if metrics.get("trained", True) else ["UNTRAINED MODEL (random weights): numbers are meaningless."]
    acc_figs = [accuracy_vs_snr_figure(bins["edges"], bins["accuracy"], bins["counts"])]
    acc_figs[0].update_layout(title="Accuracy vs network SNR, argmax rule (the paper's)")
    for rate, rule in metrics.get("calibrated", {}).items():  # the rules classify() uses
        fig = accuracy_vs_snr_figure(rule["snr_bins"]["edges"], rule["snr_bins"]["accuracy"], rule["snr_bins"]["counts"])
        acc_figs.append(fig.update_layout(title=f"Accuracy vs network SNR, calibrated rule at noise FPR {rate} per window"))
    paths = [write_page(out / "accuracy_vs_snr.html", acc_figs, "Accuracy vs network SNR", "directory", note),
             write_page(out / "confusion.html", [confusion_figure(np.array(metrics["confusion_matrix"])),
                                                 confusion_figure(np.array(metrics["confusion_matrix"]), normalise=False)],
                        "Confusion matrix", "directory", note)]
    if "roc" in metrics:
        figs = []
        for stat in ROC_STATISTICS:
            curves = {f"{kind} SNR {snr.split('_')[1]}": (v[stat]["curve"]["fpr"], v[stat]["curve"]["tpr"])
                      for snr, per in metrics["roc"].items() for kind, v in per.items()}
            figs.append(roc_figure(curves, title=f"ROC vs noise, statistic {stat}"))
        paths.append(write_page(out / "roc.html", figs, "ROC curves (Sasaoka et al. 2023 Fig. 1)", "directory", note))
    return paths


# ---------------------------------------------------------------------------------------------
# CLI


def build_maker(noise: str, device: str, bank_per_class: int, bank_seed: int, bank_path: str | None = None,
                data_dir: str | None = None, gps_range: tuple[float, float] | None = None,
                workers: int | None = None, progress: bool = True, real_npz: str | None = None,
                subset: str | None = None):
    """(BatchMaker, description dict) for simulated noise or real noise (p_real = 1).

    Real noise: the files in ``data_dir`` (windows in ``gps_range`` [s], default
    :func:`default_window_range`), or the held-out ``val_range`` of a trainer's ``real_npz`` (no gwpy
    needed). ``subset`` (e.g. "H1L1"): every window observed by that detector network only. The bank is
    loaded from ``bank_path`` if it exists, else built (``bank_per_class``, ``bank_seed``, ``workers``) and
    saved there. ValueError for ``noise`` other than 'simulated'/'files' or unusable data.
    """
    from ..data.bank import WaveformBank
    from ..data.batch import BatchMaker, load_real
    if noise not in ("simulated", "files"):
        raise ValueError(f"noise must be 'simulated' or 'files', got {noise!r}")
    # the noise is read and checked first: a bad file fails before minutes of bank building
    real_kw, extra = {}, {}
    if noise == "files" and real_npz:  # the trainer's real-noise file: its val_range was never trained on
        strain, _, val_range = load_real(real_npz)
        real_kw = {"real_strain": strain, "real_range": val_range, "p_real": 1.0}
        extra = {"real_npz": str(real_npz), "segment_start_samples": list(val_range)}
    elif noise == "files":
        real = read_real_strain(data_dir)
        gps_range = tuple(gps_range) if gps_range else default_window_range(real)
        rng = segment_start_range(real, gps_range)
        real_kw = {"real_strain": real.strain, "real_range": rng, "p_real": 1.0}
        extra = {"files": {d: str(p) for d, p in real.paths.items()}, "data_t0": real.t0,
                 "window_gps_range": list(gps_range), "segment_start_samples": list(rng)}
    loaded = bool(bank_path and Path(bank_path).exists())
    if loaded:
        bank = WaveformBank.load(bank_path)
    else:
        bank = WaveformBank.build(bank_per_class, seed=bank_seed, workers=workers, progress=progress)
        if bank_path:
            bank.save(bank_path)
    # a loaded bank does not know its seed: say so rather than record the CLI's
    info = {"noise": noise, "bank_per_class": int(bank.hp[SIGNAL_CLASSES[0]].shape[0]),
            "bank_seed": None if loaded else bank_seed, "bank_path": bank_path, "bank_loaded": loaded,
            "subset": subset or "H1L1V1", **extra}
    subset = None if subset in (None, "H1L1V1") else subset
    return BatchMaker(bank.to(device), device, subset=subset, **real_kw), info


def add_common_args(ap: argparse.ArgumentParser) -> None:
    """Add the options shared by evaluate, gallery and camstats to ``ap``."""
    ap.add_argument("--weights", help="weights file (.safetensors or training checkpoint); default: shipped weights")
    ap.add_argument("--allow-untrained", action="store_true", help="random weights if no shipped weights (labelled)")
    ap.add_argument("--noise", choices=("simulated", "files"), default="simulated")
    ap.add_argument("--data-dir", default=None, help=f"real strain folder (default ${DATA_DIR_ENV})")
    ap.add_argument("--gps-range", nargs=2, type=float, metavar=("LO", "HI"), default=None,
                    help="GPS [s] the 4-s windows must lie in (real noise); default: second half of the data + 2 s")
    ap.add_argument("--seed", type=int_at_least(0), default=0)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int_at_least(1), default=None,
                    help="torch CPU threads (1 is fastest on a CPU shared with other busy processes)")
    ap.add_argument("--no-progress", action="store_true")


def check_noise_args(noise: str, data_dir=None, gps_range=None, real_npz=None) -> None:
    """Refuse real-noise options that would be ignored, and a GPS range or .npz that cannot be used.

    Before any work: with simulated noise ``--data-dir``, ``--gps-range`` and ``--real-npz`` were
    silently ignored; a NaN range failed as "cannot convert float NaN to integer" and a missing .npz
    as a FileNotFoundError traceback.

    Parameters
    ----------
    noise : str
        'simulated' or 'files'.
    data_dir, gps_range, real_npz : optional
        The real-noise options (None: not given).

    Raises
    ------
    ValueError
        Naming the option and what is wrong.
    """
    if noise not in ("simulated", "files"):
        raise ValueError(f"noise must be 'simulated' or 'files', got {noise!r}")
    given = [f for f, v in (("--data-dir", data_dir), ("--gps-range", gps_range), ("--real-npz", real_npz))
             if v is not None]
    if noise == "simulated" and given:
        raise ValueError(f"{' and '.join(given)} {'go' if len(given) > 1 else 'goes'} with --noise files; with "
                         "simulated noise it would be ignored")
    if real_npz is not None and len(given) > 1:  # the .npz brings its own strain and held-out range
        raise ValueError(f"--real-npz replaces --data-dir and --gps-range (its val_range is the held-out stretch); "
                         f"give one of them, got {' and '.join(given)}")
    if gps_range is not None:
        lo, hi = gps_range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"--gps-range must be two finite GPS times LO < HI [s], got {lo} {hi}")
    if real_npz is not None and not Path(real_npz).is_file():
        raise ValueError(f"--real-npz {real_npz}: " + ("a directory, not an" if Path(real_npz).is_dir() else "no such")
                         + " .npz file")


def make_noise_source(noise: str, data_dir: str | None = None, gps_range: tuple[float, float] | None = None):
    """Noise source for :func:`gwviz.data.synth.make_sample`, and its description dict.

    SimulatedNoise, or StrainFiles over the real files (:func:`find_real_files`) with windows in
    ``gps_range`` [s] (default :func:`default_window_range`). ValueError for another ``noise``, unusable
    data, a range holding a known event, and what :func:`check_noise_args` refuses (``data_dir`` or
    ``gps_range`` with simulated noise).
    """
    from ..data.noise import noise_source
    check_noise_args(noise, data_dir, gps_range)
    if noise == "simulated":
        return noise_source("simulated"), {"noise": noise}
    real = read_real_strain(data_dir)
    gps_range = tuple(gps_range) if gps_range else default_window_range(real)
    segment_start_range(real, gps_range)  # same checks as the batched path (fits, no known event)
    src = noise_source("files", files=real.paths.values(), gps_range=gps_range)
    return src, {"noise": noise, "files": {d: str(p) for d, p in real.paths.items()}, "window_gps_range": list(gps_range)}


def load(args):
    """The classifier named by the common CLI options (also applies --threads)."""
    from ..classifier import load_classifier
    if args.threads:
        torch.set_num_threads(args.threads)
    return load_classifier(args.weights, args.device, allow_untrained=args.allow_untrained)


def main(argv: list[str] | None = None) -> dict:
    """Command line (see the module docstring); returns the metrics also written to ``<out>/metrics.json``."""
    ap = argparse.ArgumentParser(prog="python -m gwviz.evaluation.evaluate", description=__doc__.split("\n")[0])
    add_common_args(ap)
    ap.add_argument("--n", type=int, default=4000, help="samples in the main set (classes balanced)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--bank-per-class", type=int_at_least(1), default=500, help="waveforms per signal class in the bank")
    ap.add_argument("--bank-seed", type=int_at_least(0), default=None, help="default: 2**20 + seed (not a training bank's)")
    ap.add_argument("--bank", default=None, help="load the bank from this file if it exists, else build and save it")
    ap.add_argument("--workers", type=int_at_least(1), default=None, help="processes building the bank")
    ap.add_argument("--n-roc", type=int, default=1000, help="signals per class and ROC SNR")
    ap.add_argument("--n-roc-noise", type=int, default=10000, help="noise samples of the ROC (>= 1000 for FPR 1e-3)")
    ap.add_argument("--roc-snr", type=float, nargs="+", default=[8.0, 12.0])
    ap.add_argument("--subset", choices=SUBSETS, default=SUBSETS[0],
                    help="detector network of every window (others than H1L1V1 need detector-mask weights)")
    ap.add_argument("--no-figures", action="store_true", help="JSON and npz only (e.g. where plotly is missing)")
    ap.add_argument("--real-npz", default=None, help="with --noise files: the trainer's real-noise .npz "
                    "(val_range windows) instead of --data-dir files")
    args = ap.parse_args(argv)
    progress = not args.no_progress
    check_noise_args(args.noise, args.data_dir, args.gps_range, args.real_npz)  # before the folder, the bank
    if args.bank and Path(args.bank).is_dir():
        raise ValueError(f"--bank {args.bank}: a directory, not a bank file (give a file path, e.g. {args.bank}/bank.pt)")
    out = writable_dir(args.out, results=("metrics.json", "outputs.npz"), overwrite=args.overwrite)
    check_set_sizes(args.n, args.n_roc, args.n_roc_noise, tuple(args.roc_snr), args.batch)  # before the bank
    clf = load(args)
    calibration = clf.calibration_for(args.subset)  # refuses a subset the weights were not trained for
    bank_seed = args.bank_seed if args.bank_seed is not None else 2**20 + args.seed
    maker, info = build_maker(args.noise, args.device, args.bank_per_class, bank_seed, args.bank, args.data_dir,
                              args.gps_range, args.workers, progress, args.real_npz, args.subset)
    t = time.perf_counter()
    sets = make_sets(clf, maker, args.n, args.seed, args.n_roc, args.n_roc_noise, tuple(args.roc_snr), args.batch,
                     real=True if args.noise == "files" else None, progress=progress)
    elapsed = time.perf_counter() - t
    n_total = sum(len(s.labels) for s in sets.values())
    spec = {**info, "seed": args.seed, "batch": args.batch, "device": args.device, "n": args.n,
            "n_roc": args.n_roc, "n_roc_noise": args.n_roc_noise, "roc_snrs": list(args.roc_snr),
            "set_names": list(sets), "how_to_regenerate": "gwviz.evaluation.sets.iter_set(maker, n, seed, name, labels, "
            "snr_range, batch) with the same bank (bank_seed, bank_per_class) on the same device"}
    metrics = {**compute_metrics(sets, calibration), "subset": args.subset, "weights": str(args.weights or "shipped"), "trained": bool(clf.trained),
               "model_info": clf.info, "spec": spec,
               "timing": {"seconds": elapsed, "samples": n_total, "samples_per_s": n_total / max(elapsed, 1e-9)}}
    write_json(metrics, out / "metrics.json")
    save_outputs(sets, out / "outputs.npz", spec)
    if args.no_figures:
        print(f"figures skipped; later: gwviz.evaluation.evaluate.write_figures(json.load(open('{out}/metrics.json')), '{out}')",
              file=sys.stderr)
    else:
        write_figures(metrics, out)
    print(f"accuracy {metrics['accuracy']:.4f}  per class {metrics['per_class_accuracy']}  "
          f"noise FPR {metrics['noise_false_positive_rate']}  -> {out}", file=sys.stderr)
    return metrics


if __name__ == "__main__":
    run_cli(main, "python -m gwviz.evaluation.evaluate")
