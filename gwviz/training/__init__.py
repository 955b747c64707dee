"""Training GWNet as Sasaoka et al. (2023) did (``python train.py --config configs/paper.yaml``):
:mod:`~gwviz.training.config` (the recipe and its checks), :mod:`~gwviz.training.parts` (step,
prefetcher, validator, metrics log) and :mod:`~gwviz.training.loop` (the run: resume, DDP, checkpoints)."""
from .config import DEFAULTS, load_config, lr_at, snr_range_at, validate_config
from .loop import main
from .parts import Prefetcher, autocast_for, compile_model, data_seed, pick_device, train_step

__all__ = ["DEFAULTS", "Prefetcher", "autocast_for", "compile_model", "data_seed", "load_config", "lr_at", "main", "pick_device",
           "snr_range_at", "train_step", "validate_config"]
