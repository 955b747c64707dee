"""gwviz.explain.gallery and gwviz.explain.camstats: files written and read back, CAM timing measures on known
profiles, tiny CLI runs (a narrow random-weight GWNet; no trained model is needed for the plumbing)."""
from __future__ import annotations

from conftest import o3_dir  # noqa: E402
import json

import h5py
import lal
import lalsimulation as lalsim
import numpy as np
import pytest

from gwviz.explain.camstats import cam_measures, claim, newtonian_chirp_time
from gwviz.explain.camstats import main as camstats_main
from gwviz.constants import CLASSES, DETECTORS, SAMPLE_RATE, WINDOW_SAMPLES
from gwviz.explain.gallery import load_gallery
from gwviz.explain.gallery import main as gallery_main
from gwviz.data.params import chirp_mass

DATA_DIR = str(o3_dir())


pytestmark = pytest.mark.usefixtures("one_thread")


def test_gallery_real_noise_roundtrip(weights: str, tmp_path) -> None:
    out = tmp_path / "gal"
    made = gallery_main(["--weights", weights, "--n", "1", "--snr", "15", "--seed", "4", "--noise", "files",
                         "--data-dir", DATA_DIR, "--out", str(out), "--no-progress"])
    for f in ("gallery.h5", "index.html", "fig2.html", "plotly.min.js"):
        assert (out / f).stat().st_size > 0
    g = load_gallery(out / "gallery.h5")
    assert [s.kind for s in g.samples] == list(CLASSES)
    assert g.attrs["snr"] == 15.0 and g.attrs["noise"] == "files" and "real O3 strain" in g.attrs["noise_source"]
    lo, hi = g.attrs["window_gps_range"]
    for s, m in zip(g.samples, made.samples):
        assert s.data.shape == s.white_signal.shape == (len(DETECTORS), WINDOW_SAMPLES)
        assert s.cam.shape == s.cam_true.shape == (WINDOW_SAMPLES,)
        assert (s.cam >= 0).all() and (s.cam_true >= 0).all()
        assert sum(s.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert s.predicted == max(s.probabilities, key=s.probabilities.get)
        np.testing.assert_array_equal(s.data, m.data)
        assert s.meta["simulated_noise"] is False
        assert lo <= s.meta["gps_window_start"] and s.meta["gps_window_start"] + 4 <= hi + 1e-6
        if s.kind == "noise":
            assert s.merger_index is None and not s.white_signal.any()
        else:
            assert set(s.merger_index) == set(DETECTORS) and s.white_signal.any()
            assert s.meta["snr_network"] == pytest.approx(15.0, rel=1e-4)
            assert f"m1 {s.meta['mass1']:.1f} M☉" in s.title()
    # one figure per sample in the page, the merger drawn dashed
    page = (out / "index.html").read_text()
    assert page.count('class="plotly-graph-div"') == len(CLASSES) and '"dash":"dash"' in page
    assert '<script src="plotly.min.js">' in page


def test_load_gallery_rejects_foreign_files(tmp_path) -> None:
    with pytest.raises(ValueError, match="no such"):
        load_gallery(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(ValueError, match="not a gwviz gallery"):
        load_gallery(tmp_path / "other.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not an HDF5"):
        load_gallery(tmp_path / "text.h5")


def test_cam_measures_known_profiles() -> None:
    t = WINDOW_SAMPLES
    merger = t - 200
    spike = np.zeros(t)
    spike[merger - 4096] = 1.0  # 1 s before the merger
    m = cam_measures(spike, merger)
    assert m["peak_offset"] == pytest.approx(-1.0) and m["centroid_offset"] == pytest.approx(-1.0)
    assert m["max_over_mean"] == pytest.approx(t) and m["entropy"] == pytest.approx(0.0)
    flat = cam_measures(np.ones(t), merger)
    assert flat["max_over_mean"] == pytest.approx(1.0) and flat["entropy"] == pytest.approx(1.0)
    assert flat["centroid_offset"] == pytest.approx((t - 1) / 2 / SAMPLE_RATE - merger / SAMPLE_RATE)
    zero = cam_measures(np.zeros(t), merger)
    assert zero["zero"] == 1.0 and np.isnan(zero["peak_offset"]) and np.isnan(zero["entropy"])
    assert np.isnan(cam_measures(np.ones(t), None)["peak_offset"])  # noise: no merger


def test_newtonian_chirp_time() -> None:
    # 1.4 + 1.4 M☉ from 20 Hz: ~158 s at leading order; LAL's bound (higher PN orders, spins) is above
    tau = newtonian_chirp_time(chirp_mass(1.4, 1.4))
    assert tau == pytest.approx(157.9, rel=2e-3)
    for m1, m2 in ((1.4, 1.4), (10.0, 1.4), (30.0, 30.0)):
        bound = lalsim.SimInspiralChirpTimeBound(20.0, m1 * lal.MSUN_SI, m2 * lal.MSUN_SI, 0.0, 0.0)
        assert 0.7 * bound < newtonian_chirp_time(chirp_mass(m1, m2)) <= bound
    assert newtonian_chirp_time(2.0) / newtonian_chirp_time(1.0) == pytest.approx(2 ** (-5 / 3))


def _per(bbh: float, nsbh: float, bns: float, noise_entropy: float) -> dict:
    s = lambda v: {"median": v}  # noqa: E731
    per = {k: {"centroid_offset": s(c), "peak_offset": s(c), "entropy": s(0.8)}
           for k, c in (("BBH", bbh), ("NSBH", nsbh), ("BNS", bns))}
    per["noise"] = {"centroid_offset": s(None), "peak_offset": s(None), "entropy": s(noise_entropy)}
    return per


def test_claim_ordering() -> None:
    ok = claim(_per(-0.02, -0.5, -1.5, 0.99))
    assert ok["holds"] and ok["statement"].startswith("HOLDS")
    bad = claim(_per(-0.02, -1.5, -0.5, 0.99))
    assert not bad["holds"] and not bad["ordering_bbh_nsbh_bns"] and bad["bbh_at_merger"]
    assert not claim(_per(-0.02, -0.5, -1.5, 0.5))["noise_flattest"]
    assert not claim(_per(-0.9, -1.0, -1.5, 0.99))["bbh_at_merger"]


def test_camstats_cli_tiny(weights: str, tmp_path) -> None:
    out = tmp_path / "cs"
    r = camstats_main(["--weights", weights, "--n", "2", "--snr", "15", "--seed", "2", "--n-random", "1",
                       "--out", str(out), "--no-progress"])
    j = json.loads((out / "camstats.json").read_text())
    assert j["statement"] == r["statement"] and j["statement"].split(":")[0] in ("HOLDS", "DOES NOT HOLD")
    for tgt in ("pred", "true"):
        for kind in CLASSES:
            e = j["stats"][tgt][kind]
            assert e["entropy"]["n"] + round(e["zero_cam_fraction"] * 2) == 2
            if kind != "noise":
                assert e["chirp_mass"]["n"] == 2 and e["tau0"]["median"] > 0
        assert isinstance(j["stats"][tgt]["claim"]["holds"], bool)
    rc = j["randomisation_check"]
    assert rc["n"] == 1 and -1.0 <= rc["mean_spearman_rho"] <= 1.0
    with np.load(out / "camstats.npz") as z:
        assert z["cam_pred"].shape == (8, 512) and z["kind"].tolist() == [k for k in CLASSES for _ in range(2)]
        sig = z["label"] > 0
        off = z["centroid_offset_true"][sig]
        assert np.all(off[np.isfinite(off)] <= 0.1 + 1e-9) and np.all(off[np.isfinite(off)] >= -4.0)
    assert (out / "camstats.html").stat().st_size > 0
