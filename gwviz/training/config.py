"""The training configuration: defaults (the paper's recipe), YAML + ``key=value`` overrides, validation,
and the schedules it defines (learning rate, SNR curriculum). Used by :mod:`gwviz.training.loop`."""
from __future__ import annotations

import copy
import math
import os

import yaml

from ..constants import CLASSES
from ..data.params import MAX_SNR, SNR_RANGE, is_real_number
from ..data.psd import check_psd_jitter

# -----------------------------------------------------------------------------
# config

DEFAULTS: dict = {
    "model": {"width": 8, "hidden": 64, "detector_mask": 0, "dilate": 0},
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
    "p_real": 0.0,              # fraction of samples in real noise, mixed in every batch (needs real_data)
    "class_weights": None,      # relative frequency of noise, BBH, NSBH, BNS in training batches (4 positive
                                # numbers); null: uniform, as the paper. Validation stays uniform.
    "psd_jitter": 0.0,          # σ of random smooth PSD reshapes of the simulated noise per sample and detector
                                # (gwviz.data.batch.BatchMaker); 0: the O3 fits. Validation stays on the fits.
    "detector_dropout": 0.0,    # fraction of samples seen by 1 or 2 detectors only (needs model.detector_mask=1;
                                # gwviz.data.batch.subset_probabilities); validation always uses all three
    "real_data": None,          # .npz of real noise: strain (3, N) [strain] at 4096 Hz (see load_real)
    "compile": False,           # torch.compile (CUDA only): false, true or autotune (Triton kernels timed
                                # against cuDNN per shape, 1.12x on the H200; gwviz.training.parts.compile_model)
    "bf16": False,              # bf16 autocast (CUDA only)
    "checkpoint_minutes": 10.0,
    "workers": 0,               # processes building the waveform bank; 0 = all CPU cores
    "log_every": 10,            # steps between metric rows
    "eval_every_steps": 0,      # 0: evaluate at every epoch end (and at the last step)
    "bn_batches": 0,            # > 0: before each evaluation, re-estimate BatchNorm statistics over this many
                                # training-distribution batches (gwviz.training.bnstats). Off by default: it steadies the
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
    """Set 'key=value' / 'model.width=4' pairs on a copy of ``cfg``.

    Parameters
    ----------
    cfg : dict
        A config (not modified).
    overrides : list of str
        ``key=value`` items; a dotted key reaches into a section; values are parsed as YAML ('1e-3' as a
        float).

    Returns
    -------
    dict
        The new config, not validated.

    Raises
    ------
    ValueError
        An item without '=', or a dotted key whose parent is not a section (dict) of the config.
    """
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
    """DEFAULTS <- YAML file <- overrides, validated.

    Parameters
    ----------
    path : str, path-like or None
        YAML mapping; its ``model`` mapping is merged key by key into the default one, other keys replace
        the defaults. None: the defaults only.
    overrides : list of str, optional
        ``key=value`` items (:func:`apply_overrides`). Default none.

    Returns
    -------
    dict
        The validated config (:func:`validate_config`).

    Raises
    ------
    ValueError
        The file is not a mapping, a bad override, or a bad config.
    OSError
        The file cannot be read.
    """
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        with open(path) as f:
            user = yaml.safe_load(f) or {}
        if not isinstance(user, dict):
            raise ValueError(f"{path}: a config must be a mapping of keys to values")
        for k, v in user.items():
            cfg[k] = {**cfg[k], **v} if k == "model" and isinstance(v, dict) else v
    return validate_config(apply_overrides(cfg, list(overrides)))


def check_compile(how) -> bool | str:
    """``how`` if it is a value of the config key ``compile`` (false, true or 'autotune'), else ValueError."""
    if not (how is True or how is False or how == "autotune"):
        raise ValueError(f"compile must be true, false or autotune, got {how!r}")
    return how


def validate_config(cfg: dict) -> dict:
    """Check a config, in place: unknown keys and bad values raise.

    Numbers written as '1e-3' (PyYAML reads them as strings) become floats (lr, epochs,
    checkpoint_minutes, val_cache_gib, p_real, detector_dropout, lr_min).

    Parameters
    ----------
    cfg : dict
        A config with every key of ``DEFAULTS``.

    Returns
    -------
    dict
        ``cfg`` itself.

    Raises
    ------
    ValueError
        Unknown keys (top level or in ``model``); class_weights not null or four positive numbers; psd_jitter
        not in [0, 2]; compile not
        true, false or autotune; bf16 not a boolean; detector_mask or dilate not 0 or 1; detector_dropout outside [0, 1)
        or > 0 without detector_mask; counts that are not positive (or non-negative) integers; lr, epochs,
        checkpoint_minutes or val_cache_gib not > 0; samples_per_epoch < batch_size; p_real outside [0, 1] or
        > 0 without real_data; an unknown lr_schedule; lr_min outside [0, lr]; a curriculum that is not a
        non-empty list of {until_epoch, snr_low, snr_high} with 0 < snr_low < snr_high <= MAX_SNR and increasing
        until_epoch.
    """
    for k in ("lr", "epochs", "checkpoint_minutes", "val_cache_gib", "p_real", "detector_dropout"):
        if isinstance(cfg.get(k), str):
            try:
                cfg[k] = float(cfg[k])
            except ValueError:
                raise ValueError(f"{k} must be a number, got {cfg[k]!r}") from None
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    if set(cfg["model"]) - {"width", "hidden", "detector_mask", "dilate"}:
        raise ValueError(f"model takes width, hidden, detector_mask and dilate, got {sorted(cfg['model'])}")
    for key in ("detector_mask", "dilate"):
        if cfg["model"].get(key, 0) not in (0, 1) or isinstance(cfg["model"].get(key), bool):
            raise ValueError(f"model.{key} must be 0 or 1, got {cfg['model'].get(key)!r}")
    if not isinstance(cfg["detector_dropout"], (int, float)) or not 0.0 <= cfg["detector_dropout"] < 1.0:
        raise ValueError(f"detector_dropout must be a number in [0, 1), got {cfg['detector_dropout']!r}")
    if cfg["detector_dropout"] > 0 and not cfg["model"].get("detector_mask", 0):
        raise ValueError("detector_dropout > 0 needs model.detector_mask=1 (else a dropped detector is zeros "
                         "pretending to be data)")
    w = cfg["class_weights"]
    if w is not None and (not isinstance(w, list) or len(w) != len(CLASSES) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in w)):
        raise ValueError(f"class_weights must be null or {len(CLASSES)} positive numbers for {list(CLASSES)}, "
                         f"got {w!r}")
    check_psd_jitter(cfg["psd_jitter"])
    check_compile(cfg["compile"])
    if not isinstance(cfg["bf16"], bool):
        raise ValueError(f"bf16 must be true or false, got {cfg['bf16']!r}")
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
        if not all(is_real_number(stage[k]) for k in ("snr_low", "snr_high")) or \
                not 0 < stage["snr_low"] < stage["snr_high"] <= MAX_SNR:
            raise ValueError(f"curriculum stage {stage!r}: need numbers 0 < snr_low < snr_high <= {MAX_SNR:g}")
        if not is_real_number(stage["until_epoch"]) or not stage["until_epoch"] > last:
            raise ValueError(f"curriculum until_epoch must increase, got {stage['until_epoch']!r} after {last}")
        last = stage["until_epoch"]
    return cfg


def lr_at(cfg: dict, step: int, total: int | None = None) -> float:
    """Learning rate of step ``step`` (0-based) of ``total``.

    Linear warm-up over ``warmup_steps``, then constant, or (``lr_schedule: cosine``) a half cosine from
    ``lr`` at ``decay_from`` to ``lr_min`` at ``total``. The warm-up factor multiplies either schedule.

    Parameters
    ----------
    cfg : dict
        Validated config (lr, lr_schedule, lr_min, decay_from, warmup_steps).
    step : int
        Step, 0-based.
    total : int or None, optional
        Steps of the whole run; None (default): no cosine decay.

    Returns
    -------
    float
    """
    lr = cfg["lr"]
    if cfg.get("lr_schedule", "constant") == "cosine" and total is not None and step >= cfg["decay_from"]:
        frac = min(1.0, (step - cfg["decay_from"]) / max(1, total - cfg["decay_from"]))
        lr = cfg["lr_min"] + (lr - cfg["lr_min"]) * 0.5 * (1.0 + math.cos(math.pi * frac))
    return lr * min(1.0, (step + 1) / cfg["warmup_steps"]) if cfg["warmup_steps"] else lr


def snr_range_at(curriculum: list[dict], epoch: float) -> tuple[float, float]:
    """Network-SNR range of the first stage with epoch < until_epoch (the last stage beyond them all).

    Parameters
    ----------
    curriculum : list of dict
        Stages {until_epoch, snr_low, snr_high}, non-empty.
    epoch : float
        Epoch, may be fractional.

    Returns
    -------
    (float, float)
        (snr_low, snr_high).
    """
    for stage in curriculum:
        if epoch < stage["until_epoch"]:
            break
    return float(stage["snr_low"]), float(stage["snr_high"])
