"""The shipped weights (models/): they load by default, classify loud signals right, and their
Grad-CAM looks at the merger of a loud BBH (paper Fig. 2)."""
from __future__ import annotations

import numpy as np
import pytest

import gwviz
from gwviz.constants import SAMPLE_RATE
from gwviz.data.noise import SimulatedNoise
from gwviz.data.params import draw_params
from gwviz.data.synth import make_sample


@pytest.fixture(scope="module")
def clf():
    c = gwviz.load_classifier()
    assert c.trained and c.info.get("device", "").startswith("NVIDIA")
    return c


@pytest.mark.parametrize("kind", ["BBH", "NSBH", "BNS"])
def test_loud_signals_are_classified(clf, kind):
    rng = np.random.default_rng(100)
    for _ in range(3):
        p = draw_params(kind, rng)
        p.snr = 30.0
        s = make_sample(kind, SimulatedNoise(), params=p, rng=rng)
        pred = clf.classify_window(s.data)
        assert pred.label == kind, (p, pred.probabilities)
        assert sum(pred.probabilities.values()) == pytest.approx(1.0)


def test_cam_peaks_at_loud_bbh_merger(clf):
    """On loud BBHs the map of the last block peaks at the merger (within 0.25 s).

    HiResCAM (gradient x activation) shows it directly. Grad-CAM's strongest bin is there too,
    but with a negative sign: it weights each channel by its gradient averaged over all 512
    bins, and the fully connected head gives the merger bins the opposite sign, so the ReLU of
    the paper's recipe can erase the merger (docs/gradcam.md)."""
    import torch
    from captum.attr import LayerGradCam
    rng = np.random.default_rng(7)
    for _ in range(3):
        p = draw_params("BBH", rng)
        p.snr = 25.0
        s = make_sample("BBH", SimulatedNoise(), params=p, rng=rng)
        merger = s.meta["merger_index"]
        hires = clf.explain_window(s.data, target="BBH", method="hirescam")
        assert hires.shape == (16384,) and np.isfinite(hires).all() and (hires >= 0).all()
        assert abs(int(np.argmax(hires)) - merger) / SAMPLE_RATE <= 0.25
        gc = clf.explain_window(s.data, target="BBH", method="gradcam")
        assert gc.shape == (16384,) and (gc >= 0).all()
        signed = LayerGradCam(clf.model, clf.model.cam_layer).attribute(
            torch.as_tensor(s.data)[None], target=1, relu_attributions=False)[0, 0].detach().numpy()
        assert abs(int(np.argmax(np.abs(signed))) * 32 + 16 - merger) / SAMPLE_RATE <= 0.25


def test_classify_raw_strain_api(clf):
    """The public API on raw strain: 16 s in, window = the 4 s ending 2 s before the end."""
    from gwviz.data.noise import SimulatedNoise
    seg = SimulatedNoise().segment(16.0, np.random.default_rng(3))
    strain = dict(zip(("H1", "L1", "V1"), seg.strain))
    pred = clf.classify(strain, sample_rate=4096)
    assert set(pred.probabilities) == {"noise", "BBH", "NSBH", "BNS"}
    assert pred.window_start == pytest.approx(10.0)
    cam = clf.explain(strain, target="BNS")
    assert cam.shape == (16384,)
    with pytest.raises(ValueError, match="method"):
        clf.explain(strain, method="saliency-magic")
    with pytest.raises(ValueError, match="target"):
        clf.explain(strain, target="glitch")


def test_cpu_forward_in_small_passes_gives_the_same_logits(clf):
    """Classifier.logits splits the CPU forward into CPU_FORWARD_BATCH windows a pass (speed: far fewer
    page faults); BatchNorm is in eval mode, so every window's scores must be what one pass gives."""
    import torch

    from gwviz.classifier import CPU_FORWARD_BATCH

    x = torch.randn(2 * CPU_FORWARD_BATCH + 3, 3, 16384, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        whole = clf.model(x).float()
    split = clf.logits(x)
    assert split.shape == (len(x), 4) and split.dtype == torch.float32
    assert torch.allclose(split, whole, atol=1e-4, rtol=1e-4)
    probs = clf.predict_windows(x)  # the public batch API goes through the same path
    assert np.allclose(probs, torch.softmax(whole, -1).numpy(), atol=1e-5)
