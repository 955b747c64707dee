"""Re-estimate BatchNorm running statistics over many training-distribution batches ("precise BN").

Why: until 2026-12 the trainer drew whole batches of either simulated or real noise (``p_real``),
and BatchNorm's running averages (momentum 0.1) remember mostly the last ~10 batches. The eval-mode
model then depended on which kind of batch happened to come last: with lr 3e-5 the validation
accuracy on noise still swung between 0.61 and 0.84 from one epoch to the next
(docs/train-h100-metrics.csv). The trainer now mixes the noise kinds within every batch; this tool
still averages the statistics with equal weight over a fixed mix (``torch.optim.swa_utils.update_bn``),
e.g. to give older weights steady statistics; the weights are unchanged.

    python -m gwviz.training.bnstats IN.safetensors OUT.safetensors --device cuda [--real-data real.npz --p-real 0.2]
"""
from __future__ import annotations

import argparse
import contextlib
import json

import torch

from ..data.batch import BatchMaker
from ..data.params import SNR_RANGE


def calibration_batches(maker: BatchMaker, n_batches: int, batch: int, seed: int,
                        snr_range: tuple[float, float] = SNR_RANGE, p_real: float | None = None):
    """Batches for BatchNorm calibration, with a fixed share of real noise in each.

    In each batch exactly round(p_real · batch) samples are in real noise, so the mix does not depend on
    luck. Deterministic in ``seed`` (batch i uses seed + i).

    Parameters
    ----------
    maker : BatchMaker
        Makes the batches.
    n_batches, batch : int
        Number of batches and rows per batch (both ≥ 1).
    seed : int
        Seed of the first batch.
    snr_range : (float, float), optional
        Network SNR range of the signals. Default ``SNR_RANGE`` (8, 24).
    p_real : float or None, optional
        Share of real noise, in [0, 1]; None (default): the maker's ``p_real``.

    Yields
    ------
    (batch, 3, 16384) tensor
        Whitened windows.

    Raises
    ------
    ValueError
        ``n_batches`` or ``batch`` < 1; ``p_real`` outside [0, 1], or > 0 with a maker without real noise.
    """
    if n_batches < 1 or batch < 1:
        raise ValueError(f"need n_batches >= 1 and batch >= 1, got {n_batches}, {batch}")
    p_real = maker.p_real if p_real is None else p_real
    if not 0.0 <= p_real <= 1.0 or (p_real > 0 and maker.p_real == 0.0):
        raise ValueError(f"p_real must be in [0, 1] and > 0 only with real noise in the maker, got {p_real}")
    n_real = round(p_real * batch)
    g = torch.Generator(device=maker.device)
    for i in range(n_batches):
        g.manual_seed(seed + i)
        is_real = torch.zeros(batch, dtype=torch.bool, device=maker.device)
        is_real[torch.randperm(batch, generator=g, device=maker.device)[:n_real]] = True
        x, _, _ = maker(batch, g, snr_range=snr_range, real=is_real if n_real else False)
        yield x


def recalibrate(model: torch.nn.Module, maker: BatchMaker, n_batches: int = 32, batch: int = 512, seed: int = 0,
                snr_range: tuple[float, float] = SNR_RANGE, p_real: float | None = None, autocast=None) -> None:
    """Replace every BatchNorm layer's running statistics by their equal-weight average over batches.

    The running mean and variance become the average over :func:`calibration_batches`
    (``torch.optim.swa_utils.update_bn``), in place; parameters are untouched and the model's train/eval mode
    is kept.

    Parameters
    ----------
    model : torch.nn.Module
        The network, on the maker's device.
    maker : BatchMaker
        Makes the batches.
    n_batches : int, optional
        Default 32.
    batch : int, optional
        Rows per batch. Default 512.
    seed : int, optional
        Default 0.
    snr_range : (float, float), optional
        Default ``SNR_RANGE`` (8, 24).
    p_real : float or None, optional
        Share of real noise per batch; None (default): the maker's.
    autocast : callable or None, optional
        A context-manager factory, to see the activations the trainer sees. Default None.

    Raises
    ------
    ValueError
        From :func:`calibration_batches`.
    """
    ctx = autocast or contextlib.nullcontext
    with ctx():
        torch.optim.swa_utils.update_bn(calibration_batches(maker, n_batches, batch, seed, snr_range, p_real), model)


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module docstring): recalibrate a weights file and write the result.

    Parameters
    ----------
    argv : list of str or None, optional
        Arguments; default None: ``sys.argv[1:]``.
    """
    from ..data.bank import WaveformBank
    from ..data.batch import load_real
    from ..model.checkpoint import load_weights, save_weights
    from ..model.network import GWNet

    p = argparse.ArgumentParser(prog="python -m gwviz.training.bnstats", description=__doc__.split("\n")[0])
    p.add_argument("weights", help="gwviz .safetensors or training checkpoint")
    p.add_argument("out", help="output .safetensors (same weights, new BatchNorm statistics)")
    p.add_argument("--batches", type=int, default=64)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--bank-per-class", type=int, default=1024, help="waveforms per class drawn for calibration")
    p.add_argument("--seed", type=int, default=12345, help="bank and batch seed (keep it apart from evaluation seeds)")
    p.add_argument("--real-data", default=None, help=".npz of real noise as train.py takes (strain, train_range)")
    p.add_argument("--p-real", type=float, default=0.0, help="fraction of each batch in real noise")
    p.add_argument("--snr", type=float, nargs=2, default=list(SNR_RANGE), metavar=("LOW", "HIGH"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    if a.p_real > 0 and not a.real_data:
        p.error("--p-real > 0 needs --real-data")
    state, config, info = load_weights(a.weights)
    model = GWNet.from_config(config).to(a.device)
    model.load_state_dict(state)
    strain, train_range, _ = load_real(a.real_data) if a.real_data else (None, None, None)  # before the bank
    bank = WaveformBank.build(a.bank_per_class, seed=a.seed).to(a.device)
    maker = BatchMaker(bank, a.device, real_strain=strain, real_range=train_range, p_real=a.p_real)
    recalibrate(model, maker, a.batches, a.batch, a.seed, tuple(a.snr), a.p_real)
    info = {**info, "bn_recalibrated": {"batches": a.batches, "batch": a.batch, "p_real": a.p_real,
                                        "snr": a.snr, "seed": a.seed, "from": str(a.weights)}}
    save_weights(model, a.out, config, info)
    print(json.dumps(info["bn_recalibrated"]))


if __name__ == "__main__":
    main()
