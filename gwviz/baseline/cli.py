"""The command line of ``python -m gwviz.baseline``: build or load the bank, score the matched filter and the CNN on the same
windows, write JSON + figures (see the package docstring)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..constants import CLASSES
from ..data.params import SIGNAL_CLASSES
from ..paths import OVERWRITE_HELP, snr_arg, writable_dir, write_text_atomic
from .bank import MIN_MATCH, PATIENCE, default_bank_path, fitting_factors, load_or_build_bank
from .compare import compare, run, write_plot



def main(argv: list[str] | None = None) -> dict:
    """Command line of ``python -m gwviz.baseline`` (see ``--help``); returns the metrics written to ``--out``.

    Parameters
    ----------
    argv : list of str or None, optional
        Arguments; default None: ``sys.argv[1:]``.

    Raises
    ------
    ValueError
        ``--n`` < 1, ``--n-noise`` < 0, an SNR not finite and > 0, or errors of the bank and the samples.
    """
    p = argparse.ArgumentParser(prog="python -m gwviz.baseline", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20, help="samples per signal class and SNR value")
    p.add_argument("--n-noise", type=int, default=None, help="noise samples (default: as many as signals)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snr", type=snr_arg, nargs="+", default=[8.0, 12.0], help="network SNR values")
    p.add_argument("--out", default="baseline-out", help="output directory")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--bank", default=None, help="bank .npz (built and saved there if missing)")
    p.add_argument("--min-match", type=float, default=MIN_MATCH)
    p.add_argument("--bank-seed", type=int, default=0)
    p.add_argument("--patience", type=int, default=PATIENCE)
    p.add_argument("--build-bank", action="store_true", help="only build the bank and measure its fitting factors")
    p.add_argument("--ff-injections", type=int, default=200, help="random injections per class for --build-bank")
    p.add_argument("--cnn", default=None, help="also score the CNN: a weights path, or 'shipped' (models/; an "
                   "untrained, flagged model if no weights are shipped yet)")
    p.add_argument("--compare", default=None, metavar="CNN_NPZ", help="only compare CNN outputs with --mf")
    p.add_argument("--mf", default=None, help="matched-filter outputs .npz for --compare")
    a = p.parse_args(argv)
    # cheap checks first: a bank takes minutes to build
    if a.n < 1 or (a.n_noise is not None and a.n_noise < 0):
        raise ValueError(f"--n must be >= 1 and --n-noise >= 0, got {a.n} and {a.n_noise}")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    # what this mode writes in --out: --build-bank only the bank (at its own path); --compare reads mf.npz
    results = () if a.build_bank else ("metrics.json",) if a.compare else ("metrics.json", "mf.npz")
    out = writable_dir(a.out, results=results, overwrite=a.overwrite)
    if a.compare:
        if not a.mf:
            p.error("--compare needs --mf MF_NPZ")
        metrics = compare(a.compare, a.mf, tuple(a.snr))
        write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=1))
        write_plot(metrics, out / "roc.html")
    else:
        bank_path = Path(a.bank) if a.bank else default_bank_path(a.min_match, a.bank_seed, a.patience)
        bank = load_or_build_bank(bank_path, a.min_match, a.bank_seed, a.patience)
        if a.build_bank:
            ff = {k: fitting_factors(bank, k, a.ff_injections) for k in SIGNAL_CLASSES if a.ff_injections}
            bank.info["fitting_factors"] = {k: {"n": len(v), "min": float(v.min()), "p01": float(np.quantile(v, 0.01)),
                                                "p05": float(np.quantile(v, 0.05)), "median": float(np.median(v))}
                                            for k, v in ff.items()}
            bank.save(bank_path)
            metrics = {"bank": str(bank_path), "size": {c: int((bank.label == CLASSES.index(c)).sum())
                                                        for c in SIGNAL_CLASSES}, "info": bank.info}
        else:
            clf = None
            if a.cnn:
                from ..classifier import load_classifier
                clf = load_classifier(None if a.cnn == "shipped" else a.cnn, allow_untrained=a.cnn == "shipped")
            metrics = run(a.n, a.seed, tuple(a.snr), clf, a.n_noise, out, bank)
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("cnn", "mf")} | {
        m: {k: v for k, v in metrics[m].items() if k != "roc"} for m in ("cnn", "mf") if m in metrics}, indent=1))
    return metrics

