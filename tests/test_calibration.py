"""The calibrated decision: a non-saturating statistic, thresholds at fixed false-positive rates,
the rule in classify() and in the evaluation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gwviz.evaluation.calibration import Calibration, detection_statistic, threshold_for
from gwviz.constants import CLASSES, DETECTORS, WINDOW_SAMPLES

pytestmark = pytest.mark.usefixtures("one_thread")


def test_statistic_is_the_log_odds_and_does_not_saturate() -> None:
    z = np.random.default_rng(0).normal(size=(50, 4)) * 3
    p = torch.softmax(torch.as_tensor(z), -1).numpy()
    np.testing.assert_allclose(detection_statistic(z), np.log((1 - p[:, 0]) / p[:, 0]), rtol=1e-9, atol=1e-9)
    loud = np.array([[-40.0, 40.0, 0.0, 0.0], [-60.0, 60.0, 0.0, 0.0]])
    p_signal = 1 - torch.softmax(torch.as_tensor(loud, dtype=torch.float32), -1)[:, 0]
    assert p_signal.eq(1).all()  # the probability saturates: both rows look the same
    s = detection_statistic(loud)
    np.testing.assert_allclose(s, [80.0, 120.0])  # λ still ranks them
    with pytest.raises(ValueError, match="not finite"):
        detection_statistic(np.array([[np.nan, 0, 0, 0]]))
    with pytest.raises(ValueError, match="4 classes"):
        detection_statistic(np.zeros((2, 3)))


@pytest.mark.parametrize("rate", [1e-2, 1e-3])
def test_threshold_gives_at_most_the_rate(rate: float) -> None:
    s = np.random.default_rng(1).standard_normal(20_000)
    t = threshold_for(s, rate)
    assert (s > t).mean() <= rate
    assert (s >= t).mean() > rate  # and it is the tightest such threshold
    with pytest.raises(ValueError, match="needs at least 1000"):
        threshold_for(s[:999], 1e-3)


def test_survival_function_and_round_trip() -> None:
    s = np.random.default_rng(2).standard_normal(10_000)
    cal = Calibration.from_noise(s, "test noise")
    assert set(cal.thresholds) == {"0.01", "0.001"}
    for rate in (1e-2, 1e-3):
        assert cal.fpr(cal.threshold(rate)) == pytest.approx(rate, rel=0.05)
    grid = np.linspace(-3, 5, 50)
    f = cal.fpr(grid)
    assert np.all(np.diff(f) <= 0) and f[0] == pytest.approx(1.0, abs=0.01)
    assert cal.fpr(1e6) == pytest.approx(1 / s.size)  # beyond the loudest: bounded by 1/N
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back == cal
    with pytest.raises(ValueError, match="no threshold for FPR 0.5"):
        cal.threshold(0.5)


@pytest.mark.parametrize("broken", [
    {},                                                        # nothing
    {"thresholds": "x", "fpr_grid": [1, 0.1], "stat_grid": [0, 1], "n_noise": 10},
    {"thresholds": {"0.01": float("nan")}, "fpr_grid": [1, 0.1], "stat_grid": [0, 1], "n_noise": 10},
    {"thresholds": {"0.01": 1.0}, "fpr_grid": [1, 0.1], "stat_grid": [1, 0], "n_noise": 10},  # not monotone
    {"thresholds": {"0.01": 1.0}, "fpr_grid": [1, 0.1, 0.01], "stat_grid": [0, 1], "n_noise": 10},
    {"thresholds": {"0.01": 1.0}, "fpr_grid": [1, 0.1], "stat_grid": [0, 1], "n_noise": "many"},
    {"thresholds": {}, "fpr_grid": [1, 0.1], "stat_grid": [0, 1], "n_noise": 10},
    ["not", "a", "dict"],
])
def test_malformed_calibration_is_a_value_error(broken) -> None:
    with pytest.raises(ValueError, match="malformed calibration"):
        Calibration.from_dict(broken)


def test_calibrated_rule_can_overrule_argmax_both_ways() -> None:
    cal = Calibration.from_noise(np.random.default_rng(3).standard_normal(5000) - 3.0)
    t = cal.threshold(1e-2)  # ≈ -0.7
    # noise is the single most probable class, but the three signal classes together are above threshold
    spread = np.array([[0.0, -0.4, -0.5, -0.5]])
    assert spread.argmax() == 0 and detection_statistic(spread)[0] > t
    assert cal.decide(spread)[0] == CLASSES.index("BBH")
    # argmax says BNS, but not above threshold -> noise
    strict = Calibration.from_noise(np.random.default_rng(3).standard_normal(5000))  # threshold ≈ 2.3
    faint = np.array([[0.0, -50.0, -50.0, 1.0]])
    assert faint.argmax() == 3 and strict.decide(faint)[0] == 0


@pytest.fixture(scope="module")
def calibrated_weights(weights, tmp_path_factory) -> str:
    from gwviz.model.checkpoint import load_weights, save_weights
    from gwviz.model.network import GWNet
    state, config, info = load_weights(weights)
    model = GWNet.from_config(config)
    model.load_state_dict(state)
    cal = Calibration.from_noise(np.random.default_rng(4).normal(size=2000) - 1.0, "synthetic")
    path = tmp_path_factory.mktemp("cal") / "cal.safetensors"
    save_weights(model, path, config, {**info, "calibration": cal.to_dict()})
    return str(path)


def test_classify_reports_rule_statistic_and_rate(calibrated_weights, weights) -> None:
    from gwviz.classifier import load_classifier
    x = np.random.default_rng(5).standard_normal((len(DETECTORS), WINDOW_SAMPLES)).astype(np.float32)
    clf = load_classifier(calibrated_weights)
    pred = clf.classify_window(x)
    assert pred.rule == "calibrated" and pred.rate == 1e-2
    assert pred.statistic == pytest.approx(float(detection_statistic(pred.logits)))
    assert 0 < pred.fpr <= 1
    assert pred.label == CLASSES[int(clf.calibration.decide(pred.logits[None], 1e-2)[0])]
    assert pred.argmax_label == CLASSES[int(np.argmax(pred.logits))]
    assert clf.classify_window(x, rate=1e-3).rate == 1e-3
    with pytest.raises(ValueError, match="no threshold for FPR 0.2"):
        clf.classify_window(x, rate=0.2)
    plain = load_classifier(weights).classify_window(x)  # no calibration in the file: argmax, said so
    assert plain.rule == "argmax" and plain.fpr is None and plain.label == plain.argmax_label


def test_nan_weights_never_give_a_label(weights) -> None:
    from gwviz.classifier import load_classifier
    clf = load_classifier(weights)
    with torch.no_grad():
        clf.model.head[-1].bias.fill_(float("nan"))
    x = np.random.default_rng(6).standard_normal((len(DETECTORS), WINDOW_SAMPLES)).astype(np.float32)
    with pytest.raises(FloatingPointError, match="non-finite logits"):
        clf.classify_window(x)


def test_evaluation_reports_both_rules() -> None:
    from gwviz.evaluation.evaluate import compute_metrics
    from gwviz.evaluation.sets import EvalSet
    rng = np.random.default_rng(7)
    n = 4000
    labels = np.arange(n) % 4
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), labels] += 2.0
    snr = np.where(labels > 0, rng.uniform(8, 24, n), 0.0)
    noise_logits = rng.normal(size=(3000, 4))
    noise_logits[:, 0] += 2.0
    noise_logits = noise_logits.astype(np.float32)  # as the network returns them
    cal = Calibration.from_noise(detection_statistic(noise_logits))
    sets = {"main": EvalSet(logits.astype(np.float32), labels, snr),
            "roc_noise": EvalSet(noise_logits.astype(np.float32), np.zeros(3000, int), np.zeros(3000))}
    m = compute_metrics(sets, cal)
    assert set(m["calibrated"]) == {"0.01", "0.001"}
    for rate, r in m["calibrated"].items():
        pred = cal.decide(logits, float(rate))
        assert r["accuracy"] == pytest.approx((pred == labels).mean())
        assert r["noise_false_positive_rate"] == pytest.approx((pred[labels == 0] != 0).mean())
        assert len(r["snr_bins"]["accuracy"]["BNS"]) == 16
        # on the calibration noise itself the rate holds
        assert m["roc_noise_fpr_at_calibrated_thresholds"][rate] <= float(rate)
    assert m["accuracy"] == pytest.approx((logits.argmax(1) == labels).mean())  # argmax rule kept
