"""Attribution profiles of gwviz.explain.attribution (CPU, batch 1, cheap settings)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gwviz.constants import DETECTORS, WINDOW_SAMPLES
from gwviz.explain.attribution import explain_window, normalise, randomisation_check, randomise_weights
from gwviz.model.network import GWNet

torch.set_num_threads(2)

CHEAP_IG = dict(n_steps=2, internal_batch_size=2)
CHEAP_OCC = dict(occlusion_window=4096, occlusion_stride=4096)


@pytest.fixture(scope="module")
def model() -> GWNet:
    torch.manual_seed(0)
    return GWNet()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(len(DETECTORS), WINDOW_SAMPLES, generator=g)


def _check_profile(p: np.ndarray) -> None:
    assert isinstance(p, np.ndarray)
    assert p.shape == (WINDOW_SAMPLES,)
    assert not np.isnan(p).any()


def test_gradcam_profile(model: GWNet, x: torch.Tensor) -> None:
    model.train()
    p = explain_window(model, x, target=1)
    _check_profile(p)
    assert (p >= 0).all()
    assert model.training  # previous mode restored
    # (1, 3, T) input and a numpy array give the same map
    np.testing.assert_allclose(explain_window(model, x[None].numpy(), 1), p, rtol=1e-5, atol=1e-6)


def test_gradcam_matches_manual(model: GWNet, x: torch.Tensor) -> None:
    """Grad-CAM by hand: ReLU(sum_c mean_t(dy/dA) * A), linearly upsampled."""
    model.eval()
    acts: list[torch.Tensor] = []

    def hook(module: torch.nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        out.retain_grad()
        acts.append(out)

    h = model.cam_layer.register_forward_hook(hook)
    try:
        model(x[None])[0, 2].backward()
    finally:
        h.remove()
        model.zero_grad()
    a = acts[0]
    cam = torch.relu((a.grad.mean(dim=2, keepdim=True) * a).sum(dim=1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=WINDOW_SAMPLES, mode="linear")
    p = explain_window(model, x, target=2)
    np.testing.assert_allclose(p, cam[0, 0].detach().numpy(), rtol=1e-4, atol=1e-6)


def test_integrated_gradients_profile(model: GWNet, x: torch.Tensor) -> None:
    p0 = explain_window(model, x, 0, "integrated_gradients", **CHEAP_IG)
    _check_profile(p0)
    assert (p0 >= 0).all()  # |attr| summed, then averaged
    noise = torch.randn(1, len(DETECTORS), WINDOW_SAMPLES, generator=torch.Generator().manual_seed(2))
    p1 = explain_window(model, x, 0, "integrated_gradients", baseline=noise, **CHEAP_IG)
    _check_profile(p1)
    assert not np.allclose(p0, p1)  # the baseline is actually used


def test_occlusion_profile(model: GWNet, x: torch.Tensor) -> None:
    p = explain_window(model, x, 3, "occlusion", **CHEAP_OCC)
    _check_profile(p)
    # 4 non-overlapping windows: the profile is piecewise constant on them
    assert all(np.ptp(p[i : i + 4096]) == 0 for i in range(0, WINDOW_SAMPLES, 4096))


@pytest.mark.parametrize("target", [-1, 4, 1.0])
def test_bad_target(model: GWNet, x: torch.Tensor, target: object) -> None:
    with pytest.raises(ValueError, match="target"):
        explain_window(model, x, target)  # type: ignore[arg-type]


def test_bad_method_and_shape(model: GWNet, x: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="method"):
        explain_window(model, x, 0, "saliency")
    with pytest.raises(ValueError, match="shape"):
        explain_window(model, x[:2], 0)


def test_normalise() -> None:
    p = normalise(np.array([0.0, 1.0, 4.0, -2.0, np.nan]))
    np.testing.assert_allclose(p, [0.0, 0.25, 1.0, 0.0, 0.0])
    z = normalise(np.zeros(16))
    assert (z == 0).all() and not np.isnan(z).any()


def test_randomise_weights_leaves_original(model: GWNet) -> None:
    before = [p.clone() for p in model.parameters()]
    rand = randomise_weights(model, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    convs = [(a, b) for a, b in zip(model.parameters(), rand.parameters()) if a.ndim == 3]
    assert not any(torch.equal(a, b) for a, b in convs)


def test_randomisation_check(
    model: GWNet, x: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    rho = randomisation_check(model, x, target=1)
    assert isinstance(rho, float)
    assert -1.0 <= rho <= 1.0
    # a model compared with an exact copy of itself correlates perfectly
    monkeypatch.setattr("gwviz.explain.attribution.randomise_weights", lambda m, seed=0: m)
    p = explain_window(model, x, 1)
    expected = 1.0 if np.ptp(p) > 0 else 0.0  # a constant map is reported as 0
    assert randomisation_check(model, x, target=1) == pytest.approx(expected)


def test_hirescam_is_gradient_times_activation(model: GWNet, x: torch.Tensor) -> None:
    """HiResCAM = ReLU(Σ_channels ∂logit/∂A ⊙ A) of the last block, upsampled like Grad-CAM."""
    p = explain_window(model, x, target=2, method="hirescam")
    _check_profile(p)
    assert (p >= 0).all()
    model.eval()
    acts = {}
    h = model.cam_layer.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    inp = x[None].clone().requires_grad_(True)
    logit = model(inp)[0, 2]
    h.remove()
    a = acts["a"]
    g, = torch.autograd.grad(logit, a)
    manual = torch.relu((g * a).sum(1, keepdim=True))
    manual = torch.nn.functional.interpolate(manual, size=16384, mode="linear", align_corners=False)[0, 0]
    np.testing.assert_allclose(p, manual.detach().numpy(), rtol=1e-4, atol=1e-6)


def test_hirescam_without_captum_equals_captums_gradient_x_activation(model: GWNet, x: torch.Tensor) -> None:
    """The default map skips importing captum (0.6 s of the app's first load); it must stay what captum's
    LayerGradientXActivation gives, summed over channels, ReLU and upsampled."""
    from captum.attr import LayerAttribution, LayerGradientXActivation
    model.eval()
    ref = LayerGradientXActivation(model, model.cam_layer).attribute(x[None].clone(), target=1)
    ref = LayerAttribution.interpolate(torch.relu(ref.sum(1, keepdim=True)), (WINDOW_SAMPLES,), "linear")[0, 0]
    p = explain_window(model, x, target=1, method="hirescam")
    np.testing.assert_allclose(p, ref.detach().numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("target", [0, 2])
def test_gradcam_without_captum_equals_captums_layergradcam(model: GWNet, x: torch.Tensor, target: int) -> None:
    """Grad-CAM is computed in plain torch (no captum import on the app's first page); it must stay what
    captum's LayerGradCam (ReLU, channel weights = gradient averaged over time) gives, upsampled."""
    from captum.attr import LayerAttribution, LayerGradCam
    model.eval()
    ref = LayerGradCam(model, model.cam_layer).attribute(x[None].clone(), target=target, relu_attributions=True)
    ref = LayerAttribution.interpolate(ref, (WINDOW_SAMPLES,), "linear")[0, 0]
    p = explain_window(model, x, target=target, method="gradcam")
    scale = float(ref.detach().abs().max())
    assert scale > 0  # a non-trivial map, so the comparison means something
    np.testing.assert_allclose(p, ref.detach().numpy(), rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("kind,seed", [("BBH", 0), ("noise", 2)])
def test_one_forward_pass_gives_what_the_two_calls_give(kind: str, seed: int) -> None:
    """classify_and_explain_window (the Explore page and analyse) decides and explains from one forward
    pass: the same logits, label, FPR and rule as classify_window, the same map as explain_window, for
    the decided class and for a requested one; other methods fall back to the two calls."""
    from gwviz.classifier import load_classifier
    from gwviz.data.noise import SimulatedNoise
    from gwviz.data.synth import make_sample
    clf = load_classifier()
    window = make_sample(kind, SimulatedNoise(), seed=seed).data
    ref = clf.classify_window(window)
    for method in ("gradcam", "hirescam"):
        for target in (None, "BNS"):
            pred, cam = clf.classify_and_explain_window(window, method, target)
            assert np.array_equal(pred.logits, ref.logits) and pred.label == ref.label
            assert (pred.fpr, pred.rule_text, pred.detectors) == (ref.fpr, ref.rule_text, ref.detectors)
            assert np.array_equal(cam, clf.explain_window(window, target or ref.label, method))
    with pytest.raises(ValueError, match="target must be one of"):
        clf.classify_and_explain_window(window, "gradcam", "glitch")
    with pytest.raises(ValueError, match="window is all zeros"):
        clf.classify_and_explain_window(np.zeros((3, WINDOW_SAMPLES), np.float32), "hirescam")
    with pytest.raises(ValueError, match="a target chosen from the logits serves the CAM methods only"):
        explain_window(clf.model, window, lambda logits: 0, "occlusion")
    pred, occ = clf.classify_and_explain_window(window, "occlusion", occlusion_window=4096, occlusion_stride=4096)
    assert pred.label == ref.label and occ.shape == (WINDOW_SAMPLES,)
