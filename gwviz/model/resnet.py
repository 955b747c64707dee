"""ResNet-54 of AResGW (Nousi et al. 2023) on (B, C, T) or (B, C, 1, T), with its receptive field.

    x: (B, C, 16384) -> 27 ResBlocks (5 strided: /32) -> (B, 2w, 512)

The blocks run as Conv1d or, on CUDA, as (1 x 3) Conv2d on channels-last data (the same weights;
see TimeConv). :func:`block_dilations` and :func:`receptive_field` say how much of the window one
position of the output map sees: 0.41 s for the paper's network, the whole window with ``dilate=1``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gwviz.constants import DETECTORS

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
            return F.conv2d(x, self.weight.unsqueeze(2), self.bias, (1, self.stride[0]), (0, self.padding[0]),
                            (1, self.dilation[0]))
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
    dilation : int, optional
        Dilation of both 3-tap convolutions (only with stride 1). Default 1.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        if dilation != 1 and stride != 1:
            raise ValueError(f"a block is strided or dilated, not both (stride {stride}, dilation {dilation})")
        # convs feeding a BatchNorm get no bias: BN's own shift makes it redundant
        self.conv1 = TimeConv(c_in, c_out, kernel_size=3, stride=1, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = TimeBatchNorm(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = TimeConv(c_out, c_out, kernel_size=3, stride=stride, padding=dilation, dilation=dilation,
                              bias=False)
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


#: Dilations of the blocks after the last downsampling when ``dilate=1``, repeated (WaveNet's doubling).
DILATION_CYCLE: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)


def block_dilations(plan: list[tuple[int, int, int]], dilate: int = 0) -> list[int]:
    """Dilation of each block of ``plan``: all 1, or with ``dilate=1`` :data:`DILATION_CYCLE` over the
    blocks after the last strided one (10 of ResNet-54's 27, at 1/32 of the sample rate).

    Why: the paper's ResNet sees 1,661 samples (0.41 s) of the 4-s window from any position of its last
    map (:func:`receptive_field`). That holds ~97 % of a BBH's whitened energy but ~45 % of an NSBH's and
    ~23 % of a BNS's (``docs/receptive_field.py``), so the long signals can only be combined after the
    nonlinear stack, incoherently. Dilated blocks reach the whole window at no cost in parameters.
    """
    if dilate not in (0, 1) or isinstance(dilate, bool):
        raise ValueError(f"dilate must be 0 or 1, got {dilate!r}")
    last = max(i for i, (_, _, s) in enumerate(plan) if s != 1)
    return [1 if not dilate or i <= last else DILATION_CYCLE[(i - last - 1) % len(DILATION_CYCLE)]
            for i in range(len(plan))]


def receptive_field(plan: list[tuple[int, int, int]], dilations: list[int]) -> int:
    """Input samples that one position of the ResNet's last map depends on (the longest path: through
    every 3-tap convolution, none of the shortcuts)."""
    rf, jump = 1, 1
    for (_, _, stride), d in zip(plan, dilations):
        rf += 2 * (3 - 1) * d * jump  # conv1 and conv2, both at the block's input spacing
        jump *= stride
    return rf


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
    dilate : {0, 1}, optional
        1: the blocks after the last downsampling are dilated (:func:`block_dilations`). Default 0.
    """

    LAYOUTS = ("auto", "1d", "2d")

    def __init__(self, in_channels: int = len(DETECTORS), width: int = 8, layout: str = "auto",
                 dilate: int = 0) -> None:
        super().__init__()
        plan = resnet54_plan(in_channels, width)
        dilations = block_dilations(plan, dilate)
        self.blocks = nn.Sequential(*(ResBlock(ci, co, s, d) for (ci, co, s), d in zip(plan, dilations)))
        self.receptive_field = receptive_field(plan, dilations)  # input samples [4096 Hz]
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
