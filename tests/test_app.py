"""The Streamlit app (app/main.py) through streamlit.testing.v1.AppTest, and gwviz.session under it.

Every page and control; bad inputs must give messages, never tracebacks. Real data from
$GWVIZ_DATA_DIR (default ../shared/data/o3 beside the repository)."""
from __future__ import annotations

from conftest import REPO, TRIGGER_TIME_TOL, o3_dir  # noqa: E402
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from test_paths import hand_made

from gwviz import session
from gwviz.constants import CLASSES, DETECTORS, SAMPLE_RATE, WINDOW_SAMPLES
from gwviz.data.noise import KNOWN_EVENTS, SimulatedNoise
from gwviz.paths import BUNDLED_DATA
from gwviz.data.synth import make_sample

torch.set_num_threads(1)
APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
DATA_DIR = str(o3_dir())
TIMEOUT = 180


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("GWVIZ_DATA_DIR", DATA_DIR)
    monkeypatch.setenv("GWVIZ_GALLERY_DIR", str(tmp_path / "gallery"))
    monkeypatch.setenv("GWVIZ_CACHE", str(tmp_path / "gwosc-cache"))
    return tmp_path


def new_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, at.exception
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def titles(at: AppTest) -> list[str]:
    return [c["layout"].get("title", {}).get("text", "") for c in charts(at)]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    return at


# --- gwviz.session ------------------------------------------------------------------------------

def test_explore_is_make_sample_plus_classifier() -> None:
    r = session.explore("BBH", 36.0, 29.0, 12.0, ra=1.0, dec=0.2, merger_offset=0.05, seed=7)
    params = session.signal_params("BBH", 36.0, 29.0, 12.0, ra=1.0, dec=0.2, merger_offset=0.05)
    ref = make_sample("BBH", SimulatedNoise(), params=params, seed=7)
    np.testing.assert_array_equal(r.sample.data, ref.data)  # the one synthesis path, same seed -> same window
    assert r.sample.data.shape == r.raw.shape == (3, WINDOW_SAMPLES) and r.cam.shape == (WINDOW_SAMPLES,)
    assert 0.0 <= r.cam.min() and r.cam.max() <= 1.0
    assert r.sample.meta["snr_network"] == pytest.approx(12.0, rel=1e-6)
    assert set(r.merger_times()) == set(DETECTORS)
    assert r.merger_times()["H1"] == pytest.approx(r.sample.meta["merger_index_H1"] / SAMPLE_RATE)
    assert r.target == r.prediction.label and sum(r.prediction.probabilities.values()) == pytest.approx(1.0)
    assert r.noise_label.startswith("SIMULATED")
    # raw = noise + injected signal: the injected part is exactly sample.signal
    assert np.abs(r.raw).max() > np.abs(r.sample.signal).max() > 0
    n = session.explore("noise", seed=7, target="BNS")
    assert n.merger_times() == {} and n.target == "BNS" and not n.sample.white_signal.any()


@pytest.mark.parametrize("args, msg", [
    (("BNS", 30.0, 1.2, 10.0), "outside the BNS range"),
    (("NSBH", 10.0, 5.0, 10.0), "outside the NSBH range"),
    (("BBH", 30.0, 20.0, 0.0), "SNR must be"),
    (("BBH", 30.0, 20.0, -3.0), "SNR must be"),
    (("XRB", 30.0, 20.0, 10.0), "unknown class"),
])
def test_explore_rejects_bad_parameters(args, msg) -> None:
    with pytest.raises(ValueError, match=msg):
        session.explore(*args)


def test_noise_sources_and_messages(monkeypatch, tmp_path) -> None:
    """gwviz.data.noise.noise_source: the one factory (dataset builder, evaluations and app)."""
    from gwviz.data.noise import NOISE_KINDS, noise_source
    assert NOISE_KINDS == ("simulated", "files", "gwosc")
    assert isinstance(noise_source("simulated"), SimulatedNoise)
    src = noise_source("files", data_dir=DATA_DIR)
    r = session.explore("BBH", 30, 25, 15, noise=src, seed=1)
    assert not r.sample.meta["simulated_noise"] and r.noise_label.startswith("REAL")
    monkeypatch.delenv("GWVIZ_DATA_DIR", raising=False)
    with pytest.raises(ValueError, match="GWVIZ_DATA_DIR"):
        noise_source("files")
    with pytest.raises(ValueError, match="does not exist"):
        noise_source("files", data_dir=tmp_path / "nope")
    with pytest.raises(ValueError, match="noise must be one of"):
        noise_source("pink")
    for bad in (float("nan"), "soon"):
        with pytest.raises(ValueError, match="finite GPS start time"):
            noise_source("gwosc", gps=bad)


def test_real_event_helpers(weights) -> None:
    ev = session.load_gw190521(DATA_DIR)
    assert ev.event_time == pytest.approx(16.0, abs=0.05)
    assert ev.window_start + 4.0 - ev.event_time == pytest.approx(session.EVENT_OFFSET)
    clf = session.default_classifier()
    pred, cam, window = session.analyse_event(clf, ev)
    assert window.shape == (3, WINDOW_SAMPLES) and cam.shape == (WINDOW_SAMPLES,) and pred.label in CLASSES
    raw, l1 = session.load_gw190425_l1(DATA_DIR)
    # the GWOSC 16-kHz frame file where the data folder has it, else the bundled 4096-Hz copy made from it
    assert raw.sample_rate in (16384, SAMPLE_RATE) and l1.sample_rate == SAMPLE_RATE and len(l1.data) == 32 * SAMPLE_RATE
    assert (raw is l1) == (raw.sample_rate == SAMPLE_RATE)
    # the shipped weights were trained with the detector mask: they take L1 alone, and are the subset classifier
    assert session.refusal_message(clf, {"L1": l1.data}) is None and session.subset_classifier(clf) is clf
    paper = session.load_classifier(weights)  # the paper's network: no detector mask
    msg = session.refusal_message(paper, {"L1": l1.data})
    assert msg is not None and "trained on H1L1V1 only and the strain has L1" in msg
    sub = session.subset_classifier(paper)  # falls back to the shipped weights
    assert sub is not None and sub is not paper and session.refusal_message(sub, {"L1": l1.data}) is None
    ev_t = KNOWN_EVENTS["GW190425"] - l1.t0
    alone = session.RealEvent("L1", {"L1": l1.data}, SAMPLE_RATE, l1.t0, ev_t, session.event_window_start(ev_t), [])
    pred, _, w = session.analyse_event(sub, alone, method="hirescam")
    assert pred.label == "BNS" and pred.detectors == "L1" and not w[0].any() and not w[2].any()
    wi = session.gw190425_what_if(l1)
    assert set(wi.strain) == set(DETECTORS) and np.array_equal(wi.strain["L1"], l1.data)
    assert session.refusal_message(clf, wi.strain) is None
    t, f, e = session.q_transform(window[0])
    assert e.shape == (len(f), len(t)) and f.min() >= 20 and np.isfinite(e).all()
    # the whole window, so a merger 0.05 s before its end is on the plot (it used to stop at 3.75 s)
    assert t.min() <= 0.01 and t.max() >= 3.98


# --- Explore page -------------------------------------------------------------------------------

def test_explore_default_page(env) -> None:
    at = new_app()
    m = metrics(at)
    assert m["Network SNR"] == "12.0" and all(f"{d} SNR" in m for d in DETECTORS)
    assert m["Model says"] in CLASSES
    rule = [c.value for c in at.caption if c.value.startswith("Rule: ")]
    calibrated = session.default_classifier().calibration is not None
    assert len(rule) == 1 and ("Rule: calibrated at a false-positive rate of 0.01 per window. Detection statistic λ = "
                               if calibrated else "Rule: argmax") in rule[0]  # the page says which rule decided
    assert titles(at)[0].startswith("Injected BBH (36.0 + 29.0 M☉), network SNR 12.0 — model:")
    assert len(charts(at)) == 2  # strain + CAM, probabilities
    spec = charts(at)[0]
    names = {tr.get("name") for tr in spec["data"]}
    # opens on HiResCAM: the method whose statistics on the shipped weights hold (docs/gradcam.md)
    assert {"whitened strain", "HiResCAM for " + m["Model says"]} <= names
    assert sum(tr.get("name") == "whitened strain" for tr in spec["data"]) == 3  # one row per detector
    dashed = [s for s in spec["layout"].get("shapes", []) if s.get("line", {}).get("dash") == "dash"]
    assert len(dashed) == 3  # merger line in each detector
    assert "SIMULATED" in texts(at.info)
    untrained = "Untrained model" in texts(at.warning)
    assert untrained == (not session.default_classifier().trained)


def test_explore_every_control(env) -> None:
    at = new_app()
    seen = set()
    for kind in CLASSES:
        ok(at.selectbox(key="kind").set_value(kind).run())
        title = titles(at)[0]
        seen.add(title)
        if kind == "noise":
            assert title.startswith("Noise only") and metrics(at)["Network SNR"] == "—"
        else:
            assert title.startswith(f"Injected {kind}")
    assert len(seen) == 4
    ok(at.selectbox(key="kind").set_value("NSBH").run())
    ok(at.number_input(key="m1_NSBH_False").set_value(20.0).run())
    ok(at.number_input(key="m2_NSBH_False").set_value(1.8).run())
    assert "Injected NSBH (20.0 + 1.8 M☉)" in titles(at)[0]
    ok(at.selectbox(key="kind").set_value("BBH").run())
    ok(at.number_input(key="m2_BBH_False").set_value(50.0).run())
    assert "masses are swapped" in texts(at.caption) and "Injected BBH (50.0 + 36.0 M☉)" in titles(at)[0]
    ok(at.slider(key="snr").set_value(20.0).run())
    assert metrics(at)["Network SNR"] == "20.0" and "network SNR 20.0" in titles(at)[0]
    before = metrics(at)["H1 SNR"]
    for key, value in (("ra", 40.0), ("dec", 60.0), ("psi", 45.0), ("iota", 80.0)):
        ok(at.slider(key=key).set_value(value).run())
    assert metrics(at)["H1 SNR"] != before  # the sky position moves SNR between detectors
    ok(at.slider(key="offset").set_value(0.5).run())
    assert "outside the training range" in texts(at.caption)
    spec = charts(at)[0]
    x = [s["x0"] for s in spec["layout"]["shapes"] if s.get("line", {}).get("dash") == "dash"]
    assert all(3.4 < v < 3.6 for v in x)  # merger 0.5 s before the window's end (± light travel time)
    ok(at.number_input(key="seed").set_value(5).run())
    ok(at.selectbox(key="target").set_value("noise").run())
    assert any(tr.get("name") == "HiResCAM for noise" for tr in charts(at)[0]["data"])
    ok(at.selectbox(key="method").set_value("gradcam").run())
    assert any(tr.get("name") == "Grad-CAM for noise" for tr in charts(at)[0]["data"])
    ok(at.selectbox(key="method").set_value("occlusion").run())
    assert any(tr.get("name") == "Occlusion for noise" for tr in charts(at)[0]["data"])
    ok(at.selectbox(key="method").set_value("gradcam").run())
    ok(at.checkbox(key="show_clean").check().run())
    signal = [tr for tr in charts(at)[0]["data"] if tr.get("name") == "injected signal (whitened)"]
    assert len(signal) == 3 and {tr["line"]["color"] for tr in signal} == {"#d62728"}  # one legend entry, one colour
    ok(at.checkbox(key="show_q").check().run())
    assert [t for t in titles(at) if "Q-transform" in t] == [f"{d} Q-transform (whitened)" for d in DETECTORS]
    ok(at.radio(key="q_input").set_value("raw window (gwpy whitens)").run())
    assert [t for t in titles(at) if "Q-transform" in t] == [f"{d} Q-transform (raw)" for d in DETECTORS]


def test_explore_bad_inputs_give_messages(env) -> None:
    at = new_app()
    ok(at.slider(key="snr").set_value(0.0).run())
    assert "SNR must be a finite number > 0" in texts(at.error) and not at.get("plotly_chart")
    ok(at.slider(key="snr").set_value(10.0).run())
    ok(at.checkbox(key="free_masses").check().run())
    ok(at.number_input(key="m1_BBH_True").set_value(150.0).run())
    assert "outside the BBH range" in texts(at.error) and "[5, 80]" in texts(at.error)
    # no advice a page user cannot follow (allow_outside is a Python argument): why the range holds instead
    assert "allow_outside" not in texts(at.error) and "The network was trained only inside these ranges" in texts(at.error)
    ok(at.selectbox(key="kind").set_value("NSBH").run())
    ok(at.number_input(key="m2_NSBH_True").set_value(3.0).run())
    assert "outside the NSBH range" in texts(at.error)
    ok(at.checkbox(key="free_masses").uncheck().run())
    assert not at.error and at.get("plotly_chart")


def test_explore_noise_sources(env, monkeypatch) -> None:
    st.cache_resource.clear()
    monkeypatch.setenv("GWVIZ_DATA_DIR", str(env / "missing"))
    at = new_app()
    assert not at.text_input  # no path is typed anywhere in the app
    ok(at.radio(key="noise_kind").set_value("files").run())
    assert "$GWVIZ_DATA_DIR does not exist on the server" in texts(at.warning)
    assert str(env) not in page_text(at)
    monkeypatch.setenv("GWVIZ_DATA_DIR", DATA_DIR)
    ok(at.run())
    assert "REAL" in texts(at.success) and metrics(at)["Network SNR"] == "12.0"
    assert DATA_DIR not in page_text(at)

    def offline(det, start, end, path):  # what gwviz.data.gwosc.fetch_to_cache raises without a network
        raise ValueError(f"could not fetch {det} GPS {start}-{end} from GWOSC: network is unreachable")

    monkeypatch.setattr("gwviz.data.gwosc.fetch_to_cache", offline)
    ok(at.radio(key="noise_kind").set_value("gwosc").run())
    assert "could not fetch H1" in texts(at.error) and "GWOSC needs internet access" in texts(at.error)
    assert not at.get("plotly_chart")
    ok(at.number_input(key="gps").set_value(1238170114.0).run())
    ok(at.button(key="retry_noise").click().run())
    assert "could not fetch" in texts(at.error)
    ok(at.radio(key="noise_kind").set_value("simulated").run())
    assert "SIMULATED" in texts(at.info)


# --- other pages --------------------------------------------------------------------------------

def test_gallery_page(env) -> None:
    at = new_app("gallery")
    assert "No gallery.h5 in $GWVIZ_GALLERY_DIR yet" in texts(at.warning)
    ok(at.number_input(key="gal_snr").set_value(20.0).run())
    ok(at.button(key="gal_make").click().run())
    assert "Wrote $GWVIZ_GALLERY_DIR/small/gallery.h5 (+ index.html, fig2.html)" in texts(at.success)
    assert (env / "gallery" / "small" / "gallery.h5").is_file() and (env / "gallery" / "small" / "index.html").is_file()
    with h5py.File(env / "gallery" / "small" / "gallery.h5") as f:
        assert json.loads(f.attrs["info"])["method"] == "hirescam"  # the app's default map; every map is offered
    assert at.selectbox(key="gal_method").options == ["Grad-CAM", "HiResCAM"]
    assert at.selectbox(key="gal_file").value == "small/gallery.h5"
    assert len(charts(at)) == 1 and titles(at)[0].startswith("noise")  # first class shown
    for kind in CLASSES:
        ok(at.radio(key="gal_kind").set_value(kind).run())
        assert titles(at)[0].startswith(kind) and f"{kind}: correctly classified" in metrics(at)
        assert kind == "noise" or "SNR 20.0" in titles(at)[0]
    ok(at.checkbox(key="gal_fig2").check().run())
    assert len(charts(at)) == 2
    bad = env / "gallery" / "bad"
    bad.mkdir()
    (bad / "gallery.h5").write_text("not hdf5")
    ok(at.run())  # the page lists the new file
    ok(at.selectbox(key="gal_file").set_value("bad/gallery.h5").run())
    assert texts(at.error).startswith("Cannot read the gallery: $GWVIZ_GALLERY_DIR/bad/gallery.h5: not an HDF5 file (")
    assert str(env) not in page_text(at)


def test_gallery_stays_in_its_root(env, tmp_path_factory) -> None:
    """Generate refuses a 'small' that is a symlink out of the root; listed files never leave it."""
    outside = tmp_path_factory.mktemp("outside")
    root = env / "gallery"
    root.mkdir()
    (root / "small").symlink_to(outside)
    hand_made(outside / "gallery.h5")
    (root / "link.h5").symlink_to(outside / "gallery.h5")
    (root / "elsewhere").symlink_to(outside)
    at = new_app("gallery")
    assert "No gallery.h5 in $GWVIZ_GALLERY_DIR yet" in texts(at.warning)  # the symlinked ones are not listed
    ok(at.button(key="gal_make").click().run())
    assert texts(at.error) == ("Could not make the gallery in $GWVIZ_GALLERY_DIR/small: 'small' leaves "
                               "$GWVIZ_GALLERY_DIR (through a symbolic link); only paths inside it are allowed")
    assert sorted(p.name for p in outside.iterdir()) == ["gallery.h5"]  # nothing written outside
    assert str(outside) not in page_text(at) and str(env) not in page_text(at)


def test_gallery_upload(env) -> None:
    at = new_app("gallery")
    good = hand_made(env / "made.h5").read_bytes()
    ok(at.file_uploader(key="gal_upload").upload("mine.h5", good).run())
    assert not at.error and len(charts(at)) == 1 and titles(at)[0].startswith("noise")
    assert "uploaded mine.h5 · weights: test · noise: None · network SNR 15.0" in texts(at.caption)
    ok(at.radio(key="gal_kind").set_value("BBH").run())
    assert titles(at)[0].startswith("BBH: m1 30.0 M☉, m2 20.0 M☉")
    ok(at.file_uploader(key="gal_upload").clear().upload("junk.h5", b"\x89HDF not really").run())
    assert texts(at.error).startswith("Cannot read the gallery: uploaded file 'junk.h5': not an HDF5 file (")
    secret = env / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["data"] = np.ones((3, WINDOW_SAMPLES), dtype=np.float32)

    def link_out(f):
        del f["samples/0001/data"]
        f["samples/0001/data"] = h5py.ExternalLink(str(secret), "/data")

    evil = hand_made(env / "evil.h5", link_out).read_bytes()
    ok(at.file_uploader(key="gal_upload").clear().upload("evil.h5", evil).run())
    assert texts(at.error) == ("Cannot read the gallery: uploaded file 'evil.h5': 'samples/0001/data' is an "
                               "external link; a gallery holds only its own datasets")
    assert not (env / "gallery").exists()  # uploads are read in memory, never stored


def test_learn_page(env) -> None:
    at = new_app("learn")
    t = titles(at)
    assert {"Raw strain in the window", "Whitened strain (what the CNN sees)",
            "ASD of the raw window vs. the O3 design curves",
            "Network antenna response over the sky at the merger time"} <= set(t)
    ok(at.slider(key="l1_snr").set_value(30.0).run())
    ok(at.selectbox(key="l1_kind").set_value("noise").run())
    assert at.slider(key="l1_snr").disabled  # no SNR without a signal
    ok(at.number_input(key="l1_seed").set_value(4).run())
    ok(at.selectbox(key="l2_kind").set_value("NSBH").run())
    ok(at.slider(key="l2_m1_NSBH").set_value(20.0).run())
    ok(at.slider(key="l2_m2_NSBH").set_value(1.9).run())
    assert "Clean projected NSBH signal (m1=20, m2=1.9 M☉)" in titles(at)
    h1 = metrics(at)["H1: SNR"]
    for key, value in (("l2_snr", 30.0), ("l2_ra", 90.0), ("l2_dec", 45.0), ("l2_psi", 30.0), ("l2_iota", 90.0)):
        ok(at.slider(key=key).set_value(value).run())
    assert metrics(at)["H1: SNR"] != h1
    ok(at.selectbox(key="l3_kind").set_value("BNS").run())
    ok(at.slider(key="l3_snr").set_value(30.0).run())
    ok(at.selectbox(key="l3_target").set_value("BNS").run())
    assert any(s.startswith("Grad-CAM for BNS on an injected BNS") for s in titles(at))
    ok(at.checkbox(key="l3_cheap").check().run())
    ok(at.button(key="l3_run").click().run())
    rho = float(metrics(at)["Randomisation check: Spearman ρ (trained vs. random weights)"])
    assert -1.0 <= rho <= 1.0
    compare = [c for c in charts(at) if c["layout"]["title"]["text"] == "Four attribution methods for BNS"]
    assert {tr["name"] for tr in compare[0]["data"]} == {"Grad-CAM", "HiResCAM", "Integrated gradients", "Occlusion"}


def test_real_events_page(env) -> None:
    at = new_app("real_events")
    m = metrics(at)
    assert m["Model says"] in CLASSES and m["Merger in window at"] == "3.95 s"
    assert any(c.value.startswith("Rule: ") for c in at.caption)
    assert any(t.startswith("GW190521, window from 12.05 s") for t in titles(at))
    assert not at.error  # the shipped weights take L1 alone (detector mask)
    assert "Classified: these weights were trained with the detector mask" in texts(at.info)
    assert m["Detector-mask weights, L1 only"] == "BNS"  # the L1-only answer
    assert any(t.startswith("GW190425, L1 alone — model: BNS") for t in titles(at))
    assert "GW190425 L1 strain, 0.5 s around the merger (raw, low-frequency dominated)" in titles(at)
    assert "GW190425 L1 Q-transform (time from the merger)" in titles(at)
    ok(at.checkbox(key="l1_q").uncheck().run())
    assert "GW190425 L1 Q-transform (time from the merger)" not in titles(at)
    ok(at.slider(key="ev_start").set_value(2.0).run())
    assert metrics(at)["Merger in window at"] == "outside"
    ok(at.selectbox(key="ev_method").set_value("occlusion").run())
    ok(at.selectbox(key="ev_target").set_value("noise").run())
    spec = next(c for c in charts(at) if c["layout"]["title"]["text"].startswith("GW190521"))
    assert any(tr.get("name") == "Occlusion for noise" for tr in spec["data"])
    ok(at.checkbox(key="whatif").check().run())
    assert "WHAT-IF ONLY" in texts(at.warning) and "What-if model answer" in metrics(at)
    assert any(t.startswith("WHAT-IF: L1 real + H1/V1 simulated") for t in titles(at))


def test_real_events_page_with_weights_without_the_detector_mask(env, weights, monkeypatch) -> None:
    """$GWVIZ_WEIGHTS trained as the paper did (no mask) refuses L1 alone; the shipped weights answer."""
    monkeypatch.setenv("GWVIZ_WEIGHTS", weights)
    at = new_app("real_events")
    assert texts(at.error).startswith("ValueError: these weights were trained on H1L1V1 only and the strain has L1")
    assert metrics(at)["Detector-mask weights, L1 only"] == "BNS"


def test_real_events_without_data_dir_use_the_bundled_events(env, monkeypatch) -> None:
    """A fresh clone with no data folder: both events come from gwviz/data/o3 and the page says so."""
    monkeypatch.delenv("GWVIZ_DATA_DIR")
    at = new_app("real_events")
    assert "Reading the example events bundled with gwviz (GWOSC open data, CC BY 4.0" in texts(at.info)
    assert not at.error
    m = metrics(at)
    assert m["Model says"] in CLASSES and m["Merger in window at"] == "3.95 s"
    assert "H1_data_32s.hdf5, L1_data_32s.hdf5, V1_data_32s.hdf5" in texts(at.success)
    assert "L1 only, L1_data_32s.hdf5 (4096 Hz, resampled from GWOSC's 16 kHz with gwpy)" in texts(at.success)
    strain = next(c for c in charts(at) if c["layout"]["title"]["text"].startswith("GW190425 L1 strain"))
    assert [tr["name"] for tr in strain["data"]] == ["L1 as read (4096 Hz)"]
    assert "Real data: start the app with `GWVIZ_DATA_DIR=/path/to/o3`" in texts(at.sidebar.caption)


def test_data_folder_is_chosen_inside_the_root(env, monkeypatch, tmp_path_factory) -> None:
    """The sidebar offers the root's subfolders (no symlinks out); a folder that went away resets it."""
    root = tmp_path_factory.mktemp("data")
    (root / "o3").symlink_to(DATA_DIR)  # a symlinked folder leading out of the root
    (root / "empty").mkdir()
    monkeypatch.setenv("GWVIZ_DATA_DIR", str(root))
    at = new_app("real_events")
    assert at.selectbox(key="data_dir").options == ["$GWVIZ_DATA_DIR", "$GWVIZ_DATA_DIR/empty"]
    assert texts(at.error) == ("Cannot read GW190521 from $GWVIZ_DATA_DIR: no file matching `*GW190521*/H1_data_32s"
                               ".hdf5` under $GWVIZ_DATA_DIR\nCannot read GW190425 L1 from $GWVIZ_DATA_DIR: no file "
                               "matching `L-L1_*1240215487*.gwf` or `*GW190425*/L1_data_32s.hdf5` under $GWVIZ_DATA_DIR")
    ok(at.selectbox(key="data_dir").set_value("empty").run())
    assert "Cannot read GW190521 from $GWVIZ_DATA_DIR/empty: no file matching" in texts(at.error)
    (root / "empty").rmdir()
    ok(at.run())  # the folder list is cached for a minute: until then the choice says it is gone
    assert "$GWVIZ_DATA_DIR/empty does not exist" in texts(at.warning)
    st.cache_data.clear()  # the minute is over
    ok(at.run())
    assert at.selectbox(key="data_dir").value == "." and "from $GWVIZ_DATA_DIR: no file" in texts(at.error)
    import shutil
    tree = tmp_path_factory.mktemp("o3")  # the layout of the project's data folder, made here
    (tree / "asd").mkdir()
    (tree / "asd" / "H1_asd.txt").write_text("10 1e-23\n")
    (tree / "gwf").mkdir()
    shutil.copytree(BUNDLED_DATA / "gwpy_format", tree / "gwpy_format")
    monkeypatch.setenv("GWVIZ_DATA_DIR", str(tree))
    at = new_app()
    assert at.selectbox(key="data_dir").options == [
        "$GWVIZ_DATA_DIR", "$GWVIZ_DATA_DIR/asd", "$GWVIZ_DATA_DIR/gwf", "$GWVIZ_DATA_DIR/gwpy_format",
        "$GWVIZ_DATA_DIR/gwpy_format/GW190521_data"]
    ok(at.radio(key="noise_kind").set_value("files").run())
    ok(at.selectbox(key="data_dir").set_value("asd").run())
    assert "no strain for ['H1', 'L1', 'V1'] among 0 files" in texts(at.warning)
    ok(at.selectbox(key="data_dir").set_value("gwpy_format").run())
    assert texts(at.success) == ("Noise: **REAL** — real O3 strain: H1_data_32s.hdf5, L1_data_32s.hdf5, "
                                 "V1_data_32s.hdf5")
    assert str(tree) not in page_text(at)


def test_bad_settings_are_messages_on_every_page(env, monkeypatch) -> None:
    monkeypatch.setenv("GWVIZ_TORCH_THREADS", "abc")
    monkeypatch.setenv("GWVIZ_WEIGHTS", str(env / "missing.safetensors"))
    threads = "$GWVIZ_TORCH_THREADS='abc' is not a whole number; use 1 to {}. Using 1 thread.".format(os.cpu_count())
    weights = "$GWVIZ_WEIGHTS does not name usable weights (ValueError: no such file). Using "
    at = new_app()
    assert threads in texts(at.error) and weights in texts(at.error)
    assert str(env) not in page_text(at)
    assert titles(at)[0].startswith("Injected BBH")  # the rest of the page works
    for page, works in (("gallery", lambda: "No gallery.h5" in texts(at.warning)),
                        ("learn", lambda: "Raw strain in the window" in titles(at)),
                        ("real_events", lambda: "Model says" in metrics(at))):
        ok(at.switch_page(f"views/{page}.py").run())
        assert threads in texts(at.error) and weights in texts(at.error), page
        assert works(), page


@pytest.mark.parametrize("raw", ["0", "-1", "99999999", " 2.5 "])
def test_bad_thread_counts_are_messages(env, monkeypatch, raw) -> None:
    monkeypatch.setenv("GWVIZ_TORCH_THREADS", raw)
    at = new_app()
    assert texts(at.error) == f"{_threads_error(raw)}. Using 1 thread."
    assert titles(at)[0].startswith("Injected BBH")


@pytest.mark.parametrize("raw, want", [("abc", 1), ("0", 1), ("1", 1), ("", 1)])
def test_thread_setting_applies_in_the_calling_thread(monkeypatch, raw, want) -> None:
    # torch's intra-op thread count belongs to the calling thread (OpenMP), and AppTest runs the page
    # in a thread of its own: check the setter where it runs, on every rerun, in this thread.
    import sys
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "app"))
    from gwapp.common import apply_torch_threads
    before = torch.get_num_threads()
    monkeypatch.setenv("GWVIZ_TORCH_THREADS", raw)
    torch.set_num_threads(2)
    try:
        err = apply_torch_threads()
        assert torch.get_num_threads() == want
        assert (err is None) == (raw in ("1", "")), err
    finally:
        torch.set_num_threads(before)
        sys.modules.pop("gwapp.common", None)


def _threads_error(raw: str) -> str:
    with pytest.raises(ValueError) as err:
        session.torch_threads(raw)
    return str(err.value)


def page_text(at: AppTest) -> str:
    """Everything a visitor reads on the page (to check that no server path shows)."""
    parts = [at.markdown, at.caption, at.error, at.warning, at.info, at.success, at.exception, at.title]
    return "\n".join(texts(p) for p in parts) + "\n".join(str(o) for sb in at.selectbox for o in sb.options)


def test_bundled_events_are_the_gwosc_data(monkeypatch) -> None:
    """The copies in gwviz/data/o3 are the GWOSC data: GW190521 byte for byte, GW190425 L1 equal to
    the 16-kHz frame file resampled by the same code path; and they load with no data folder set."""
    import hashlib
    from gwviz.paths import BUNDLED_DATA
    monkeypatch.delenv("GWVIZ_DATA_DIR", raising=False)
    ev = session.load_gw190521()
    assert all(p.startswith(str(BUNDLED_DATA)) for p in ev.files)
    for p in ev.files:
        rel = Path(p).relative_to(BUNDLED_DATA)
        assert hashlib.sha256(Path(p).read_bytes()).digest() == hashlib.sha256((Path(DATA_DIR) / rel).read_bytes()).digest()
    raw, l1 = session.load_gw190425_l1()
    assert raw is l1 and raw.path.startswith(str(BUNDLED_DATA)) and raw.sample_rate == SAMPLE_RATE
    _, from_gwf = session.load_gw190425_l1(DATA_DIR)
    assert l1.t0 == from_gwf.t0 and np.array_equal(l1.data, from_gwf.data)


def test_where_it_looks_page(env) -> None:
    """The CAM statistics of the shipped weights, per method, and a live sample on request."""
    at = new_app("camstats")
    assert at.radio(key="cs_method").value == "hirescam"
    assert texts(at.success).startswith("HOLDS: median CAM centroid − merger BBH")  # docs/camstats, shipped weights
    table = at.dataframe[0].value
    shown = json.loads((REPO / "docs" / "camstats" / "camstats-hirescam.json").read_text())["stats"]["true"]
    bbh_peak = table["peak − merger [s]"].iloc[1]
    assert list(table["class"]) == list(CLASSES) and bbh_peak == pytest.approx(shown["BBH"]["peak_offset"]["median"], abs=1e-3)
    assert abs(bbh_peak) <= 0.1  # the claim the page reports: BBH attention at the merger
    ok(at.radio(key="cs_method").set_value("gradcam").run())
    assert texts(at.error).startswith("DOES NOT HOLD")
    ok(at.number_input(key="cs_n").set_value(1).run())
    ok(at.button(key="cs_go").click().run())
    live = [s for s in texts(at.success).splitlines() + texts(at.warning).splitlines() if s.startswith("1 per class")]
    assert len(live) == 1 and "Grad-CAM" in live[0] and len(charts(at)) >= 5


# --- Scan page ----------------------------------------------------------------------------------

def test_scan_page_bundled_events_subsets_and_simulated_noise(env) -> None:
    at = new_app("scan")
    m = metrics(at)
    assert (m["Windows"], m["Triggers"], m["Detectors"], m["Loudest"]) == ("160", "1", "H1L1V1", "BBH")
    assert "weights: trained with the detector mask (any subset of H1, L1, V1)" in texts(at.caption)
    assert any(t.startswith("Detection statistic every") for t in titles(at))
    first = [t for t in titles(at) if t.startswith("Trigger #1: BBH at ")]
    assert first and abs(float(first[0].split(" at ")[1].split(" s")[0]) - 16.0) < TRIGGER_TIME_TOL  # the event
    # two detectors: the detector-mask network and its threshold for that pair
    ok(at.multiselect(key="sc_dets_H1L1V1").set_value(["H1", "L1"]).run())
    assert metrics(at)["Detectors"] == "H1L1" and "weights: trained with the detector mask" in texts(at.caption)
    ok(at.radio(key="sc_source").set_value("GW190425 (bundled: L1 only)").run())
    m = metrics(at)
    assert (m["Detectors"], m["Loudest"]) == ("L1", "BNS")
    assert len(at.selectbox(key="sc_pick").options) == int(m["Triggers"]) >= 2
    ok(at.selectbox(key="sc_pick").set_value(1).run())
    assert any(t.startswith("Trigger #2: ") for t in titles(at))
    ok(at.radio(key="sc_source").set_value("Simulated O3 noise").run())
    assert metrics(at)["Detectors"] == "H1L1V1"  # the detector choice follows the source
    assert "on pure noise the calibration expects" in texts(at.caption)
    assert "SIMULATED Gaussian O3 noise (seed 0)" in texts(at.caption)


def test_scan_page_gwosc_offline_and_online(env, monkeypatch) -> None:
    """Offline: one clear message. 'Online' (fetch_to_cache writing the bundled GW190521 files): the
    fetched strain is scanned, and the files land in $GWVIZ_CACHE only."""
    from gwviz.paths import BUNDLED_DATA

    def offline(det, start, end, path):
        raise ValueError(f"could not fetch {det} GPS {start}-{end} from GWOSC: no network")

    monkeypatch.setattr("gwviz.data.gwosc.fetch_to_cache", offline)
    at = new_app("scan")
    ok(at.radio(key="sc_source").set_value("GWOSC event (online)").run())
    ok(at.button(key="sc_fetch").click().run())
    assert texts(at.error).startswith("Could not fetch: no detector could be fetched for GPS 1242442951+32 s")

    def online(det, start, end, path):
        path.write_bytes((BUNDLED_DATA / "gwpy_format" / "GW190521_data" / f"{det}_data_32s.hdf5").read_bytes())

    monkeypatch.setattr("gwviz.data.gwosc.fetch_to_cache", online)
    at = new_app("scan")
    ok(at.radio(key="sc_source").set_value("GWOSC event (online)").run())
    ok(at.selectbox(key="sc_event").set_value("GW190412").run())  # another event: not the cached failure
    ok(at.button(key="sc_fetch").click().run())
    assert metrics(at)["Windows"] == "160" and "GW190412 from GWOSC (REAL strain)" in texts(at.caption)
    assert sorted(p.name for p in (env / "gwosc-cache").iterdir()) == [
        f"{d}-1239082246-32.hdf5" for d in DETECTORS]


# --- Guided tour --------------------------------------------------------------------------------

def test_tour_plays_through_with_one_control_per_step_and_lives_in_the_url(env) -> None:
    at = new_app("tour")
    assert dict(at.query_params) == {"step": "1", "kind": "BBH", "snr": "12"}
    assert "H1: raw strain of the 4-s window" in titles(at)
    ok(at.radio(key="tour_det").set_value("V1").run())
    assert "V1: raw strain of the 4-s window" in titles(at)
    seen = []
    for step in range(1, 8):
        assert at.get("progress")[0].proto.text.startswith(f"Step {step} of 7")
        seen.append(titles(at))
        if step == 3:
            ok(at.radio(key="tour_kind").set_value("BNS").run())
            assert at.query_params["kind"] == "BNS"
            assert any(t.startswith("BNS in whitened noise") for t in titles(at))
        if step == 4:
            ok(at.select_slider(key="tour_snr").set_value(20.0).run())
            assert metrics(at)["Network SNR"] == "20.0"
        if step == 5:
            ok(at.radio(key="tour_rate").set_value(0.001).run())
            assert "false-positive rate of 0.001 per window" in texts(at.caption)
        if step == 6:
            ok(at.radio(key="tour_method").set_value("gradcam").run())
            assert "Grad-CAM for BNS" in titles(at)
        if step == 7:
            ok(at.button(key="tour_random").click().run())
            assert -1.0 <= float(metrics(at)["Spearman ρ (trained vs. random weights, Grad-CAM)"]) <= 1.0
            assert "tour_next" not in [b.key for b in at.button]  # the last step
            break
        ok(at.button(key="tour_next").click().run())
    assert "Whitened strain (unit variance)" in seen[1] and "HiResCAM for BNS" in seen[5]
    ok(at.button(key="tour_back").click().run())
    assert at.get("progress")[0].proto.text.startswith("Step 6 of 7")


def test_tour_opens_a_linked_step_and_ignores_bad_links(env) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"step": "4", "kind": "NSBH", "snr": "8"})
    ok(at.run())
    ok(at.switch_page("views/tour.py").run())
    assert at.get("progress")[0].proto.text.startswith("Step 4 of 7")
    assert metrics(at)["Network SNR"] == "8.0" and "NSBH 10 + 1.4 M☉" in texts(at.info)
    bad = AppTest.from_file(APP, default_timeout=TIMEOUT)
    bad.query_params.update({"step": "99", "kind": "<script>", "snr": "nan"})
    ok(bad.run())
    ok(bad.switch_page("views/tour.py").run())
    assert bad.get("progress")[0].proto.text.startswith("Step 1 of 7") and "BBH 36 + 29 M☉" in texts(bad.info)
