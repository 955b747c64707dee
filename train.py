"""Train GWNet (DAIN + ResNet-54) on batches made on the fly, after Sasaoka et al. (2023).

    python train.py --config configs/paper.yaml --out runs/paper [--resume] [--max-minutes 25]
                    [--max-steps N] [--device cuda|cpu] [key=value ...]     e.g. lr=5e-4 model.width=4
    torchrun --nproc_per_node=4 train.py --config configs/h100.yaml --out runs/ddp

Data. Nothing is read from disk: a bank of waveforms per class (``bank_per_class``, built once with
all CPU cores, cached in <out>/bank.pt) lives on the training device, and every step draws fresh sky
positions, SNRs, merger times and noise through gwviz.batch.BatchMaker (the one synthesis path,
gwviz.synth.synthesize). The SNR range follows ``curriculum`` (high to low SNR, ending at the paper's
8-24). Validation: ``val_samples`` at SNR 8-24 from a separate waveform bank (seed + 1, cached in
<out>/val_bank.pt) and a separate noise stream, identical at every evaluation (cached on the device
when it fits in ``val_cache_gib``, otherwise regenerated chunk by chunk from the same seeds).

Determinism. The data generator is reseeded at every step from (seed, step, rank) only, so the data
never depends on history: a killed and resumed run (--resume) gives bit-for-bit the same weights on
the CPU as an uninterrupted one. On the GPU, cuDNN/compile kernels are not bit-reproducible.

DDP. Under torchrun (WORLD_SIZE > 1): nccl on CUDA, gloo on CPU, one process per device.
``batch_size`` is the GLOBAL batch, split evenly across ranks (so a config means the same
optimisation on any number of GPUs); each rank draws its own data from its own stream. Only rank 0
writes files.

Stopping and resuming. --max-minutes (wall time of this process), --max-steps and SIGTERM stop after
the current step and write a checkpoint; checkpoints are also written every ``checkpoint_minutes``.
--resume continues <out>/ckpt.pt with the checkpoint's own config (key=value overrides still apply,
e.g. epochs=80); without a checkpoint it starts fresh. Writes are atomic (temporary file + rename),
so a kill mid-write leaves the previous checkpoint intact.

Outputs in --out: ckpt.pt (training checkpoint: model, optimiser, step, RNG states, config; loaded
with weights_only=True), best.safetensors / last.safetensors (weights + config + provenance, via
gwviz.checkpoint.save_weights), metrics.csv, tb/ (TensorBoard), bank.pt, val_bank.pt (+ .json keys).

Tests: tests/test_train.py (CPU). Throughput: bench/bench_train.py.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import signal
import threading
import time
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from tqdm.auto import tqdm

from gwviz.batch import BatchMaker, WaveformBank, load_real
from gwviz.checkpoint import FORMAT, atomic_torch_save, save_weights
from gwviz.classifier import check_device
from gwviz.bnstats import recalibrate
from gwviz.constants import CLASSES, DETECTORS, WINDOW_SAMPLES
from gwviz.model import MASK_INPUT_TENSORS, GWNet, ModelConfig, add_detector_mask
from gwviz.params import SNR_RANGE
from gwviz.paths import run_cli, writable_dir

# -----------------------------------------------------------------------------
# config

DEFAULTS: dict = {
    "model": {"width": 8, "hidden": 64, "detector_mask": 0},
    "batch_size": 1024,         # global batch (all ranks together)
    "lr": 1e-3,                 # Adam, constant after the warm-up (the paper's setting)
    "warmup_steps": 0,          # linear warm-up of the learning rate from 0 over this many steps
    "lr_schedule": "constant",  # or "cosine": from lr at step decay_from down to lr_min at the last step
    "lr_min": 0.0,
    "decay_from": 0,            # first step of the cosine decay (a resumed run starts it where it resumes)
    "epochs": 300,              # may be fractional
    "samples_per_epoch": 96000,
    "val_samples": 96000,
    "val_batch": 1024,          # evaluation chunk
    "val_cache_gib": 4.0,       # keep the validation set on the device if it is at most this big
    "curriculum": [{"until_epoch": 300, "snr_low": SNR_RANGE[0], "snr_high": SNR_RANGE[1]}],
    "bank_per_class": 4096,
    "val_bank_per_class": 1024,
    "seed": 0,
    "p_real": 0.0,              # fraction of batches in real noise (needs real_data)
    "detector_dropout": 0.0,    # fraction of samples seen by 1 or 2 detectors only (needs model.detector_mask=1;
                                # gwviz.batch.subset_probabilities); validation always uses all three
    "real_data": None,          # .npz of real noise: strain (3, N) [strain] at 4096 Hz (see load_real)
    "compile": False,           # torch.compile (CUDA only)
    "bf16": False,              # bf16 autocast (CUDA only)
    "checkpoint_minutes": 10.0,
    "workers": 0,               # processes building the waveform bank; 0 = all CPU cores
    "log_every": 10,            # steps between metric rows
    "eval_every_steps": 0,      # 0: evaluate at every epoch end (and at the last step)
    "bn_batches": 0,            # > 0: before each evaluation, re-estimate BatchNorm statistics over this many
                                # training-distribution batches (gwviz.bnstats). Off by default: it steadies the
                                # validation numbers but moves the noise/signal operating point (models/README.md)
    "max_steps": None,          # stop early (also --max-steps)
}


def _parse_value(text: str):
    """'1e-3' -> 0.001, 'true' -> True, '[1, 2]' -> [1, 2], anything else stays a string."""
    v = yaml.safe_load(text)
    if isinstance(v, str):  # YAML 1.1 reads '1e-3' as a string; accept it as a number
        try:
            return float(v)
        except ValueError:
            pass
    return v


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    """Set 'key=value' / 'model.width=4' pairs (values parsed as YAML) on a copy of ``cfg``."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, text = item.split("=", 1)
        *parents, leaf = key.strip().split(".")
        node = cfg
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise ValueError(f"override {key!r}: {p!r} is not a section of the config")
            node = node[p]
        node[leaf] = _parse_value(text)
    return cfg


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> dict:
    """DEFAULTS <- YAML file <- overrides, validated."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        with open(path) as f:
            user = yaml.safe_load(f) or {}
        if not isinstance(user, dict):
            raise ValueError(f"{path}: a config must be a mapping of keys to values")
        for k, v in user.items():
            cfg[k] = {**cfg[k], **v} if k == "model" and isinstance(v, dict) else v
    return validate_config(apply_overrides(cfg, list(overrides)))


def validate_config(cfg: dict) -> dict:
    """Raise ValueError for unknown keys or bad values; numbers written as '1e-3' (PyYAML reads them as
    strings) become floats."""
    for k in ("lr", "epochs", "checkpoint_minutes", "val_cache_gib", "p_real", "detector_dropout"):
        if isinstance(cfg.get(k), str):
            try:
                cfg[k] = float(cfg[k])
            except ValueError:
                raise ValueError(f"{k} must be a number, got {cfg[k]!r}") from None
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    if set(cfg["model"]) - {"width", "hidden", "detector_mask"}:
        raise ValueError(f"model takes width, hidden and detector_mask, got {sorted(cfg['model'])}")
    if cfg["model"].get("detector_mask", 0) not in (0, 1) or isinstance(cfg["model"].get("detector_mask"), bool):
        raise ValueError(f"model.detector_mask must be 0 or 1, got {cfg['model'].get('detector_mask')!r}")
    if not isinstance(cfg["detector_dropout"], (int, float)) or not 0.0 <= cfg["detector_dropout"] < 1.0:
        raise ValueError(f"detector_dropout must be a number in [0, 1), got {cfg['detector_dropout']!r}")
    if cfg["detector_dropout"] > 0 and not cfg["model"].get("detector_mask", 0):
        raise ValueError("detector_dropout > 0 needs model.detector_mask=1 (else a dropped detector is zeros "
                         "pretending to be data)")
    if not isinstance(cfg["bn_batches"], int) or cfg["bn_batches"] < 0:
        raise ValueError(f"bn_batches must be a non-negative integer, got {cfg['bn_batches']!r}")
    for k in ("batch_size", "samples_per_epoch", "val_samples", "val_batch", "bank_per_class",
              "val_bank_per_class", "log_every"):
        if not isinstance(cfg[k], int) or cfg[k] < 1:
            raise ValueError(f"{k} must be a positive integer, got {cfg[k]!r}")
    for k in ("lr", "epochs", "checkpoint_minutes", "val_cache_gib"):
        if not isinstance(cfg[k], (int, float)) or not cfg[k] > 0:
            raise ValueError(f"{k} must be a positive number, got {cfg[k]!r}")
    if cfg["samples_per_epoch"] < cfg["batch_size"]:
        raise ValueError(f"samples_per_epoch ({cfg['samples_per_epoch']}) < batch_size ({cfg['batch_size']})")
    if not 0.0 <= cfg["p_real"] <= 1.0:
        raise ValueError(f"p_real must be in [0, 1], got {cfg['p_real']!r}")
    if cfg["p_real"] > 0 and not cfg["real_data"]:
        raise ValueError("p_real > 0 needs real_data (an .npz with strain, train_range, val_range)")
    if cfg["lr_schedule"] not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {cfg['lr_schedule']!r}")
    if isinstance(cfg["lr_min"], str):
        cfg["lr_min"] = _parse_value(cfg["lr_min"])
    if not isinstance(cfg["lr_min"], (int, float)) or not 0 <= cfg["lr_min"] <= cfg["lr"]:
        raise ValueError(f"lr_min must be a number in [0, lr], got {cfg['lr_min']!r}")
    for k in ("seed", "eval_every_steps", "warmup_steps", "decay_from"):
        if not isinstance(cfg[k], int) or cfg[k] < 0:
            raise ValueError(f"{k} must be a non-negative integer, got {cfg[k]!r}")
    if cfg["max_steps"] is not None and (not isinstance(cfg["max_steps"], int) or cfg["max_steps"] < 0):
        raise ValueError(f"max_steps must be a non-negative integer or null, got {cfg['max_steps']!r}")
    cur = cfg["curriculum"]
    if not isinstance(cur, list) or not cur:
        raise ValueError("curriculum must be a non-empty list of {until_epoch, snr_low, snr_high}")
    last = 0.0
    for stage in cur:
        if not isinstance(stage, dict) or set(stage) != {"until_epoch", "snr_low", "snr_high"}:
            raise ValueError(f"curriculum stage {stage!r} must have exactly until_epoch, snr_low, snr_high")
        if not 0 < stage["snr_low"] < stage["snr_high"]:
            raise ValueError(f"curriculum stage {stage!r}: need 0 < snr_low < snr_high")
        if not stage["until_epoch"] > last:
            raise ValueError(f"curriculum until_epoch must increase, got {stage['until_epoch']!r} after {last}")
        last = stage["until_epoch"]
    return cfg


def lr_at(cfg: dict, step: int, total: int | None = None) -> float:
    """Learning rate of step ``step`` (0-based) of ``total``: linear warm-up over ``warmup_steps``, then
    constant, or (``lr_schedule: cosine``) a half cosine from ``lr`` at ``decay_from`` to ``lr_min`` at ``total``."""
    lr = cfg["lr"]
    if cfg.get("lr_schedule", "constant") == "cosine" and total is not None and step >= cfg["decay_from"]:
        frac = min(1.0, (step - cfg["decay_from"]) / max(1, total - cfg["decay_from"]))
        lr = cfg["lr_min"] + (lr - cfg["lr_min"]) * 0.5 * (1.0 + math.cos(math.pi * frac))
    return lr * min(1.0, (step + 1) / cfg["warmup_steps"]) if cfg["warmup_steps"] else lr


def snr_range_at(curriculum: list[dict], epoch: float) -> tuple[float, float]:
    """Network-SNR range of the first stage with epoch < until_epoch (the last stage beyond them all)."""
    for stage in curriculum:
        if epoch < stage["until_epoch"]:
            break
    return float(stage["snr_low"]), float(stage["snr_high"])


def autocast_for(device: torch.device, bf16: bool):
    """A context factory: bf16 autocast on CUDA when asked, else a no-op (CPU runs stay float32, exact)."""
    if bf16 and device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               autocast=nullcontext) -> torch.Tensor:
    """One Adam step on cross entropy; x (B, 3, 16384), y (B,) class indices. Returns the loss (detached)."""
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
    """

    def __init__(self, make, device: torch.device):
        self.make, self.device, self.batch = make, torch.device(device), None
        self.side = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        if self.side is not None:  # banks and PSDs were made on the main stream
            self.side.wait_stream(torch.cuda.current_stream(self.device))

    def launch(self, s: int) -> None:
        with torch.cuda.stream(self.side) if self.side is not None else nullcontext():
            self.batch = self.make(s)

    def take(self):
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
    """Adam's state for :func:`gwviz.model.add_detector_mask`: the moments of the widened tensors get
    zeros for the new input channels (as if those weights had never had a gradient)."""
    index = {name: i for i, (name, _) in enumerate(model.named_parameters())}
    state = {k: dict(v) for k, v in opt_state["state"].items()}
    for name in MASK_INPUT_TENSORS:
        entry = state.get(index[name], {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in entry:
                entry[key] = torch.cat([entry[key], torch.zeros_like(entry[key])], dim=1)
    return {**opt_state, "state": state}


def to_cpu(obj):
    """Tensors in nested dicts/lists moved to the CPU: checkpoints load on any machine without map_location."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def data_seed(*key: int) -> int:
    """A 63-bit seed from a tuple of ints, e.g. (seed, step, rank): the data of a step depends on that alone."""
    return int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0] >> np.uint64(1))


BN_TAG = 5_555_555  # data_seed(seed, step, BN_TAG): the BatchNorm calibration batches before an evaluation


# -----------------------------------------------------------------------------
# data


def get_bank(path: Path, n_per_class: int, seed: int, workers: int) -> WaveformBank:
    """The bank cached at ``path`` if it was built with (n_per_class, seed) (recorded beside it in
    <path>.json), else build it with ``workers`` processes (0 = all cores) and cache it. Building is
    deterministic, so a resume on a fresh machine rebuilds the same bank."""
    key = {"n_per_class": n_per_class, "seed": seed}
    meta = path.with_name(path.name + ".json")
    if path.exists() and meta.exists() and json.loads(meta.read_text()) == key:
        return WaveformBank.load(path)
    bank = WaveformBank.build(n_per_class, seed=seed, workers=workers or os.cpu_count())
    bank.save(path)
    meta.write_text(json.dumps(key))
    return bank


class Validator:
    """Fixed validation set: ``n`` samples at SNR 8-24, chunk i drawn from seed (seed + 1, VAL_TAG, i).

    Chunks all have ``chunk`` rows (one compiled shape); the last one is generated whole and cut.
    Under DDP, rank r evaluates chunks r, r + world, ... and the sums are all-reduced."""

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
    """metrics.csv (one row per log/eval step) + TensorBoard; rows past ``resume_step`` are dropped on resume."""

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
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, METRIC_FIELDS).writerow({k: row.get(k, "") for k in METRIC_FIELDS})
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "samples", "wall_s") and v not in (None, ""):
                    group = "val" if k.startswith(("val", "acc")) else "train"
                    self.tb.add_scalar(f"{group}/{k}", v, row["step"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# -----------------------------------------------------------------------------
# main


def pick_device(device_arg: str | None) -> tuple[int, int, torch.device]:
    """(rank, world, device) from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and --device."""
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    dev = check_device(device_arg or ("cuda" if torch.cuda.is_available() else "cpu"))
    use_cuda = dev.type == "cuda"
    if world == 1:
        return 0, 1, dev
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return rank, world, torch.device("cuda", local) if use_cuda else torch.device("cpu")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", help="YAML config (ignored with --resume: the checkpoint's config is used)")
    p.add_argument("--out", default="runs/default", help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from <out>/ckpt.pt (fresh start if none)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after the step that passes this wall time")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in total")
    p.add_argument("--device", default=None, help="cuda, cuda:1 or cpu (default: cuda if available)")
    p.add_argument("overrides", nargs="*", help="config overrides key=value, e.g. lr=5e-4 model.width=4")
    args = p.parse_args(argv)
    if not args.resume and args.config is None:
        p.error("--config is required unless --resume")
    return args


def main(argv: list[str] | None = None) -> dict:
    """Train; returns {'step', 'epoch', 'best_val_acc', 'last_eval', 'state_dict', 'stopped'}."""
    t_start = time.time()
    args = parse_args(argv)
    out = Path(args.out)
    ckpt_path = out / "ckpt.pt"
    rank, world, device = pick_device(args.device)
    master = rank == 0
    say = print if master else (lambda *a, **k: None)

    ckpt = None
    if args.resume and not ckpt_path.exists():
        # a typo in --out must not silently start the full paper config from scratch
        raise ValueError(f"--resume: no checkpoint at {ckpt_path}; check --out, or start a new run with --config")
    if args.resume:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "optimizer" not in ckpt:
            raise ValueError(f"{ckpt_path}: not a gwviz training checkpoint")
        # keys added since the checkpoint was written take their defaults
        cfg = validate_config(apply_overrides({**copy.deepcopy(DEFAULTS), **ckpt["config"]}, args.overrides))
        say(f"resuming {ckpt_path} at step {ckpt['step']}")
    else:
        if ckpt_path.exists():
            raise ValueError(f"{ckpt_path} exists: pass --resume to continue it, or choose another --out")
        cfg = load_config(args.config, args.overrides)
    if args.max_steps is not None:
        cfg["max_steps"] = args.max_steps
    if cfg["batch_size"] % world:
        raise ValueError(f"batch_size {cfg['batch_size']} is not divisible by the {world} ranks")
    if master:
        writable_dir(out)

    on_cuda = device.type == "cuda"
    if on_cuda:  # TF32 matmuls/convs: free speed, far below the noise of this problem
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    use_bf16 = bool(cfg["bf16"]) and on_cuda
    autocast = autocast_for(device, use_bf16)

    # --- data. Rank 0 builds the banks before the process group and CUDA exist, so the builder's worker
    # processes fork a parent without communication threads; the rendezvous then doubles as a barrier.
    seed = int(cfg["seed"])
    banks = [(out / "bank.pt", cfg["bank_per_class"], seed), (out / "val_bank.pt", cfg["val_bank_per_class"], seed + 1)]
    if master:
        bank, val_bank = (get_bank(path, n, s, cfg["workers"]) for path, n, s in banks)
    if world > 1:
        # a long timeout: the other ranks wait here while rank 0 builds the banks
        dist.init_process_group("nccl" if on_cuda else "gloo", timeout=timedelta(minutes=60))
        if on_cuda:
            torch.cuda.set_device(device)
    if not master:
        bank, val_bank = (WaveformBank.load(path) for path, _, _ in banks)
    bank, val_bank = bank.to(device), val_bank.to(device)
    real = load_real(cfg["real_data"]) if cfg["real_data"] else None
    strain, train_range, val_range = real if real is not None else (None, None, None)
    maker = BatchMaker(bank, device, real_strain=strain, real_range=train_range, p_real=cfg["p_real"],
                       detector_dropout=cfg["detector_dropout"])
    val_maker = BatchMaker(val_bank, device, real_strain=strain, real_range=val_range, p_real=cfg["p_real"])
    validator = Validator(val_maker, cfg["val_samples"], cfg["val_batch"], seed, device, cfg["val_cache_gib"],
                          rank, world)

    # --- model and optimiser
    torch.manual_seed(seed)  # the same initial weights on every rank and every run
    model_cfg = ModelConfig.from_dict(cfg["model"])
    raw = GWNet.from_config(model_cfg).to(device)
    say(f"GWNet(width={model_cfg.width}, hidden={model_cfg.hidden}): {raw.n_parameters():,} parameters; "
        f"device {device}, world {world}, bf16 {use_bf16}, compile {bool(cfg['compile']) and on_cuda}")
    # fused Adam: one kernel for all parameters instead of a few per tensor (CUDA only)
    opt = torch.optim.Adam(raw.parameters(), lr=cfg["lr"], fused=on_cuda)
    step, best_acc, wall_before, last_eval = 0, -1.0, 0.0, {}
    if ckpt is not None:
        model_state, opt_state = ckpt["model"], ckpt["optimizer"]
        if model_cfg.detector_mask and model_state[MASK_INPUT_TENSORS[0]].shape[1] == len(DETECTORS):
            say("the checkpoint is a paper network: adding the detector mask (zero weights, same outputs)")
            model_state, opt_state = add_detector_mask(model_state), widen_adam_state(opt_state, raw)
        raw.load_state_dict(model_state)
        opt.load_state_dict(opt_state)
        step, best_acc = int(ckpt["step"]), float(ckpt["best_val_acc"])
        wall_before, last_eval = float(ckpt["info"]["wall_s"]), dict(ckpt["last_eval"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if on_cuda and ckpt["rng"]["cuda"] is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
    fwd = torch.compile(raw) if cfg["compile"] and on_cuda else raw  # eval runs here: no DDP collectives
    train_model = fwd
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(fwd, device_ids=[device.index] if on_cuda else None)

    def sync_buffers() -> None:
        """BatchNorm running stats drift apart across ranks (each sees its own batch): take rank 0's."""
        if world > 1:
            for b in raw.buffers():
                dist.broadcast(b, 0)

    # --- schedule
    batch = cfg["batch_size"]
    local_batch = batch // world
    steps_per_epoch = cfg["samples_per_epoch"] // batch
    total = math.ceil(cfg["epochs"] * steps_per_epoch)
    end = total if cfg["max_steps"] is None else min(total, cfg["max_steps"])
    eval_every = cfg["eval_every_steps"] or steps_per_epoch
    say(f"{steps_per_epoch} steps/epoch of {batch} ({local_batch}/rank), {total} steps in all, this run to {end}")

    metrics = Metrics(out, step if ckpt is not None else None) if master else None
    gens = [torch.Generator(device=device) for _ in range(2)]  # the batch in flight and the next one

    def make_batch(s: int):
        """The batch of step ``s``: it depends on (seed, s, rank) alone, never on history."""
        snr_s = snr_range_at(cfg["curriculum"], s / steps_per_epoch)
        return maker(local_batch, gens[s % 2].manual_seed(data_seed(seed, s, rank)), snr_range=snr_s)

    prefetch = Prefetcher(make_batch, device)

    def check_finite(what: str) -> None:
        """Stop a diverged run before it writes anything: the last checkpoint stays the last good one."""
        named = list(raw.named_parameters())
        # one device round trip for all tensors and the loss (a bool() per tensor would be one each)
        ok = torch.stack([torch.isfinite(p).all() for _, p in named] + [torch.isfinite(loss_sum)]).cpu()
        bad = [n for (n, _), good in zip(named, ok[:-1]) if not good]
        if bad or not ok[-1]:
            raise FloatingPointError(f"training diverged by step {step} ({what}: non-finite "
                                     f"{'weights ' + ', '.join(bad[:3]) if bad else 'loss'}); nothing was written "
                                     f"after the last checkpoint {ckpt_path}. Resume it with a lower lr "
                                     f"(python train.py --resume --out {out} lr=...)")

    def info_dict() -> dict:
        return {"steps": step, "epoch": step / steps_per_epoch, "samples_seen": step * batch,
                "wall_s": wall_before + time.time() - t_start, "world_size": world, "torch": str(torch.__version__),
                "device": torch.cuda.get_device_name(device) if on_cuda else "cpu",
                **{k: v for k, v in last_eval.items() if k != "step"}, "val_step": last_eval.get("step")}

    def weights_config() -> dict:
        # model keys at the top level: gwviz.classifier builds GWNet.from_config(this)
        return {**model_cfg.to_dict(), "train": cfg}

    def save_checkpoint() -> None:
        check_finite("before writing a checkpoint")
        sync_buffers()
        if not master:
            return
        atomic_torch_save({
            "format": FORMAT, "model": to_cpu(raw.state_dict()), "model_config": model_cfg.to_dict(),
            "optimizer": to_cpu(opt.state_dict()), "step": step, "epoch": step / steps_per_epoch,
            "best_val_acc": best_acc, "last_eval": last_eval, "config": cfg, "info": info_dict(),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if on_cuda else None},
        }, ckpt_path)
        save_weights(raw, out / "last.safetensors", weights_config(), {**info_dict(), "kind": "last"})

    # SIGTERM (preemption, timeout) -> stop after this step and checkpoint, like --max-minutes
    stop_signal: list[bool] = []
    old_handler = None
    if master and threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGTERM, lambda *_: stop_signal.append(True))

    raw.train()
    bar = tqdm(total=end, initial=step, desc="train", disable=not master, dynamic_ncols=True)
    loss_sum, loss_n = torch.zeros((), device=device), 0
    t_log, step_log, t_ckpt = time.time(), step, time.time()
    stopped, last_loss = None, float("nan")
    if step < end:
        prefetch.launch(step)
    try:
        while step < end:
            epoch = step / steps_per_epoch
            snr = snr_range_at(cfg["curriculum"], epoch)
            x, y, _ = prefetch.take()
            lr = lr_at(cfg, step, total)
            for group in opt.param_groups:
                group["lr"] = lr
            loss_sum += train_step(train_model, opt, x, y, autocast)
            if step + 1 < end:  # queued behind this step's kernels, so the GPU runs the two side by side
                prefetch.launch(step + 1)
            loss_n += 1
            step += 1
            bar.update(1)

            row = {}
            if step % cfg["log_every"] == 0 or step == end:
                check_finite("training loss")
                now = time.time()
                row = {"train_loss": loss_sum.item() / loss_n,
                       "samples_per_s": (step - step_log) * batch / (now - t_log)}
                loss_sum.zero_()
                loss_n, t_log, step_log = 0, now, step
            if step % eval_every == 0 or step == total:
                t_eval = time.time()
                if cfg["bn_batches"]:  # own seed: the training stream (and a resumed run) is unchanged
                    recalibrate(raw, maker, cfg["bn_batches"], local_batch, data_seed(seed, step, BN_TAG), snr,
                                autocast=autocast)  # the maker's own p_real mix
                sync_buffers()
                last_eval = {**validator(fwd, autocast), "step": step}
                t_log += time.time() - t_eval  # samples/s counts training time only
                row.update({k: v for k, v in last_eval.items() if k != "step"})
                if master and last_eval["val_acc"] > best_acc:
                    best_acc = last_eval["val_acc"]
                    save_weights(raw, out / "best.safetensors", weights_config(), {**info_dict(), "kind": "best"})
            if row and master:
                row.update({"step": step, "epoch": step / steps_per_epoch, "samples": step * batch,
                            "wall_s": wall_before + time.time() - t_start, "snr_low": snr[0], "snr_high": snr[1],
                            "lr": lr})
                metrics.write(row)
                last_loss = row.get("train_loss", last_loss)  # an eval-only row has no loss: show the last one
                bar.set_postfix(loss=f"{last_loss:.4f}", snr=f"{snr[0]:g}-{snr[1]:g}",
                                acc=f"{last_eval.get('val_acc', float('nan')):.3f}")

            # stop / checkpoint decisions are rank 0's clock, shared so all ranks act at the same step
            out_of_time = args.max_minutes is not None and time.time() - t_start > 60 * args.max_minutes
            ckpt_due = time.time() - t_ckpt > 60 * cfg["checkpoint_minutes"]
            stop_now = bool(stop_signal) or out_of_time
            if world > 1:  # one world == 1 run never synchronises with the device here
                flags = torch.tensor([float(stop_now), float(ckpt_due)], device=device)
                dist.broadcast(flags, 0)
                stop_now, ckpt_due = bool(flags[0].item()), bool(flags[1].item())
            if stop_now and step < end:
                stopped = "signal" if stop_signal else "max-minutes"
                say(f"\nstopping at step {step} ({stopped})")
                break
            if ckpt_due and step < end:
                save_checkpoint()
                t_ckpt = time.time()
    finally:  # also when killed by an exception: restore the caller's SIGTERM handler
        bar.close()
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
    save_checkpoint()
    if master:
        metrics.close()
        say(f"done: step {step}/{total}, best val acc {best_acc:.4f}, checkpoint {ckpt_path}")
    result = {"step": step, "epoch": step / steps_per_epoch, "best_val_acc": best_acc, "last_eval": last_eval,
              "state_dict": {k: v.detach().cpu().clone() for k, v in raw.state_dict().items()}, "stopped": stopped}
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    run_cli(main, "train.py")  # bad config/paths, divergence: a message, not a traceback
