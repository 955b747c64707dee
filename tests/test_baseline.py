"""Matched-filter baseline (gwviz.baseline): agreement with pycbc, recovery of loud injections,
the noise distribution of the statistic, the CNN comparison and bad input.

The bank here covers small mass patches around the injections (a full-range bank takes
minutes to place); the placement code is the same as for the full bank."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pycbc.filter import match, matched_filter
from pycbc.types import FrequencySeries, TimeSeries

from gwviz.baseline import (GRID, LAG_HI, LAG_LO, MATCH_GRID, MatchedFilter, TemplateBank, build_class_bank, compare,
                            fitting_factors, make_samples, match_spectra, matches, reference_response, run,
                            sample_plan, segment_psd, spectra, template, window_cut)
from gwviz.evaluation.metrics import roc_curve, tpr_at_fpr
from gwviz.constants import CLASSES, DETECTORS, SAMPLE_RATE, WINDOW_SAMPLES
from gwviz.data.noise import SimulatedNoise
from gwviz.data.params import SignalParams
from gwviz.data.synth import make_sample

torch.set_num_threads(2)

#: Mass patches [M☉] of the test bank, one per class, each holding the injection below.
PATCHES = {"BBH": ((28.0, 34.0), (22.0, 28.0)), "NSBH": ((9.0, 11.0), (1.3, 1.5)), "BNS": ((1.35, 1.45), (1.25, 1.35))}
INJECTIONS = {"BBH": (31.0, 25.0), "NSBH": (10.0, 1.4), "BNS": (1.4, 1.3)}
MIN_MATCH = 0.95


@pytest.fixture(scope="module")
def bank() -> TemplateBank:
    return TemplateBank.concat([build_class_bank(k, MIN_MATCH, seed=0, patience=8, progress=False, ranges=r)
                                for k, r in PATCHES.items()])


@pytest.fixture(scope="module")
def mf(bank: TemplateBank) -> MatchedFilter:
    return MatchedFilter(bank)


def test_filter_equals_pycbc_matched_filter(mf: MatchedFilter) -> None:
    """|ρ(t)|² of the batched filter = pycbc.filter.matched_filter of the zero-padded window with the
    whitened template (flat PSD 2/fs: unit-variance white noise), rescaled from pycbc's full-template
    σ to our σ of the part inside the window."""
    rng = np.random.default_rng(0)
    seg = SimulatedNoise().segment(16.0, rng)
    psd = segment_psd(seg.strain)
    window = rng.standard_normal((len(DETECTORS), WINDOW_SAMPLES)).astype(np.float32)
    prep = mf.prepare(window, psd)
    j, det = len(mf.bank) - 1, 2  # a long (BNS) template, V1
    ours = mf.rho2(window, psd, slice(j, j + 1), prep)[0, det].double().numpy()
    tw = torch.fft.irfft(mf.specs[j] * prep[1][det], n=GRID).double().numpy()
    data = np.zeros(GRID)
    data[:WINDOW_SAMPLES] = window[det]
    flat = FrequencySeries(np.full(GRID // 2 + 1, 2.0 / SAMPLE_RATE), delta_f=SAMPLE_RATE / GRID)
    rho = matched_filter(TimeSeries(tw, delta_t=1 / SAMPLE_RATE), TimeSeries(data, delta_t=1 / SAMPLE_RATE),
                         psd=flat, low_frequency_cutoff=20.0).numpy()
    lags = np.arange(LAG_LO, LAG_HI + 1, 37)
    inside = np.array([np.sum(tw[(np.arange(WINDOW_SAMPLES) - k) % GRID] ** 2) for k in lags])
    ref = np.abs(rho[lags]) ** 2 * np.sum(tw ** 2) / inside
    np.testing.assert_allclose(ours[lags - LAG_LO], ref, rtol=2e-4, atol=2e-4 * ref.max())
    assert inside.max() < 0.99 * np.sum(tw ** 2)  # the window really cuts this template


def test_match_equals_pycbc_match() -> None:
    resp = reference_response(GRID)
    cut = window_cut(spectra(np.stack([template("BNS", 1.4, 1.3), template("BNS", 1.42, 1.3),
                                       template("BBH", 30.0, 25.0), template("BBH", 36.0, 20.0)])), resp)
    keys = match_spectra(cut)
    ts = [TimeSeries(np.pad(c.double().numpy(), (0, MATCH_GRID - c.shape[-1])), delta_t=1 / SAMPLE_RATE) for c in cut]
    for a, b in ((0, 1), (2, 3), (0, 2)):
        ref = match(ts[a], ts[b], low_frequency_cutoff=20.0)[0]
        assert float(matches(keys[a], keys[b:b + 1])[0]) == pytest.approx(ref, abs=2e-4)
    assert float(matches(keys[1], keys[1:2])[0]) == pytest.approx(1.0, abs=1e-5)


def test_bank_placement_and_fitting_factor(bank: TemplateBank) -> None:
    for j, kind in enumerate(PATCHES):
        sel = bank.label == CLASSES.index(kind)
        (lo1, hi1), (lo2, hi2) = PATCHES[kind]
        assert sel.sum() >= 2
        assert ((bank.mass1[sel] >= lo1) & (bank.mass1[sel] <= hi1) & (bank.mass2[sel] >= lo2)
                & (bank.mass2[sel] <= hi2)).all()
    # no two BNS templates match above the placement threshold
    bns = np.flatnonzero(bank.label == CLASSES.index("BNS"))
    keys = match_spectra(window_cut(spectra(bank.waveforms[bns]), reference_response(GRID)))
    m = matches(keys, keys).numpy()
    assert (m[~np.eye(len(bns), dtype=bool)] < MIN_MATCH).all()
    ff = fitting_factors(bank, "BNS", 2, progress=False, ranges=PATCHES["BNS"])
    assert ((ff > 0.85) & (ff <= 1.0 + 1e-6)).all()


@pytest.mark.parametrize("kind", ["BBH", "NSBH", "BNS"])
def test_loud_injection_recovered(mf: MatchedFilter, kind: str) -> None:
    noise = SimulatedNoise()
    rng = np.random.default_rng(11)
    seg = noise.segment(16.0, rng)
    params = SignalParams(kind, *INJECTIONS[kind], 20.0, ra=1.0, dec=0.3, polarization=0.4, inclination=0.5,
                          coa_phase=1.0, merger_offset=0.04)
    s = make_sample(kind, noise, params, rng=rng, segment=seg)
    r = mf(s.data, segment_psd(seg.strain))
    assert r.stat == pytest.approx(s.meta["snr_network"], rel=0.10)
    assert CLASSES[r.label] == kind
    assert abs(r.tc - s.meta["merger_index"]) <= 2 * 88 + 2  # t_c is fixed only to ± the detector delay
    per_det = np.array([s.meta[f"snr_{d}"] for d in DETECTORS])
    np.testing.assert_allclose(r.rho, per_det, atol=2.5)  # each detector: ρ_opt ± noise


def test_noise_statistic_matches_white_noise_expectation(mf: MatchedFilter) -> None:
    """On noise-only samples the statistic (max over templates, t_c and per-detector delays of
    √Σρ²) has the mean it has on ideal unit-variance white Gaussian windows run through the very
    same whitened templates: that simulation is the exact expectation for this bank (it holds the
    template-template and time correlations that an effective number of independent χ²₂ trials
    would have to guess). The data are whitened by a Welch PSD (variance ~1.02), so 10 % is loose."""
    samples = make_samples(0, seed=3, n_noise=10, progress=False)
    stats = np.array([mf(x, p).stat for x, p in zip(samples.windows, samples.psds)])
    rng = np.random.default_rng(4)
    white = np.array([mf(rng.standard_normal((len(DETECTORS), WINDOW_SAMPLES)).astype(np.float32), samples.psds[i % 10]).stat
                      for i in range(20)])
    assert stats.mean() == pytest.approx(white.mean(), rel=0.10)
    # the maximisation matters: far above one template at one time (E√Σχ²₂ over 3 detectors ≈ 2.4)
    assert white.mean() > 4.0
    # and single trials do follow χ²₂ per detector: mean |ρ|² = 2 over all lags of one template
    r2 = mf.rho2(rng.standard_normal((len(DETECTORS), WINDOW_SAMPLES)).astype(np.float32), samples.psds[0],
                 slice(0, 8))
    assert float(r2.mean()) == pytest.approx(2.0, rel=0.1)


def test_compare_known_scores(tmp_path) -> None:
    n0 = 1000
    labels = np.r_[np.zeros(n0, int), np.ones(100, int), np.full(100, 3)]
    snr = np.r_[np.zeros(n0), np.full(200, 8.0)]
    noise = np.arange(n0) / n0  # scores 0 .. 0.999
    mf_score = np.r_[noise, np.full(50, 2.0), np.full(50, 0.5), np.full(100, 0.995)]
    cnn_probs = np.zeros((len(labels), 4))
    cnn_probs[:, 0] = 1 - np.r_[noise, np.full(100, 0.9995), np.full(100, 0.1)]
    cnn_probs[:, 1] = 1 - cnn_probs[:, 0]
    mf = {"labels": labels, "snr": snr, "score": mf_score, "best_class": np.r_[np.ones(n0 + 100), np.full(100, 3)],
          "cpu_s": np.full(len(labels), 0.5)}
    cnn = {"labels": labels, "snr": snr, "probs": cnn_probs, "cpu_s": np.full(len(labels), 0.01)}
    np.savez(tmp_path / "mf.npz", **mf)
    np.savez(tmp_path / "cnn.npz", **cnn)
    m = compare(tmp_path / "cnn.npz", tmp_path / "mf.npz", snr_points=(8.0,))
    # FPR 1e-2: at most 10 noise scores at or above the threshold (0.990); MF: BBH 50/100 above, BNS all (0.995)
    t = m["mf"]["tpr_at_fpr"]["8"]
    assert t["0.01"]["BBH"] == 0.5 and t["0.01"]["BNS"] == 1.0 and t["0.01"]["all"] == 0.75
    # FPR 1e-3: threshold 0.999: BNS at 0.995 drop out
    assert t["0.001"]["BNS"] == 0.0 and t["0.001"]["BBH"] == 0.5
    c = m["cnn"]["tpr_at_fpr"]["8"]
    assert c["0.001"]["BBH"] == 1.0 and c["0.001"]["BNS"] == 0.0
    assert m["tpr_ratio_cnn_over_mf"]["8"]["0.01"]["BBH"] == pytest.approx(2.0)
    assert m["tpr_ratio_cnn_over_mf"]["8"]["0.001"]["BNS"] is None  # MF TPR 0
    assert m["mf"]["cpu_s_per_sample"] == 0.5 and m["cnn"]["cpu_s_per_sample"] == 0.01
    # accuracy: MF calls 'noise' below the FPR-1e-2 threshold; 50 BBH right, all BNS right
    assert m["mf"]["accuracy"]["8"]["BBH"] == 0.5 and m["mf"]["accuracy"]["8"]["BNS"] == 1.0
    assert m["mf"]["accuracy"]["noise"] == pytest.approx(0.99)
    assert m["mf"]["roc"]["8"]["auc"] > 0.5
    fpr, tpr, _ = roc_curve(mf_score[n0:], noise[:50])  # gwviz.evaluation.metrics: the one ROC of every evaluation
    assert tpr_at_fpr(fpr, tpr, 1e-2, 50) is None  # 50 noise samples cannot resolve 1 %
    # gwviz.evaluation.evaluate's layout ('<set>/probabilities', ...) pools its sets into the same metrics
    split = {"roc_noise": slice(0, n0), "roc_BBH_snr8": slice(n0, n0 + 100), "roc_BNS_snr8": slice(n0 + 100, None)}
    np.savez(tmp_path / "eval.npz", **{f"{k}/{f}": v[sl] for k, sl in split.items()
                                        for f, v in (("probabilities", cnn_probs), ("labels", labels), ("snr", snr))})
    m2 = compare(tmp_path / "eval.npz", tmp_path / "mf.npz", snr_points=(8.0,))
    assert m2["cnn"]["tpr_at_fpr"] == m["cnn"]["tpr_at_fpr"] and m2["cnn"]["n"] == len(labels)


def test_run_end_to_end(tmp_path, bank: TemplateBank) -> None:
    from gwviz.classifier import load_classifier
    clf = load_classifier(allow_untrained=True)
    metrics = run(1, seed=5, snr_values=(12.0,), classifier=clf, n_noise=3, out=tmp_path, bank=bank, progress=False)
    for name in ("mf.npz", "cnn.npz", "metrics.json", "roc.html"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "metrics.json").read_text())["settings"]["n_noise"] == 3
    assert metrics["mf"]["roc"]["12"]["n_signal"] == 3 and metrics["cnn"]["n"] == 6
    assert metrics["mf"]["cpu_s_per_sample"] > 0
    z = np.load(tmp_path / "cnn.npz")
    assert z["probs"].shape == (6, 4) and bool(z["trained"]) == clf.trained
    again = compare(tmp_path / "cnn.npz", tmp_path / "mf.npz", snr_points=(12.0,))
    assert again["mf"]["tpr_at_fpr"] == metrics["mf"]["tpr_at_fpr"]
    # the samples are a function of the seed
    a, b = make_samples(0, 9, n_noise=1, progress=False), make_samples(0, 9, n_noise=1, progress=False)
    np.testing.assert_array_equal(a.windows, b.windows)


def test_bad_input(mf: MatchedFilter, tmp_path) -> None:
    psd = np.ones((3, 2049))
    with pytest.raises(ValueError, match="window"):
        mf(np.zeros((2, WINDOW_SAMPLES)), psd)
    with pytest.raises(ValueError, match="window"):
        mf(np.full((3, WINDOW_SAMPLES), np.nan), psd)
    with pytest.raises(ValueError, match="psd"):
        mf(np.zeros((3, WINDOW_SAMPLES)), np.ones(2049))
    with pytest.raises(ValueError, match="kind"):
        build_class_bank("noise")
    with pytest.raises(ValueError, match="inside"):
        build_class_bank("BNS", ranges=((1.0, 3.0), (1.0, 2.0)))
    with pytest.raises(ValueError, match="min_match"):
        build_class_bank("BNS", min_match=1.5)
    with pytest.raises(ValueError):
        sample_plan(-1, (8.0,), 0)
    with pytest.raises(ValueError, match="snr"):
        sample_plan(1, (float("nan"),), 0)
    np.savez(tmp_path / "junk.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="template bank"):
        TemplateBank.load(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="labels"):
        compare(None, tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="noise"):
        compare(None, {"labels": np.ones(3, int), "snr": np.full(3, 8.0), "score": np.ones(3),
                       "best_class": np.ones(3, int)})
