"""The public inference API shared by the app, the evaluation and users.

>>> import gwviz
>>> clf = gwviz.load_classifier()          # the shipped weights in models/
>>> pred = clf.classify({"H1": h1, "L1": l1, "V1": v1}, sample_rate=4096)
>>> pred.label, pred.probabilities
>>> cam = clf.explain({"H1": h1, "L1": l1, "V1": v1})   # (16384,) Grad-CAM over the window

What the network takes and how raw strain is whitened into it: :mod:`gwviz.network_input`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .evaluation.calibration import DEFAULT_RATES, Calibration, detection_statistic
from .model.checkpoint import load_weights
from .constants import CLASSES, DETECTORS, SAMPLE_RATE, SUBSETS, WINDOW_SAMPLES, subset_detectors, subset_name
from .model.network import GWNet, ModelConfig
from .network_input import check_whitened, present_detectors, whiten_window, window_tensor

#: Shipped weights (repository's models/ folder): the dilated ResNet-54 with the detector mask, trained
#: with detectors dropped at random, so they take H1L1V1 and every subset of it (models/README.md).
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "gwviz-resnet54.safetensors"
#: Windows per forward pass on the CPU (:meth:`Classifier.logits`). Measured (bench/bench_inference.py):
#: at 256 a pass, every feature map (256 × 8–64 channels × up to 16,384 samples, > 32 MB) is larger
#: than glibc's mmap threshold, so it is mapped and page-faulted anew at each layer and the CPU spends
#: more time in the kernel than in the convolutions; 8 at a time stays in reused heap memory.
CPU_FORWARD_BATCH = 8


def checked_window(window) -> torch.Tensor:
    """(3, 16384) tensor of a whitened window, checked once for :meth:`Classifier.classify_window` and
    :meth:`Classifier.explain_window`: float32/float64 (:func:`~gwviz.network_input.window_tensor`), the
    shape, finite values and channels that can be whitened strain (:func:`~gwviz.network_input.check_whitened`);
    ValueError otherwise."""
    x = window_tensor(window)
    if tuple(x.shape) != (len(DETECTORS), WINDOW_SAMPLES):
        raise ValueError(f"window must be ({len(DETECTORS)}, {WINDOW_SAMPLES}) whitened strain, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("window contains NaN or inf: whiten finite strain first")
    check_whitened(x)
    return x


@dataclass
class Prediction:
    """One window's classification.

    Attributes
    ----------
    probabilities : dict
        Class name -> softmax probability (sum 1).
    label : str
        The decision: under the calibrated rule when the weights carry a calibration ('noise' unless
        the detection statistic exceeds the threshold for false-positive rate ``rate``, then the most
        probable signal class), else the argmax class. ``rule`` says which.
    logits : (4,) ndarray
        Raw scores in CLASSES order.
    window_start : float
        Window start after the first sample [s].
    argmax_label : str
        The most probable class (the paper's rule), whatever ``label`` is.
    statistic : float
        Detection statistic λ = log((1 − p_noise) / p_noise) from the logits (no saturation).
    fpr : float or None
        False-positive rate per window of λ on the calibration noise (None without a calibration;
        1/N means "as rare as or rarer than the loudest of N calibration noise windows").
    rate : float or None
        The false-positive rate per window the decision was made at.
    rule : str
        'calibrated' or 'argmax'.
    detectors : str
        The detector network of the window, e.g. "H1L1V1" or "L1V1" (an absent detector is an
        all-zero channel, which only detector-mask weights accept).
    """

    probabilities: dict[str, float]
    label: str
    logits: np.ndarray = field(repr=False)
    window_start: float = 0.0
    argmax_label: str = ""
    statistic: float = float("nan")
    fpr: float | None = None
    rate: float | None = None
    rule: str = "argmax"
    detectors: str = "H1L1V1"

    @property
    def rule_text(self) -> str:
        """One sentence saying which rule decided and on what numbers (for the app and reports)."""
        if self.rule != "calibrated":
            return "Rule: argmax of the class probabilities (the paper's; these weights carry no calibration)."
        loud = f"reached or passed by {100 * self.fpr:.3g} % of calibration noise windows"
        agree = "argmax agrees" if self.argmax_label == self.label else f"argmax alone would say {self.argmax_label}"
        net = "" if self.detectors == SUBSETS[0] else f" of {self.detectors} alone"
        return (f"Rule: calibrated at a false-positive rate of {self.rate:g} per window{net}. Detection statistic "
                f"λ = {self.statistic:.2f}, {loud} → {'signal' if self.label != 'noise' else 'noise'}; {agree}.")


class Classifier:
    """A trained (or, clearly flagged, untrained) GWNet with whitening in front of it.

    Parameters
    ----------
    model : GWNet
        Moved to ``device`` (default 'cpu') and put in eval mode.
    config, info : dict or None, optional
        Model config and provenance of the weights (default None: ``{}``); ``info`` may hold
        ``calibration`` and ``calibration_subsets`` ({subset: calibration}; ValueError if malformed).
    device : str, optional
        Where the model runs.
    trained : bool, optional
        False for a randomly initialised model (the app labels it). Default True.
    """

    def __init__(self, model: GWNet, config: dict | None = None, info: dict | None = None, device: str = "cpu",
                 trained: bool = True):
        self.model = model.to(device).eval()
        self.config, self.info, self.device, self.trained = config or {}, info or {}, device, trained
        cal = self.info.get("calibration")
        #: :class:`gwviz.evaluation.calibration.Calibration` of the weights, or None (then decisions are argmax)
        self.calibration = Calibration.from_dict(cal) if cal is not None else None
        #: detector networks the weights accept: all of SUBSETS with the detector mask, else H1L1V1 only
        self.subsets = SUBSETS if self.model.config.detector_mask else SUBSETS[:1]
        subs = self.info.get("calibration_subsets") or {}
        if not isinstance(subs, dict) or set(subs) - set(self.subsets):
            raise ValueError(f"calibration_subsets of these weights must map some of {self.subsets} to calibrations")
        self._subset_cals = {k: Calibration.from_dict(v) for k, v in subs.items()}

    def calibration_for(self, subset: str = SUBSETS[0]) -> Calibration | None:
        """The calibration of detector network ``subset``, or None where the weights carry none for it.

        ``subset``: "H1L1", ...; default "H1L1V1". Without a calibration, decisions are argmax. ValueError for an
        unknown subset or one the weights were not trained on.
        """
        subset_detectors(subset)
        if subset not in self.subsets:
            raise ValueError(f"these weights were trained for {'/'.join(self.subsets)} only, not {subset}: a missing "
                             "detector would be zeros pretending to be data (use weights trained with the detector "
                             "mask)")
        return self.calibration if subset == SUBSETS[0] else self._subset_cals.get(subset)

    def check_detectors(self, detectors) -> str:
        """The network name of ``detectors`` (e.g. ("L1", "V1") -> "L1V1") if these weights accept it.

        ValueError otherwise, saying which weights do. Called before any whitening.
        """
        name = subset_name(detectors)
        if name not in self.subsets:
            raise ValueError(f"these weights were trained on {'/'.join(self.subsets)} only and the strain has {name}: "
                             "a missing detector must not be zeros pretending to be data. Use weights trained with the "
                             f"detector mask (the shipped {DEFAULT_WEIGHTS.name}) or give all of {list(DETECTORS)}")
        return name

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The network's raw scores (N, 4), float32 on the CPU, for checked whitened windows x (N, 3, 16384).

        The one place batches meet the network in inference (:meth:`predict_windows`, the evaluation
        sets, :func:`gwviz.scan.scan`): on a GPU, x in one pass; on the CPU, :data:`CPU_FORWARD_BATCH`
        windows a pass (3–4.4× faster than 256 on a 2-core CPU, bench/bench_inference.py; the outputs are
        per window, BatchNorm is in eval mode, so they do not depend on the split). The callers check
        their input; the output is checked here, for all of them: FloatingPointError when a logit is not
        finite (broken weights), never a silent label or a NaN ranked anywhere in a ROC.
        """
        x = x.to(self.device)
        step = len(x) if torch.device(self.device).type != "cpu" else CPU_FORWARD_BATCH
        out = torch.cat([self.model(x[i:i + step]).float().cpu() for i in range(0, len(x), max(step, 1))])
        bad = int((~torch.isfinite(out)).any(-1).sum())
        if bad:
            raise FloatingPointError(f"the network returned non-finite logits for {bad} of {len(out)} windows: the "
                                     "weights or the input are broken (NaN/inf); no decision was made")
        return out

    @torch.no_grad()
    def predict_windows(self, x: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, 4) for whitened windows x (N, 3, 16384), ``batch_size`` (default 256) at a time.

        All-zero channels are absent detectors. ValueError for samples that are not floating point
        (:func:`~gwviz.network_input.window_tensor`), a wrong shape, NaN/inf, a channel that cannot be whitened
        strain (:func:`~gwviz.network_input.check_whitened`), an all-zero window or a network the weights do
        not accept; FloatingPointError for non-finite logits (broken weights, :meth:`logits`).
        """
        x = window_tensor(x, "windows")
        if x.ndim != 3 or tuple(x.shape[1:]) != (len(DETECTORS), WINDOW_SAMPLES):
            raise ValueError(f"windows must be (N, 3, {WINDOW_SAMPLES}), got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("windows contain NaN or inf: whiten finite strain first")
        check_whitened(x, "window")
        absent = ~(x != 0).any(-1)  # (N, 3): all-zero channels, i.e. detectors that did not observe
        if bool(absent.any()):
            if bool(absent.all(-1).any()):
                raise ValueError(f"window(s) {absent.all(-1).nonzero().flatten()[:5].tolist()} are all zeros: no "
                                 "detector observed")
            for row in absent.unique(dim=0):
                self.check_detectors(d for d, off in zip(DETECTORS, row.tolist()) if not off)
        return torch.cat([torch.softmax(self.logits(x[i:i + batch_size]), -1)
                          for i in range(0, len(x), batch_size)]).numpy()

    def classify_window(self, window: np.ndarray, window_start: float = 0.0, rate: float = DEFAULT_RATES[0]) -> Prediction:
        """Classify one whitened window (3, 16384) (an all-zero channel is an absent detector).

        ``window_start`` [s] (default 0) is only recorded in the :class:`Prediction`. ``rate``: false-positive rate
        per window of the calibrated rule (one of the calibrated rates, e.g. 1e-2 or 1e-3; default 1e-2).

        Raises
        ------
        ValueError
            An uncalibrated ``rate``, samples that are not floating point
            (:func:`~gwviz.network_input.window_tensor`), wrong shape, NaN/inf, a channel that cannot be
            whitened strain (:func:`~gwviz.network_input.check_whitened`), an all-zero window, a network the
            weights do not accept.
        FloatingPointError
            The network's output is not finite (broken weights), never a silent label.
        """
        x, subset = self._window_input(window, rate)
        with torch.no_grad():
            logits = self.model(x[None].to(self.device))[0].float().cpu()
        return self._prediction(logits, subset, window_start, rate)

    def _window_input(self, window, rate: float) -> tuple[torch.Tensor, str]:
        """The checked (3, 16384) window and its detector network, or ValueError (see :meth:`classify_window`)."""
        if self.calibration is not None:
            self.calibration.threshold(rate)  # an uncalibrated rate is refused before any work
        x = checked_window(window)
        present = [d for d, on in zip(DETECTORS, (x != 0).any(-1).tolist()) if on]  # all-zero channel: absent
        if not present:
            raise ValueError("window is all zeros: no detector observed")
        return x, self.check_detectors(present)

    def _prediction(self, logits: torch.Tensor, subset: str, window_start: float, rate: float) -> Prediction:
        """The :class:`Prediction` of a window's (n_classes,) logits: the calibrated rule of ``subset``'s network
        at ``rate``, or the argmax without a calibration; FloatingPointError for non-finite logits."""
        logits = logits.float().cpu()
        calibration = self.calibration_for(subset)
        if not torch.isfinite(logits).all():
            raise FloatingPointError(f"the network returned non-finite logits {logits.tolist()}: the weights or the "
                                     "input window are broken (NaN/inf); no decision was made")
        p = torch.softmax(logits.double(), -1).numpy()
        probs = {c: float(v) for c, v in zip(CLASSES, p)}
        argmax_label = CLASSES[int(np.argmax(p))]
        stat = float(detection_statistic(logits.numpy()))
        if calibration is None:
            return Prediction(probs, argmax_label, logits.numpy(), window_start, argmax_label, stat, detectors=subset)
        label = CLASSES[int(calibration.decide(logits.numpy()[None], rate)[0])]
        return Prediction(probs, label, logits.numpy(), window_start, argmax_label, stat,
                          float(calibration.fpr(stat)), float(rate), "calibrated", subset)

    def classify(self, strain: dict, sample_rate: float = SAMPLE_RATE, window_start: float | None = None,
                 rate: float = DEFAULT_RATES[0]) -> Prediction:
        """Classify raw (unwhitened) strain {'H1','L1','V1'} -> equal-length arrays, ≥ 16 s.

        The whole input estimates the PSD; the model sees the 4 s from ``window_start``.

        Parameters
        ----------
        strain : dict of str to 1-D array
            Strain [strain] (see :func:`~gwviz.network_input.whiten_window`).
        sample_rate : float, optional
            Sample rate [Hz]. Default 4096.
        window_start : float or None, optional
            Window start after the first sample [s]; default None: the 4 s ending 2 s before the end.
        rate : float, optional
            False-positive rate per window of the calibrated decision. Default 1e-2.

        Returns
        -------
        Prediction

        Raises
        ------
        ValueError
            Bad input (see :meth:`classify_window` for the rest).
        """
        self.check_detectors(present_detectors(strain))
        window, start = whiten_window(strain, sample_rate, window_start)
        return self.classify_window(window, start, rate)

    def classify_and_explain_window(self, window: np.ndarray, method: str = "gradcam", target: str | None = None,
                                    rate: float = DEFAULT_RATES[0], window_start: float = 0.0,
                                    **kwargs) -> tuple[Prediction, np.ndarray]:
        """:meth:`classify_window` and :meth:`explain_window` of one window, the same results as the two calls.

        For 'gradcam' and 'hirescam' one forward pass serves both: the decision is made from its logits
        and the map explains that decision (``target`` default) from the same pass
        (:func:`gwviz.explain.attribution.explain_window` with a target chosen from the logits); the app's
        Explore page saves a forward pass (~30 ms of ~0.2 s on a 2-core CPU). Other methods run the two calls.

        Returns
        -------
        prediction : Prediction
        attribution : (16384,) ndarray
            Of ``target`` (default: the decided class).
        """
        if method not in ("gradcam", "hirescam"):
            pred = self.classify_window(window, window_start, rate)
            return pred, self.explain_window(window, target or pred.label, method, **kwargs)
        if target is not None and target not in CLASSES:
            raise ValueError(f"target must be one of {CLASSES}, got {target!r}")
        from .explain.attribution import explain_window
        x, subset = self._window_input(window, rate)
        decided: list[Prediction] = []

        def choose(logits: torch.Tensor) -> int:
            decided.append(self._prediction(logits[0], subset, window_start, rate))
            return CLASSES.index(target or decided[0].label)

        profile = explain_window(self.model, x.to(self.device), choose, method)
        return decided[0], profile

    def explain_window(self, window: np.ndarray, target: str | None = None, method: str = "gradcam",
                       **kwargs) -> np.ndarray:
        """Attribution profile (16384,) of a whitened window (3, 16384) for class ``target``.

        ``target`` defaults to the decided class (:meth:`classify_window`); ``method`` and ``kwargs`` go to
        :func:`gwviz.explain.attribution.explain_window` (Integrated Gradients gets a noise baseline with the
        window's absent detectors zeroed unless ``baseline`` is given). ValueError for an unknown target, a
        window that is not float32/float64 (:func:`~gwviz.network_input.window_tensor`), NaN/inf, or a channel
        that cannot be whitened strain (:func:`~gwviz.network_input.check_whitened`).
        """
        from .explain.attribution import explain_window
        x = checked_window(window)  # an integer, NaN or raw-strain window is refused here too, not explained
        if target is None:
            target = self.classify_window(x.numpy()).label
        if target not in CLASSES:
            raise ValueError(f"target must be one of {CLASSES}, got {target!r}")
        if method == "integrated_gradients" and "baseline" not in kwargs:
            # absent detectors stay absent along the whole path from the baseline to the window
            kwargs["baseline"] = noise_baseline() * (np.asarray(window) != 0).any(-1, keepdims=True)
        return explain_window(self.model, window, CLASSES.index(target), method=method, **kwargs)

    def analyse(self, strain: dict, sample_rate: float = SAMPLE_RATE, window_start: float | None = None,
                target: str | None = None, method: str = "gradcam", rate: float = DEFAULT_RATES[0],
                **kwargs) -> tuple[Prediction, np.ndarray, np.ndarray]:
        """:meth:`classify` and :meth:`explain` of the same window, whitened once.

        Arguments as in :meth:`classify` and :meth:`explain`; ``target`` defaults to the decided class.

        Returns
        -------
        prediction : Prediction
        attribution : (16384,) ndarray
            Of ``target``.
        window : (3, 16384) float32 ndarray
            The whitened window.
        """
        from .explain.attribution import METHODS
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.check_detectors(present_detectors(strain))
        window, start = whiten_window(strain, sample_rate, window_start)
        pred, attribution = self.classify_and_explain_window(window, method, target, rate, start, **kwargs)
        return pred, attribution, window

    def explain(self, strain: dict, sample_rate: float = SAMPLE_RATE, window_start: float | None = None,
                target: str | None = None, method: str = "gradcam", **kwargs) -> np.ndarray:
        """Attribution (16384,) aligned sample by sample with the window :meth:`classify` sees.

        ``strain``, ``sample_rate``, ``window_start`` as in :meth:`classify`. method: 'gradcam' (default, the
        paper's; as captum's LayerGradCam on the last residual block, logit of ``target``, ReLU, linear
        upsampling), 'hirescam' (gradient x activation of the same layer, the app's default: faithful for
        the fully connected head, docs/gradcam.md), 'integrated_gradients' (baseline: a whitened
        noise-only window) or 'occlusion'; ``kwargs`` go to
        :func:`gwviz.explain.attribution.explain_window`. target: a class name; default the predicted class.
        ValueError for an unknown method or target, or bad strain.
        """
        from .explain.attribution import METHODS
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if target is not None and target not in CLASSES:
            raise ValueError(f"target must be one of {CLASSES}, got {target!r}")
        self.check_detectors(present_detectors(strain))
        window, _ = whiten_window(strain, sample_rate, window_start)
        return self.explain_window(window, target, method, **kwargs)


def noise_baseline(seed: int = 12345) -> np.ndarray:
    """A whitened simulated-noise window (3, 16384) float32: the 'no signal' reference for Integrated Gradients.

    Made with ``seed`` (default 12345).
    """
    from .data.noise import SimulatedNoise
    from .data.synth import make_sample
    return make_sample("noise", SimulatedNoise(), seed=seed).data


def check_device(device: str | torch.device) -> torch.device:
    """``device`` (str or torch.device) as a torch.device that exists here.

    ValueError for a malformed name, a type other than 'cpu'/'cuda', CUDA on a machine without a usable GPU,
    or a GPU index beyond the ones present.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda:0', got {device!r}") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but CUDA is not available on this machine; use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ValueError(f"device {device!r}: gwviz runs on 'cpu' or 'cuda[:N]'")
    return dev


def load_classifier(path: str | os.PathLike | None = None, device: str = "cpu", allow_untrained: bool = False) -> Classifier:
    """Load a classifier from a .safetensors file or a weights-only training checkpoint.

    Parameters
    ----------
    path : str, path-like or None, optional
        Default None: the shipped weights in models/.
    device : str, optional
        Default 'cpu'.
    allow_untrained : bool, optional
        With no shipped weights, return a randomly initialised model (seed 0) with ``trained=False``
        (the app labels it). Default False.

    Returns
    -------
    Classifier

    Raises
    ------
    ValueError
        Foreign, corrupt or missing files, a directory, a bad path, device or ``allow_untrained``.
    """
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a weights file path (str or os.PathLike) or None, got {type(path).__name__}")
    if not isinstance(allow_untrained, (bool, np.bool_)):
        raise ValueError(f"allow_untrained must be True or False, got {allow_untrained!r}")
    check_device(device)
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if path == DEFAULT_WEIGHTS and not path.exists() and allow_untrained:
        torch.manual_seed(0)
        return Classifier(GWNet(), ModelConfig().to_dict(), {"note": "untrained"}, device, trained=False)
    state, config, info = load_weights(path)  # config, tensor shapes and values checked before this allocation
    model = GWNet.from_config(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit GWNet({config}): {err}") from err
    return Classifier(model, config, info, device)
