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

Parameter count (measured, default ModelConfig(width=8, hidden=64)): 818,986
trainable parameters (3.1 MiB in float32): 30 in DAIN, 294,344 in the ResNet,
524,612 in the head. tests/test_model.py checks it against the analytic count.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from gwviz.constants import CLASSES, DETECTORS, WINDOW_SAMPLES

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
# time convolutions that also run as 2-D (1 x k) convolutions


class TimeConv(nn.Conv1d):
    """A Conv1d that also takes (B, C, 1, T) and then runs as a (1 x k) Conv2d.

    Why: on CUDA, cuDNN's fast bf16 kernels want channels-last (NHWC) data, and a Conv1d on
    (B, C, T) is converted NCHW -> NHWC and back around every convolution; on the H200 those
    conversions took 45 % of a training step. The same weights applied as a (1 x k) Conv2d to a
    channels-last (B, C, 1, T) tensor need no conversion. The parameters keep the Conv1d shape
    (C_out, C_in, k), so weights files are the same in both layouts.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Conv1d of (B, C, T), or the same weights as a (1 x k) Conv2d of (B, C, 1, T)."""
        if x.dim() == 4:
            return F.conv2d(x, self.weight.unsqueeze(2), self.bias, (1, self.stride[0]), (0, self.padding[0]))
        return super().forward(x)


class TimeBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that also takes (B, C, 1, T) (the same per-channel statistics)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"expected 2-D, 3-D or 4-D input, got {x.dim()}-D")


# -----------------------------------------------------------------------------
# ResNet-54 of AResGW


class ResBlock(nn.Module):
    """Two 3-tap convolutions with a residual connection.

    Input (B, c_in, T) -> output (B, c_out, ceil(T / stride)), or the same with a singleton
    axis, (B, c_in, 1, T) -> (B, c_out, 1, ceil(T / stride)) (see TimeConv). The stride, if
    any, sits in the second convolution; the shortcut is a strided 1x1 conv only
    when the shape changes. ReLUs are separate, non-inplace modules because
    attribution methods (guided backprop, DeepLift, ...) hook nn.ReLU modules.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    stride : int, optional
        Time stride of the block. Default 1.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        # convs feeding a BatchNorm get no bias: BN's own shift makes it redundant
        self.conv1 = TimeConv(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = TimeBatchNorm(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = TimeConv(c_out, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = TimeBatchNorm(c_out)
        if c_in != c_out or stride != 1:
            self.shortcut: nn.Module = TimeConv(c_in, c_out, kernel_size=1, stride=stride)
        else:
            self.shortcut = nn.Identity()
        self.relu_out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, [1,] T) -> (B, c_out, [1,] ceil(T / stride))."""
        h = self.relu1(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return self.relu_out(h + self.shortcut(x))


def resnet54_plan(in_channels: int, width: int) -> list[tuple[int, int, int]]:
    """The 27 (c_in, c_out, stride) triples of ResNet-54 (2 convs each = 54 layers).

    Parameters
    ----------
    in_channels : int
        Channels of the input (3, or 6 with the detector mask).
    width : int
        Channels of the first stage; the widest stages have 8 · width, the last 2 · width.

    Returns
    -------
    list of (int, int, int)
        Five triples have stride 2 (downsampling by 32).
    """
    w = width
    plan: list[tuple[int, int, int]] = []

    def stage(c_in: int, c_out: int, stride: int, n_repeat: int) -> None:
        plan.append((c_in, c_out, stride))
        plan.extend((c_out, c_out, 1) for _ in range(n_repeat))

    stage(in_channels, w, 1, 3)  # A: full resolution
    stage(w, 2 * w, 2, 2)  # B: /2
    stage(2 * w, 4 * w, 2, 2)  # C: /4
    stage(4 * w, 8 * w, 2, 2)  # D: /8
    stage(8 * w, 8 * w, 2, 2)  # E: /16
    stage(8 * w, 8 * w, 2, 2)  # F: /32, then narrow back down so the head stays small
    stage(8 * w, 4 * w, 1, 4)
    stage(4 * w, 2 * w, 1, 2)
    assert len(plan) == 27
    return plan


class ResNet54(nn.Module):
    """(B, in_channels, T) -> (B, 2 * width, T / 32): 27 ResBlocks, 5 of them strided.

    ``layout`` picks how the blocks run: "1d" on (B, C, T); "2d" on (B, C, 1, T), in
    channels-last memory on CUDA (the fast layout for cuDNN, see TimeConv); "auto" (default) is "2d" on
    CUDA and "1d" elsewhere (on the CPU both run the same oneDNN kernels, and "1d" keeps the
    app's CPU inference exactly as it was). The output is (B, 2 * width, T / 32) either way.

    Parameters
    ----------
    in_channels : int, optional
        Input channels. Default 3.
    width : int, optional
        Channels of the first stage. Default 8.
    layout : {'auto', '1d', '2d'}, optional
        Default 'auto'. Setting another value raises ValueError.
    """

    LAYOUTS = ("auto", "1d", "2d")

    def __init__(self, in_channels: int = len(DETECTORS), width: int = 8, layout: str = "auto") -> None:
        super().__init__()
        plan = resnet54_plan(in_channels, width)
        self.blocks = nn.Sequential(*(ResBlock(ci, co, s) for ci, co, s in plan))
        # the (B, 2w, 1, T/32) -> (B, 2w, T/32) step is a module so that hooks (Grad-CAM) see a
        # (B, 2w, T/32) map in both layouts; on a 3-D input it changes nothing
        self.to_time = nn.Flatten(start_dim=2)
        self.out_channels = plan[-1][1]
        self.downsample = 2 ** sum(s == 2 for _, _, s in plan)
        self.layout = layout

    @property
    def layout(self) -> str:
        """How the blocks run: 'auto', '1d' or '2d' (ValueError for anything else)."""
        return self._layout

    @layout.setter
    def layout(self, value: str) -> None:
        if value not in self.LAYOUTS:
            raise ValueError(f"layout must be one of {self.LAYOUTS}, got {value!r}")
        self._layout = value

    @property
    def cam_layer(self) -> nn.Module:
        """Output of the last residual block as (B, 2w, T/32): the deepest map that still has a time axis."""
        return self.to_time

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, T) -> (B, 2 · width, T / 32), in the layout picked by ``layout``."""
        if self.layout == "2d" or (self.layout == "auto" and x.is_cuda):
            x = x.unsqueeze(2)
            if x.is_cuda:  # channels-last is what makes it fast on cuDNN; torch 2.13's CPU backward
                x = x.contiguous(memory_format=torch.channels_last)  # of it crashes (double free)
        return self.to_time(self.blocks(x))


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
    """

    width: int = 8  # channels of the first ResNet stage; last map has 2 * width
    # 64 hidden units keep the head (2w*512*hidden weights) at ~0.5 M parameters,
    # so the whole model stays a few MiB (<= 16 MiB) and loads fast on a CPU
    hidden: int = 64
    # 1: the network sees which detectors are absent (trained with detectors dropped at random);
    # 0: the paper's network, which assumes all three
    detector_mask: int = 0

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

    Raises
    ------
    ValueError
        ``detector_mask`` is not 0 or 1.
    """

    def __init__(self, width: int = 8, n_classes: int = len(CLASSES), hidden: int = 64,
                 detector_mask: int = 0) -> None:
        super().__init__()
        if detector_mask not in (0, 1):
            raise ValueError(f"detector_mask must be 0 or 1, got {detector_mask!r}")
        self.config = ModelConfig(width=width, hidden=hidden, detector_mask=detector_mask)
        self.n_classes = n_classes
        self.dain = DAIN(len(DETECTORS))
        self.resnet = ResNet54(len(DETECTORS) * (1 + detector_mask), width)
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
        return cls(width=config.width, hidden=config.hidden, detector_mask=config.detector_mask)

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
