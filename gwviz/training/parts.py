"""The pieces of the training loop: one optimiser step, the batch prefetcher, deterministic data seeds,
waveform banks, the validator, the metrics log and the device choice (used by :mod:`gwviz.training.loop`)."""
from __future__ import annotations

import csv
import math
import os
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..data.batch import BatchMaker
from ..classifier import check_device
from ..constants import CLASSES, DETECTORS, WINDOW_SAMPLES
from ..model.network import MASK_INPUT_TENSORS
from ..data.params import SNR_RANGE
from .config import check_compile


def autocast_for(device: torch.device, bf16: bool):
    """A context factory: bf16 autocast on CUDA when asked, else a no-op (CPU runs stay float32, exact).

    Parameters
    ----------
    device : torch.device
        The training device.
    bf16 : bool
        Ask for bf16 autocast.

    Returns
    -------
    callable
        Called with no argument, returns a context manager.
    """
    if bf16 and device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext


def compile_model(model: torch.nn.Module, how: bool | str, device: torch.device) -> torch.nn.Module:
    """``model`` compiled for ``device`` as the config key ``compile`` asks (CUDA only; else ``model``).

    Parameters
    ----------
    model : torch.nn.Module
        The raw model (its parameters stay shared with the result).
    how : {False, True, 'autotune'}
        False: not compiled. True: ``torch.compile`` with its defaults (cuDNN for every convolution).
        'autotune': also Inductor's ``max_autotune_gemm``, which times Triton convolution and matmul
        templates against cuDNN for every shape and keeps the fastest: on one H200 (width 8, batch 1,024,
        bf16, channels-last) the model step went from 91.3 to 81.6 ms (1.12×; `bench/bench_compile.py`),
        because cuDNN's kernels for these thin (8-32 channel) convolutions are slow in the forward pass.
        The price is compile time: 219 s on a fresh machine, 7 s when Inductor's cache
        (``TORCHINDUCTOR_CACHE_DIR``) already holds the tuned kernels, so chunked runs should keep that
        folder (``docs/device_chunk.sh`` does).
    device : torch.device
        The training device.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ValueError
        ``how`` not False, True or 'autotune' (:func:`gwviz.training.config.check_compile`).
    """
    if check_compile(how) is False or device.type != "cuda":
        return model
    return torch.compile(model, options={"max_autotune_gemm": True} if how == "autotune" else None)


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               autocast=nullcontext) -> torch.Tensor:
    """One optimiser step on cross entropy.

    Parameters
    ----------
    model : torch.nn.Module
        Model in training mode (possibly compiled or DDP-wrapped).
    opt : torch.optim.Optimizer
        Adam in the trainer.
    x : (B, 3, 16384) tensor
        Whitened windows.
    y : (B,) int tensor
        Class indices.
    autocast : callable, optional
        Context-manager factory around the forward pass (:func:`autocast_for`). Default no-op.

    Returns
    -------
    0-d tensor
        The loss, detached (still on the device: no synchronisation).
    """
    with autocast():
        loss = F.cross_entropy(model(x).float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


class Prefetcher:
    """Make the batch of the next step while the model trains on this one.

    ``launch(s)`` calls ``make(s)``; on CUDA it does so on a side stream, so the data kernels (FFTs,
    about a third of a step) run beside the model's thin convolutions instead of after them. This
    needs ``make`` to never synchronise with the device (BatchMaker does not). ``take()`` returns
    the launched batch, ordered after its kernels on the current stream. On the CPU it is a plain
    call. Usage: ``p.launch(0)``; per step ``b = p.take(); train(b); p.launch(s + 1)``: the step's
    kernels are queued first, so a host synchronisation inside ``make`` cannot hold them back.

    Parameters
    ----------
    make : callable
        ``make(step) -> tuple of tensors``.
    device : torch.device or str
        The training device.
    """

    def __init__(self, make, device: torch.device):
        self.make, self.device, self.batch = make, torch.device(device), None
        self.side = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        if self.side is not None:  # banks and PSDs were made on the main stream
            self.side.wait_stream(torch.cuda.current_stream(self.device))

    def launch(self, s: int) -> None:
        """Start making the batch of step ``s`` (on the side stream on CUDA)."""
        with torch.cuda.stream(self.side) if self.side is not None else nullcontext():
            self.batch = self.make(s)

    def take(self):
        """The launched batch, safe to use on the current stream.

        Raises
        ------
        RuntimeError
            Nothing was launched since the last take.
        """
        batch, self.batch = self.batch, None
        if batch is None:
            raise RuntimeError("Prefetcher.take() before launch()")
        if self.side is not None:
            main = torch.cuda.current_stream(self.device)
            main.wait_stream(self.side)
            for t in batch:
                t.record_stream(main)  # the allocator must not reuse these for the side stream early
        return batch


def widen_adam_state(opt_state: dict, model: torch.nn.Module) -> dict:
    """Adam's state for :func:`gwviz.model.network.add_detector_mask`.

    The moments of the widened tensors get zeros for the new input channels (as if those weights had never
    had a gradient).

    Parameters
    ----------
    opt_state : dict
        ``Adam.state_dict()`` of a detector_mask=0 model (not modified).
    model : torch.nn.Module
        The model the state belongs to: it gives the order of the parameters (their ids in the state).

    Returns
    -------
    dict
        The new optimiser state.
    """
    index = {name: i for i, (name, _) in enumerate(model.named_parameters())}
    state = {k: dict(v) for k, v in opt_state["state"].items()}
    for name in MASK_INPUT_TENSORS:
        entry = state.get(index[name], {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in entry:
                entry[key] = torch.cat([entry[key], torch.zeros_like(entry[key])], dim=1)
    return {**opt_state, "state": state}


def to_cpu(obj):
    """Tensors in nested dicts/lists/tuples of ``obj`` moved to the CPU (detached); other values pass through.

    Checkpoints then load on any machine without map_location.
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def data_seed(*key: int) -> int:
    """A 63-bit seed from a tuple of ints, e.g. (seed, step, rank): the data of a step depends on that alone.

    Parameters
    ----------
    *key : int
        Non-negative ints (``numpy.random.SeedSequence`` entropy).

    Returns
    -------
    int
        In [0, 2**63).
    """
    return int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0] >> np.uint64(1))


BN_TAG = 5_555_555  # data_seed(seed, step, BN_TAG): the BatchNorm calibration batches before an evaluation


# -----------------------------------------------------------------------------
# data


class Validator:
    """Fixed validation set: ``n`` samples at SNR 8-24, chunk i drawn from seed (seed + 1, VAL_TAG, i).

    Chunks all have ``chunk`` rows (one compiled shape); the last one is generated whole and cut.
    Under DDP, rank r evaluates chunks r, r + world, ... and the sums are all-reduced.

    Parameters
    ----------
    maker : BatchMaker
        Makes the validation batches (its own waveform bank).
    n : int
        Validation samples.
    chunk : int
        Rows per chunk (capped at ``n``).
    seed : int
        The run's seed.
    device : torch.device
        Where the batches are made and evaluated.
    cache_gib : float
        Keep this rank's chunks on the device if they take at most this much [GiB] (float32).
    rank, world : int, optional
        DDP rank and number of ranks. Default 0 and 1.
    """

    VAL_TAG = 7_777_777

    def __init__(self, maker: BatchMaker, n: int, chunk: int, seed: int, device: torch.device,
                 cache_gib: float, rank: int = 0, world: int = 1):
        self.maker, self.n, self.chunk, self.seed, self.device = maker, n, min(chunk, n), seed, device
        self.rank, self.world = rank, world
        self.n_chunks = math.ceil(n / self.chunk)
        self.mine = list(range(rank, self.n_chunks, world))
        bytes_needed = len(self.mine) * self.chunk * len(DETECTORS) * WINDOW_SAMPLES * 4  # float32
        self.cache = {i: self._make(i) for i in self.mine} if bytes_needed <= cache_gib * 2**30 else None

    def _make(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator(device=self.device).manual_seed(data_seed(self.seed + 1, self.VAL_TAG, i))
        x, y, _ = self.maker(self.chunk, g, snr_range=SNR_RANGE)
        keep = min(self.chunk, self.n - i * self.chunk)
        return x[:keep], y[:keep]

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, autocast) -> dict[str, float]:
        """Evaluate ``model`` (its train/eval mode is restored afterwards).

        Parameters
        ----------
        model : torch.nn.Module
            The network (not DDP-wrapped: no collectives in its forward).
        autocast : callable
            Context-manager factory around the forward pass.

        Returns
        -------
        dict of str to float
            ``val_loss`` (mean cross entropy), ``val_acc`` and ``acc_<class>`` per class of ``CLASSES``.
        """
        was_training = model.training
        model.eval()
        # sums: loss, correct, count, then (correct, count) per class
        s = torch.zeros(3 + 2 * len(CLASSES), dtype=torch.float64, device=self.device)
        for i in self.mine:
            x, y = self.cache[i] if self.cache is not None else self._make(i)
            with autocast():
                logits = model(x).float()
            ok = (logits.argmax(1) == y).double()
            s[0] += F.cross_entropy(logits, y, reduction="sum").double()
            s[1] += ok.sum()
            s[2] += len(y)
            onehot = F.one_hot(y, len(CLASSES)).double()
            s[3::2] += (onehot * ok[:, None]).sum(0)
            s[4::2] += onehot.sum(0)
        if self.world > 1:
            dist.all_reduce(s)
        model.train(was_training)
        s = s.cpu().tolist()
        out = {"val_loss": s[0] / s[2], "val_acc": s[1] / s[2]}
        out.update({f"acc_{c}": s[3 + 2 * k] / max(s[4 + 2 * k], 1) for k, c in enumerate(CLASSES)})
        return out


# -----------------------------------------------------------------------------
# logging


METRIC_FIELDS = ["step", "epoch", "samples", "wall_s", "train_loss", "val_loss", "val_acc",
                 *(f"acc_{c}" for c in CLASSES), "samples_per_s", "snr_low", "snr_high", "lr"]


class Metrics:
    """metrics.csv (one row per log/eval step) + TensorBoard; rows past ``resume_step`` are dropped on resume.

    TensorBoard is optional: without it only the CSV is written.

    Parameters
    ----------
    out : pathlib.Path
        Run folder (metrics.csv and tb/).
    resume_step : int or None
        Step resumed from; None: a fresh run (metrics.csv is rewritten empty).
    """

    def __init__(self, out: Path, resume_step: int | None):
        self.path = out / "metrics.csv"
        rows = []
        if resume_step is not None and self.path.exists():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, METRIC_FIELDS)
            w.writeheader()
            w.writerows(rows)
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(out / "tb"), purge_step=resume_step)
        except ImportError as err:  # tensorboard is optional on the training machine
            print(f"TensorBoard disabled ({err})")
            self.tb = None

    def write(self, row: dict) -> None:
        """Append ``row`` (keys of ``METRIC_FIELDS``; missing ones empty) to the CSV and to TensorBoard."""
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, METRIC_FIELDS).writerow({k: row.get(k, "") for k in METRIC_FIELDS})
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "samples", "wall_s") and v not in (None, ""):
                    group = "val" if k.startswith(("val", "acc")) else "train"
                    self.tb.add_scalar(f"{group}/{k}", v, row["step"])
            self.tb.flush()

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self.tb is not None:
            self.tb.close()


# -----------------------------------------------------------------------------
# main


def pick_device(device_arg: str | None) -> tuple[int, int, torch.device]:
    """(rank, world, device) from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and --device.

    Parameters
    ----------
    device_arg : str or None
        'cuda', 'cuda:1', 'cpu', ...; None: CUDA if available. Under torchrun with CUDA each rank takes
        cuda:LOCAL_RANK.

    Returns
    -------
    rank, world : int
    device : torch.device

    Raises
    ------
    ValueError
        An unknown or unavailable device (:func:`gwviz.classifier.check_device`).
    """
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    dev = check_device(device_arg or ("cuda" if torch.cuda.is_available() else "cpu"))
    use_cuda = dev.type == "cuda"
    if world == 1:
        return 0, 1, dev
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, torch.device("cuda", local) if use_cuda else torch.device("cpu")
