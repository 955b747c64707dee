"""gwviz.scan: the detection statistic over long strain, triggers, and what it refuses."""
from __future__ import annotations

from conftest import TRIGGER_TIME_TOL

import numpy as np
import pytest

from gwviz import session
from gwviz.data.noise import KNOWN_EVENTS
from gwviz.paths import BUNDLED_DATA
from gwviz.scan import cluster, main, scan
from gwviz.data.strain import read_detectors

GW190521 = [BUNDLED_DATA / "gwpy_format" / "GW190521_data" / f"{d}_data_32s.hdf5" for d in ("H1", "L1", "V1")]


@pytest.fixture(scope="module")
def around_event():
    """20 s of the bundled GW190521 strain (from 2 s after its start): windows every 0.1 s start
    12–16 s after the file's first sample, the event (16.0 s) among their merger positions."""
    strain, t0 = read_detectors([str(p) for p in GW190521])
    lo, hi = 2 * 4096, 22 * 4096
    return {d: x[lo:hi] for d, x in strain.items()}, t0 + 2.0


def test_scan_finds_gw190521_as_the_loudest_bbh(around_event):
    strain, t0 = around_event
    clf = session.default_classifier()
    res = scan(clf, strain, t0=t0, method="hirescam")
    assert res.stride == 410 / 4096  # whole samples
    assert len(res.statistic) == 40 and res.rule == "calibrated"
    assert res.threshold == pytest.approx(clf.calibration.threshold(0.01))  # the default rate, 1e-2 per window
    loudest = res.triggers[0]
    assert loudest.label == "BBH" and loudest.probabilities["BBH"] > 0.9
    assert abs(loudest.gps - KNOWN_EVENTS["GW190521"]) < TRIGGER_TIME_TOL  # merger estimated to the stride
    assert loudest.fpr is not None and loudest.fpr < 1e-3 and loudest.cam.shape == (16384,)
    assert all(t.statistic <= loudest.statistic for t in res.triggers)
    d = res.to_dict()
    assert d["triggers"][0]["label"] == "BBH" and len(d["statistic"]) == 40 and "cam" not in d["triggers"][0]


def test_clusters_split_at_gaps():
    starts = np.arange(10) * 0.1
    above = np.array([0, 1, 1, 0, 0, 0, 0, 1, 0, 1], bool)
    runs = cluster(starts, above, gap=0.15)
    assert [r.tolist() for r in runs] == [[1, 2], [7], [9]]
    assert [r.tolist() for r in cluster(starts, above, gap=1.0)] == [[1, 2, 7, 9]]
    assert cluster(starts, np.zeros(10, bool), 1.0) == []
    with pytest.raises(TypeError):  # the unused statistic argument is gone: the caller picks the loudest
        cluster(starts, np.zeros(10), above, 0.15)


def test_scan_refuses_what_classify_refuses(around_event, weights):
    strain, _ = around_event
    paper = session.load_classifier(weights)  # the paper's network: no detector mask
    with pytest.raises(ValueError, match=r"trained on H1L1V1 only and the strain has L1.*detector mask"):
        scan(paper, {"L1": strain["L1"]})
    clf = session.default_classifier()
    flat = {**strain, "V1": np.zeros_like(strain["V1"])}
    with pytest.raises(ValueError, match="detector V1 is flat"):
        scan(clf, flat)
    for stride in (0, -1, float("nan"), "0.1"):
        with pytest.raises(ValueError, match="stride must be a number of seconds"):
            scan(clf, strain, stride=stride)
    with pytest.raises(ValueError, match=r"no threshold for FPR 0\.05"):
        scan(clf, strain, rate=0.05)
    # a NaN gap merged every hit into one trigger, a negative one gave each window its own; a NaN t0
    # made every trigger's GPS NaN
    for gap in (float("nan"), -1.0, float("inf"), "1", True):
        with pytest.raises(ValueError, match="^gap must be a finite number of seconds >= 0"):
            scan(clf, strain, gap=gap)
    for t0 in (float("nan"), None, "0"):
        with pytest.raises(ValueError, match="^t0 must be the GPS time of the first sample"):
            scan(clf, strain, t0=t0)


def test_cli_needs_one_file_per_detector(tmp_path):
    l1 = BUNDLED_DATA / "GW190425" / "L1_data_32s.hdf5"
    with pytest.raises(ValueError, match=r"each of \['H1', 'L1', 'V1'\] at most once; got detectors \['L1', 'L1', 'H1'\]"):
        main([str(l1), str(GW190521[1]), str(GW190521[0]), "--out", str(tmp_path / "o"), "--no-progress"])


def test_time_slide_background_gives_the_event_a_far(around_event):
    from gwviz.scan import assign_far, time_slide_background
    strain, t0 = read_detectors([str(p) for p in GW190521])  # all 32 s
    clf = session.default_classifier()
    bg = time_slide_background(clf, strain, slide=3.0, n_slides=2)  # L1 by 3k s, V1 by 6k s
    # only the stretches between the circular joins are scanned: [6, 32) s for k = 1, [12, 32) s for k = 2
    windows = sum((int(s * 4096) - 16 * 4096) // 410 + 1 for s in (26, 20))
    assert bg["slides"] == 2 and bg["live_time_s"] == pytest.approx(windows * 410 / 4096)
    assert bg["statistics"] == sorted(bg["statistics"])
    res = scan(clf, strain, t0=t0, method=None)
    assign_far(res, bg)
    loudest = res.triggers[0]
    assert loudest.label == "BBH" and loudest.cam is None
    # nothing in the slid data is as loud as GW190521: an upper limit of one per live time
    assert loudest.far_is_upper_limit and loudest.far == pytest.approx(1 / bg["live_time_s"])
    short, _ = around_event
    for slide in (15.0, 0, float("nan"), -3.0, "3"):
        with pytest.raises(ValueError, match="leave room for one slide"):
            time_slide_background(clf, short, slide=slide)
    with pytest.raises(ValueError, match="no stretch of ≥ 16 s between the circular joins"):
        time_slide_background(clf, short, slide=3.0)  # 20 s: joins at 3 and 6 s leave 14 s
    with pytest.raises(ValueError, match=r"n_slides must be an integer in \[1, 5\]"):
        time_slide_background(clf, strain, slide=3.0, n_slides=9)


def test_cli_simulated_noise_counts_windows_against_the_calibration(tmp_path):
    rep = main(["--simulated", "40", "--stride", "0.5", "--out", str(tmp_path / "sim"), "--no-progress", "--method",
                "gradcam"])
    n = rep["n_windows"]
    assert n == 49 and rep["simulated_noise"]["seed"] == 0 and rep["detectors"] == "H1L1V1"
    assert rep["expected_on_noise"] == pytest.approx(0.01 * n) and rep["windows_above_threshold"] <= 6
    one = main(["--simulated", "40", "--stride", "0.5", "--detectors", "L1", "--out", str(tmp_path / "l1"),
                "--no-progress", "--method", "gradcam"])
    assert one["detectors"] == "L1" and one["weights"].endswith("gwviz-resnet54.safetensors") and one["n_windows"] == 49
    for bad, msg in ((["--simulated", "5"], "16 s to one day"), ([str(GW190521[0]), "--simulated", "40"], "one of them"),
                     ([], "one of them"), (["--simulated", "40", "--seed", "-1"], "--seed"),
                     ([str(GW190521[0]), "--detectors", "H1"], "--detectors goes with --simulated"),
                     (["--simulated", "40", "--detectors", "L1", "L1"], "names each detector once"),
                     (["--simulated", "40", "--duration", "64"], "--duration goes with --gwosc"),  # was ignored
                     ([str(BUNDLED_DATA)], r"a directory; give one strain file per detector")):  # "no such file"
        with pytest.raises(ValueError, match=msg):
            main([*bad, "--out", str(tmp_path / "bad")])


def test_cli_gwosc_fetches_into_the_cache_and_says_what_was_missing(tmp_path, monkeypatch):
    """GW190425: H1 was not observing. The 'fetch' copies the bundled L1 and fails for H1 and V1,
    so the scan runs on L1 with the shipped (detector-mask) weights and the report names what was not fetched."""
    monkeypatch.setenv("GWVIZ_CACHE", str(tmp_path / "cache"))

    def fake(det, start, end, path):
        if det != "L1":
            raise ValueError(f"could not fetch {det} GPS {start}-{end} from GWOSC: not observing")
        path.write_bytes((BUNDLED_DATA / "GW190425" / "L1_data_32s.hdf5").read_bytes())

    monkeypatch.setattr("gwviz.data.gwosc.fetch_to_cache", fake)
    rep = main(["--gwosc", "GW190425", "--out", str(tmp_path / "o"), "--no-progress", "--method", "gradcam"])
    assert rep["detectors"] == "L1" and rep["triggers"][0]["label"] == "BNS"
    assert set(rep["gwosc"]["not_fetched"]) == {"H1", "V1"} and rep["weights"].endswith("gwviz-resnet54.safetensors")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["L1-1240215487-32.hdf5"]
    for bad, msg in (("GW000000", "event must be one of"), ("12", "outside the LIGO/Virgo era")):
        with pytest.raises(ValueError, match=msg):
            main(["--gwosc", bad, "--out", str(tmp_path / "bad")])
    with pytest.raises(ValueError, match="duration must be"):
        main(["--gwosc", "GW190425", "--duration", "3", "--out", str(tmp_path / "bad")])


def test_gwosc_fractional_duration_is_rounded_up_to_whole_seconds(tmp_path, monkeypatch):
    """GWOSC serves whole GPS seconds: 32.5 s used to fetch 32 s (silently less than asked for); it
    fetches 33 s from the same start, and whole durations fetch what they always did."""
    from gwviz.data.gwosc import fetch_event_strain
    spans = []

    def fake(det, start, end, path):
        spans.append((det, start, end))
        path.write_bytes(b"")

    monkeypatch.setattr("gwviz.data.gwosc.fetch_to_cache", fake)
    gps = KNOWN_EVENTS["GW190521"]  # 1242442967.4
    for duration, seconds in ((32.5, 33), (32.0, 32), (np.float64(16.2), 17), (40, 40)):
        spans.clear()
        paths, failed = fetch_event_strain("GW190521", duration, ("H1",), cache_dir=tmp_path)
        start = int(np.floor(gps - duration / 2))
        assert failed == {} and spans == [("H1", start, start + seconds)]
        assert spans[0][2] - spans[0][1] >= duration and spans[0][1] <= gps - duration / 2
        assert paths == [tmp_path / f"H1-{start}-{seconds}.hdf5"]
    for bad in (15.5, 4096.5, float("nan"), float("inf"), True, "32", None):
        with pytest.raises(ValueError, match=r"duration must be a number of seconds from 16 to 4096, got"):
            fetch_event_strain("GW190521", bad, ("H1",), cache_dir=tmp_path)


def test_uploads_are_stored_by_content_in_the_cache_only(tmp_path, monkeypatch):
    from gwviz.data import strain as strain_mod
    data = GW190521[1].read_bytes()
    p = strain_mod.cache_upload(data, "../../etc/L1 data.HDF5", tmp_path)
    assert p.parent == tmp_path / "uploads" and p.suffix == ".hdf5" and p.read_bytes() == data
    assert p.stem.endswith("_L1")  # the detector the name gave; nothing else of the name survives
    assert strain_mod.cache_upload(data, "L1_again.hdf5", tmp_path) == p  # same content, same file
    assert read_detectors([str(p)])[0]["L1"].shape == (32 * 4096,)
    with pytest.raises(ValueError, match="must end in one of"):
        strain_mod.cache_upload(data, "x.npy", tmp_path)
    with pytest.raises(ValueError, match="is empty"):
        strain_mod.cache_upload(b"", "x.h5", tmp_path)
    monkeypatch.setattr(strain_mod, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(ValueError, match="limited to"):
        strain_mod.cache_upload(data, "x.h5", tmp_path)
    assert sorted(q.name for q in (tmp_path / "uploads").iterdir()) == [p.name]


def test_scan_batch_default_and_refusals(around_event):
    """The batch only changes speed: the default (4 windows on the CPU) and 32 give the same statistic."""
    strain, _ = around_event
    clf = session.default_classifier()
    a, b = scan(clf, strain, method=None), scan(clf, strain, batch=32, method=None)
    assert np.allclose(a.statistic, b.statistic, atol=1e-4)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch must be a positive integer"):
            scan(clf, strain, batch=bad)


def test_scan_memory_is_bounded_by_the_batch_not_the_strain():
    """10 minutes of 3-detector strain (59 MB in float64): the scan copies one batch's span at a time,
    never a stacked copy of the whole input (numpy allocations traced; the validation's temporaries
    of one detector at a time are the peak)."""
    import tracemalloc

    from gwviz.data.noise import SimulatedNoise
    x = SimulatedNoise().segment(600.0, np.random.default_rng(3)).strain
    strain = dict(zip(("H1", "L1", "V1"), x))
    clf = session.default_classifier()
    tracemalloc.start()
    try:
        res = scan(clf, strain, stride=8.0, method=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(res.statistic) == (600 - 16) // 8 + 1
    assert peak < 0.5 * x.nbytes, f"peak {peak / 1e6:.0f} MB for {x.nbytes / 1e6:.0f} MB of strain"


def test_broken_weights_stop_the_scan_and_the_batch_api(around_event):
    """A NaN in the weights never becomes a trigger or a probability: Classifier.logits, the one place
    batches meet the network, refuses it for the scan and for predict_windows alike."""
    import torch

    from gwviz.classifier import load_classifier
    strain, _ = around_event
    clf = load_classifier()  # a fresh copy: the session's cached classifier stays intact
    with torch.no_grad():
        clf.model.head[-1].bias[1] = float("nan")
    with pytest.raises(FloatingPointError, match=r"non-finite logits for \d+ of \d+ windows"):
        scan(clf, strain, stride=4.0, method=None)
    x = np.random.default_rng(2).standard_normal((2, 3, 16384)).astype(np.float32)
    with pytest.raises(FloatingPointError, match="non-finite logits for 2 of 2 windows"):
        clf.predict_windows(x)
