"""gwviz.export (take a sample home, hear it) and its controls on the Explore page."""
from __future__ import annotations

import io
import json

import h5py
import numpy as np
import pytest

from gwviz import export, session
from gwviz.constants import SAMPLE_RATE, WINDOW_SAMPLES


@pytest.fixture(scope="module")
def result():
    return session.explore("BBH", 36.0, 29.0, 15.0, seed=3, method="hirescam", classifier=session.default_classifier())


def test_sample_hdf5_round_trip(result):
    with h5py.File(io.BytesIO(export.sample_hdf5(result))) as f:
        assert np.array_equal(f["data"][()], result.sample.data) and np.array_equal(f["raw"][()], result.raw)
        assert f["cam"].shape == (WINDOW_SAMPLES,) and f["white_signal"].shape == (3, WINDOW_SAMPLES)
        probs = dict(zip(f.attrs["classes"].split(","), f["probabilities"][()]))
        assert probs == pytest.approx(result.prediction.probabilities)
        meta = json.loads(f.attrs["meta"])
        assert meta["mass1"] == 36.0 and meta["snr_network"] == pytest.approx(15.0, rel=1e-6)
        assert f.attrs["method"] == "hirescam" and f.attrs["rule"].startswith("Rule: ")


def test_explanation_csv_columns(result):
    text = export.explanation_csv(result)
    head, *rows = text.strip().splitlines()
    assert head == f"time_s,hirescam_{result.target},whitened_H1,whitened_L1,whitened_V1" and len(rows) == WINDOW_SAMPLES
    table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1)
    assert table[1, 0] == pytest.approx(1 / SAMPLE_RATE, rel=1e-5) and np.allclose(table[:, 1], result.cam, atol=1e-5)


def test_audible_keeps_the_chirp_where_it_was(result):
    sound, rate = export.audible(result.sample.white_signal[0])
    assert rate == SAMPLE_RATE * export.SPEED_UP and sound.dtype == np.float32
    assert np.abs(sound).max() == pytest.approx(0.9, abs=1e-6)
    # zero-phase filtering: the loudest part of the clean BBH chirp stays at its merger (last 0.1 s)
    assert np.argmax(np.abs(sound)) / SAMPLE_RATE > 3.8
    for bad in (np.zeros((2, 100)), np.full(16384, np.nan), np.ones(10)):
        with pytest.raises(ValueError, match="need a finite 1-D series"):
            export.audible(bad)


def test_explore_page_plays_and_offers_downloads(monkeypatch) -> None:
    from test_app import new_app, ok
    monkeypatch.delenv("GWVIZ_DATA_DIR", raising=False)
    at = new_app()
    assert len(at.get("audio")) == 2  # noisy and clean whitened strain of the loudest detector
    assert [b.label for b in at.get("download_button")] == ["Sample (HDF5)", "Explanation (CSV)", "Figures (HTML)"]
    assert any("the map's loudest part is at" in m.value for m in at.markdown)
    ok(at.selectbox(key="kind").set_value("noise").run())
    assert len(at.get("audio")) == 1  # no clean signal to play for noise


# --- the matched filter beside the network (gwviz.baseline.snr_series) ---------------------------------

def test_matched_filter_finds_the_injection_at_its_optimal_snr(result):
    from gwviz.constants import DETECTORS
    from gwviz.baseline.snr_series import snr_series
    meta = result.sample.meta
    idx = {d: meta[f"merger_index_{d}"] for d in DETECTORS}
    t, rho = snr_series(result.sample.data, result.sample.white_signal, idx)
    assert t.shape == (WINDOW_SAMPLES,) and rho.shape == (3, WINDOW_SAMPLES)
    for i, d in enumerate(DETECTORS):
        # at the true position |ρ| is the optimal SNR give or take the noise (σ ≈ 1)
        assert abs(rho[i, idx[d]] - meta[f"snr_{d}"]) < 3.0, (d, rho[i, idx[d]], meta[f"snr_{d}"])
    loud = int(np.argmax([meta[f"snr_{d}"] for d in DETECTORS]))
    assert abs(int(np.argmax(rho[loud])) - idx[DETECTORS[loud]]) <= 8  # within 2 ms of the merger
    # far from the signal it is noise: |ρ| ~ Rayleigh(1), median ≈ 1.18
    assert 0.8 < np.median(rho[loud, :8000]) < 1.6
    with pytest.raises(ValueError, match="the template is zero in a detector"):
        snr_series(result.sample.data, np.zeros_like(result.sample.data), idx)
    with pytest.raises(ValueError, match="must be finite arrays of the same shape"):
        snr_series(result.sample.data[:2], result.sample.white_signal, idx)


def test_explore_page_shows_the_matched_filter(monkeypatch) -> None:
    from test_app import charts, new_app, ok
    monkeypatch.delenv("GWVIZ_DATA_DIR", raising=False)
    at = new_app()
    ok(at.checkbox(key="show_mf").check().run())
    spec = next(c for c in charts(at) if c["layout"]["title"]["text"].startswith("Matched filter with the injected"))
    names = [tr["name"] for tr in spec["data"]]
    assert names[1:] == ["H1 matched filter |ρ|", "L1 matched filter |ρ|", "V1 matched filter |ρ|"]
    assert names[0].startswith("HiResCAM for ")
    ok(at.selectbox(key="kind").set_value("noise").run())
    assert at.checkbox(key="show_mf").disabled and not any(
        c["layout"]["title"]["text"].startswith("Matched filter") for c in charts(at))


def test_analyse_is_classify_and_explain_of_one_whitening(monkeypatch):
    """Classifier.analyse whitens once and agrees with classify + explain on the same window."""
    from gwviz import classifier as cmod
    ev = session.load_gw190521()
    clf = session.default_classifier()
    calls = []
    real = cmod.whiten_window
    monkeypatch.setattr(cmod, "whiten_window", lambda *a, **k: calls.append(1) or real(*a, **k))
    pred, cam, window = clf.analyse(ev.strain, ev.sample_rate, ev.window_start, method="hirescam")
    assert len(calls) == 1 and window.shape == (3, WINDOW_SAMPLES) and cam.shape == (WINDOW_SAMPLES,)
    alone = clf.classify(ev.strain, ev.sample_rate, ev.window_start)
    assert pred.label == alone.label == "BBH" and pred.statistic == pytest.approx(alone.statistic)
    assert np.allclose(cam, clf.explain(ev.strain, ev.sample_rate, ev.window_start, "BBH", "hirescam"))
    with pytest.raises(ValueError, match="method must be one of"):
        clf.analyse(ev.strain, method="lime")


@pytest.mark.parametrize("n", [1000, 1001])
def test_analytic_signal_matches_scipy(n):
    from scipy.signal import hilbert
    from gwviz.baseline.snr_series import _analytic
    w = np.random.default_rng(n).standard_normal((3, n))
    assert np.allclose(_analytic(w), hilbert(w, axis=-1), atol=1e-12)


def test_audible_band_pass_keeps_the_band():
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    inside, below, above = (np.sin(2 * np.pi * f * t) for f in (100.0, 5.0, 1500.0))
    y, _ = export.audible(inside + below + above)
    core = slice(SAMPLE_RATE, 3 * SAMPLE_RATE)  # away from the fades
    assert np.corrcoef(y[core], inside[core])[0, 1] > 0.999
