"""Weights on disk: atomic writes, safe loads.

Shipped weights are safetensors (no pickle) with the model config and provenance in the header
metadata. Training checkpoints (model + optimiser + RNG state) are torch files loaded with
``weights_only=True``. Every write goes to a temporary file first and is renamed into place, so
a kill mid-write never leaves a truncated file where a good one was.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

FORMAT = "gwviz-gwnet-v1"


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """torch.save to ``path`` via a temporary file and os.replace (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_weights(model: torch.nn.Module, path: str | os.PathLike, config: dict, info: dict | None = None) -> None:
    """Write a model's state dict as safetensors with {format, config, info} metadata, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={"format": FORMAT, "config": json.dumps(config), "info": json.dumps(info or {})})
    os.replace(tmp, path)


def load_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """Read (state_dict, config, info) from a gwviz safetensors file or a training checkpoint.

    Raises ValueError for missing, corrupt or foreign files (never unpickles arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not gwviz weights (format {meta.get('format')!r}, expected {FORMAT!r})")
        return state, json.loads(meta["config"]), json.loads(meta.get("info", "{}"))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle/zip errors come in many types
        raise ValueError(f"{path}: not a readable weights-only torch checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "model" not in ckpt:
        raise ValueError(f"{path}: not a gwviz checkpoint (expected a dict with format {FORMAT!r})")
    return ckpt["model"], ckpt.get("model_config", {}), ckpt.get("info", {})
