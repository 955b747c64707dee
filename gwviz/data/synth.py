"""The one synthesis path: (class, masses, SNR, sky position, noise) -> whitened (3, 16384) window.

:func:`synthesize` is batched torch and runs unchanged on the CPU (dataset builder, app, one
sample at a time) and on the GPU (trainer, a batch at a time). :func:`make_sample` wraps it for
one sample with numpy in and out.

Inside torch, strain is multiplied by :data:`gwviz.constants.STRAIN_SCALE` (PSDs by its square): O3 PSDs
(~1e-47 /Hz) underflow float32. Whitened data and SNRs do not depend on that scale.

Conventions: a segment of T samples; the model's window is the 4 s ending 2 s before the
segment's end; the geocentric merger (amplitude peak) lands ``merger_offset`` seconds before the
window's end; detector d sees it ``time_delays[d]`` later. The network optimal SNR
√Σρ_d² counts only the part of the signal inside the 4-s window (for a BNS, a fraction of the
inspiral), from 20 Hz, with the PSD of the noise it goes into (the true PSD for simulated noise,
a Welch estimate of the noise-only segment for real noise).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..constants import (CLASSES, DETECTORS, F_LOWER_SNR, F_UPPER_SNR, SAMPLE_RATE, SEGMENT_DURATION,
                         STRAIN_SCALE, WINDOW_DURATION, WINDOW_END_MARGIN, WINDOW_SAMPLES, window_start_index)
from .detectors import antenna_patterns, gmst, time_delays
from .noise import NoiseSegment
from .checks import check_strain
from .projection import SIGNAL_BAND, project
from .params import SignalParams, check_class, check_draw_ranges, draw_params
from .psd import interpolate_psd, welch_psd
from .waveforms import polarisations
from .whiten import whiten_span


def optimal_snr(h: torch.Tensor, psd: torch.Tensor, sample_rate: float, f_low: float = F_LOWER_SNR,
                f_high: float = F_UPPER_SNR) -> torch.Tensor:
    """Optimal matched-filter SNR ρ = √(4 Δf Σ_{f_low ≤ f ≤ f_high} |h̃(f)|² / S(f)) of each row.

    Parameters
    ----------
    h : (..., N) tensor
        Strain (scaled like √psd, e.g. × STRAIN_SCALE with psd × STRAIN_SCALE²).
    psd : (..., N // 2 + 1) tensor
        One-sided PSD [1/Hz] on the same grid (Δf = fs / N).
    sample_rate : float
        Sample rate fs [Hz].
    f_low : float, optional
        Lower frequency cutoff [Hz]. Default ``F_LOWER_SNR`` (20 Hz).
    f_high : float, optional
        Upper frequency cutoff [Hz]. Default ``F_UPPER_SNR`` (1,500 Hz): below the anti-alias roll-off of
        4-kHz strain, whose tiny PSD there would otherwise count SNR no real signal has.

    Returns
    -------
    (...,) tensor
    """
    n = h.shape[-1]
    hf = torch.fft.rfft(h, dim=-1) / sample_rate
    f = torch.fft.rfftfreq(n, 1.0 / sample_rate, device=h.device, dtype=h.dtype)
    w = torch.where((f >= f_low) & (f <= f_high), 1.0 / psd, torch.zeros((), dtype=h.dtype, device=h.device))
    return (4.0 * (sample_rate / n) * ((hf.real ** 2 + hf.imag ** 2) * w).sum(-1)).sqrt()


def snr_scale(hw: torch.Tensor, snr_psd: torch.Tensor, snr: torch.Tensor, sample_rate: float,
              present: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The factor that brings signals to a network optimal SNR (the one home of that rule).

    Parameters
    ----------
    hw : (B, D, 16384) tensor
        Signal inside the model's window.
    snr_psd : (B or 1, D, 8193) tensor
        PSD [1/Hz] on the window's grid (0.25 Hz), scaled like ``hw`` squared.
    snr : (B,) tensor
        Target network optimal SNR.
    sample_rate : float
        Sample rate [Hz].
    present : (B, D) bool tensor or None, optional
        Detectors counted; None (default): all.

    Returns
    -------
    scale : (B,) tensor
        Factor for ``hw`` (inf or NaN where the signal has no power in the counted detectors).
    rho : (B, D) tensor
        Per-detector SNR of ``hw`` before scaling, zero where absent.
    """
    rho = optimal_snr(hw, snr_psd, sample_rate)
    if present is not None:
        rho = rho * present.to(rho.dtype)
    return snr / rho.square().sum(-1).sqrt(), rho


@dataclass(kw_only=True)
class Injection:
    """What :func:`synthesize` injects into a batch of B noise segments.

    Keyword-only: two swapped tensors of one shape would otherwise pass silently. Tensors live on the
    noise's device.

    Attributes
    ----------
    hp, hc : (B, L) tensor
        Polarisations × STRAIN_SCALE, amplitude peak at ``peak_index``.
    peak_index : int
        Sample of the amplitude peak (the merger) in ``hp``/``hc``.
    fp, fc, delays : (B, D) tensor
        Antenna patterns and arrival delays [s] with respect to the geocentre.
    merger_offset : (B,) tensor
        Geocentric merger time before the window's end [s].
    snr : (B,) tensor
        Target network optimal SNR.
    snr_psd : (B or 1, D, 8193) tensor, optional
        PSD × STRAIN_SCALE² on the window's grid (0.25 Hz); None: a Welch estimate of the noise.
    is_signal : (B,) bool tensor, optional
        Rows that stay pure noise in a mixed batch (their waveform is ignored).
    """

    hp: torch.Tensor
    hc: torch.Tensor
    peak_index: int
    fp: torch.Tensor
    fc: torch.Tensor
    delays: torch.Tensor
    merger_offset: torch.Tensor
    snr: torch.Tensor
    snr_psd: torch.Tensor | None = None
    is_signal: torch.Tensor | None = None


def _check_batch(noise, sample_rate, inj: "Injection | None") -> None:
    """Shapes and dtypes of :func:`synthesize`'s inputs (host-side only: no device synchronisation,
    so the trainer's batches pay nothing). Values are checked where they are made (SignalParams,
    check_strain), because a NaN test here would stall the GPU."""
    if not (isinstance(noise, torch.Tensor) and noise.ndim == 3 and noise.is_floating_point()):
        raise ValueError(f"noise must be a (B, D, T) float tensor, got {getattr(noise, 'shape', type(noise))}")
    b, d, t = noise.shape
    if window_start_index(t, int(sample_rate)) < 0:
        raise ValueError(f"noise segment of {t} samples is shorter than the window plus its end margin "
                         f"({WINDOW_DURATION + WINDOW_END_MARGIN:g} s at {sample_rate:g} Hz)")
    if inj is None:
        return
    if not isinstance(inj, Injection):
        raise ValueError(f"injection must be a gwviz.data.synth.Injection, got {type(inj).__name__}")
    hp, hc, peak_index = inj.hp, inj.hc, inj.peak_index
    if not (isinstance(hp, torch.Tensor) and isinstance(hc, torch.Tensor) and hp.ndim == 2 and hp.shape == hc.shape
            and hp.shape[0] == b):
        raise ValueError(f"hp and hc must be ({b}, L) tensors of one shape, got {getattr(hp, 'shape', hp)} and "
                         f"{getattr(hc, 'shape', hc)}")
    if isinstance(peak_index, bool) or not isinstance(peak_index, (int, np.integer)) or not 0 <= peak_index < hp.shape[1]:
        raise ValueError(f"peak_index must be an int in [0, {hp.shape[1]}), got {peak_index!r}")
    for name, shape in (("fp", (b, d)), ("fc", (b, d)), ("delays", (b, d)), ("merger_offset", (b,)), ("snr", (b,))):
        v = getattr(inj, name)
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != shape:
            raise ValueError(f"{name} must be a tensor of shape {shape}, got {getattr(v, 'shape', v)!r}")


@dataclass
class Synthesized:
    """Output of :func:`synthesize`.

    Attributes
    ----------
    data : (B, D, 16384) tensor
        Whitened window (noise plus signal).
    signal : (B, D, 16384) tensor
        Injected strain in the window × STRAIN_SCALE (zeros for noise).
    white_signal : (B, D, 16384) tensor
        ``signal`` whitened with the data's filter (zeros for noise, and when not asked for).
    snr : (B, D) tensor
        Per-detector optimal SNRs (zeros for noise).
    """

    data: torch.Tensor
    signal: torch.Tensor
    white_signal: torch.Tensor
    snr: torch.Tensor


def synthesize(noise: torch.Tensor, sample_rate: float = SAMPLE_RATE, injection: Injection | None = None, *,
               white_signal: bool = True, present: torch.Tensor | None = None) -> Synthesized:
    """Inject, rescale to the target network SNR, whiten and crop to the model's window.

    Parameters
    ----------
    noise : (B, D, T) float tensor
        Noise × STRAIN_SCALE; T at least the window plus its end margin (6 s).
    sample_rate : float, optional
        Sample rate [Hz]. Default ``SAMPLE_RATE`` (4096).
    injection : Injection or None, optional
        What to inject; None (default): pure noise.
    white_signal : bool, optional
        Also whiten the clean signal with the data's filter (the trainer skips it). Default True.
    present : (B, D) bool tensor or None, optional
        The detectors that observed (None, default: all). The network SNR counts only those, and the
        absent detectors' channels of ``data``, ``white_signal`` and ``snr`` are zero: how a missing
        detector reaches a network trained with ``detector_mask``.

    Returns
    -------
    Synthesized

    Raises
    ------
    ValueError
        ``noise``, ``injection`` or ``present`` of the wrong type or shape, or ``noise`` too short. Values
        are not checked here (a NaN test would stall the GPU).
    """
    _check_batch(noise, sample_rate, injection)
    b, d, t = noise.shape
    if present is not None and (not isinstance(present, torch.Tensor) or tuple(present.shape) != (b, d)
                                or present.dtype != torch.bool):
        raise ValueError(f"present must be a ({b}, {d}) bool tensor, got {getattr(present, 'shape', present)!r}")
    keep = (lambda v: v) if present is None else (lambda v: v * present.to(v.dtype)[:, :, None])  # noqa: E731
    i0 = window_start_index(t, int(sample_rate))
    zeros = torch.zeros(b, d, WINDOW_SAMPLES, dtype=noise.dtype, device=noise.device)
    if injection is None:
        white = keep(whiten_span(noise, welch_psd(noise, sample_rate), sample_rate, i0, WINDOW_SAMPLES))
        return Synthesized(white, zeros, zeros, torch.zeros(b, d, dtype=noise.dtype, device=noise.device))
    inj = injection
    merger = (i0 + WINDOW_SAMPLES - inj.peak_index) / sample_rate - inj.merger_offset  # buffer start -> merger [s]
    h = project(inj.hp, inj.hc, inj.fp, inj.fc, merger[:, None] + inj.delays, t, sample_rate, band=SIGNAL_BAND)
    hw = h[..., i0:i0 + WINDOW_SAMPLES]
    snr_psd = inj.snr_psd if inj.snr_psd is not None else interpolate_psd(welch_psd(noise, sample_rate),
                                                                           WINDOW_SAMPLES // 2 + 1)
    scale, rho = snr_scale(hw, snr_psd, inj.snr, sample_rate, present)
    if inj.is_signal is not None:
        scale = torch.where(inj.is_signal, scale, torch.zeros_like(scale))
    h = h * scale[:, None, None]
    x = noise + h
    psd = welch_psd(x, sample_rate)
    if not white_signal:
        white = keep(whiten_span(x, psd, sample_rate, i0, WINDOW_SAMPLES))
        return Synthesized(white, h[..., i0:i0 + WINDOW_SAMPLES], zeros, rho * scale[:, None])
    white = whiten_span(torch.cat([x, h], 1), torch.cat([psd, psd], 1), sample_rate, i0, WINDOW_SAMPLES)
    return Synthesized(keep(white[:, :d]), h[..., i0:i0 + WINDOW_SAMPLES], keep(white[:, d:]), rho * scale[:, None])


@dataclass
class Sample:
    """One model input with its metadata.

    Attributes
    ----------
    data : (3, 16384) float32 ndarray
        Whitened strain of the window.
    label : int
        Class index in ``CLASSES``.
    signal : (3, 16384) ndarray
        Injected strain in the window [strain] (zeros for noise).
    white_signal : (3, 16384) float32 ndarray
        The clean signal whitened with the data's filter.
    meta : dict
        Class, masses [M☉], chirp mass [M☉], SNRs, ra/dec/polarization/inclination/coa_phase [rad],
        GPS of merger and window start [s], merger index per detector (sample in the window), noise source.
    """

    data: np.ndarray
    label: int
    signal: np.ndarray
    white_signal: np.ndarray
    meta: dict = field(default_factory=dict)


def make_sample(kind: str, noise_source, params: SignalParams | None = None, seed: int | None = None,
                rng: np.random.Generator | None = None, segment: NoiseSegment | None = None,
                dtype: torch.dtype = torch.float64, **draw_kwargs) -> Sample:
    """Make one sample of class ``kind`` in noise from ``noise_source``.

    Parameters not given are drawn from the paper's distributions with ``rng`` (or ``seed``).
    For real noise the GPS time (hence antenna patterns) is the segment's own: the merger's GPS time is
    the segment's, and ``meta['gps']`` says it. For simulated noise the segment is placed in time so that
    the merger lands at ``params.gps`` (``meta['gps_window_start']`` says where). The caller's
    ``params`` and ``segment`` are left unchanged (the function works on copies).

    Parameters
    ----------
    kind : str
        'noise', 'BBH', 'NSBH' or 'BNS'.
    noise_source : object
        Has ``segment(duration, rng) -> NoiseSegment`` (:func:`gwviz.data.noise.noise_source`); unused when
        ``segment`` is given.
    params : SignalParams or None, optional
        The signal, of class ``kind``; None (default): drawn.
    seed : int or None, optional
        Seed of a fresh ``rng`` (non-negative). Default None.
    rng : numpy.random.Generator or None, optional
        Random source (wins over ``seed``). Default None.
    segment : NoiseSegment or None, optional
        The noise, (3, N) at 4096 Hz, N ≥ 16 s; None (default): ``noise_source.segment(16, rng)``.
    dtype : torch.dtype, optional
        Precision of the synthesis, torch.float32 or torch.float64 (default).
    **draw_kwargs
        Passed to :func:`gwviz.data.params.draw_params` (``snr_range``, ``merger_span``, ``gps_span``);
        checked, and unused, for 'noise'; refused with ``params`` (they would be ignored).

    Returns
    -------
    Sample

    Raises
    ------
    ValueError
        Unknown class, bad ``dtype``/``seed``/``rng``/``params``/``segment``/``draw_kwargs``, a
        ``noise_source`` without ``segment()`` when no segment is given, unusable noise (NaN/inf, flat
        detector, too short), or a signal that cannot be scaled to its SNR or whitened to finite values
        (no sample is made).
    TypeError
        A keyword argument that :func:`gwviz.data.params.draw_params` does not take.
    """
    check_class(kind)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    if rng is None and seed is not None and (isinstance(seed, (bool, np.bool_))
                                             or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r} ({type(seed).__name__})")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    rng = rng if rng is not None else np.random.default_rng(seed)
    if params is not None and not isinstance(params, SignalParams):
        raise ValueError(f"params must be a gwviz.data.params.SignalParams, got {type(params).__name__}")
    if params is not None and params.kind != kind:
        raise ValueError(f"params are for {params.kind}, asked for {kind}")
    unknown = sorted(set(draw_kwargs) - {"snr_range", "merger_span", "gps_span"})
    if unknown:
        raise TypeError(f"make_sample() got unexpected keyword arguments {unknown}; it passes snr_range, "
                        "merger_span and gps_span to draw_params")
    if params is not None and draw_kwargs:
        raise ValueError(f"{sorted(draw_kwargs)} would be ignored: params are given, nothing is drawn "
                         "(set the SNR, merger offset or GPS time in the SignalParams)")
    check_draw_ranges(**draw_kwargs)  # for 'noise' too: a bad range is a bug whatever the class
    if segment is None and not callable(getattr(noise_source, "segment", None)):
        raise ValueError("noise_source must have segment(duration, rng) (gwviz.data.noise.noise_source('simulated'), "
                         f"for example) when no segment is given, got {type(noise_source).__name__}")
    if kind != "noise" and params is None:
        params = draw_params(kind, rng, **draw_kwargs)
    seg = segment if segment is not None else noise_source.segment(SEGMENT_DURATION, rng)
    if not isinstance(seg, NoiseSegment):
        raise ValueError(f"segment must be a gwviz.data.noise.NoiseSegment, got {type(seg).__name__}")
    shape = np.shape(seg.strain)
    if len(shape) != 2 or shape[0] != len(DETECTORS) or seg.sample_rate != SAMPLE_RATE:
        raise ValueError(f"noise segment must be ({len(DETECTORS)}, N) at {SAMPLE_RATE} Hz, "
                         f"got {shape} at {seg.sample_rate} Hz")
    # Same checks as user strain (dtype, NaN/inf, flat detector): a zero V1 from a noise source
    # made signal-labelled samples with no signal. At least 16 s: a shorter segment wraps the
    # waveform around the circular projection.
    strain = check_strain(dict(zip(DETECTORS, seg.strain)), seg.sample_rate, SEGMENT_DURATION)
    fs = seg.sample_rate
    n = strain.shape[-1]
    i0 = window_start_index(n, fs)
    noise = torch.as_tensor(strain * STRAIN_SCALE, dtype=dtype)[None]
    meta = {"class": kind, "label": CLASSES.index(kind), "noise_source": seg.source,
            "simulated_noise": bool(seg.simulated), "gps_window_start": seg.gps_start + i0 / fs}
    if kind == "noise":
        out = synthesize(noise, fs)
    else:
        # Copies: the caller's segment and params stay as they were (a reused SignalParams or
        # NoiseSegment must not carry the previous sample's GPS time into the next one).
        if seg.simulated:  # the noise has no time of its own: put the merger at params.gps
            seg = replace(seg, gps_start=params.gps - (i0 + WINDOW_SAMPLES) / fs + params.merger_offset)
            meta["gps_window_start"] = seg.gps_start + i0 / fs
        else:
            params = replace(params, gps=seg.gps_start + (i0 + WINDOW_SAMPLES) / fs - params.merger_offset)
        pol = polarisations(params, fs)
        t = lambda v: torch.as_tensor(np.atleast_1d(v), dtype=dtype)  # noqa: E731
        g = t(gmst(params.gps))
        fp, fc = antenna_patterns(t(params.ra), t(params.dec), t(params.polarization), g)
        delays = time_delays(t(params.ra), t(params.dec), g)
        snr_psd = None
        if seg.psd is not None:
            snr_psd = torch.as_tensor(seg.psd(fs / WINDOW_SAMPLES, WINDOW_SAMPLES // 2 + 1) * STRAIN_SCALE ** 2,
                                      dtype=dtype)[None]
        out = synthesize(noise, fs, Injection(hp=t(pol.hp * STRAIN_SCALE)[None, :], hc=t(pol.hc * STRAIN_SCALE)[None, :],
                                              peak_index=pol.peak_index, fp=fp, fc=fc, delays=delays,
                                              merger_offset=t(params.merger_offset), snr=t(params.snr), snr_psd=snr_psd))
        snr_det = out.snr[0].numpy()
        merger_geo = WINDOW_SAMPLES - params.merger_offset * fs
        meta.update(params.to_dict())
        meta.update({
            "snr_network": math.hypot(*map(float, snr_det)),  # no under/overflow of the squares (SNR 1e-300 gave 0)
            **{f"snr_{d}": float(s) for d, s in zip(DETECTORS, snr_det)},
            "merger_index": int(round(merger_geo)),
            **{f"merger_index_{d}": int(round(merger_geo + float(dt) * fs)) for d, dt in zip(DETECTORS, delays[0])},
            **{f"delay_{d}": float(dt) for d, dt in zip(DETECTORS, delays[0])},
            **{f"fplus_{d}": float(v) for d, v in zip(DETECTORS, fp[0])},
            **{f"fcross_{d}": float(v) for d, v in zip(DETECTORS, fc[0])},
            "f_start": pol.f_start,
        })
        # The result must be what its metadata says: a signal of the requested SNR in the window.
        got = meta["snr_network"]
        if not np.isclose(got, params.snr, rtol=1e-4):
            why = (f"SNR {params.snr:g} overflows {dtype}" if np.isinf(got) else
                   f"with merger_offset {params.merger_offset:g} s it has no power above {F_LOWER_SNR:g} Hz in the "
                   "4-s window")
            raise ValueError(f"cannot scale the {kind} signal (m1={params.mass1:g}, m2={params.mass2:g} M☉) to network "
                             f"SNR {params.snr:g}: {why} (got {got:g}); no sample was made")
    data = out.data[0].float().numpy()
    if not np.isfinite(data).all():
        raise ValueError(f"the whitened {kind} window is not finite (SNR {meta.get('snr', 'n/a')} overflows "
                         "float32?); no sample was made")
    return Sample(data, CLASSES.index(kind), (out.signal[0] / STRAIN_SCALE).numpy(),
                  out.white_signal[0].float().numpy(), meta)
