"""gwviz.evaluation.evaluate: ROC/accuracy arithmetic on known inputs, and tiny end-to-end runs
(a narrow random-weight GWNet: the metrics' plumbing is under test, not the model)."""
from __future__ import annotations

from conftest import o3_dir  # noqa: E402
import json

import numpy as np
import pytest
import torch

from gwviz.data.bank import WaveformBank

from gwviz.data.batch import BatchMaker
from gwviz.classifier import load_classifier
from gwviz.constants import CLASSES, SAMPLE_RATE
from gwviz.evaluation.evaluate import compute_metrics, load_outputs, main, make_noise_source, roc_statistic
from gwviz.evaluation.sets import EvalSet, iter_set, make_sets
from gwviz.data.strain import read_real_strain, segment_start_range
from gwviz.evaluation.metrics import SNR_EDGES, accuracy_by_snr, confusion_matrix, roc_curve, roc_summary, tpr_at_fpr

DATA_DIR = str(o3_dir())


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def maker() -> BatchMaker:
    return BatchMaker(WaveformBank.build(2, seed=5, workers=1, progress=False))


def test_roc_curve_known_cases() -> None:
    fpr, tpr, thr = roc_curve([3.0, 4.0], [1.0, 2.0])  # perfectly separated
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.trapezoid(tpr, fpr) == 1.0
    assert thr[0] == np.inf and np.all(np.diff(thr) < 0)
    fpr, tpr, _ = roc_curve([1.0, 2.0], [3.0, 4.0])  # reversed
    assert np.trapezoid(tpr, fpr) == 0.0
    fpr, tpr, _ = roc_curve([1.0, 1.0], [1.0, 1.0, 1.0])  # all tied: one diagonal step
    np.testing.assert_array_equal(fpr, [0.0, 1.0])
    np.testing.assert_array_equal(tpr, [0.0, 1.0])
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 500), rng.normal(0, 1, 2000)
    fpr, tpr, _ = roc_curve(pos, neg)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)  # monotone
    # AUC = P(pos > neg) (Mann-Whitney)
    assert np.trapezoid(tpr, fpr) == pytest.approx((pos[:, None] > neg[None]).mean(), abs=1e-12)
    with pytest.raises(ValueError):
        roc_curve([], [1.0])


def test_tpr_at_fpr_and_summary() -> None:
    neg = np.arange(100, dtype=float)  # scores 0..99
    pos = np.array([98.5, 50.5, 200.0, -1.0])
    fpr, tpr, _ = roc_curve(pos, neg)
    # FPR <= 1%: threshold above 98 -> one noise sample (99) passes; 98.5 and 200 pass of the signals
    assert tpr_at_fpr(fpr, tpr, 1e-2, 100) == 0.5
    assert tpr_at_fpr(fpr, tpr, 1e-3, 100) is None  # 100 noise samples cannot resolve 1e-3
    s = roc_summary(pos, neg)
    assert s["tpr_at_fpr"] == {"0.01": 0.5, "0.001": None}
    assert s["n_signal"] == 4 and s["n_noise"] == 100
    assert np.all(np.diff(s["curve"]["fpr"]) > 0) and np.all(np.diff(s["curve"]["tpr"]) >= 0)


def test_roc_statistic_ranks_like_probabilities() -> None:
    z = torch.randn(50, 4, generator=torch.Generator().manual_seed(3)).numpy()
    p = torch.softmax(torch.as_tensor(z, dtype=torch.float64), -1).numpy()
    s = roc_statistic(z, "1-p_noise", "BNS")
    np.testing.assert_array_equal(np.argsort(s), np.argsort(1 - p[:, 0]))
    s = roc_statistic(z, "p_class", "NSBH")
    np.testing.assert_array_equal(np.argsort(s), np.argsort(p[:, 2]))
    # saturated logits still rank (1 - p_noise would be exactly 1.0 for both in float64)
    sat = np.array([[-50.0, 10, 0, 0], [-60.0, 10, 0, 0]])
    assert roc_statistic(sat, "1-p_noise", "BBH")[1] > roc_statistic(sat, "1-p_noise", "BBH")[0]
    with pytest.raises(ValueError):
        roc_statistic(z, "auc", "BBH")


def test_accuracy_by_snr_and_confusion() -> None:
    labels = np.array([1, 1, 2, 3, 0, 1])
    pred = np.array([1, 0, 2, 1, 0, 1])
    snr = np.array([8.0, 8.5, 12.3, 23.9, 0.0, 24.0])
    r = accuracy_by_snr(labels, pred, snr)
    assert len(r["edges"]) == 17 and r["edges"][0] == 8 and r["edges"][-1] == 24
    acc, cnt = r["accuracy"], r["counts"]
    assert all(len(v) == 16 for v in acc.values()) and set(acc) == {"BBH", "NSBH", "BNS", "overall"}
    assert acc["BBH"][0] == 0.5 and cnt["BBH"][0] == 2
    assert acc["NSBH"][4] == 1.0 and acc["BNS"][15] == 0.0
    assert acc["BBH"][15] == 1.0  # SNR exactly 24 falls in the last, closed bin
    assert acc["overall"][15] == 0.5 and cnt["overall"][15] == 2
    assert acc["BBH"][5] is None and cnt["BBH"][5] == 0
    cm = confusion_matrix(labels, pred)
    assert cm.shape == (4, 4) and cm.sum() == 6 and cm[1, 1] == 2 and cm[1, 0] == 1 and cm[3, 1] == 1


def test_evaluate_simulated_tiny(weights: str, maker: BatchMaker) -> None:
    clf = load_classifier(weights)
    sets = make_sets(clf, maker, n=8, seed=1, n_roc=3, n_roc_noise=5, roc_snrs=(8.0, 12.0), batch=8,
                     progress=False)
    assert set(sets) == {"main", "roc_noise"} | {f"roc_{k}_snr{s}" for k in CLASSES[1:] for s in (8, 12)}
    main_set = sets["main"]
    assert main_set.logits.shape == (8, 4) and np.bincount(main_set.labels).tolist() == [2, 2, 2, 2]
    sig = main_set.labels > 0
    assert np.all(main_set.snr[~sig] == 0) and np.all((main_set.snr[sig] >= 8) & (main_set.snr[sig] <= 24))
    np.testing.assert_allclose(sets["roc_BNS_snr12"].snr, 12.0, rtol=1e-6)
    m = compute_metrics(sets)
    for key in ("accuracy", "per_class_accuracy", "confusion_matrix", "noise_false_positive_rate", "snr_bins", "roc"):
        assert key in m
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (4, 4) and cm.sum() == 8 and cm.sum(1).tolist() == [2, 2, 2, 2]
    assert m["accuracy"] == pytest.approx(np.trace(cm) / 8)
    assert m["noise_false_positive_rate"] == pytest.approx(1 - cm[0, 0] / 2)
    assert set(m["roc"]) == {"snr_8", "snr_12"}
    for per in m["roc"].values():
        assert set(per) == {"BBH", "NSBH", "BNS"}
        for v in per.values():
            assert set(v) == {"1-p_noise", "p_class"}
            assert 0.0 <= v["1-p_noise"]["auc"] <= 1.0 and v["1-p_noise"]["n_noise"] == 5
            assert v["p_class"]["tpr_at_fpr"]["0.01"] is None  # 5 noise samples resolve no 1 % FPR
    # same seed -> the very same samples; another seed -> others
    again = [x for x, _, _ in iter_set(maker, 8, 1, "main", batch=8)]
    first = [x for x, _, _ in iter_set(maker, 8, 1, "main", batch=8)]
    other = [x for x, _, _ in iter_set(maker, 8, 2, "main", batch=8)]
    assert torch.equal(again[0], first[0]) and not torch.equal(first[0], other[0])
    with torch.no_grad():
        np.testing.assert_allclose(clf.model(first[0]).numpy(), main_set.logits, rtol=1e-5, atol=1e-5)


def test_real_strain_window_range() -> None:
    real = read_real_strain(DATA_DIR)
    assert real.strain.shape == (3, 32 * SAMPLE_RATE) and np.isfinite(real.strain).all()
    # windows in [t0 + 18, t0 + 30): segment starts 8 s..16 s (window = 4 s ending 2 s before segment end)
    assert segment_start_range(real, (real.t0 + 18, real.t0 + 30)) == (8 * SAMPLE_RATE, 16 * SAMPLE_RATE)
    with pytest.raises(ValueError, match="GW190521"):
        segment_start_range(real, (real.t0 + 10, real.t0 + 30))
    with pytest.raises(ValueError, match="no 4-s window"):
        segment_start_range(real, (real.t0 + 18, real.t0 + 21))


def test_cli_real_noise(weights: str, tmp_path) -> None:
    out = tmp_path / "eval"
    m = main(["--weights", weights, "--n", "4", "--noise", "files", "--data-dir", DATA_DIR, "--seed", "3",
              "--out", str(out), "--batch", "4", "--bank-per-class", "2", "--workers", "1", "--n-roc", "2",
              "--n-roc-noise", "4", "--bank", str(tmp_path / "bank.pt"), "--no-progress"])
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["n"] == 4 and on_disk["accuracy"] == pytest.approx(m["accuracy"])
    spec = on_disk["spec"]
    assert spec["noise"] == "files" and spec["segment_start_samples"] == [8 * SAMPLE_RATE, 16 * SAMPLE_RATE]
    assert spec["bank_loaded"] is False and WaveformBank.load(tmp_path / "bank.pt").hp["BNS"].shape[0] == 2
    assert spec["window_gps_range"][0] == pytest.approx(read_real_strain(DATA_DIR).t0 + 18)
    for f in ("accuracy_vs_snr.html", "confusion.html", "roc.html", "plotly.min.js"):
        assert (out / f).stat().st_size > 0
    sets, spec2 = load_outputs(out / "outputs.npz")
    assert spec2 == spec and isinstance(sets["main"], EvalSet)
    assert sets["main"].logits.shape == (4, 4) and sets["roc_noise"].labels.tolist() == [0] * 4
    np.testing.assert_allclose(sets["main"].probabilities.sum(1), 1.0, rtol=1e-6)
    assert len(SNR_EDGES) == 17


def test_bad_input_is_a_value_error(weights: str, maker: BatchMaker, tmp_path) -> None:
    clf = load_classifier(weights)
    with pytest.raises(ValueError, match="balanced"):
        make_sets(clf, maker, n=2, seed=0, progress=False)
    with pytest.raises(ValueError, match="noise must be"):
        make_noise_source("gaussian")
    with pytest.raises(ValueError, match="not a directory"):
        read_real_strain(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="exactly one"):
        read_real_strain(tmp_path)  # an empty folder: no strain files
    # gallery and camstats ignored --data-dir/--gps-range with simulated noise
    with pytest.raises(ValueError, match="^--data-dir goes with --noise files"):
        make_noise_source("simulated", data_dir=DATA_DIR)
    with pytest.raises(ValueError, match="^--gps-range goes with --noise files"):
        make_noise_source("simulated", gps_range=(1.0, 2.0))


def test_gps_range_must_be_two_finite_times() -> None:
    """A NaN bound failed as "cannot convert float NaN to integer"; a reversed one as "no 4-s window fits"."""
    real = read_real_strain(DATA_DIR)
    for bad in ((float("nan"), real.t0 + 30), (real.t0 + 18, float("inf")), (real.t0 + 30, real.t0 + 18), ("1", "2")):
        with pytest.raises(ValueError, match=r"^GPS range must be two finite numbers lo < hi \[s\], got"):
            segment_start_range(real, bad)


def test_predict_set_refuses_non_finite_logits() -> None:
    """A NaN logit would land anywhere in a ROC; the evaluation stops instead."""
    import torch

    from gwviz.data.bank import WaveformBank

    from gwviz.data.batch import BatchMaker
    from gwviz.classifier import Classifier
    from gwviz.evaluation.sets import predict_set
    from gwviz.model.network import GWNet
    model = GWNet(width=2, hidden=4)
    with torch.no_grad():
        model.head[-1].bias[2] = float("nan")
    maker = BatchMaker(WaveformBank.build(1, seed=0, workers=1, progress=False))
    with pytest.raises(FloatingPointError, match="non-finite logits for 2 of 2 windows"):
        predict_set(Classifier(model), maker, 2, 0, "main", progress=False)


def test_device_real_noise_file_matches_the_reader(tmp_path) -> None:
    """docs/make_real_npz.py (h5py only, for the GPU machine without gwpy) writes the same strain and
    held-out range as gwviz.data.strain.read_real_strain of the bundled GW190521 files."""
    import subprocess
    import sys
    from pathlib import Path

    from gwviz.paths import BUNDLED_DATA
    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "real.npz"
    subprocess.run([sys.executable, str(repo / "docs" / "make_real_npz.py"), str(out)], check=True, cwd=repo,
                   env={**__import__("os").environ, "PYTHONPATH": str(repo)}, capture_output=True)
    real = read_real_strain(BUNDLED_DATA / "gwpy_format" / "GW190521_data")
    with np.load(out) as d:
        assert np.array_equal(d["strain"], real.strain) and int(d["sample_rate"]) == SAMPLE_RATE
        assert tuple(d["val_range"]) == segment_start_range(real, (real.t0 + 18, real.t0 + 30))
        assert tuple(d["train_range"]) == (0, 5734)


def test_cnn_evaluation_and_matched_filter_comparison_score_alike() -> None:
    """The same scores through the CNN evaluation (gwviz.evaluation.evaluate) and the matched-filter comparison
    (gwviz.baseline.method_metrics) give identical TPR at each FPR and identical accuracy at an SNR:
    both go through gwviz.evaluation.metrics, the one home of ROC, TPR at FPR and accuracy per SNR bin."""
    from gwviz.baseline import method_metrics
    rng = np.random.default_rng(3)
    n_noise, n_sig = 2000, 300
    stat = {"noise": rng.normal(0, 1, n_noise), **{c: rng.normal(2.0 + i, 1, n_sig)
                                                     for i, c in enumerate(("BBH", "NSBH", "BNS"))}}

    def logits(s, cls):  # λ = log((1 - p_noise) / p_noise) = s exactly; the signal mass on class cls
        z = np.full((len(s), 4), -60.0)
        z[:, 0], z[:, cls] = 0.0, s
        return z.astype(np.float32)

    sets = {"roc_noise": EvalSet(logits(stat["noise"], 1), np.zeros(n_noise, int), np.zeros(n_noise))}
    labels, snr, score = [np.zeros(n_noise, int)], [np.zeros(n_noise)], [stat["noise"]]
    for i, c in enumerate(("BBH", "NSBH", "BNS")):
        sets[f"roc_{c}_snr12"] = EvalSet(logits(stat[c], i + 1), np.full(n_sig, i + 1), np.full(n_sig, 12.0))
        labels.append(np.full(n_sig, i + 1))
        snr.append(np.full(n_sig, 12.0))
        score.append(stat[c])
    all_logits = np.concatenate([s.logits for s in sets.values()])
    all_labels = np.concatenate([s.labels for s in sets.values()])
    sets["main"] = EvalSet(all_logits, all_labels, np.concatenate([s.snr for s in sets.values()]))
    cnn = compute_metrics(sets)
    mf = method_metrics({"labels": np.concatenate(labels), "snr": np.concatenate(snr),
                         "score": np.concatenate(score).astype(np.float32).astype(float),
                         "pred": all_logits.argmax(1)}, snr_points=(12.0,))
    for c in ("BBH", "NSBH", "BNS"):
        for f in ("0.01", "0.001"):
            assert mf["tpr_at_fpr"]["12"][f][c] == cnn["roc"]["snr_12"][c]["1-p_noise"]["tpr_at_fpr"][f]
        assert mf["accuracy"]["12"][c] == cnn["snr_bins"]["accuracy"][c][4]  # bin [12, 13)
    assert mf["accuracy"]["noise"] == cnn["per_class_accuracy"]["noise"]


def test_build_maker_reads_the_noise_before_building_the_bank(tmp_path):
    """A corrupt --real-npz (or unreadable --data-dir) fails at once: no bank is built or saved first."""
    from gwviz.evaluation.evaluate import build_maker

    bad = tmp_path / "real.npz"
    bad.write_text("not an archive")
    bank = tmp_path / "bank.pt"
    with pytest.raises(ValueError, match="not a readable .npz archive"):
        build_maker("files", "cpu", 2, 1, bank_path=str(bank), real_npz=str(bad), progress=False)
    with pytest.raises(ValueError):
        build_maker("files", "cpu", 2, 1, bank_path=str(bank), data_dir=str(tmp_path / "nothing"), progress=False)
    assert not bank.exists()
