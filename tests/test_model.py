"""Shape, parameter-count and init checks of gwviz.model.network (CPU, batch <= 2)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from gwviz.constants import CLASSES, DETECTORS, WINDOW_SAMPLES
from gwviz.model.network import DAIN, GWNet, ModelConfig
from gwviz.model.resnet import ResBlock

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def model() -> GWNet:
    torch.manual_seed(0)
    return GWNet()


def analytic_n_parameters(width: int = 8, hidden: int = 64) -> int:
    """Count derived by hand from the architecture spec, independent of model.py."""
    w, c = width, len(DETECTORS)
    plan = (
        [(c, w, 1)] + [(w, w, 1)] * 3
        + [(w, 2 * w, 2)] + [(2 * w, 2 * w, 1)] * 2
        + [(2 * w, 4 * w, 2)] + [(4 * w, 4 * w, 1)] * 2
        + [(4 * w, 8 * w, 2)] + [(8 * w, 8 * w, 1)] * 2
        + [(8 * w, 8 * w, 2)] + [(8 * w, 8 * w, 1)] * 2
        + [(8 * w, 8 * w, 2)] + [(8 * w, 8 * w, 1)] * 2
        + [(8 * w, 4 * w, 1)] + [(4 * w, 4 * w, 1)] * 4
        + [(4 * w, 2 * w, 1)] + [(2 * w, 2 * w, 1)] * 2
    )
    assert len(plan) == 27
    n = 3 * c * c + c  # DAIN: shift, scale (no bias), gate (with bias)
    for ci, co, s in plan:
        n += 3 * ci * co + 3 * co * co  # two bias-free k=3 convs
        n += 2 * (2 * co)  # two BatchNorms (weight + bias)
        if ci != co or s != 1:
            n += ci * co + co  # 1x1 shortcut conv with bias
    n_flat = 2 * w * (WINDOW_SAMPLES // 32)
    n += n_flat * hidden + hidden + hidden * len(CLASSES) + len(CLASSES)
    return n


def test_forward_shape(model: GWNet) -> None:
    y = model(torch.randn(2, len(DETECTORS), WINDOW_SAMPLES))
    assert y.shape == (2, len(CLASSES))
    assert torch.isfinite(y).all()


def test_cam_layer_map_shape(model: GWNet) -> None:
    seen: list[torch.Size] = []
    h = model.cam_layer.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    try:
        model(torch.randn(2, len(DETECTORS), WINDOW_SAMPLES))
    finally:
        h.remove()
    assert seen == [torch.Size([2, 16, 512])]
    assert model.cam_layer is model.resnet.to_time  # the last block's output, as (B, 2w, T/32)
    assert len(model.resnet.blocks) == 27


@pytest.mark.parametrize("train", [False, True])
def test_layouts_compute_the_same_function(model: GWNet, train: bool) -> None:
    """The (1 x 3) Conv2d channels-last layout (fast on CUDA) runs the very same weights as Conv1d:
    outputs, gradients and BatchNorm updates agree, and the CAM map keeps its (B, 2w, 512) shape."""
    import copy
    x = torch.randn(3, len(DETECTORS), WINDOW_SAMPLES)
    outs, grads, stats, maps = [], [], [], []
    for layout in ("1d", "2d"):
        m = copy.deepcopy(model).train(train)
        m.resnet.layout = layout
        h = m.cam_layer.register_forward_hook(lambda mod, i, o: maps.append(o.shape))
        y = m(x)
        h.remove()
        y.square().sum().backward()
        outs.append(y.detach())
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None]))
        stats.append(torch.cat([b.flatten().float() for b in m.buffers()]))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(stats[0], stats[1], rtol=1e-5, atol=1e-6)
    assert maps == [torch.Size([3, 16, 512])] * 2
    assert list(model.state_dict()) == list(m.state_dict())  # same weights file in both layouts
    with pytest.raises(ValueError, match="layout"):
        model.resnet.layout = "3d"


def test_parameter_count(model: GWNet) -> None:
    n = model.n_parameters()
    print(f"GWNet(width=8, hidden=64) parameters: {n:,}")
    assert n == analytic_n_parameters() == 818_986
    assert n * 4 <= 16 * 2**20  # float32 weights fit the 16 MiB budget


def test_other_config_parameter_count() -> None:
    m = GWNet.from_config({"width": 4, "hidden": 8, "unrelated": "ignored"})
    assert m.config == ModelConfig(width=4, hidden=8)
    assert m.n_parameters() == analytic_n_parameters(width=4, hidden=8)


def test_config_roundtrip() -> None:
    cfg = ModelConfig(width=6, hidden=32)
    assert cfg.to_dict() == {"width": 6, "hidden": 32, "detector_mask": 0, "dilate": 0}
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert GWNet.from_config(cfg).config == cfg


def test_dain_identity_init_passes_standardised_input() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 3, 4096)
    # exactly zero mean and unit RMS per channel
    x = x - x.mean(dim=2, keepdim=True)
    x = x / x.pow(2).mean(dim=2, keepdim=True).sqrt()
    dain = DAIN(3)
    with torch.no_grad():
        dain.gating_layer.bias.copy_(torch.tensor([0.0, 1.0, -2.0]))
        y = dain(x)
    # shift and scale are no-ops; the gate sees mean 0, so it is sigmoid(bias)
    expected = x * torch.sigmoid(dain.gating_layer.bias)[None, :, None]
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)


def test_dain_zero_channel_gives_no_nan() -> None:
    x = torch.randn(1, 3, 1024)
    x[0, 2] = 0.0  # a detector that is off: its scale is ~eps and gets clamped to 1
    y = DAIN(3)(x)
    assert torch.isfinite(y).all()
    assert torch.all(y[0, 2] == 0)


def test_init(model: GWNet) -> None:
    branch_bns = {id(b.bn2) for b in model.modules() if isinstance(b, ResBlock)}
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            # residual branches start at zero (zero-init residual), other BNs at identity
            assert torch.all(m.weight == (0 if id(m) in branch_bns else 1)) and torch.all(m.bias == 0)
        if isinstance(m, (nn.Conv1d, nn.Linear)) and m.bias is not None:
            if m is not model.dain.gating_layer:
                assert torch.all(m.bias == 0)
    eye = torch.eye(3)
    for lin in (model.dain.mean_layer, model.dain.scaling_layer, model.dain.gating_layer):
        assert torch.equal(lin.weight, eye)


def test_relus_are_modules_not_inplace(model: GWNet) -> None:
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 27 * 2 + 1  # two per block + one in the head
    assert not any(r.inplace for r in relus)


def test_resblock_shortcut_and_stride() -> None:
    assert isinstance(ResBlock(8, 8, 1).shortcut, nn.Identity)
    b = ResBlock(8, 16, 2)
    assert isinstance(b.shortcut, nn.Conv1d)
    assert b(torch.randn(1, 8, 100)).shape == (1, 16, 50)


def _input_support(model: GWNet) -> int:
    """Input samples (of the ResNet's input) that the middle position of its last map depends on."""
    import copy
    m = copy.deepcopy(model).double().eval()
    for block in m.resnet.blocks:  # residual branches start at zero: open them so every path counts
        nn.init.ones_(block.bn2.weight)
        block.relu1, block.relu_out = nn.Identity(), nn.Identity()  # no input-dependent gating of the taps
    x = torch.randn(1, len(DETECTORS), WINDOW_SAMPLES, dtype=torch.float64, requires_grad=True)
    out = m.resnet(x)
    out[0, :, out.shape[-1] // 2].sum().backward()
    hit = (x.grad.abs().sum(0).sum(0) > 0).nonzero().flatten()
    return int(hit.max() - hit.min() + 1)


def test_receptive_field_paper_and_dilated() -> None:
    """The analytic receptive field is what the gradient measures: the paper's ResNet sees 1,661 samples
    (0.41 s) from one position of its last map; dilate=1 sees the whole 4-s window, with the same
    parameters, and its two layouts agree (the Conv2d path passes the dilation on)."""
    paper, dilated = GWNet(width=2, hidden=8), GWNet(width=2, hidden=8, dilate=1)
    assert paper.resnet.receptive_field == _input_support(paper) == 1661
    assert dilated.resnet.receptive_field > WINDOW_SAMPLES
    assert _input_support(dilated) == WINDOW_SAMPLES
    assert dilated.n_parameters() == paper.n_parameters()
    assert dilated.config == ModelConfig(width=2, hidden=8, dilate=1)
    x = torch.randn(2, len(DETECTORS), WINDOW_SAMPLES)
    dilated.eval()
    y1 = dilated(x)
    dilated.resnet.layout = "2d"
    torch.testing.assert_close(dilated(x), y1, rtol=1e-4, atol=1e-5)
    for bad in (2, -1, True):
        with pytest.raises(ValueError, match="dilate"):
            GWNet(dilate=bad)
    with pytest.raises(ValueError, match="strided or dilated"):
        ResBlock(4, 4, stride=2, dilation=2)


def test_dilate_travels_with_the_weights(tmp_path) -> None:
    """A dilated network's file loads as a dilated network; a file without the key is the paper's ResNet;
    a bad value is refused before any model is built."""
    import json
    from safetensors.torch import load_file, save_file
    from gwviz.classifier import load_classifier
    from gwviz.model.checkpoint import load_weights, save_weights
    m = GWNet(width=2, hidden=8, dilate=1)
    save_weights(m, tmp_path / "d.safetensors", m.config.to_dict())
    assert load_weights(tmp_path / "d.safetensors")[1]["dilate"] == 1
    assert load_classifier(tmp_path / "d.safetensors").model.config.dilate == 1
    from safetensors import safe_open
    with safe_open(str(tmp_path / "d.safetensors"), "pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(tmp_path / "d.safetensors"))
    for value, ok in ((None, 0), (2, None), (True, None)):
        cfg = json.loads(meta["config"])
        cfg.pop("dilate") if value is None else cfg.update(dilate=value)
        save_file(tensors, str(tmp_path / "x.safetensors"), metadata={**meta, "config": json.dumps(cfg)})
        if ok is None:
            with pytest.raises(ValueError, match="dilate"):
                load_weights(tmp_path / "x.safetensors")
        else:
            assert load_weights(tmp_path / "x.safetensors")[1]["dilate"] == ok
