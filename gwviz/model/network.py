"""The classifier: DAIN -> ResNet-54 -> two fully connected layers.

This is the network of Sasaoka et al. (2023), who put a Deep Adaptive Input
Normalization layer (Passalis et al. 2019) in front of the 54-layer 1-D ResNet
of AResGW (Nousi et al. 2023) and a small two-layer head behind it, and explain
its decisions with Grad-CAM on the last residual block.

    x: (B, 3, 16384) whitened strain of H1, L1, V1 (dimensionless, 4 s at 4096 Hz)
      -> DAIN                     (B, 3, 16384)
      -> ResNet54 (27 blocks)     (B, 2w, 512)     <- `cam_layer` for Grad-CAM
      -> Flatten                  (B, 2w * 512)
      -> Linear -> ReLU -> Linear (B, 4) logits over CLASSES

With ``ModelConfig(detector_mask=1)`` a detector that did not observe is an input, not zeros pretending
to be data: its channel is all zeros, and the network is also given three constant "absent" channels
(1 where a detector is missing), so the ResNet's first block reads (B, 6, 16384). The mask comes from
the input itself (an all-zero channel; real whitened strain never is one), so every caller, captum
included, keeps passing one (B, 3, 16384) tensor.

One position of the (B, 2w, 512) map sees 1,661 input samples (0.41 s): enough for a BBH's merger, a
quarter of a BNS's energy. ``ModelConfig(dilate=1)`` dilates the blocks after the last downsampling so
that it sees the whole window, with the same parameters (:func:`gwviz.model.resnet.block_dilations`).

Parameter count (measured, default ModelConfig(width=8, hidden=64)): 818,986
trainable parameters (3.1 MiB in float32): 30 in DAIN, 294,344 in the ResNet,
524,612 in the head. tests/test_model.py checks it against the analytic count.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn as nn

from gwviz.constants import CLASSES, DETECTORS, WINDOW_SAMPLES

from .resnet import ResBlock, ResNet54

# -----------------------------------------------------------------------------
# input normalisation


class DAIN(nn.Module):
    """Deep Adaptive Input Normalization (Passalis et al. 2019), 'full' mode.

    Learns, per window, how much of the mean to remove, how to rescale and which
    channels to damp. Statistics are taken over the time axis, so each window is
    normalised by itself (no dataset-wide statistics to carry around).

    Input and output: (B, C, T). All three linears start as the identity (and
    the gate's bias at 0), so an untrained layer is plain per-window
    standardisation followed by a sigmoid gate.

    Parameters
    ----------
    n_channels : int, optional
        Channels C. Default 3 (one per detector).
    eps : float, optional
        Added to the variance before the square root; scales ≤ eps are replaced by 1 (as in the reference).
        Default 1e-8.
    """

    def __init__(self, n_channels: int = len(DETECTORS), eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps
        self.mean_layer = nn.Linear(n_channels, n_channels, bias=False)
        self.scaling_layer = nn.Linear(n_channels, n_channels, bias=False)
        self.gating_layer = nn.Linear(n_channels, n_channels)
        self.reset_identity()

    @torch.no_grad()
    def reset_identity(self) -> None:
        """Identity shift/scale/gate weights, zero gate bias (the reference init)."""
        for layer in (self.mean_layer, self.scaling_layer, self.gating_layer):
            layer.weight.zero_().fill_diagonal_(1.0)  # not torch.eye: on meta it imports dynamo (~1 s)
        nn.init.zeros_(self.gating_layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shift, scale and gate ``x`` (B, C, T) -> (B, C, T)."""
        # 1) adaptive shift: (B, C) mean over time, mixed across channels
        shift = self.mean_layer(x.mean(dim=2))
        x = x - shift[:, :, None]
        # 2) adaptive scale: RMS over time of the shifted signal
        std = torch.sqrt((x * x).mean(dim=2) + self.eps)
        scale = self.scaling_layer(std)
        # the reference sets tiny scales to 1 instead of dividing by ~0; torch.where
        # rather than in-place assignment keeps autograd (and attribution) happy
        scale = torch.where(scale <= self.eps, torch.ones_like(scale), scale)
        x = x / scale[:, :, None]
        # 3) gating: a per-channel factor in (0, 1), e.g. to mute a glitchy detector
        gate = torch.sigmoid(self.gating_layer(x.mean(dim=2)))
        return x * gate[:, :, None]


# -----------------------------------------------------------------------------
# full classifier


@dataclass
class ModelConfig:
    """Knobs of GWNet. Defaults are the shipped model.

    Attributes
    ----------
    width : int
        Channels of the first ResNet stage; the last map has 2 · width. Default 8.
    hidden : int
        Hidden units of the head. Default 64: keeps the head (2w·512·hidden weights) at ~0.5 M parameters,
        so the whole model stays a few MiB (≤ 16 MiB) and loads fast on a CPU.
    detector_mask : int
        1: the network sees which detectors are absent (trained with detectors dropped at random);
        0 (default): the paper's network, which assumes all three.
    dilate : int
        1: dilated last blocks, whose map sees the whole 4-s window (:func:`gwviz.model.resnet.block_dilations`);
        0 (default): the paper's ResNet, which sees 0.41 s from each position.
    """

    width: int = 8  # channels of the first ResNet stage; last map has 2 * width
    # 64 hidden units keep the head (2w*512*hidden weights) at ~0.5 M parameters,
    # so the whole model stays a few MiB (<= 16 MiB) and loads fast on a CPU
    hidden: int = 64
    # 1: the network sees which detectors are absent (trained with detectors dropped at random);
    # 0: the paper's network, which assumes all three
    detector_mask: int = 0
    # 1: dilated last blocks that see the whole window; 0: the paper's 0.41-s receptive field
    dilate: int = 0

    def to_dict(self) -> dict[str, int]:
        """The fields as a dict of ints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Build from a dict, ignoring unknown keys (e.g. keys of a larger config file); values go through ``int``."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in names})


class GWNet(nn.Module):
    """DAIN -> ResNet54 -> Flatten -> Linear -> ReLU -> Linear.

    forward: x (B, 3, 16384) float32 whitened strain (dimensionless) -> (B, 4) logits
    in the order of `gwviz.constants.CLASSES`. With ``detector_mask=1`` an all-zero channel is an
    absent detector (see the module docstring).

    Parameters
    ----------
    width : int, optional
        Channels of the first ResNet stage. Default 8.
    n_classes : int, optional
        Number of logits. Default 4 (``len(CLASSES)``).
    hidden : int, optional
        Hidden units of the head. Default 64.
    detector_mask : {0, 1}, optional
        See :class:`ModelConfig`. Default 0.
    dilate : {0, 1}, optional
        See :class:`ModelConfig`. Default 0.

    Raises
    ------
    ValueError
        ``detector_mask`` or ``dilate`` is not 0 or 1.
    """

    def __init__(self, width: int = 8, n_classes: int = len(CLASSES), hidden: int = 64,
                 detector_mask: int = 0, dilate: int = 0) -> None:
        super().__init__()
        if detector_mask not in (0, 1):
            raise ValueError(f"detector_mask must be 0 or 1, got {detector_mask!r}")
        self.config = ModelConfig(width=width, hidden=hidden, detector_mask=detector_mask, dilate=dilate)
        self.n_classes = n_classes
        self.dain = DAIN(len(DETECTORS))
        self.resnet = ResNet54(len(DETECTORS) * (1 + detector_mask), width, dilate=dilate)
        n_time = WINDOW_SAMPLES // self.resnet.downsample  # 16384 / 32 = 512
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.resnet.out_channels * n_time, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )
        self.init_weights()

    @classmethod
    def from_config(cls, config: ModelConfig | dict[str, Any]) -> "GWNet":
        """A fresh network from a :class:`ModelConfig` or its dict (unknown keys ignored); always 4 classes."""
        if isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        return cls(width=config.width, hidden=config.hidden, detector_mask=config.detector_mask,
                   dilate=config.dilate)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Xavier-uniform weights, zero biases, BN at identity (residual-branch BNs at zero), small logit layer, DAIN at identity."""
        relu_gain = nn.init.calculate_gain("relu")
        logits = self.head[-1]
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)) and not self._in_dain(m):
                # layers feeding a ReLU get the ReLU gain; the logit layer feeds
                # nothing, so unit gain keeps initial logits O(1)
                nn.init.xavier_uniform_(m.weight, gain=1.0 if m is logits else relu_gain)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Every residual branch starts at zero (Goyal et al. 2017, "zero-init residual"), so the
        # 27-block stack starts close to its shortcuts instead of growing the signal block by block;
        # and the logit layer starts near zero (initial loss ~ln 4). With plain init the first Adam
        # steps at lr 1e-3 met logits of ~25 and killed the head's ReLUs (loss stuck at ln 4).
        for block in self.resnet.modules():
            if isinstance(block, ResBlock):
                nn.init.zeros_(block.bn2.weight)
        nn.init.xavier_uniform_(logits.weight, gain=1e-2)  # not zero: Grad-CAM of a fresh model stays defined
        self.dain.reset_identity()

    def _in_dain(self, m: nn.Module) -> bool:
        return any(m is d for d in self.dain.modules())

    @property
    def cam_layer(self) -> nn.Module:
        """Module whose output (B, 2w, 512) Grad-CAM explains."""
        return self.resnet.cam_layer

    def n_parameters(self, trainable_only: bool = True) -> int:
        """Number of parameters: trainable only (default) or, with ``trainable_only=False``, all."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, 4) of whitened windows ``x`` (B, 3, 16384)."""
        if not self.config.detector_mask:
            return self.head(self.resnet(self.dain(x)))
        present = (x != 0).any(dim=-1, keepdim=True).to(x.dtype)  # (B, 3, 1), no gradient
        # DAIN mixes channels in its shift: multiply again so an absent detector stays exactly zero
        h = self.dain(x) * present
        return self.head(self.resnet(torch.cat([h, (1 - present).expand_as(h)], dim=1)))


#: Tensors whose input channels grow from 3 to 6 when a paper network learns the detector mask.
MASK_INPUT_TENSORS: tuple[str, ...] = ("resnet.blocks.0.conv1.weight", "resnet.blocks.0.shortcut.weight")


def add_detector_mask(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A paper network's state dict (detector_mask=0) made loadable with detector_mask=1.

    The first block's convolutions get zero weights for the three "absent" channels, so the new
    network computes exactly what the old one did whenever all detectors are present; training with
    detectors dropped then learns those weights. Other tensors are shared, not copied.

    Parameters
    ----------
    state : dict of str to tensor
        State dict of a detector_mask=0 :class:`GWNet`.

    Returns
    -------
    dict of str to tensor
        A new dict; ``MASK_INPUT_TENSORS`` have 6 input channels.

    Raises
    ------
    ValueError
        A tensor of ``MASK_INPUT_TENSORS`` does not have 3 input channels.
    KeyError
        ``state`` lacks one of them.
    """
    out = dict(state)
    for name in MASK_INPUT_TENSORS:
        w = state[name]  # (C_out, 3, k)
        if w.shape[1] != len(DETECTORS):
            raise ValueError(f"{name} has {w.shape[1]} input channels; expected {len(DETECTORS)} (a detector_mask=0 network)")
        out[name] = torch.cat([w, torch.zeros_like(w)], dim=1)
    return out
