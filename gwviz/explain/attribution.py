"""Attribution maps of the classifier as time profiles over the 4 s window.

Every method answers "which samples of this window made the model say
`target`?" with a (16384,) profile, one value per input sample at 4096 Hz, so
all methods can be drawn on the same time axis as the strain:

    gradcam               Grad-CAM (Selvaraju et al. 2017) on the last ResNet block,
                          linearly upsampled from 512 to 16384 samples; >= 0
    hirescam              HiResCAM (Draelos & Carin 2020) on the same layer: gradient x
                          activation summed over channels, no time-averaged weights; >= 0
    integrated_gradients  IG (Sundararajan et al. 2017) against a baseline window,
                          |attr| summed over detectors, moving-average smoothed; >= 0
    occlusion             drop in the target logit when a window of all detectors
                          is zeroed (Zeiler & Fergus 2014); signed

`randomisation_check` is the model-parameter randomisation sanity check of
Adebayo et al. (2018): a map that barely changes when the weights are random
explains the architecture, not what was learned.

Pure torch, plus captum for IG and occlusion: this module never synthesises data. captum is imported by the two methods
that use it (integrated gradients, occlusion), not with this module: importing it costs ~0.6 s (it
pulls in matplotlib), and the CAMs need only one gradient, so the app's first page does not pay for it.
"""
from __future__ import annotations

import copy
import threading
from typing import Literal

import numpy as np
import torch
import torch.nn as nn

from gwviz.constants import DETECTORS, WINDOW_SAMPLES

Method = Literal["gradcam", "hirescam", "integrated_gradients", "occlusion"]
METHODS: tuple[str, ...] = ("gradcam", "hirescam", "integrated_gradients", "occlusion")


def _as_batch(x: torch.Tensor | np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """(3, T) or (1, 3, T) tensor/array -> (1, 3, T) float32 tensor on `like`'s device."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    t = t.detach().to(device=like.device, dtype=torch.float32)
    if t.ndim == 2:
        t = t[None]
    expected = (1, len(DETECTORS), WINDOW_SAMPLES)
    if tuple(t.shape) != expected:
        raise ValueError(f"x must have shape (3, {WINDOW_SAMPLES}) or {expected}, got {tuple(t.shape)}")
    return t


def _n_classes(model: nn.Module, x: torch.Tensor) -> int:
    n = getattr(model, "n_classes", None)
    if n is None:  # not a GWNet: ask the model itself
        with torch.no_grad():
            n = model(x).shape[-1]
    return int(n)


def _moving_average(profile: torch.Tensor, n: int) -> torch.Tensor:
    """(T,) -> (T,) centred boxcar of n samples; edges average over fewer samples."""
    if n <= 1:
        return profile
    kernel = torch.ones(1, 1, n, dtype=profile.dtype, device=profile.device)
    pad = (n // 2, n - 1 - n // 2)  # explicit zero padding: works for even n too
    num = nn.functional.conv1d(nn.functional.pad(profile[None, None], pad), kernel)
    # dividing by the smoothed ones-vector normalises the truncated edge windows
    den = nn.functional.conv1d(nn.functional.pad(torch.ones_like(profile)[None, None], pad), kernel)
    return (num / den)[0, 0]


def _layer_gradient(model: nn.Module, layer: nn.Module, inp: torch.Tensor,
                    target) -> tuple[torch.Tensor, torch.Tensor]:
    """(dlogit/dA, A): the output A (1, C, L) of ``layer`` and the gradient of the ``target`` logit
    of ``model`` for ``inp`` (1, 3, T) with respect to it, both detached.

    ``target`` is a class index, or a callable that picks it from this pass's (1, n_classes) logits: a
    caller that decides the class and explains the decision from one forward pass (the classifier's
    ``classify_and_explain_window``).

    What captum's layer methods compute, from one forward hook and one ``torch.autograd.grad``:
    importing captum costs ~0.6 s (it pulls in matplotlib), which the app's first page would pay for
    its default map. The hook also keeps only this thread's forward: the app's model is shared, and
    a rerun's thread can run its own forward (e.g. a no_grad classification) while an older run is
    still here, which broke captum's hooks ("does not require grad", "not used in the graph")."""
    acts: list[torch.Tensor] = []
    me = threading.get_ident()
    hook = layer.register_forward_hook(lambda _m, _i, out: acts.append(out) if threading.get_ident() == me else None)
    try:
        # the input requires grad so that A does even for frozen weights; enable_grad: a caller in
        # torch.no_grad() still gets a map
        with torch.enable_grad():
            logits = model(inp.detach().requires_grad_(True))
            target = int(target(logits.detach()) if callable(target) else target)
            grad, = torch.autograd.grad(logits[:, target].sum(), acts[0])
    finally:
        hook.remove()
    return grad.detach(), acts[0].detach()


def explain_window(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    target: int,
    method: Method | str = "gradcam",
    *,
    baseline: torch.Tensor | np.ndarray | None = None,
    n_steps: int = 32,
    internal_batch_size: int = 4,
    smoothing: int = 64,
    occlusion_window: int = 512,
    occlusion_stride: int = 256,
    perturbations_per_eval: int = 4,
) -> np.ndarray:
    """Attribution of the ``target`` logit to each time sample of one window.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier mapping (B, 3, 16384) → (B, n_classes) logits; "gradcam" and "hirescam" need a
        ``cam_layer`` attribute (GWNet has one).
    x : (3, 16384) or (1, 3, 16384) tensor or ndarray
        Whitened strain (dimensionless, units of the noise σ).
    target : int or callable
        Class index into ``CLASSES``. The raw logit is explained, not the softmax, so evidence for one
        class is not mixed with evidence against the others. "gradcam" and "hirescam" also take a
        callable, (1, n_classes) logits -> class index, that picks the class from the map's own forward
        pass (a decision and its map from one pass: ``Classifier.classify_and_explain_window``).
    method : str, optional
        "gradcam" (default; as captum's LayerGradCam on the last block, ReLU), "hirescam" (Draelos &
        Carin 2020: gradient × activation of the same layer, summed over channels, ReLU; faithful for
        a fully connected head), both in plain torch; "integrated_gradients" or "occlusion" (captum).
    baseline : (3, 16384) or (1, 3, 16384) tensor or ndarray, optional
        Integrated gradients only: the reference input. Default None: zeros; the classifier passes a
        noise-only window, the physically meaningful "no signal" reference for whitened strain.
    n_steps : int, optional
        Integrated gradients only: steps along the path. Default 32.
    internal_batch_size : int, optional
        Integrated gradients only: inputs per forward pass (bounds memory). Default 4.
    smoothing : int, optional
        Integrated gradients only: moving-average length [samples] (64 = 15.6 ms), so the per-sample
        profile is as smooth as the 32-sample resolution of the CAMs. Default 64.
    occlusion_window, occlusion_stride : int, optional
        Occlusion only: window and stride [samples] (512 = 125 ms). Defaults 512, 256.
    perturbations_per_eval : int, optional
        Occlusion only: occluded copies per forward pass. Default 4.

    Returns
    -------
    (16384,) float32 ndarray
        The profile, one value per input sample at 4096 Hz, no NaN; ≥ 0 for every method but
        occlusion (signed). The model's train/eval mode is restored.

    Raises
    ------
    ValueError
        An unknown method, a target outside [0, n_classes), a window of another shape, or a CAM
        method on a model without ``cam_layer``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    param = next(model.parameters())
    inp = _as_batch(x, param)
    was_training = model.training
    model.eval()  # BN running stats: the map must not depend on batch composition
    try:
        if callable(target) and method not in ("gradcam", "hirescam"):
            raise ValueError(f"a target chosen from the logits serves the CAM methods only, not {method!r}")
        if not callable(target):
            n_classes = _n_classes(model, inp)
            if not isinstance(target, (int, np.integer)) or not 0 <= int(target) < n_classes:
                raise ValueError(f"target must be an int in [0, {n_classes}), got {target!r}")
            target = int(target)

        if method in ("gradcam", "hirescam"):
            layer = getattr(model, "cam_layer", None)
            if layer is None:
                raise ValueError(f"{method} needs a model with a `cam_layer` attribute")
            grad, act = _layer_gradient(model, layer, inp, target)
            if method == "gradcam":
                # Grad-CAM: each channel weighted by its gradient averaged over time (captum's
                # LayerGradCam, relu_attributions=True)
                grad = grad.mean(dim=2, keepdim=True)
            # HiResCAM: gradient x activation per time bin. Grad-CAM's time average misleads when
            # the head is a fully connected layer over the flattened map (position-specific weights).
            cam = torch.relu((grad * act).sum(dim=1, keepdim=True))
            # (1, 1, 512) -> (1, 1, 16384): each CAM bin covers 32 input samples (what captum's
            # LayerAttribution.interpolate does)
            cam = nn.functional.interpolate(cam, size=(WINDOW_SAMPLES,), mode="linear")
            profile = cam[0, 0]

        elif method == "integrated_gradients":
            from captum.attr import IntegratedGradients
            base = torch.zeros_like(inp) if baseline is None else _as_batch(baseline, param)
            attr = IntegratedGradients(model).attribute(
                inp,
                baselines=base,
                target=target,
                n_steps=n_steps,
                internal_batch_size=internal_batch_size,
            )
            # magnitude, not sign: a sample pushing the logit either way is "used"
            profile = _moving_average(attr[0].abs().sum(dim=0), smoothing)

        else:  # occlusion
            from captum.attr import Occlusion
            attr = Occlusion(model).attribute(
                inp,
                sliding_window_shapes=(len(DETECTORS), occlusion_window),
                strides=(len(DETECTORS), occlusion_stride),
                baselines=0.0,
                target=target,
                perturbations_per_eval=perturbations_per_eval,
            )
            # the window spans all detectors, so every channel holds the same value
            profile = attr[0].mean(dim=0)

        out = profile.detach().cpu().numpy().astype(np.float32)
    finally:
        model.train(was_training)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def normalise(profile: np.ndarray | torch.Tensor) -> np.ndarray:
    """(T,) -> (T,) float32 in [0, 1]: negatives clipped (evidence *against* the
    class is not drawn), then divided by the maximum. All-zero stays all-zero."""
    p = np.nan_to_num(np.asarray(profile, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    p = np.clip(p, 0.0, None)
    peak = p.max(initial=0.0)
    return (p / peak if peak > 0 else np.zeros_like(p)).astype(np.float32)


def randomise_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with every parameter re-drawn from its init distribution.

    Runs ``reset_parameters()`` on every module that has one (this also resets BatchNorm running
    statistics), then the model's own ``init_weights()`` if it has one, so the copy looks exactly like
    a freshly constructed, untrained model. The caller's RNG state is left as it was.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model (not modified).
    seed : int, optional
        Seed of the new draw. Default 0.

    Returns
    -------
    torch.nn.Module
    """
    rand = copy.deepcopy(model)
    # fork the RNG so the check neither depends on nor disturbs the caller's seed
    with torch.random.fork_rng(devices=[]):
        # offset so `torch.manual_seed(0); GWNet()` and seed=0 don't draw the
        # very same weights (which would make the check trivially return 1)
        torch.manual_seed(0x5EED + seed)
        for m in rand.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
        init = getattr(rand, "init_weights", None)
        if callable(init):
            init()
    return rand


def randomisation_check(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    target: int,
    method: Method | str = "gradcam",
    seed: int = 0,
    **kwargs: object,
) -> float:
    """Spearman rank correlation between the map of ``model`` and that of a randomised copy.

    The model-parameter randomisation test of Adebayo et al. (2018). Near 1: the map ignores what the
    model learned (a failed sanity check); near 0 or negative: the map depends on the trained weights,
    as it should.

    Parameters
    ----------
    model, x, target, method
        As :func:`explain_window`.
    seed : int, optional
        Seed of :func:`randomise_weights`. Default 0.
    **kwargs
        Passed to :func:`explain_window`.

    Returns
    -------
    float
        In [-1, 1]; 0.0 when either map is constant (e.g. an all-zero Grad-CAM), whose ranks carry no
        information.
    """
    trained = explain_window(model, x, target, method, **kwargs)  # type: ignore[arg-type]
    random = explain_window(randomise_weights(model, seed), x, target, method, **kwargs)  # type: ignore[arg-type]
    if np.ptp(trained) == 0 or np.ptp(random) == 0:
        return 0.0
    from scipy.stats import spearmanr  # here, not at import: scipy.stats adds ~1 s to the app's first load
    rho = float(spearmanr(trained, random).statistic)
    return 0.0 if np.isnan(rho) else float(np.clip(rho, -1.0, 1.0))
