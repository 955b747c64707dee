"""Plotly figures of the app. Arrays go in as float32 so plotly ships them base64-packed (small
websocket messages even at 3 × 16384 samples). Times in s, frequencies in Hz."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gwviz.constants import CLASSES, DETECTORS

from gwviz.plots import CLASS_COLOURS
from gwviz.plots import DETECTOR_COLOURS as COLOURS

METHOD_NAMES = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM", "integrated_gradients": "Integrated gradients", "occlusion": "Occlusion"}


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def strain_cam_figure(t: np.ndarray, data: np.ndarray, cam: np.ndarray | None, title: str,
                      merger_times: dict[str, float] | None = None, clean: np.ndarray | None = None,
                      cam_label: str = "Grad-CAM", height: int = 560) -> go.Figure:
    """Whitened strain (3, N) per detector on a shared time axis [s] (``t`` starts at 0, 4096 Hz),
    the attribution (N,) as an orange band on a right-hand [0, 1] axis, dashed lines at the
    per-detector merger times [s], the clean whitened signal (3, N) when given.

    Drawn by the project's shared :func:`gwviz.plots.strain_cam_figure`, so the app, the gallery
    and the evaluation pages look alike."""
    from gwviz.plots import strain_cam_figure as shared
    rate = 1.0 / float(t[1] - t[0])
    merger = {d: int(round(v * rate)) for d, v in merger_times.items()} if merger_times else None
    # (the shared figure puts ticks at 0, 0.5, 1 on the attribution axes itself)
    return shared(data, None if cam is None else {cam_label: cam}, merger, title, clean, rate, height=height)


def probability_figure(probabilities: dict[str, float], title: str = "Class probabilities") -> go.Figure:
    """Bar chart of the four class probabilities."""
    p = [probabilities[c] for c in CLASSES]
    fig = go.Figure(go.Bar(x=list(CLASSES), y=p, text=[f"{v:.2f}" for v in p], textposition="outside",
                           marker_color=[CLASS_COLOURS[c] for c in CLASSES]))
    fig.update_layout(title=title, yaxis=dict(range=[0, 1.12], title="probability"), height=320,
                      margin=dict(t=60, b=30, l=50, r=20))
    return fig


def strain_figure(t: np.ndarray, data: np.ndarray, title: str, ylabel: str, detectors=DETECTORS,
                  height: int = 420) -> go.Figure:
    """One row per detector of (D, N) data against time [s]."""
    fig = make_subplots(rows=len(detectors), cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        subplot_titles=list(detectors))
    for i, det in enumerate(detectors):
        fig.add_trace(go.Scatter(x=_f32(t), y=_f32(data[i]), mode="lines", name=det,
                                 line=dict(width=0.9, color=COLOURS.get(det, "black"))), row=i + 1, col=1)
        fig.update_yaxes(title_text=ylabel, row=i + 1, col=1)
    fig.update_xaxes(title_text="time [s]", row=len(detectors), col=1)
    fig.update_layout(title=title, height=height, showlegend=False, margin=dict(t=70, b=40, l=60, r=20))
    return fig


def asd_figure(freqs: np.ndarray, asd: np.ndarray, design: np.ndarray | None = None,
               title: str = "Amplitude spectral density") -> go.Figure:
    """Log-log ASDs [1/√Hz] (3, F) per detector, with the O3 design curves dotted."""
    fig = go.Figure()
    keep = freqs >= 10
    for i, det in enumerate(DETECTORS):
        fig.add_trace(go.Scatter(x=_f32(freqs[keep]), y=asd[i][keep], mode="lines", name=f"{det} (Welch)",
                                 line=dict(color=COLOURS[det], width=1)))
        if design is not None:
            fig.add_trace(go.Scatter(x=_f32(freqs[keep]), y=design[i][keep], mode="lines", name=f"{det} O3 design",
                                     line=dict(color=COLOURS[det], dash="dot", width=1)))
    fig.update_layout(title=title, xaxis=dict(type="log", title="frequency [Hz]"),
                      yaxis=dict(type="log", title="ASD [1/√Hz]", exponentformat="power"), height=380,
                      margin=dict(t=60, b=40, l=60, r=20))
    return fig


def qtransform_figure(times: np.ndarray, freqs: np.ndarray, energy: np.ndarray, title: str) -> go.Figure:
    """Q-transform normalised energy (F, T) against time [s] and log frequency [Hz]."""
    fig = go.Figure(go.Heatmap(x=_f32(times), y=_f32(freqs), z=_f32(energy), colorscale="Viridis",
                               zmin=0, zmax=max(float(np.percentile(energy, 99.9)), 1e-9),
                               colorbar=dict(title="energy")))
    fig.update_layout(title=title, yaxis=dict(type="log", title="frequency [Hz]"), xaxis=dict(title="time [s]"),
                      height=360, margin=dict(t=60, b=40, l=60, r=20))
    return fig


def antenna_figure(amap: dict, ra: float, dec: float, title: str) -> go.Figure:
    """Network antenna response √(Σ_d F+² + F×²) over the sky, the source marked."""
    net = np.sqrt((amap["response"] ** 2).sum(0))
    fig = go.Figure(go.Heatmap(x=_f32(np.degrees(amap["ra"])), y=_f32(np.degrees(amap["dec"])), z=_f32(net),
                               colorscale="Cividis", colorbar=dict(title="√ΣF²")))
    fig.add_trace(go.Scatter(x=[np.degrees(ra)], y=[np.degrees(dec)], mode="markers", name="source",
                             marker=dict(symbol="star", size=16, color="red", line=dict(color="white", width=1))))
    fig.update_layout(title=title, xaxis=dict(title="right ascension [deg]"), yaxis=dict(title="declination [deg]"),
                      height=360, margin=dict(t=60, b=40, l=60, r=20))
    return fig


def attribution_figure(t: np.ndarray, profiles: dict[str, np.ndarray], title: str,
                       merger_time: float | None = None) -> go.Figure:
    """Several attribution profiles (N,) in [0, 1] on one time axis [s]."""
    fig = go.Figure()
    for name, p in profiles.items():
        fig.add_trace(go.Scatter(x=_f32(t), y=_f32(p), mode="lines", name=METHOD_NAMES.get(name, name)))
    if merger_time is not None:
        fig.add_vline(x=merger_time, line_dash="dash", line_color="black")
    fig.update_layout(title=title, xaxis=dict(title="time in window [s]"), yaxis=dict(title="normalised attribution"),
                      height=360, margin=dict(t=60, b=40, l=60, r=20))
    return fig


def overlay_figure(series: list[tuple[str, np.ndarray, np.ndarray]], title: str, ylabel: str) -> go.Figure:
    """Named (time [s], values) curves on one axis."""
    fig = go.Figure()
    for name, t, y in series:
        fig.add_trace(go.Scatter(x=_f32(t), y=np.asarray(y, dtype=np.float64), mode="lines", name=name))
    fig.update_layout(title=title, xaxis=dict(title="time [s]"), yaxis=dict(title=ylabel, exponentformat="e"),
                      height=340, margin=dict(t=60, b=40, l=60, r=20))
    return fig


def mf_vs_cam_figure(t: np.ndarray, rho: np.ndarray, cam: np.ndarray, cam_label: str, merger: dict[str, float],
                     title: str) -> go.Figure:
    """Matched-filter |ρ_d| (3, N) of each detector and the network's map (N,) on one time axis [s]:
    |ρ| on the left axis, the map (normalised to 1) filled on the right; dashed: true merger times."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    step = 4  # ~4,000 points per line keep the message small; ρ and maps are smooth at 1 ms
    fig.add_trace(go.Scatter(x=_f32(t[::step]), y=_f32(cam[::step] / max(float(cam.max()), 1e-12)), name=cam_label,
                             fill="tozeroy", line=dict(color="rgba(255,140,0,0.6)", width=0.6),
                             fillcolor="rgba(255,140,0,0.25)"), secondary_y=True)
    for d, row in zip(DETECTORS, rho):
        fig.add_trace(go.Scatter(x=_f32(t[::step]), y=_f32(row[::step]), name=f"{d} matched filter |ρ|",
                                 line=dict(color=COLOURS[d], width=1.2)), secondary_y=False)
    for d, m in merger.items():
        fig.add_vline(x=m, line=dict(color=COLOURS[d], dash="dash", width=1))
    fig.update_layout(title=title, height=400, margin=dict(t=50, b=40, l=60, r=60),
                      legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(title_text="merger position in the window [s]")
    fig.update_yaxes(title_text="|ρ| (SNR)", secondary_y=False)
    fig.update_yaxes(title_text="map", range=[0, 1.05], tickvals=[0, 0.5, 1], showgrid=False, secondary_y=True)
    return fig
