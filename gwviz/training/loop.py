"""The training run of GWNet (DAIN + ResNet-54) on batches made on the fly, after Sasaoka et al. (2023).

    python train.py --config configs/paper.yaml --out runs/paper [--resume] [--max-minutes 25]
                    [--max-steps N] [--device cuda|cpu] [key=value ...]     e.g. lr=5e-4 model.width=4
    torchrun --nproc_per_node=4 train.py --config configs/h100.yaml --out runs/ddp

Data. Nothing is read from disk: a bank of waveforms per class (``bank_per_class``, built once with
all CPU cores, cached in <out>/bank.pt) lives on the training device, and every step draws fresh sky
positions, SNRs, merger times and noise through gwviz.data.batch.BatchMaker (the one synthesis path,
gwviz.data.synth.synthesize). The SNR range follows ``curriculum`` (high to low SNR, ending at the paper's
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
gwviz.model.checkpoint.save_weights), metrics.csv, tb/ (TensorBoard), bank.pt, val_bank.pt (+ .json keys).

Tests: tests/test_train.py (CPU). Throughput: bench/bench_train.py.
"""
from __future__ import annotations

import argparse
import copy
import math
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..data.bank import WaveformBank, get_bank

from ..data.batch import BatchMaker, load_real
from ..model.checkpoint import FORMAT, atomic_torch_save, save_weights
from .bnstats import recalibrate
from ..constants import DETECTORS, SAMPLE_RATE
from ..model.network import MASK_INPUT_TENSORS, GWNet, ModelConfig, add_detector_mask
from ..paths import writable_dir
from .config import DEFAULTS, apply_overrides, load_config, lr_at, snr_range_at, validate_config
from .parts import (BN_TAG, Metrics, Prefetcher, Validator, autocast_for, compile_model, data_seed, pick_device,
                    to_cpu, train_step, widen_adam_state)

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments of train.py (see the module docstring); ``--config`` is required unless ``--resume``."""
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
    if args.config is not None and not args.resume and not Path(args.config).is_file():
        p.error(f"--config {args.config}: no such file")
    if args.max_minutes is not None and not (math.isfinite(args.max_minutes) and args.max_minutes > 0):
        p.error(f"--max-minutes must be a number > 0, got {args.max_minutes:g}")
    if args.max_steps is not None and args.max_steps < 0:
        p.error(f"--max-steps must be >= 0, got {args.max_steps}")
    return args


def main(argv: list[str] | None = None) -> dict:
    """Train (see the module docstring); with ``argv`` None the arguments come from ``sys.argv``.

    Parameters
    ----------
    argv : list of str or None, optional
        Arguments of train.py: ``--config``, ``--out``, ``--resume``, ``--max-minutes``, ``--max-steps``,
        ``--device`` and ``key=value`` overrides. Default None: ``sys.argv[1:]``.

    Returns
    -------
    dict
        ``step``, ``epoch``, ``best_val_acc``, ``last_eval`` (the last validation metrics), ``state_dict``
        (a CPU copy of the final weights) and ``stopped`` (None, 'signal' or 'max-minutes').

    Raises
    ------
    ValueError
        --resume without a checkpoint, a checkpoint that is not gwviz's, an existing checkpoint without
        --resume, a bad config, or a batch size not divisible by the number of ranks.
    FloatingPointError
        Training diverged (non-finite loss or weights); nothing is written after the last checkpoint.
    """
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
        try:
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - a truncated or foreign file fails in pickle, zip or torch
            first = (str(err).strip().splitlines() or [""])[0][:200]
            raise ValueError(f"{ckpt_path}: not a readable training checkpoint ({type(err).__name__}: {first}); "
                             "it was left as it is") from err
        if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "optimizer" not in ckpt:
            raise ValueError(f"{ckpt_path}: not a gwviz training checkpoint")
        # keys added since the checkpoint was written take their defaults (in the model section too)
        old = ckpt.get("config")
        if not isinstance(old, dict) or not isinstance(old.get("model"), dict):
            raise ValueError(f"{ckpt_path}: its config is not a mapping with a model section (a corrupt checkpoint?)")
        merged = {**copy.deepcopy(DEFAULTS), **old, "model": {**DEFAULTS["model"], **old["model"]}}
        cfg = validate_config(apply_overrides(merged, args.overrides))
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
    # read and checked before minutes of waveform-bank building: a missing or corrupt file fails at once
    real = load_real(cfg["real_data"]) if cfg["real_data"] else None

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
    strain, train_range, val_range = real if real is not None else (None, None, None)
    maker = BatchMaker(bank, device, real_strain=strain, real_range=train_range, p_real=cfg["p_real"],
                       detector_dropout=cfg["detector_dropout"], class_weights=cfg["class_weights"],
                       psd_jitter=cfg["psd_jitter"])
    val_maker = BatchMaker(val_bank, device, real_strain=strain, real_range=val_range, p_real=cfg["p_real"])
    validator = Validator(val_maker, cfg["val_samples"], cfg["val_batch"], seed, device, cfg["val_cache_gib"],
                          rank, world)

    # --- model and optimiser
    torch.manual_seed(seed)  # the same initial weights on every rank and every run
    model_cfg = ModelConfig.from_dict(cfg["model"])
    raw = GWNet.from_config(model_cfg).to(device)
    say(f"GWNet(width={model_cfg.width}, hidden={model_cfg.hidden}, dilate={model_cfg.dilate}): "
        f"{raw.n_parameters():,} parameters, receptive field {raw.resnet.receptive_field / SAMPLE_RATE:.2f} s; "
        f"device {device}, world {world}, bf16 {use_bf16}, compile {cfg['compile'] if on_cuda else False}")
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
    fwd = compile_model(raw, cfg["compile"], device)  # eval runs here: no DDP collectives
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
