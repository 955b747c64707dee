"""A fixed low-pass in front of the network, for whitened input.

Why: in real O3 strain the band 1.2–2.05 kHz (the anti-alias roll-off of GWOSC's 4-kHz data) costs
the dilated ResNet a third of its loud BNS, though a BNS has almost no SNR there; randomising the
Fourier phases of that band alone gives them back (``docs/ablation/dilate-15624-real-noise.txt``).
A network that never sees the band cannot learn to react to it. The filter is part of the model
(``ModelConfig(lowpass_hz=...)``), so the trainer, the evaluation, the app and the attribution all
apply the same one, and weights trained with it carry the cutoff in their config.

Done in the frequency domain with torch.fft (not an FIR convolution): one rFFT pair per window is
cheap on the GPU in the batch, differentiable for Grad-CAM and captum, and exactly zero out of band.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from gwviz.constants import SAMPLE_RATE, WINDOW_SAMPLES

#: Width of the raised-cosine edge (Hz): the filter rings for ~1/64 s (16 ms), far shorter than a window.
TAPER_HZ = 64.0
#: The lowest and highest cutoff (Hz) a model may have; outside, the filter would cut the signals
#: (a BBH's merger is at 100–800 Hz) or do nothing below the Nyquist frequency.
MIN_LOWPASS_HZ, MAX_LOWPASS_HZ = 256, int(SAMPLE_RATE // 2 - TAPER_HZ)


def lowpass_response(cutoff_hz: float, n_samples: int = WINDOW_SAMPLES,
                     sample_rate: float = SAMPLE_RATE) -> torch.Tensor:
    """Amplitude response on the rFFT grid: 1 below, 0 above, raised cosine across ``cutoff_hz``.

    Parameters
    ----------
    cutoff_hz : float
        Frequency of half amplitude (Hz); the edge spans ``cutoff_hz ± TAPER_HZ / 2``.
    n_samples : int, optional
        Window length in samples. Default 16384.
    sample_rate : float, optional
        Hz. Default 4096.

    Returns
    -------
    torch.Tensor
        (n_samples // 2 + 1,) float32 in [0, 1].

    Raises
    ------
    ValueError
        ``cutoff_hz`` not in [MIN_LOWPASS_HZ, MAX_LOWPASS_HZ].
    """
    if not MIN_LOWPASS_HZ <= cutoff_hz <= MAX_LOWPASS_HZ:
        raise ValueError(f"lowpass cutoff must be in [{MIN_LOWPASS_HZ}, {MAX_LOWPASS_HZ}] Hz, got {cutoff_hz!r}")
    f = torch.fft.rfftfreq(n_samples, d=1.0 / sample_rate, dtype=torch.float64)
    u = ((f - (cutoff_hz - TAPER_HZ / 2)) / TAPER_HZ).clamp(0.0, 1.0)  # 0 below the edge, 1 above
    return (0.5 * (1.0 + torch.cos(math.pi * u))).float()


class LowPass(nn.Module):
    """Zero the whitened strain above a cutoff: (B, C, T) -> (B, C, T), T = 16384.

    An all-zero channel (an absent detector) stays exactly zero. Runs in float32 whatever the
    autocast: a bf16 transform would add rounding noise of ~0.4 % of the input's own.

    Parameters
    ----------
    cutoff_hz : float
        Half-amplitude frequency (Hz), see :func:`lowpass_response`.
    """

    def __init__(self, cutoff_hz: float) -> None:
        super().__init__()
        self.cutoff_hz = float(cutoff_hz)
        # not persistent: it follows from the config, and weights files stay the same set of tensors
        self.register_buffer("response", lowpass_response(self.cutoff_hz), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Low-passed ``x`` (B, C, T), same dtype."""
        if x.shape[-1] != self.response.numel() * 2 - 2:
            raise ValueError(f"LowPass expects {self.response.numel() * 2 - 2} samples, got {x.shape[-1]}")
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec = torch.fft.rfft(x.float(), dim=-1) * self.response
            return torch.fft.irfft(spec, n=x.shape[-1], dim=-1).to(x.dtype)

    def extra_repr(self) -> str:
        return f"cutoff_hz={self.cutoff_hz:g}"
