"""The matched filter beside the CNN on the same windows: samples, scores of both, metrics through
:mod:`gwviz.evaluation.metrics`, the comparison figure and :func:`run` (:mod:`gwviz.baseline`)."""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..constants import CLASSES, DETECTORS, SEGMENT_DURATION, WINDOW_SAMPLES
from ..data.params import SIGNAL_CLASSES
from ..evaluation.metrics import accuracy_by_snr, roc_curve, tpr_at_fpr
from ..data.synth import make_sample
from ..paths import write_text_atomic
from .filter import MatchedFilter, segment_psd
from .bank import TemplateBank, load_or_build_bank


# Evaluation on samples made with gwviz.data.synth.make_sample, side by side with the CNN.

@dataclass
class SampleSet:
    """Samples in a fixed order, shared by both methods.

    Attributes
    ----------
    labels : (N,) int ndarray
        Class index.
    snr : (N,) ndarray
        Target network SNR (0 for noise).
    windows : (N, 3, 16384) float32 ndarray
        Whitened windows.
    psds : (N, 3, 2049) ndarray
        Median-Welch PSD of each noise segment [1/Hz × STRAIN_SCALE²].
    meta : list of dict
        One :attr:`gwviz.data.synth.Sample.meta` per sample.
    """

    labels: np.ndarray
    snr: np.ndarray
    windows: np.ndarray
    psds: np.ndarray
    meta: list


def sample_plan(n: int, snr_values, n_noise: int) -> list[tuple[str, float]]:
    """(class, network SNR) of every sample, in order.

    ``n_noise`` noise (SNR 0), then ``n`` of each signal class at each SNR of ``snr_values``.

    Raises
    ------
    ValueError
        ``n`` or ``n_noise`` negative or both 0; with ``n`` > 0, no SNR value or one not finite and > 0.
    """
    if n < 0 or n_noise < 0 or n + n_noise == 0:
        raise ValueError(f"need n >= 0 and n_noise >= 0, not both 0; got n={n}, n_noise={n_noise}")
    snrs = [float(s) for s in snr_values]
    if n and (not snrs or any(not (math.isfinite(s) and s > 0) for s in snrs)):
        raise ValueError(f"snr values must be finite and > 0, got {snr_values}")
    return [("noise", 0.0)] * n_noise + [(k, s) for s in snrs for k in SIGNAL_CLASSES for _ in range(n)]


def make_samples(n: int, seed: int, snr_values=(8.0, 12.0), n_noise: int | None = None,
                 noise_source=None, progress: bool = True) -> SampleSet:
    """Deterministic samples from ``seed``, each with its own generator (``SeedSequence(seed).spawn``).

    Each sample gets a 16-s segment from ``noise_source`` and :func:`gwviz.data.synth.make_sample` with that
    segment; its PSD is measured on the noise alone.

    Parameters
    ----------
    n : int
        Samples per signal class and SNR value.
    seed : int
        Seed of all draws.
    snr_values : sequence of float, optional
        Network SNRs of the signals. Default (8, 12).
    n_noise : int or None, optional
        Noise samples; default None: 3 n len(snr_values) (as many noise as signal samples).
    noise_source : object, optional
        Default None: :class:`gwviz.data.noise.SimulatedNoise`.
    progress : bool, optional
        Default True.

    Returns
    -------
    SampleSet

    Raises
    ------
    ValueError
        From :func:`sample_plan` or :func:`gwviz.data.synth.make_sample`.
    """
    from ..data.noise import SimulatedNoise
    noise_source = noise_source if noise_source is not None else SimulatedNoise()
    n_noise = 3 * n * len(snr_values) if n_noise is None else n_noise
    plan = sample_plan(n, snr_values, n_noise)
    seqs = np.random.SeedSequence(seed).spawn(len(plan))
    windows = np.zeros((len(plan), len(DETECTORS), WINDOW_SAMPLES), np.float32)
    psds, meta = [], []
    for i, ((kind, snr), sq) in enumerate(tqdm(list(zip(plan, seqs)), desc="samples", disable=not progress)):
        rng = np.random.default_rng(sq)
        seg = noise_source.segment(SEGMENT_DURATION, rng)
        psds.append(segment_psd(seg.strain).numpy())  # before make_sample: noise only
        s = make_sample(kind, noise_source, rng=rng, segment=seg, **({"snr_range": (snr, snr)} if snr else {}))
        windows[i] = s.data
        meta.append(s.meta)
    return SampleSet(np.array([CLASSES.index(k) for k, _ in plan]), np.array([s for _, s in plan]),
                     windows, np.stack(psds), meta)


def score_mf(samples: SampleSet, bank: TemplateBank, progress: bool = True) -> dict[str, np.ndarray]:
    """Matched-filter outputs per sample.

    Returns
    -------
    dict of str to ndarray
        ``score`` (network SNR), ``best_class``, ``template``, ``rho`` (N, 3), ``tc``, ``cpu_s`` and ``wall_s``
        (process CPU time and wall time of the filter alone [s]), each (N,) unless said.
    """
    mf = MatchedFilter(bank)
    rows = []
    for x, psd in tqdm(list(zip(samples.windows, samples.psds)), desc="matched filter", disable=not progress):
        t0, w0 = time.process_time(), time.perf_counter()
        r = mf(x, psd)
        rows.append((r.stat, r.label, r.template, r.rho, r.tc, time.process_time() - t0, time.perf_counter() - w0))
    cols = list(zip(*rows))
    return {"score": np.array(cols[0]), "best_class": np.array(cols[1]), "template": np.array(cols[2]),
            "rho": np.stack(cols[3]), "tc": np.array(cols[4]), "cpu_s": np.array(cols[5]), "wall_s": np.array(cols[6])}


def score_cnn(samples: SampleSet, classifier) -> dict[str, np.ndarray]:
    """Classifier outputs on the same windows.

    Returns
    -------
    dict of str to ndarray
        ``probs`` (N, 4), ``score`` = 1 − p(noise), ``pred``, ``cpu_s`` and ``wall_s`` per sample [s] (batch
        time / N).
    """
    t0, w0 = time.process_time(), time.perf_counter()
    probs = classifier.predict_windows(samples.windows)
    n = len(probs)
    return {"probs": probs, "score": 1.0 - probs[:, 0], "pred": probs.argmax(1),
            "cpu_s": np.full(n, (time.process_time() - t0) / n), "wall_s": np.full(n, (time.perf_counter() - w0) / n)}


def save_outputs(path: str | os.PathLike, samples: SampleSet, outputs: dict, **extra) -> None:
    """Per-sample outputs as .npz at ``path``: labels, snr, the method's arrays, and ``extra`` scalars/strings."""
    np.savez(path, labels=samples.labels, snr=samples.snr, **outputs,
             **{k: np.asarray(v) for k, v in extra.items()})


def _load_outputs(src) -> dict | None:
    """An outputs .npz (or dict) with CNN-style (probs) or MF-style (best_class) keys, as a dict.
    gwviz.evaluation.evaluate's files ('<set>/probabilities', ...) are read with all their sets pooled."""
    if src is None:
        return None
    z = dict(np.load(src, allow_pickle=False)) if not isinstance(src, dict) else dict(src)
    sets = sorted({k.split("/")[0] for k in z if "/" in k})
    if sets:  # gwviz.evaluation.evaluate layout: '<set>/probabilities', '<set>/labels', ...: pool all sets
        z = {f: np.concatenate([z[f"{n}/{f}"] for n in sets]) for f in ("probabilities", "labels", "snr")
             if all(f"{n}/{f}" in z for n in sets)}
    alias = {"labels": ("labels", "label", "y"), "snr": ("snr", "snrs", "snr_network"),
             "probs": ("probs", "probabilities", "p")}
    out = {}
    for key, names in alias.items():
        hit = next((z[k] for k in names if k in z), None)
        if hit is not None:
            out[key] = np.asarray(hit)
    if "labels" not in out or "snr" not in out:
        raise ValueError(f"{src if not isinstance(src, dict) else 'outputs'}: need 'labels' and 'snr' arrays, "
                         f"have {sorted(z)}")
    if out["labels"].dtype.kind in "US":  # class names instead of indices
        out["labels"] = np.array([CLASSES.index(str(c)) for c in out["labels"]])
    out["score"] = np.asarray(z["score"], float) if "score" in z else 1.0 - out["probs"][:, 0]
    if "best_class" in z:
        out["best_class"] = np.asarray(z["best_class"])
    elif "pred" in z or "probs" in out:
        out["pred"] = np.asarray(z["pred"]) if "pred" in z else out["probs"].argmax(1)
    else:
        raise ValueError("outputs need 'probs', 'pred' or 'best_class'")
    for k in ("cpu_s", "wall_s"):
        if k in z:
            out[k] = float(np.mean(z[k]))
    out["snr"] = np.nan_to_num(out["snr"].astype(float))
    out["info"] = {k: np.asarray(z[k]).item() for k in ("trained", "note") if k in z and np.ndim(z[k]) == 0}
    return out


def roc(noise: np.ndarray, signal: np.ndarray, fprs=(1e-2, 1e-3), max_points: int = 400) -> tuple[dict, dict]:
    """Signal-vs-noise ROC through :mod:`gwviz.evaluation.metrics` (the one home of ROC and TPR at FPR).

    Parameters
    ----------
    noise, signal : (N,) ndarray
        Scores (higher = more signal-like).
    fprs : sequence of float, optional
        Default (1e-2, 1e-3).
    max_points : int, optional
        Most points kept of the curve. Default 400.

    Returns
    -------
    curve : dict
        ``fpr``, ``tpr`` lists and ``auc``; empty lists and None with no signals.
    tpr : dict
        {'0.01': TPR or None, ...}: None with no signals or fewer than 1/FPR noise scores.
    """
    if len(signal) == 0:
        return {"fpr": [], "tpr": [], "auc": None}, {f"{f:g}": None for f in fprs}
    fpr, tpr, _ = roc_curve(signal, noise)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), max_points)).astype(int))
    curve = {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(), "auc": float(np.trapezoid(tpr, fpr))}
    return curve, {f"{f:g}": tpr_at_fpr(fpr, tpr, f, len(noise)) for f in fprs}


def method_metrics(o: dict, snr_points=(8.0, 12.0), fprs=(1e-2, 1e-3), snr_tol: float = 0.5,
                   threshold_fpr: float = 1e-2) -> dict:
    """ROC, TPR at fixed FPR and accuracy per SNR of one method's outputs.

    ROC signal-vs-noise at each SNR in ``snr_points`` (signals within ± snr_tol), TPR at each FPR
    overall and per class, and accuracy per SNR bin (one bin per injected SNR value if there are ≤ 12,
    else 2-wide bins from 8 to 26). MF-style outputs are called 'noise' below the noise-score threshold of
    FPR ``threshold_fpr`` (the largest noise score if that is unresolved).

    Parameters
    ----------
    o : dict
        Outputs (:func:`_load_outputs`): ``labels``, ``snr``, ``score`` and ``pred`` or ``best_class``.
    snr_points : sequence of float, optional
        Default (8, 12).
    fprs : sequence of float, optional
        Default (1e-2, 1e-3).
    snr_tol : float, optional
        Default 0.5.
    threshold_fpr : float, optional
        Default 1e-2.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        No noise samples.
    """
    labels, snr, score = o["labels"], o["snr"], o["score"]
    noise = score[labels == 0]
    if len(noise) == 0:
        raise ValueError("outputs contain no noise samples: no ROC")
    res: dict = {"n": int(len(labels)), "n_noise": int(len(noise)), "roc": {}, "tpr_at_fpr": {}}
    if "best_class" in o:
        k = max(int(math.floor(threshold_fpr * len(noise) + 1e-9)), 0)
        thr = float(np.sort(noise)[::-1][min(k, len(noise) - 1)])
        pred = np.where(score > thr, o["best_class"], 0)
        res["threshold"], res["threshold_fpr"] = thr, min(k, len(noise) - 1) / len(noise)
    else:
        pred = o["pred"]
    for s in snr_points:
        sel = (labels > 0) & (np.abs(snr - s) <= snr_tol)
        key = f"{s:g}"
        curve, tpr_all = roc(noise, score[sel], fprs)
        res["roc"][key] = {**curve, "n_signal": int(sel.sum())}
        per_class = {c: roc(noise, score[sel & (labels == CLASSES.index(c))], fprs)[1] for c in SIGNAL_CLASSES}
        res["tpr_at_fpr"][key] = {f"{f:g}": {"all": tpr_all[f"{f:g}"], **{c: per_class[c][f"{f:g}"] for c in SIGNAL_CLASSES}}
                                  for f in fprs}
    # accuracy per SNR through gwviz.evaluation.metrics: one bin per injected SNR value (a handful), else 2-wide bins
    values = np.unique(snr[labels > 0])
    discrete = len(values) <= 12
    acc = {"noise": float(np.mean(pred[labels == 0] == 0))}
    if len(values):
        edges = np.r_[values, values[-1] + 1.0] if discrete else np.arange(8.0, 27.0, 2.0)
        by = accuracy_by_snr(labels, pred, snr, edges)
        for i, lo in enumerate(by["edges"][:-1]):
            if by["counts"]["overall"][i]:
                name = f"{lo:g}" if discrete else f"{lo:g}-{by['edges'][i + 1]:g}"
                acc[name] = {"all": by["accuracy"]["overall"][i],
                             **{c: by["accuracy"][c][i] for c in SIGNAL_CLASSES if by["counts"][c][i]}}
    res["accuracy"] = acc
    res["cpu_s_per_sample"] = o.get("cpu_s")
    res["wall_s_per_sample"] = o.get("wall_s")
    res["info"] = o.get("info", {})
    return res


def compare(cnn_npz, mf_npz, snr_points=(8.0, 12.0), fprs=(1e-2, 1e-3), snr_tol: float = 0.5) -> dict:
    """Side-by-side metrics of the CNN and the matched filter (:func:`method_metrics` of each).

    ROC at each SNR, TPR at each FPR (overall, per class and the CNN/MF ratio per class), accuracy per SNR
    bin, CPU time per sample.

    Parameters
    ----------
    cnn_npz : path, dict or None
        CNN outputs (labels, snr, probs; gwviz.evaluation.evaluate's outputs.npz is read with its sets
        pooled); None to skip.
    mf_npz : path, dict or None
        Matched-filter outputs (from :func:`run`).
    snr_points : sequence of float, optional
        Network SNRs of the ROCs. Default (8, 12).
    fprs : sequence of float, optional
        Default (1e-2, 1e-3).
    snr_tol : float, optional
        Signals within ± snr_tol of each point. Default 0.5.

    Returns
    -------
    dict
        ``settings``, ``cnn``, ``mf`` and ``tpr_ratio_cnn_over_mf`` (where both are there).

    Raises
    ------
    ValueError
        Outputs without labels, SNRs, predictions or noise samples.
    """
    out = {"settings": {"snr_points": list(snr_points), "fprs": list(fprs), "snr_tol": snr_tol}}
    for name, src in (("cnn", cnn_npz), ("mf", mf_npz)):
        o = _load_outputs(src)
        if o is not None:
            out[name] = method_metrics(o, snr_points, fprs, snr_tol)
    if "cnn" in out and "mf" in out:
        ratio = {}
        for s, per_f in out["cnn"]["tpr_at_fpr"].items():
            ratio[s] = {f: {c: (v / out["mf"]["tpr_at_fpr"][s][f][c]
                                if v is not None and out["mf"]["tpr_at_fpr"][s][f][c] else None)
                            for c, v in per_c.items()} for f, per_c in per_f.items()}
        out["tpr_ratio_cnn_over_mf"] = ratio
    return out


def write_plot(metrics: dict, path: str | os.PathLike) -> None:
    """Plotly HTML at ``path``: ROC curves (log FPR) of both methods at each SNR, and accuracy per SNR bin.

    ValueError if ``metrics`` (:func:`compare`) hold neither method.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    methods = [m for m in ("cnn", "mf") if m in metrics]
    if not methods:
        raise ValueError("metrics hold neither 'cnn' nor 'mf'")
    snrs = list(metrics[methods[0]]["roc"])
    fig = make_subplots(rows=1, cols=len(snrs) + 1,
                        subplot_titles=[f"ROC, network SNR {s}" for s in snrs] + ["accuracy per SNR"])
    names = {"cnn": "CNN" + ("" if metrics.get("cnn", {}).get("info", {}).get("trained", True) else " (untrained)"),
             "mf": "matched filter"}
    colours = {"cnn": "#d62728", "mf": "#1f77b4"}
    for m in methods:
        for i, s in enumerate(snrs, start=1):
            r = metrics[m]["roc"][s]
            fpr = np.maximum(r["fpr"], 0.5 / metrics[m]["n_noise"])  # log axis: 0 drawn at half a false alarm
            fig.add_trace(go.Scatter(x=fpr, y=r["tpr"], name=f"{names[m]} (AUC {r['auc']:.3f})",
                                     line=dict(color=colours[m]), legendgroup=m, showlegend=i == 1), 1, i)
            fig.update_xaxes(type="log", title_text="false-positive rate", row=1, col=i)
            fig.update_yaxes(title_text="true-positive rate", range=[0, 1.02], row=1, col=i)
        acc = metrics[m]["accuracy"]
        bins = list(acc)
        fig.add_trace(go.Bar(x=bins, y=[acc[b] if b == "noise" else acc[b]["all"] for b in bins], name=names[m],
                             marker_color=colours[m], legendgroup=m, showlegend=False), 1, len(snrs) + 1)
    fig.update_xaxes(title_text="network SNR bin", type="category", row=1, col=len(snrs) + 1)
    fig.update_yaxes(title_text="accuracy", range=[0, 1], row=1, col=len(snrs) + 1)
    fig.update_layout(title="Matched filter vs CNN on the same whitened windows", barmode="group",
                      width=480 * (len(snrs) + 1), height=460)
    fig.write_html(str(path), include_plotlyjs="cdn")


def run(n: int, seed: int, snr_values=(8.0, 12.0), classifier=None, n_noise: int | None = None,
        out: str | os.PathLike | None = None, bank: TemplateBank | None = None, noise_source=None,
        progress: bool = True) -> dict:
    """Make the samples once, score them with the matched filter and, if given, with ``classifier``.

    Parameters
    ----------
    n : int
        Samples per signal class and SNR value.
    seed : int
        Seed of all draws.
    snr_values : sequence of float, optional
        Network SNRs of the signals. Default (8, 12).
    classifier : Classifier or None, optional
        A :class:`gwviz.classifier.Classifier` (predict_windows on the same whitened windows). Default None.
    n_noise : int or None, optional
        Noise samples; default None: as many as signal samples.
    out : path or None, optional
        Folder for mf.npz, cnn.npz, metrics.json and roc.html. Default None: nothing written.
    bank : TemplateBank or None, optional
        Default None: :func:`load_or_build_bank` with its defaults.
    noise_source : object, optional
        Default None: simulated O3 noise.
    progress : bool, optional
        Default True.

    Returns
    -------
    dict
        :func:`compare` metrics with the settings of the run.
    """
    bank = bank if bank is not None else load_or_build_bank()
    samples = make_samples(n, seed, snr_values, n_noise, noise_source, progress)
    mf = score_mf(samples, bank, progress)
    cnn = score_cnn(samples, classifier) if classifier is not None else None
    if cnn is not None:
        cnn.update(trained=bool(getattr(classifier, "trained", True)))
    points = tuple(float(s) for s in snr_values)
    metrics = compare({"labels": samples.labels, "snr": samples.snr, **cnn} if cnn else None,
                      {"labels": samples.labels, "snr": samples.snr, **mf}, points)
    metrics["settings"].update(n=n, seed=seed, snr_values=list(points), n_noise=int((samples.labels == 0).sum()),
                               bank_size=len(bank), bank=bank.info, noise_source=samples.meta[0]["noise_source"])
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_outputs(out / "mf.npz", samples, mf, seed=seed)
        if cnn is not None:
            save_outputs(out / "cnn.npz", samples, cnn, seed=seed)
        write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=1))
        write_plot(metrics, out / "roc.html")
    return metrics
