"""A calibrated detection decision: a statistic that does not saturate, and thresholds at fixed
false-positive rates per window measured on noise.

The **detection statistic** is the log-odds that the window holds any signal,

    λ = log Σ_{c ∈ signals} exp(z_c) − z_noise = log((1 − p_noise) / p_noise),

computed from the logits z: a softmax probability rounds to 1 in float32 once λ > 17, so it cannot
rank the loud end of the noise distribution, where thresholds at FPR 1e-3 live.

A :class:`Calibration` holds λ's survival function on N noise windows (the false-positive rate per
window of every threshold, on a log grid down to 1/N) and the thresholds for the rates asked for.
The **calibrated rule** at rate α calls a window a signal when λ > threshold(α), and then names the
most probable signal class; otherwise 'noise'. The argmax rule (the paper's) is kept beside it.

    python -m gwviz.evaluation.calibration models/gwviz-resnet54.safetensors --n 100000 --device cuda \\
        --real-data real.npz --n-real 20000 --out runs/cal   # writes calibrated weights + JSON + HTML

The calibration is stored in the weights file's metadata (``info["calibration"]``), so
``gwviz.load_classifier()`` applies it with no extra file.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..constants import CLASSES, SUBSETS
from ..paths import OVERWRITE_HELP, run_cli, writable_dir, write_text_atomic

#: False-positive rates per window that every calibration provides thresholds for.
DEFAULT_RATES: tuple[float, ...] = (1e-2, 1e-3)
#: Log-spaced points of the stored survival function between FPR 1 and 1/N (100 linear ones added).
N_GRID = 120


def detection_statistic(logits: np.ndarray | torch.Tensor) -> np.ndarray:
    """λ = log Σ_signal exp(z) − z_noise of logits z, in float64 (no saturation).

    Parameters
    ----------
    logits : (..., 4) array or tensor
        Logits in CLASSES order.

    Returns
    -------
    (...,) float64 ndarray

    Raises
    ------
    ValueError
        The last axis is not 4 long, or a logit is not finite.
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    if z.shape[-1] != len(CLASSES):
        raise ValueError(f"logits must end in {len(CLASSES)} classes, got shape {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError("logits are not finite (NaN/inf): the weights or the input are broken")
    return (torch.logsumexp(z[..., 1:], -1) - z[..., 0]).numpy()


def threshold_for(noise_stat: np.ndarray, rate: float) -> float:
    """Smallest observed λ with at most ``rate``·N noise windows strictly above it (signal iff λ > t).

    Parameters
    ----------
    noise_stat : (N,) array_like
        Detection statistic λ of N noise windows.
    rate : float
        False-positive rate per window, in (0, 1), with N · rate ≥ 1.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``rate`` outside (0, 1), or fewer than 1/rate noise windows.
    """
    s = np.sort(np.asarray(noise_stat, dtype=float))[::-1]
    if not 0 < rate < 1 or s.size * rate < 1:
        raise ValueError(f"a rate of {rate:g} needs at least {math.ceil(1 / rate)} noise windows, got {s.size}")
    return float(s[int(math.floor(rate * s.size))])


@dataclass
class Calibration:
    """λ's false-positive rate per window on noise, and thresholds at fixed rates.

    Attributes
    ----------
    thresholds : dict
        ``'{rate:g}'`` -> λ threshold, e.g. ``{'0.01': 2.3, '0.001': 5.1}``.
    fpr_grid, stat_grid : list of float
        The survival function: the fraction ``fpr_grid[i]`` of noise windows has λ > ``stat_grid[i]``;
        FPR decreasing from 1 to 1/N, λ increasing.
    n_noise : int
        Noise windows measured (FPR below 1/N is not resolved).
    noise : str
        What the noise was (e.g. simulated O3, seed).
    statistic : str
        What λ is (text for readers of the metadata).
    checks : dict
        Optional checks on other noise, e.g. ``{'real': {'n': ..., 'fpr_at': {'0.01': 0.012}}}``.
    """

    thresholds: dict[str, float]
    fpr_grid: list[float]
    stat_grid: list[float]
    n_noise: int
    noise: str = ""
    statistic: str = "log((1 - p_noise) / p_noise) from the logits"
    checks: dict = field(default_factory=dict)

    @classmethod
    def from_noise(cls, noise_stat: np.ndarray, noise: str = "", rates: tuple[float, ...] = DEFAULT_RATES) -> "Calibration":
        """Calibrate on λ of N noise windows (N ≥ 1/min(rates)).

        Parameters
        ----------
        noise_stat : (N,) array_like
            Detection statistic λ of the noise windows (:func:`detection_statistic`).
        noise : str, optional
            What the noise was. Default ''.
        rates : tuple of float, optional
            False-positive rates per window to keep thresholds for. Default ``DEFAULT_RATES`` (1e-2, 1e-3).

        Returns
        -------
        Calibration

        Raises
        ------
        ValueError
            Not a finite 1-D array, or too few windows for a rate.
        """
        s = np.asarray(noise_stat, dtype=float)
        if s.ndim != 1 or not np.isfinite(s).all():
            raise ValueError("noise statistics must be a finite 1-D array")
        thresholds = {f"{r:g}": threshold_for(s, r) for r in rates}
        srt = np.sort(s)[::-1]
        # log-spaced for the tail that thresholds live in, plus a linear part for the bulk
        fpr = np.unique(np.r_[np.logspace(0, -math.log10(s.size), N_GRID), np.linspace(1, 0.01, 100),
                              1.0 / s.size])[::-1]
        k = np.clip(np.floor(fpr * s.size).astype(int), 0, s.size - 1)  # index as in threshold_for
        stat = srt[k]
        return cls(thresholds, fpr.tolist(), stat.tolist(), int(s.size), noise)

    # ------------------------------------------------------------------ use
    def threshold(self, rate: float) -> float:
        """λ threshold for a false-positive rate per window ``rate`` (a stored one, matched as ``f"{rate:g}"``).

        Raises
        ------
        ValueError
            ``rate`` is not a number (bools refused) or has no stored threshold.
        """
        if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.integer, np.floating)):
            raise ValueError(f"rate must be a number (a false-positive rate per window such as 0.01), "
                             f"got {rate!r} ({type(rate).__name__})")
        key = f"{float(rate):g}"
        if key not in self.thresholds:
            raise ValueError(f"no threshold for FPR {rate!r}; calibrated rates: {sorted(self.thresholds, key=float)}")
        return self.thresholds[key]

    def fpr(self, stat: float | np.ndarray) -> np.ndarray:
        """False-positive rate per window of λ = ``stat`` on the calibration noise.

        The fraction of noise windows above it, interpolated in log FPR; λ beyond the loudest noise gets 1/N (an
        upper bound: rarer than the calibration can resolve), λ below the grid gets 1.

        Parameters
        ----------
        stat : float or ndarray
            Detection statistic λ.

        Returns
        -------
        ndarray
            The shape of ``stat`` (0-d for a scalar).
        """
        x = np.asarray(stat, dtype=float)
        logf = np.interp(x, np.asarray(self.stat_grid), np.log(np.asarray(self.fpr_grid)))
        return np.exp(logf)

    def decide(self, logits: np.ndarray, rate: float = DEFAULT_RATES[0]) -> np.ndarray:
        """Calibrated class indices: 0 unless λ > threshold(rate), then the most probable signal class.

        Parameters
        ----------
        logits : (N, 4) array_like
            Logits in CLASSES order.
        rate : float, optional
            A stored false-positive rate per window. Default ``DEFAULT_RATES[0]`` (1e-2).

        Returns
        -------
        (N,) int ndarray

        Raises
        ------
        ValueError
            Non-finite logits, or a rate with no stored threshold.
        """
        z = np.asarray(logits, dtype=float)
        stat = detection_statistic(z)
        return np.where(stat > self.threshold(rate), 1 + z[..., 1:].argmax(-1), 0)

    # ------------------------------------------------------------------ storage
    def to_dict(self) -> dict:
        """The fields as a plain dict (JSON-ready; stored as ``info["calibration"]`` in weights files)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d) -> "Calibration":
        """Rebuild from :meth:`to_dict` output; ValueError (never KeyError/TypeError) if malformed.

        Malformed: missing fields, no thresholds, grids of different or < 2 lengths, non-finite values,
        n_noise < 1, a decreasing ``stat_grid`` or an FPR outside (0, 1].
        """
        try:
            cal = cls(thresholds={str(k): float(v) for k, v in dict(d["thresholds"]).items()},
                      fpr_grid=[float(v) for v in d["fpr_grid"]], stat_grid=[float(v) for v in d["stat_grid"]],
                      n_noise=int(d["n_noise"]), noise=str(d.get("noise", "")),
                      checks=dict(d.get("checks", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"malformed calibration in the weights metadata ({type(err).__name__}: {err})") from None
        values = [*cal.thresholds.values(), *cal.fpr_grid, *cal.stat_grid]
        if (not cal.thresholds or len(cal.fpr_grid) != len(cal.stat_grid) or len(cal.fpr_grid) < 2
                or not all(math.isfinite(v) for v in values) or cal.n_noise < 1
                or np.any(np.diff(cal.stat_grid) < 0) or not all(0 < f <= 1 for f in cal.fpr_grid)):
            raise ValueError("malformed calibration in the weights metadata (thresholds and a monotone, finite "
                             "survival function are required)")
        return cal


# ---------------------------------------------------------------------------------------------
# measuring it


def noise_statistics(classifier, maker, n: int, seed: int, name: str = "calibration_noise", batch: int = 1024,
                     real: bool | None = False, progress: bool = True) -> np.ndarray:
    """λ of ``n`` noise windows, with the classifier's network in float32 (as the app runs it).

    Deterministic in (seed, name).

    Parameters
    ----------
    classifier : Classifier
        The network to calibrate.
    maker : BatchMaker
        Makes the windows (its detector subset, if any, applies).
    n : int
        Noise windows.
    seed : int
        Seed of the set.
    name : str, optional
        Name of the set, mixed into its seed. Default 'calibration_noise'.
    batch : int, optional
        Windows per batch. Default 1024.
    real : bool or None, optional
        False (default) simulated noise, True real noise, None the maker's mix.
    progress : bool, optional
        Show a progress bar. Default True.

    Returns
    -------
    (n,) float64 ndarray

    Raises
    ------
    FloatingPointError
        The network returned non-finite logits.
    """
    from .sets import predict_set
    out = predict_set(classifier, maker, n, seed, name, labels=np.zeros(n, dtype=int), batch=batch, real=real,
                      progress=progress)
    return detection_statistic(out.logits)


def survival_figure(cal: Calibration, others: dict[str, np.ndarray] | None = None):
    """plotly figure: FPR per window against λ threshold, with the thresholds marked.

    Parameters
    ----------
    cal : Calibration
        The calibration whose survival function and thresholds are drawn.
    others : dict of str to ndarray or None, optional
        Further λ samples drawn as their own survival curves (e.g. real noise), by label. Default None.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go
    fig = go.Figure(go.Scatter(x=cal.stat_grid, y=cal.fpr_grid, mode="lines", name=f"calibration ({cal.n_noise:,})"))
    for label, s in (others or {}).items():
        srt = np.sort(s)[::-1]
        fig.add_trace(go.Scatter(x=srt, y=np.arange(1, srt.size + 1) / srt.size, mode="lines", name=label))
    for key, t in cal.thresholds.items():
        fig.add_vline(x=t, line_dash="dot", annotation_text=f"FPR {key}")
    fig.update_layout(xaxis_title="detection statistic λ = log((1 − p_noise) / p_noise)",
                      yaxis_title="false-positive rate per window", yaxis_type="log", template="plotly_white")
    return fig


def main(argv: list[str] | None = None) -> dict:
    """Command line (see the module docstring): calibrate weights and write them with the calibration.

    Also writes a JSON report, the noise statistics (npz) and, unless --no-figures, an HTML figure.

    Parameters
    ----------
    argv : list of str or None, optional
        Arguments; default None: ``sys.argv[1:]``.

    Returns
    -------
    dict
        The report printed as JSON (thresholds, n_noise, checks of the first subset, and per subset).
    """
    from ..data.bank import WaveformBank
    from ..data.batch import BatchMaker, load_real
    from ..model.checkpoint import save_weights
    from ..classifier import load_classifier

    p = argparse.ArgumentParser(prog="python -m gwviz.evaluation.calibration", description=__doc__.split("\n\n")[0])
    p.add_argument("weights", help="gwviz .safetensors weights to calibrate")
    p.add_argument("--out", required=True, help="folder for <name>-calibrated.safetensors, calibration.json, .html")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--n", type=int, default=100_000, help="simulated-noise windows (>= 1000)")
    p.add_argument("--real-data", default=None, help="trainer's real-noise .npz: its val_range windows check the rates")
    p.add_argument("--n-real", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=31337, help="noise seed (keep apart from training and evaluation)")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-figures", action="store_true", help="JSON and npz only (e.g. where plotly is missing)")
    p.add_argument("--subsets", nargs="+", choices=SUBSETS, default=[SUBSETS[0]],
                   help="detector networks to calibrate, each on its own noise windows (subsets other than H1L1V1 "
                        "need weights trained with the detector mask)")
    a = p.parse_args(argv)
    out = writable_dir(a.out, results=("calibration.json", "noise_statistics.npz"), overwrite=a.overwrite)  # before the windows
    if a.n < 1000:
        p.error("--n must be >= 1000 (an FPR of 1e-3 needs at least 1000 noise windows)")
    if a.n_real < 1 or a.batch < 1:
        p.error("--n-real and --batch must be positive")
    clf = load_classifier(a.weights, device=a.device)
    if set(a.subsets) - {SUBSETS[0]} and not clf.config.get("detector_mask"):
        p.error(f"{a.weights} was trained for H1L1V1 only (no detector mask); it cannot be calibrated for "
                f"{sorted(set(a.subsets) - {SUBSETS[0]})}")
    real = load_real(a.real_data) if a.real_data else None  # read and checked before any other work
    bank = WaveformBank.build(1, seed=a.seed, progress=False).to(a.device)  # noise only: waveforms unused
    cals, stats, others = {}, {}, {}
    for subset in dict.fromkeys(a.subsets):
        one = None if subset == SUBSETS[0] else subset
        stat = noise_statistics(clf, BatchMaker(bank, a.device, subset=one), a.n, a.seed, batch=a.batch)
        cal = Calibration.from_noise(stat, f"simulated O3 Gaussian noise (lalsimulation T1800545), {subset}, "
                                           f"{a.n} windows, seed {a.seed}")
        stats[f"simulated_{subset}"] = stat
        if real is not None:
            strain, _, val_range = real
            real_maker = BatchMaker(bank, a.device, real_strain=strain, real_range=val_range, p_real=1.0, subset=one)
            rs = noise_statistics(clf, real_maker, a.n_real, a.seed, name="calibration_real", batch=a.batch, real=True)
            cal.checks["real"] = {"n": a.n_real, "source": f"{a.real_data} val_range (held out of training)",
                                  "fpr_at": {k: float((rs > t).mean()) for k, t in cal.thresholds.items()}}
            stats[f"real_{subset}"] = rs
            if subset == a.subsets[0]:
                others[f"real held-out ({a.n_real:,})"] = rs
        cals[subset] = cal
    first = cals[a.subsets[0]]
    info = {**clf.info}
    if SUBSETS[0] in cals:
        info["calibration"] = cals[SUBSETS[0]].to_dict()
    subs = {k: c.to_dict() for k, c in cals.items() if k != SUBSETS[0]}
    if subs:
        info["calibration_subsets"] = {**info.get("calibration_subsets", {}), **subs}
    name = Path(a.weights).stem
    save_weights(clf.model, out / f"{name}-calibrated.safetensors", clf.config, info)
    report = {"weights": str(a.weights), "thresholds": first.thresholds, "n_noise": first.n_noise, "checks": first.checks,
              "subsets": {k: {"thresholds": c.thresholds, "checks": c.checks} for k, c in cals.items()}}
    write_text_atomic(out / "calibration.json", json.dumps({**report, "calibration": first.to_dict()}, indent=1))
    np.savez_compressed(out / "noise_statistics.npz", **stats)
    if not a.no_figures:
        from ..plots import write_page
        write_page(out / "calibration.html", [survival_figure(first, others)], "Detection statistic on noise", "directory")
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    run_cli(main, "python -m gwviz.evaluation.calibration")
