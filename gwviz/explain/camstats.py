"""Where does Grad-CAM look, relative to the merger? Statistics over many samples at fixed SNR.

    python -m gwviz.explain.camstats --weights models/gwviz-resnet54.safetensors --n 1000 --snr 15 --seed 0 \\
        --out results/camstats [--noise simulated|files] [--device cuda]

For every sample (``n`` per class, :func:`gwviz.data.synth.make_sample`, network SNR ``snr``) and for
the CAM of the predicted and of the true class:

- peak offset: time of the CAM maximum − geocentric merger time [s] (negative: before the merger);
- centroid offset: CAM-weighted mean time − merger time [s];
- flatness: max/mean of the CAM (1 = flat) and its normalised entropy H(c/Σc)/log T (1 = flat);
- against the chirp mass [M☉] and the signal's duration in band: the Newtonian (leading-order)
  chirp time from 20 Hz to merger, τ₀ = 5/256 (π f)^(−8/3) (G 𝓜/c³)^(−5/3) [s], a function of
  the chirp mass alone (BBH ~0.02–2 s, NSBH ~5–60 s, BNS ~100–250 s; the window holds 4 s).

An all-zero CAM (ReLU kills every bin) has no peak or centroid: it is counted, not averaged.
Also Adebayo et al. (2018)'s model-randomisation check on a few samples (Spearman ρ between the
trained and a random-weight CAM; near 1 = the map does not depend on training).

Writes camstats.json (medians and IQRs per class, the ordering test of 'BBH attention at the
merger, NSBH earlier, BNS earliest, noise flat'), camstats.npz (per-sample values and the CAMs at
the Grad-CAM's own 512-bin resolution) and camstats.html.
"""
from __future__ import annotations

import argparse
import math
import sys

import lal
import numpy as np
from scipy.stats import spearmanr

from ..constants import CLASSES, F_LOWER_SNR, SAMPLE_RATE, WINDOW_SAMPLES
from ..data.params import SIGNAL_CLASSES
from ..paths import run_cli, snr_arg, writable_dir

TARGETS: tuple[str, ...] = ("pred", "true")
#: |median peak offset| of BBH below this counts as "attention at the merger" [s] (a CAM bin is 7.8 ms,
#: the merger lands in the window's last 0.1 s).
AT_MERGER_S: float = 0.1
#: CAM bins of Grad-CAM on the last residual block (16384 / 32).
CAM_BINS: int = 512


def newtonian_chirp_time(chirp_mass: np.ndarray | float, f_low: float = F_LOWER_SNR) -> np.ndarray:
    """Leading-order time from frequency ``f_low`` to coalescence, τ₀ = 5/256 (π f)^(−8/3) (G 𝓜/c³)^(−5/3).

    Parameters
    ----------
    chirp_mass : float or ndarray
        Chirp mass [M☉] (NaN gives NaN).
    f_low : float, optional
        Start frequency [Hz]. Default ``F_LOWER_SNR`` (20 Hz).

    Returns
    -------
    ndarray
        Chirp time τ₀ [s], the shape of ``chirp_mass``.
    """
    mc = np.asarray(chirp_mass, dtype=float) * lal.MTSUN_SI
    return 5.0 / 256.0 * (math.pi * f_low) ** (-8.0 / 3.0) * mc ** (-5.0 / 3.0)


def cam_measures(cam: np.ndarray, merger_index: float | None, sample_rate: float = SAMPLE_RATE) -> dict[str, float]:
    """Peak/centroid offsets from the merger and flatness of one CAM.

    Parameters
    ----------
    cam : (T,) ndarray
        Non-negative profile (NaN and negative values count as 0).
    merger_index : float or None
        Sample of the merger in the window; None for noise.
    sample_rate : float, optional
        Sample rate [Hz]. Default ``SAMPLE_RATE`` (4096).

    Returns
    -------
    dict of str to float
        ``peak_offset``, ``centroid_offset`` [s] (NaN for noise or an all-zero CAM), ``max_over_mean``,
        ``entropy`` (normalised, NaN for an all-zero CAM) and ``zero`` (1.0 for an all-zero CAM, else 0.0).
    """
    c = np.clip(np.nan_to_num(np.asarray(cam, dtype=np.float64)), 0.0, None)
    total = c.sum()
    t = np.arange(c.size) / sample_rate
    nan = float("nan")
    if total <= 0:
        return {"peak_offset": nan, "centroid_offset": nan, "max_over_mean": nan, "entropy": nan, "zero": 1.0}
    w = c / total
    nz = w[w > 0]
    out = {"max_over_mean": float(c.max() / c.mean()), "entropy": float(-(nz * np.log(nz)).sum() / np.log(c.size)),
           "zero": 0.0, "peak_offset": nan, "centroid_offset": nan}
    if merger_index is not None:
        tm = merger_index / sample_rate
        out["peak_offset"] = float(t[int(np.argmax(c))] - tm)
        out["centroid_offset"] = float((w * t).sum() - tm)
    return out


def collect(classifier, noise_source, n: int, snr: float, seed: int, progress: bool = True,
            method: str = "gradcam") -> dict[str, np.ndarray]:
    """Per-sample arrays over ``n`` samples of each class (seeds from (seed, class index)).

    Parameters
    ----------
    classifier : Classifier
        Decides and explains.
    noise_source : object
        Noise source of :func:`gwviz.data.synth.make_sample`.
    n : int
        Samples per class (≥ 1).
    snr : float
        Network optimal SNR of the signals.
    seed : int
        Seed of all draws.
    progress : bool, optional
        Default True.
    method : {'gradcam', 'hirescam'}, optional
        Default 'gradcam'.

    Returns
    -------
    dict of str to ndarray
        Keys kind (N,) str, label, predicted (N,), probabilities (N, 4), chirp_mass [M☉] and tau0 [s] (NaN for
        noise), merger_index (N,) (-1 for noise), '<measure>_<target>' (N,) (:func:`cam_measures`, target
        'pred' or 'true') and 'cam_<target>' (N, 512) CAMs averaged over each Grad-CAM bin.

    Raises
    ------
    ValueError
        ``n`` < 1, or from sample synthesis or the classifier.
    """
    from tqdm.auto import tqdm

    from ..data.synth import make_sample
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rows: dict[str, list] = {}

    def add(key: str, value) -> None:
        rows.setdefault(key, []).append(value)

    with tqdm(total=n * len(CLASSES), desc="camstats", unit="sample", disable=not progress) as bar:
        for kind in CLASSES:
            for s in np.random.SeedSequence([seed, CLASSES.index(kind)]).generate_state(n):
                smp = make_sample(kind, noise_source, seed=int(s), snr_range=(snr, snr))
                pred, cam = classifier.classify_and_explain_window(smp.data, method)
                cams = {"pred": cam}
                cams["true"] = cams["pred"] if pred.label == kind else classifier.explain_window(smp.data, target=kind,
                                                                                                 method=method)
                merger = smp.meta.get("merger_index")
                add("kind", kind)
                add("label", CLASSES.index(kind))
                add("predicted", CLASSES.index(pred.label))
                add("probabilities", [pred.probabilities[c] for c in CLASSES])
                add("chirp_mass", smp.meta.get("chirp_mass", np.nan))
                add("merger_index", -1 if merger is None else merger)
                for tgt, cam in cams.items():
                    for k, v in cam_measures(cam, merger).items():
                        add(f"{k}_{tgt}", v)
                    add(f"cam_{tgt}", cam.reshape(CAM_BINS, -1).mean(1))
                bar.update()
    out = {k: np.asarray(v) for k, v in rows.items()}
    out["tau0"] = newtonian_chirp_time(out["chirp_mass"])
    return out


def _summary(v: np.ndarray) -> dict:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"median": None, "q25": None, "q75": None, "iqr": None, "n": 0}
    q25, med, q75 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75), "iqr": float(q75 - q25), "n": int(v.size)}


def summarise(d: dict[str, np.ndarray]) -> dict:
    """Medians/IQRs per class and target, correlations with the in-band duration, the claim test.

    Parameters
    ----------
    d : dict of str to ndarray
        :func:`collect` output.

    Returns
    -------
    dict
        {target: {class: {measure: summary, 'zero_cam_fraction', 'spearman_centroid_vs_tau0', ...},
        'signal_spearman_centroid_vs_log_tau0', 'claim'}}.
    """
    out: dict = {}
    for tgt in TARGETS:
        per = {}
        for kind in CLASSES:
            sel = d["kind"] == kind
            entry = {m: _summary(d[f"{m}_{tgt}"][sel]) for m in ("peak_offset", "centroid_offset",
                                                                 "max_over_mean", "entropy")}
            entry["zero_cam_fraction"] = float(d[f"zero_{tgt}"][sel].mean()) if sel.any() else None
            if kind != "noise":
                c, tau = d[f"centroid_offset_{tgt}"][sel], d["tau0"][sel]
                ok = np.isfinite(c)
                rho = spearmanr(tau[ok], c[ok]).statistic if ok.sum() > 2 and np.ptp(c[ok]) > 0 else float("nan")
                entry["spearman_centroid_vs_tau0"] = float(rho)
                entry["chirp_mass"] = _summary(d["chirp_mass"][sel])
                entry["tau0"] = _summary(tau)
            per[kind] = entry
        sig = d["label"] > 0
        ok = np.isfinite(d[f"centroid_offset_{tgt}"]) & sig
        per["signal_spearman_centroid_vs_log_tau0"] = (
            float(spearmanr(np.log(d["tau0"][ok]), d[f"centroid_offset_{tgt}"][ok]).statistic)
            if ok.sum() > 2 else None)
        per["claim"] = claim(per)
        out[tgt] = per
    return out


def claim(per: dict) -> dict:
    """Test 'BBH attention at the merger, NSBH earlier, BNS earliest, noise flat' on medians.

    Parameters
    ----------
    per : dict
        One target of :func:`summarise`.

    Returns
    -------
    dict
        ``holds``, the three parts (``bbh_at_merger``, ``ordering_bbh_nsbh_bns``, ``noise_flattest``; False
        where a median is missing) and a ``statement``.
    """
    med = {k: per[k]["centroid_offset"]["median"] for k in SIGNAL_CLASSES}
    peak_bbh = per["BBH"]["peak_offset"]["median"]
    ent = {k: per[k]["entropy"]["median"] for k in CLASSES}
    known = all(v is not None for v in (*med.values(), peak_bbh, *ent.values()))
    parts = {
        "bbh_at_merger": bool(known and abs(peak_bbh) <= AT_MERGER_S),
        "ordering_bbh_nsbh_bns": bool(known and med["BBH"] > med["NSBH"] > med["BNS"]),
        "noise_flattest": bool(known and all(ent["noise"] > ent[k] for k in SIGNAL_CLASSES)),
    }
    holds = all(parts.values())
    text = (f"{'HOLDS' if holds else 'DOES NOT HOLD'}: median CAM centroid − merger BBH {_fmt(med['BBH'])} s, "
            f"NSBH {_fmt(med['NSBH'])} s, BNS {_fmt(med['BNS'])} s (expected BBH > NSBH > BNS); "
            f"BBH median peak offset {_fmt(peak_bbh)} s (|.| ≤ {AT_MERGER_S} s expected); median normalised "
            f"entropy noise {_fmt(ent['noise'])} vs " + ", ".join(f"{k} {_fmt(ent[k])}" for k in SIGNAL_CLASSES)
            + " (noise highest = flattest expected).")
    return {"holds": holds, **parts, "statement": text}


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:+.3f}" if abs(v) < 10 else f"{v:.3g}"


def randomisation(classifier, noise_source, n: int, snr: float, seed: int, method: str = "gradcam") -> dict:
    """Adebayo et al. (2018) check on ``n`` signal samples (classes in turn).

    Spearman ρ between the map (``method``, predicted class) of the trained model and of a randomly
    re-initialised copy (:func:`gwviz.explain.attribution.randomisation_check`).

    Returns
    -------
    dict
        ``n``, ``mean_spearman_rho`` (None for n = 0), ``rho`` per sample and a ``note``.
    """
    from .attribution import randomisation_check
    from ..data.synth import make_sample
    rhos = []
    seeds = np.random.SeedSequence([seed, 99]).generate_state(max(n, 0))
    for i, s in enumerate(seeds):
        smp = make_sample(SIGNAL_CLASSES[i % len(SIGNAL_CLASSES)], noise_source, seed=int(s), snr_range=(snr, snr))
        target = CLASSES.index(classifier.classify_window(smp.data).label)
        rhos.append(randomisation_check(classifier.model, smp.data, target, method, seed=i))
    return {"n": len(rhos), "mean_spearman_rho": float(np.mean(rhos)) if rhos else None, "rho": rhos,
            "note": "near 1: the map ignores the learned weights (fails the sanity check); near 0: passes"}


def figures(d: dict[str, np.ndarray], target: str = "pred", sample_rate: float = SAMPLE_RATE) -> list:
    """Histograms of offsets per class, scatter vs chirp mass and τ₀, flatness, mean CAM vs time to merger.

    Parameters
    ----------
    d : dict of str to ndarray
        :func:`collect` output.
    target : {'pred', 'true'}, optional
        Whose CAM. Default 'pred'.
    sample_rate : float, optional
        Sample rate [Hz]. Default ``SAMPLE_RATE`` (4096).

    Returns
    -------
    list of plotly.graph_objects.Figure
    """
    from ..plots import histogram_figure, scatter_figure
    sig = [k for k in SIGNAL_CLASSES if (d["kind"] == k).any()]
    by = lambda key, kinds: {k: d[key][d["kind"] == k] for k in kinds}  # noqa: E731
    who = "predicted" if target == "pred" else "true"
    figs = [
        histogram_figure(by(f"peak_offset_{target}", sig), "CAM peak − merger [s]",
                         f"CAM peak time relative to the merger ({who}-class CAM)", vline=0.0),
        histogram_figure(by(f"centroid_offset_{target}", sig), "CAM centroid − merger [s]",
                         f"CAM-weighted centroid relative to the merger ({who}-class CAM)", vline=0.0),
        scatter_figure(by("chirp_mass", sig), by(f"centroid_offset_{target}", sig), "chirp mass [M☉]",
                       "CAM centroid − merger [s]", "Centroid offset vs chirp mass", log_x=True, hline=0.0),
        scatter_figure(by("tau0", sig), by(f"centroid_offset_{target}", sig),
                       "Newtonian chirp time from 20 Hz, τ₀ [s]", "CAM centroid − merger [s]",
                       "Centroid offset vs duration in band", log_x=True, hline=0.0),
        histogram_figure(by(f"entropy_{target}", list(CLASSES)), "normalised CAM entropy (1 = flat)",
                         "CAM flatness per class"),
    ]
    figs.append(mean_cam_figure(d, target, sample_rate))
    return figs


def mean_cam_figure(d: dict[str, np.ndarray], target: str = "pred", sample_rate: float = SAMPLE_RATE):
    """Mean of the max-normalised CAMs (512 bins) per class against time − merger [s].

    Noise (no merger) is drawn against time − window end. All-zero CAMs are left out. Arguments as in
    :func:`figures`.
    """
    import plotly.graph_objects as go

    from ..plots import CLASS_COLOURS
    step = WINDOW_SAMPLES // CAM_BINS
    t_bin = (np.arange(CAM_BINS) * step + step / 2) / sample_rate  # bin centres in the window [s]
    grid = np.arange(-WINDOW_SAMPLES / sample_rate, 0.1, step / sample_rate)
    fig = go.Figure()
    for k in CLASSES:
        sel = d["kind"] == k
        cams = d[f"cam_{target}"][sel]
        peak = cams.max(1) if len(cams) else np.zeros(0)
        ref = d["merger_index"][sel] / sample_rate if k != "noise" else np.full(len(cams), WINDOW_SAMPLES / sample_rate)
        rows = np.array([np.interp(grid, t_bin - r, c / p, left=np.nan, right=np.nan)
                         for c, r, p in zip(cams, ref, peak) if p > 0])
        if rows.size == 0:
            continue
        cnt = np.isfinite(rows).sum(0)
        mean = np.divide(np.nansum(rows, 0), cnt, out=np.full(grid.size, np.nan), where=cnt > 0)
        fig.add_trace(go.Scatter(x=grid, y=mean, mode="lines", name=k if k != "noise" else "noise (vs window end)",
                                 line=dict(color=CLASS_COLOURS[k])))
    fig.add_vline(x=0.0, line=dict(color="black", dash="dash"))
    who = "predicted" if target == "pred" else "true"
    fig.update_layout(title=f"Mean normalised {who}-class CAM vs time to merger", xaxis_title="time − merger [s]",
                      yaxis_title="mean CAM / max", template="plotly_white")
    return fig


def main(argv: list[str] | None = None) -> dict:
    """Command line (see the module docstring); returns the result also written to ``<out>/camstats.json``."""
    from ..evaluation.evaluate import add_common_args, load, make_noise_source, write_json
    from ..plots import write_page
    ap = argparse.ArgumentParser(prog="python -m gwviz.explain.camstats", description=__doc__.split("\n")[0])
    add_common_args(ap)
    ap.add_argument("--n", type=int, default=1000, help="samples per class (noise, BBH, NSBH, BNS)")
    ap.add_argument("--snr", type=snr_arg, default=15.0, help="network optimal SNR of the signals")
    ap.add_argument("--n-random", type=int, default=8, help="samples for the model-randomisation check")
    ap.add_argument("--method", default="gradcam", choices=["gradcam", "hirescam"],
                    help="map: Grad-CAM (the paper's) or HiResCAM (gradient x activation, bin by bin)")
    args = ap.parse_args(argv)
    # before the folder, the model or any sample
    if args.n < 1 or args.n_random < 0:
        ap.error(f"--n must be >= 1 and --n-random >= 0, got {args.n} and {args.n_random}")
    out = writable_dir(args.out, results=("camstats.json", "camstats.npz"), overwrite=args.overwrite)  # before the CAMs
    clf = load(args)
    source, info = make_noise_source(args.noise, args.data_dir, args.gps_range)
    d = collect(clf, source, args.n, args.snr, args.seed, progress=not args.no_progress, method=args.method)
    result = {
        "weights": str(args.weights or "shipped"), "trained": bool(clf.trained), "n_per_class": args.n,
        "snr": args.snr, "seed": args.seed, "method": args.method, **info,
        "duration_in_band": "Newtonian chirp time from 20 Hz (5/256 (pi f)^(-8/3) (G Mc/c^3)^(-5/3)), s",
        "merger_time": "geocentric merger (make_sample meta merger_index); detectors differ by <= 27 ms",
        "targets": {"pred": f"{args.method} map of the predicted class", "true": f"{args.method} map of the true class"},
        "accuracy": float((d["predicted"] == d["label"]).mean()),
        "stats": summarise(d),
        "randomisation_check": randomisation(clf, source, args.n_random, args.snr, args.seed, args.method),
    }
    result["statement"] = result["stats"]["true"]["claim"]["statement"]
    write_json(result, out / "camstats.json")
    np.savez_compressed(out / "camstats.npz", **d)
    notes = [result["statement"]] + ([] if clf.trained else ["UNTRAINED MODEL: maps show the architecture only."])
    write_page(out / "camstats.html", figures(d, "pred") + figures(d, "true"), f"{args.method} timing statistics",
               "directory", notes)
    print(result["statement"], file=sys.stderr)
    return result


if __name__ == "__main__":
    run_cli(main, "python -m gwviz.explain.camstats")
