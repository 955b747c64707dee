"""BatchNorm re-estimation (gwviz.training.bnstats): equal-weight statistics, weights untouched, exact mix."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gwviz.data.bank import WaveformBank

from gwviz.data.batch import BatchMaker
from gwviz.training.bnstats import calibration_batches, main, recalibrate
from gwviz.model.checkpoint import load_weights
from gwviz.model.network import GWNet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def maker() -> BatchMaker:
    bank = WaveformBank.build(2, seed=3, workers=1, progress=False)
    rng = np.random.default_rng(0)
    real = rng.normal(0, 1e-21, (3, 20 * 4096))  # stands in for real strain: only the mix is tested here
    return BatchMaker(bank, real_strain=real, p_real=0.5)


def test_running_stats_are_the_equal_weight_average_and_weights_do_not_move(maker):
    torch.manual_seed(0)
    model = GWNet(width=2, hidden=8).eval()
    params = {k: v.clone() for k, v in model.named_parameters()}
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    seen = []
    hook = bn.register_forward_hook(lambda m, i, o: seen.append(i[0].detach().mean(dim=(0, 2))))
    recalibrate(model, maker, n_batches=3, batch=4, seed=11)
    hook.remove()
    assert len(seen) == 3
    torch.testing.assert_close(bn.running_mean, torch.stack(seen).mean(0), rtol=1e-5, atol=1e-6)
    assert bn.momentum == 0.1 and not model.training  # momentum and mode restored
    assert all(torch.equal(v, params[k]) for k, v in model.named_parameters())
    # deterministic in the seed
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recalibrate(model, maker, n_batches=3, batch=4, seed=11)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_exact_share_of_real_noise_in_every_batch(maker, monkeypatch):
    kinds = []
    call = BatchMaker.__call__

    def spy(self, n, generator, snr_range=(8, 24), labels=None, real=None):
        kinds.append(real)
        return call(self, n, generator, snr_range, labels, real)

    monkeypatch.setattr(BatchMaker, "__call__", spy)
    xs = list(calibration_batches(maker, 3, 4, seed=1, p_real=0.25))
    assert all(isinstance(k, torch.Tensor) and int(k.sum()) == 1 for k in kinds)  # 1 of 4 per batch, per sample
    assert xs[0].shape == (4, 3, 16384)
    kinds.clear()
    list(calibration_batches(maker, 2, 4, seed=1, p_real=0.0))
    assert kinds == [False, False]


def test_bad_input_is_a_value_error(maker):
    simulated_only = BatchMaker(maker.bank)
    with pytest.raises(ValueError, match="p_real"):
        list(calibration_batches(simulated_only, 2, 2, seed=0, p_real=0.5))
    with pytest.raises(ValueError, match="n_batches"):
        list(calibration_batches(maker, 0, 2, seed=0))


def test_cli_writes_weights_with_new_stats(weights, tmp_path):
    out = tmp_path / "bn.safetensors"
    main([weights, str(out), "--batches", "2", "--batch", "2", "--bank-per-class", "1", "--device", "cpu"])
    old, _, _ = load_weights(weights)
    new, config, info = load_weights(out)
    assert info["bn_recalibrated"]["batches"] == 2 and config["width"] == 2
    changed = [k for k in old if not torch.equal(old[k], new[k])]
    assert changed and all("running" in k or "num_batches" in k for k in changed)
