"""Any detector subset: the detector-mask network, training data with detectors dropped, per-subset
calibration, and classify/scan on one or two detectors (GW190425 was seen by L1 and V1 only)."""
from __future__ import annotations

from conftest import TRIGGER_TIME_TOL

import numpy as np
import pytest
import torch

from gwviz.data.bank import WaveformBank

from gwviz.data.batch import BatchMaker, subset_probabilities
from gwviz.model.checkpoint import check_model_config
from gwviz.classifier import load_classifier
from gwviz.constants import DETECTORS, SUBSETS, subset_detectors, subset_name
from gwviz.model.network import GWNet, add_detector_mask
from gwviz.data.noise import KNOWN_EVENTS, SimulatedNoise
from gwviz.paths import BUNDLED_DATA
from gwviz.scan import main as scan_main
from gwviz.scan import scan, time_slide_background
from gwviz.data.strain import read_detectors
from gwviz.data.synth import Injection, synthesize

GW190425_L1 = BUNDLED_DATA / "GW190425" / "L1_data_32s.hdf5"
GW190521 = [BUNDLED_DATA / "gwpy_format" / "GW190521_data" / f"{d}_data_32s.hdf5" for d in DETECTORS]


@pytest.fixture(scope="module")
def subset_clf():
    """The shipped weights: trained with the detector mask, so they take every subset."""
    return load_classifier()


def test_subset_names_round_trip_and_refuse_unknowns():
    assert SUBSETS[0] == "H1L1V1" and len(SUBSETS) == 7
    for s in SUBSETS:
        assert subset_name(subset_detectors(s)) == s
    assert subset_name({"V1", "L1"}) == "L1V1"
    for bad in ("", "K1", "L1H1", None):
        with pytest.raises(ValueError, match="subset must be one of"):
            subset_detectors(bad)
    with pytest.raises(ValueError, match="non-empty subset"):
        subset_name(())
    p = subset_probabilities(0.3)
    assert p.sum().item() == pytest.approx(1.0) and p[0].item() == pytest.approx(0.7)
    assert p[1:4].sum().item() == pytest.approx(0.2) and p[4:].sum().item() == pytest.approx(0.1)
    with pytest.raises(ValueError, match="detector_dropout"):
        subset_probabilities(1.5)


def test_mask_network_starts_as_the_paper_network_and_sees_absent_channels():
    torch.manual_seed(0)
    paper = GWNet(width=4, hidden=8).eval()
    masked = GWNet(width=4, hidden=8, detector_mask=1).eval()
    masked.load_state_dict(add_detector_mask(paper.state_dict()))
    x = torch.randn(2, 3, 16384)
    with torch.no_grad():
        assert torch.equal(paper(x), masked(x))  # zero weights for the absent channels: same function
    seen = {}
    masked.resnet.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    x[1, 2] = 0  # V1 absent in the second window
    with torch.no_grad():
        masked(x)
    first = seen["x"]
    assert first.shape == (2, 6, 16384)
    assert torch.equal(first[0, 3:], torch.zeros(3, 16384))  # nothing absent
    assert torch.equal(first[1, 5], torch.ones(16384)) and torch.equal(first[1, 2], torch.zeros(16384))
    with pytest.raises(ValueError, match="input channels"):
        add_detector_mask(masked.state_dict())
    with pytest.raises(ValueError, match="detector_mask must be 0 or 1"):
        GWNet(detector_mask=2)
    for bad in (2, True, "1"):
        with pytest.raises(ValueError, match="detector_mask must be 0 or 1"):
            check_model_config({"width": 8, "hidden": 64, "detector_mask": bad}, "w.safetensors")
    # an older file without the key: its first convolution says which network it is
    shapes = {"resnet.blocks.0.conv1.weight": (8, 6, 3)}
    assert check_model_config({"width": 8, "hidden": 64}, "w", shapes)["detector_mask"] == 1


def test_synthesis_scales_the_snr_over_the_detectors_present():
    noise = torch.as_tensor(SimulatedNoise().segment(16.0, np.random.default_rng(0)).strain[None] * 1e21)
    bank = WaveformBank.build(1, seed=3, workers=1, progress=False)
    hp, hc = bank.hp["BBH"].double(), bank.hc["BBH"].double()
    one = lambda *v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    present = torch.tensor([[False, True, True]])
    out = synthesize(noise, 4096, Injection(hp=hp, hc=hc, peak_index=bank.peak_index, fp=one(0.3, -0.5, 0.7),
                                            fc=one(0.6, 0.2, -0.4), delays=one(0.0, 0.005, -0.01),
                                            merger_offset=torch.tensor([0.05], dtype=torch.float64),
                                            snr=torch.tensor([12.0], dtype=torch.float64)), present=present)
    assert out.snr[0, 0] == 0 and out.snr[0, 1:].square().sum().sqrt().item() == pytest.approx(12.0, rel=1e-6)
    assert torch.equal(out.data[0, 0], torch.zeros(16384)) and out.data[0, 1:].std(-1).min() > 0.5
    assert torch.equal(out.white_signal[0, 0], torch.zeros(16384))
    with pytest.raises(ValueError, match="present must be"):
        synthesize(noise, present=torch.ones(1, 2, dtype=torch.bool))


def test_batchmaker_draws_subsets_per_sample_and_one_subset_on_request():
    bank = WaveformBank.build(2, seed=5, workers=1, progress=False)
    g = torch.Generator().manual_seed(0)
    x, y, snr = BatchMaker(bank, subset="H1V1")(6, g)
    assert torch.equal((x != 0).any(-1), torch.tensor([[True, False, True]] * 6))
    x, _, _ = BatchMaker(bank, detector_dropout=0.9)(24, g)
    kinds = {tuple(r) for r in (x != 0).any(-1).tolist()}
    assert len(kinds) >= 3 and all(any(k) for k in kinds)  # several networks, never none
    x, _, _ = BatchMaker(bank)(4, g)
    assert bool((x != 0).any(-1).all())
    with pytest.raises(ValueError, match="not both"):
        BatchMaker(bank, detector_dropout=0.3, subset="H1L1")
    with pytest.raises(ValueError, match="subset must be one of"):
        BatchMaker(bank, subset="H1K1")


def test_paper_weights_refuse_a_missing_detector_and_subset_weights_take_it(subset_clf, weights):
    paper = load_classifier(weights)  # the paper's network (no detector mask; random: the refusal is the architecture's)
    seg = SimulatedNoise().segment(16.0, np.random.default_rng(1)).strain
    l1v1 = {"L1": seg[1], "V1": seg[2]}
    with pytest.raises(ValueError, match="trained on H1L1V1 only and the strain has L1V1"):
        paper.classify(l1v1)
    window = np.random.default_rng(0).standard_normal((3, 16384)).astype(np.float32)
    window[0] = 0
    with pytest.raises(ValueError, match="has L1V1"):
        paper.classify_window(window)
    with pytest.raises(ValueError, match="has L1V1"):
        paper.predict_windows(window[None])
    with pytest.raises(ValueError, match="all zeros"):
        subset_clf.classify_window(np.zeros((3, 16384), np.float32))
    assert paper.subsets == ("H1L1V1",) and subset_clf.subsets == SUBSETS
    pred = subset_clf.classify(l1v1)
    cal = subset_clf.calibration_for("L1V1")
    assert pred.detectors == "L1V1" and pred.rule == "calibrated"
    assert pred.fpr == pytest.approx(float(cal.fpr(pred.statistic)))
    assert cal.thresholds != subset_clf.calibration.thresholds  # each network has its own threshold
    full = subset_clf.classify(dict(zip(DETECTORS, seg)))
    assert full.detectors == "H1L1V1"
    for s in SUBSETS:
        assert subset_clf.calibration_for(s) is not None
    with pytest.raises(ValueError, match="trained for H1L1V1 only, not H1"):
        paper.calibration_for("H1")


def test_scan_of_gw190425_in_l1_alone_finds_it_as_the_loudest_bns(subset_clf):
    strain, t0 = read_detectors([str(GW190425_L1)])
    res = scan(subset_clf, strain, t0=t0, method=None)
    assert res.detectors == "L1" and res.rule == "calibrated"
    loudest = res.triggers[0]
    assert loudest.label == "BNS" and abs(loudest.gps - KNOWN_EVENTS["GW190425"]) < TRIGGER_TIME_TOL
    with pytest.raises(ValueError, match="two or more detectors"):
        time_slide_background(subset_clf, strain)


def test_scan_cli_takes_a_detector_subset_and_refuses_duplicates(tmp_path):
    rep = scan_main([str(GW190521[0]), str(GW190521[1]), "--out", str(tmp_path / "hl"), "--no-progress",
                     "--slides", "2", "--slide", "4"])
    assert rep["detectors"] == "H1L1" and rep["weights"].endswith("gwviz-resnet54.safetensors")
    assert rep["triggers"][0]["label"] == "BBH" and abs(rep["triggers"][0]["gps"] - KNOWN_EVENTS["GW190521"]) < TRIGGER_TIME_TOL
    assert rep["background"]["slides"] == 2
    with pytest.raises(ValueError, match="each of .* at most once"):
        scan_main([str(GW190521[0]), str(GW190521[0]), "--out", str(tmp_path / "dup")])
    with pytest.raises(ValueError, match="at most 3 files"):
        scan_main([str(p) for p in GW190521] + [str(GW190425_L1), "--out", str(tmp_path / "four")])


def test_integrated_gradients_keeps_an_absent_detector_absent(subset_clf, monkeypatch):
    """IG walks from a baseline to the window: the baseline's channel of an absent detector is zero
    too, so the network never sees that detector appear half-way."""
    import gwviz.explain.attribution as explain
    seen = {}
    real = explain.explain_window

    def spy(model, window, target, method="gradcam", **kw):
        seen["baseline"] = kw.get("baseline")
        return real(model, window, target, method=method, n_steps=4, **{k: v for k, v in kw.items() if k != "n_steps"})

    monkeypatch.setattr(explain, "explain_window", spy)
    w = np.random.default_rng(0).standard_normal((3, 16384)).astype(np.float32)
    w[2] = 0  # V1 absent
    cam = subset_clf.explain_window(w, "BBH", "integrated_gradients")
    assert cam.shape == (16384,) and np.isfinite(cam).all()
    assert not seen["baseline"][2].any() and seen["baseline"][:2].std() > 0.5
