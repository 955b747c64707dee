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

from ..constants import DETECTORS

FORMAT = "gwviz-gwnet-v1"


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """torch.save to ``path`` via a temporary file, fsync and os.replace (atomic on POSIX).

    Parameters
    ----------
    obj : object
        What to save (a training checkpoint: model, optimiser and RNG state).
    path : str or path-like
        Destination; its folder is created. The temporary file is ``<path>.tmp``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_weights(model: torch.nn.Module, path: str | os.PathLike, config: dict, info: dict | None = None) -> None:
    """Write a model's state dict as safetensors with {format, config, info} metadata, atomically.

    Parameters
    ----------
    model : torch.nn.Module
        The network; its tensors are written detached, on the CPU, contiguous.
    path : str or path-like
        Destination (``.safetensors``); its folder is created.
    config : dict
        Model config (:meth:`gwviz.model.network.ModelConfig.to_dict`, plus provenance), stored as JSON.
    info : dict or None, optional
        Provenance stored as JSON. Default None: ``{}``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={"format": FORMAT, "config": json.dumps(config), "info": json.dumps(info or {})})
    os.replace(tmp, path)


#: Largest model config a weights file may ask for (shipped: width 8, hidden 64). Checked before
#: anything is allocated: a 3 MB file whose config said width 1024 made GWNet allocate > 5 GB.
MAX_WIDTH: int = 128
MAX_HIDDEN: int = 4096
#: safetensors dtype codes of floating-point tensors.
_FLOAT_CODES = {"F16", "BF16", "F32", "F64"}
#: Floating-point dtypes narrower than the float32 gwviz trains and saves in (safetensors codes).
_LOSSY_CODES = {"F16": "float16", "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def check_precision(dtypes: dict[str, str], source: str) -> None:
    """Refuse weights stored narrower than float32 (float16, bfloat16, float8).

    gwviz saves float32; a narrower file is a lossy copy whose outputs are not those the thresholds in
    the file were calibrated on (``gwviz.evaluation.calibration``): the shipped weights rounded to
    float16 move the detection statistic λ by 0.05 (median; max 0.09), to bfloat16 by 0.11 (max 0.37,
    one argmax of 64 windows changed), against thresholds λ ≈ 2.1 (FPR 1e-2) and 4.0 (1e-3). So the
    file is refused instead of silently widened.

    Parameters
    ----------
    dtypes : dict of str to str
        Tensor name -> safetensors dtype code ('F32', 'F16', 'I64', ...).
    source : str
        File name for messages.

    Raises
    ------
    ValueError
        Naming the narrow tensors (first three) and their dtype.
    """
    lossy = [f"{k} ({_LOSSY_CODES[d]})" for k, d in dtypes.items() if d in _LOSSY_CODES]
    if lossy:
        raise ValueError(f"{source}: {len(lossy)} tensors stored below float32 precision, e.g. "
                         + ", ".join(lossy[:3]) + ": a lossy copy of the weights (gwviz saves float32; "
                         "the calibrated thresholds do not hold for it); use the float32 file")


def check_model_config(config, source: str, shapes: dict | None = None) -> dict:
    """Validate the model config of a weights file before any model is built.

    Parameters
    ----------
    config : object
        The decoded config (must be a dict). Other keys than ``width``, ``hidden``, ``detector_mask`` and ``dilate``
        (e.g. ``train``) are provenance and pass through.
    source : str
        File name for messages.
    shapes : dict, optional
        Tensor name -> shape of the file: where ``width`` or ``hidden`` is absent it is read
        from them (older checkpoints), else :class:`gwviz.model.network.ModelConfig`'s default is used;
        where ``detector_mask`` is absent, it is 1 if the first convolution has 6 input channels, else 0.
        The tensors are then checked against the result, so nothing is guessed silently.

    Returns
    -------
    dict
        A copy of ``config`` with int ``width``, ``hidden``, ``detector_mask`` and ``dilate`` (0 or 1; absent: 0).

    Raises
    ------
    ValueError
        Not a dict; width/hidden not an int (bools, floats and strings refused), < 1 or above
        :data:`MAX_WIDTH` / :data:`MAX_HIDDEN`; detector_mask or dilate not 0 or 1.
    """
    from .network import ModelConfig
    if not isinstance(config, dict):
        raise ValueError(f"{source}: model config must be a JSON object like {{\"width\": 8, \"hidden\": 64}}, "
                         f"got {type(config).__name__}")
    shapes = shapes or {}
    inferred = {key: (shapes.get(name) or (None,))[0]
                for key, name in (("width", "resnet.blocks.0.conv1.weight"), ("hidden", "head.1.weight"))}
    out = dict(config)
    for key, hi in (("width", MAX_WIDTH), ("hidden", MAX_HIDDEN)):
        v = config[key] if key in config else (inferred[key] or getattr(ModelConfig(), key))
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{source}: model config {key} must be an integer, got {v!r} ({type(v).__name__})")
        if not 1 <= v <= hi:
            raise ValueError(f"{source}: model config {key} = {v} is outside [1, {hi}]; the file is corrupt or not "
                             "gwviz weights")
        out[key] = v
    # an older file lacks the switches: its first convolution's input channels say whether it has the
    # detector mask (3: no, 6: yes); dilation leaves no trace in the shapes, so absent means the paper's ResNet
    c_in = (shapes.get("resnet.blocks.0.conv1.weight") or (None, None))[1]
    for key, absent in (("detector_mask", 1 if c_in == 2 * len(DETECTORS) else 0), ("dilate", 0)):
        v = config.get(key, absent)
        if isinstance(v, bool) or v not in (0, 1):
            raise ValueError(f"{source}: model config {key} must be 0 or 1, got {v!r}")
        out[key] = int(v)
    return out


def expected_tensors(config: dict) -> dict[str, tuple[tuple[int, ...], bool]]:
    """What GWNet(config)'s state dict holds, built on the 'meta' device: shapes without allocating a weight.

    Parameters
    ----------
    config : dict
        Model config (unknown keys ignored).

    Returns
    -------
    dict of str to (tuple of int, bool)
        Name -> (shape, is floating point).
    """
    from .network import GWNet, ModelConfig
    with torch.device("meta"):
        model = GWNet.from_config(ModelConfig.from_dict(config))
    return {k: (tuple(v.shape), v.is_floating_point()) for k, v in model.state_dict().items()}


def check_tensors(found: dict[str, tuple[tuple[int, ...], bool]], config: dict, source: str) -> None:
    """Compare a file's tensor names, shapes and dtype kinds with what GWNet(config) needs.

    Parameters
    ----------
    found : dict of str to (tuple of int, bool)
        Name -> (shape, is floating point) of the file's tensors.
    config : dict
        Checked model config (:func:`check_model_config`).
    source : str
        File name for messages.

    Raises
    ------
    ValueError
        Listing missing, unexpected and misshapen tensors (first five of each), or tensors whose
        dtype kind (floating/integer) differs.
    """
    want = expected_tensors(config)
    problems = []
    missing, extra = sorted(set(want) - set(found)), sorted(set(found) - set(want))
    shape = [f"{k} {found[k][0]} (expected {want[k][0]})" for k in want if k in found and found[k][0] != want[k][0]]
    kind = [f"{k} ({'float' if found[k][1] else 'integer'}, expected {'float' if want[k][1] else 'integer'})"
            for k in want if k in found and found[k][1] != want[k][1]]
    for label, items in (("missing", missing), ("unexpected", extra), ("misshapen", shape), ("wrong dtype", kind)):
        if items:
            problems.append(f"{len(items)} {label}: " + ", ".join(items[:5]) + (" ..." if len(items) > 5 else ""))
    if problems:
        cfg = {k: config.get(k) for k in ("width", "hidden")}
        if config.get("detector_mask"):
            cfg["detector_mask"] = 1
        raise ValueError(f"{source}: tensors do not fit GWNet({cfg}): " + "; ".join(problems))


def check_values(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse NaN/inf weights and negative BatchNorm variances.

    They give NaN or garbage outputs that the argmax turned into a confident 'noise'.

    Parameters
    ----------
    state : dict of str to tensor
        State dict; integer tensors are skipped.
    source : str
        File name for messages.

    Raises
    ------
    ValueError
        Naming the first bad tensor.
    """
    for k, v in state.items():
        if not v.is_floating_point():
            continue
        bad = int((~torch.isfinite(v)).sum())
        if bad:
            raise ValueError(f"{source}: tensor {k} has {bad} NaN/inf values of {v.numel()}: the weights are corrupt "
                             "(e.g. a diverged training run); use another checkpoint")
        if k.endswith("running_var") and bool((v < 0).any()):
            raise ValueError(f"{source}: tensor {k} has negative variances: the weights are corrupt")


def _json_field(meta: dict, key: str, source: str, default: str | None = None):
    text = meta.get(key, default)
    if text is None:
        raise ValueError(f"{source}: safetensors metadata lacks {key!r}; not gwviz weights (write them with "
                         "gwviz.model.checkpoint.save_weights)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: metadata {key!r} is not JSON ({err}): {text[:80]!r}") from err


def load_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """Read (state_dict, config, info) from a gwviz safetensors file or a training checkpoint.

    Everything is checked before a model is built: the format tag, the config (types, bounds),
    the tensor names/shapes/dtypes against GWNet(config) (on the 'meta' device), then the values
    (finite). Never unpickles arbitrary objects (safetensors, or torch.load with weights_only).

    Parameters
    ----------
    path : str or path-like
        A ``.safetensors`` file written by :func:`save_weights`; any other suffix is read as a torch
        training checkpoint (a dict with ``format``, ``model``, optional ``model_config`` and ``info``).

    Returns
    -------
    state : dict of str to tensor
        State dict, on the CPU.
    config : dict
        Checked model config (:func:`check_model_config`).
    info : dict
        Provenance.

    Raises
    ------
    ValueError
        Missing, corrupt, foreign or inconsistent files, naming the file and the problem.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"weights path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: a directory, not a weights file (give the .safetensors file itself)")
    if not path.is_file():
        raise ValueError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != FORMAT:
                    raise ValueError(f"{path}: not gwviz weights (format {meta.get('format')!r}, expected {FORMAT!r})")
                found = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype() in _FLOAT_CODES)
                         for k in f.keys()}
                check_precision({k: f.get_slice(k).get_dtype() for k in f.keys()}, str(path))
                config = check_model_config(_json_field(meta, "config", str(path)), str(path),
                                            {k: v[0] for k, v in found.items()})
                info = _json_field(meta, "info", str(path), "{}")
                check_tensors(found, config, str(path))  # before reading any tensor data
                state = {k: f.get_tensor(k) for k in f.keys()}
        except ValueError:
            raise
        except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    else:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - pickle/zip errors come in many types
            first = (str(err).strip().splitlines() or [""])[0][:200]  # torch appends a page of advice
            raise ValueError(f"{path}: not a readable weights-only torch checkpoint ({type(err).__name__}: {first}); "
                             "give a gwviz .safetensors file or training checkpoint") from err
        if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "model" not in ckpt:
            raise ValueError(f"{path}: not a gwviz checkpoint (expected a dict with format {FORMAT!r})")
        state, config, info = ckpt["model"], ckpt.get("model_config", {}), ckpt.get("info", {})
        if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                  for k, v in state.items()):
            raise ValueError(f"{path}: 'model' must be a state dict of named tensors")
        config = check_model_config(config, str(path), {k: tuple(v.shape) for k, v in state.items()})
        check_tensors({k: (tuple(v.shape), v.is_floating_point()) for k, v in state.items()}, config, str(path))
        check_precision({k: {torch.float16: "F16", torch.bfloat16: "BF16", torch.float8_e4m3fn: "F8_E4M3",
                             torch.float8_e5m2: "F8_E5M2"}.get(v.dtype, "") for k, v in state.items()}, str(path))
    if not isinstance(info, dict):
        raise ValueError(f"{path}: info must be a JSON object, got {type(info).__name__}")
    check_values(state, str(path))
    return state, config, info
