"""Plotly figures shared by the CLIs (evaluate, gallery, camstats) and the app.

Every function returns a ``plotly.graph_objects.Figure`` and touches no files; :func:`write_page`
writes one or more figures as an HTML page that opens offline.

Time axes are seconds from the window's start; strain is whitened (dimensionless); CAMs are drawn
normalised to [0, 1] (:func:`gwviz.explain.attribution.normalise`).
"""
from __future__ import annotations

import functools
import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .constants import CLASSES, DETECTORS, SAMPLE_RATE

#: One colour per class (noise grey), used by every figure so classes look the same everywhere.
CLASS_COLOURS: dict[str, str] = {"noise": "#7f7f7f", "BBH": "#1f77b4", "NSBH": "#2ca02c", "BNS": "#d62728",
                                 "overall": "#000000"}
DETECTOR_COLOURS: dict[str, str] = {"H1": "#ee0000", "L1": "#4ba6ff", "V1": "#9b59b6"}
#: the clean injected signal, the same in every detector row: one legend entry names all three
SIGNAL_COLOUR = "#d62728"
CAM_COLOUR = "rgba(255, 140, 0, 0.28)"
CAM_TRUE_COLOUR = "rgba(148, 0, 211, 0.9)"


def _norm(cam: np.ndarray) -> np.ndarray:
    from .explain.attribution import normalise
    return normalise(cam)


def _merger_dict(merger_index) -> dict[str, int]:
    """None, one int (geocentric, all detectors) or {detector: index} -> {detector: index}."""
    if merger_index is None:
        return {}
    if isinstance(merger_index, Mapping):
        return {d: int(v) for d, v in merger_index.items() if v is not None}
    return {d: int(merger_index) for d in DETECTORS}


def strain_cam_figure(data: np.ndarray, cams: Mapping[str, np.ndarray] | np.ndarray | None = None,
                      merger_index=None, title: str = "", white_signal: np.ndarray | None = None,
                      sample_rate: float = SAMPLE_RATE, display_step: int = 1, height: int = 520) -> go.Figure:
    """Whitened strain of the three detectors, one row each, with CAM(s) overlaid and the merger line.

    Parameters
    ----------
    data : (3, T) ndarray
        Whitened strain of H1, L1, V1.
    cams : (T,) ndarray or dict of str to (T,) ndarray, optional
        One profile (legend "Grad-CAM") or {legend name: profile}; each drawn normalised to [0, 1] on a
        right-hand axis, the first as a filled area, further ones as lines. Default None: no CAM.
    merger_index : int or dict of str to int, optional
        Sample of the merger in the window: an int (same for all rows) or {detector: index}; drawn as a
        dashed vertical line. Default None: no line (noise).
    title : str, optional
        Default "".
    white_signal : (3, T) ndarray, optional
        Clean whitened signal, drawn over the data (rows that are all zero are skipped). Default None.
    sample_rate : float, optional
        Sample rate [Hz]. Default 4096.
    display_step : int, optional
        Draw every n-th sample (HTML size; CAMs are smooth on the 32-sample scale of Grad-CAM, so they
        are drawn with step max(display_step, 8)). Default 1.
    height : int, optional
        Figure height [px]. Default 520.

    Returns
    -------
    plotly.graph_objects.Figure

    Raises
    ------
    ValueError
        If ``data`` is not (3, T).
    """
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[0] != len(DETECTORS):
        raise ValueError(f"data must be (3, T), got {data.shape}")
    if cams is not None and not isinstance(cams, Mapping):
        cams = {"Grad-CAM": cams}
    cams = dict(cams or {})
    merger = _merger_dict(merger_index)
    # One dict, validated once by go.Figure: the same figure through make_subplots + add_trace(row=...)
    # + add_vline + update_yaxes cost ~0.08 s a call in plotly's validators, as much as the app's whole
    # Explore update (inject, whiten, classify, map); this way ~0.015 s (tests/test_plots.py checks the
    # figure against plotly's own make_subplots construction).
    layout = _stacked_layout(len(DETECTORS))
    traces: list[dict] = []
    dt = 1.0 / sample_rate
    s = max(int(display_step), 1)
    sc = max(s, 8)
    # The CAM sits on the right-hand (overlaying) axis, which plotly draws above the strain: a light
    # fill with a thin translucent edge keeps the strain readable through it.
    for r, det in enumerate(DETECTORS, start=1):
        first = r == 1
        xa, ya, ya2 = _axis_ids(r)
        on = dict(xaxis=xa, yaxis=ya, x0=0.0, mode="lines", showlegend=first)
        traces.append(dict(type="scatter", dx=dt * s, y=data[r - 1, ::s].astype(np.float32), name="whitened strain",
                           legendgroup="strain", line=dict(color="rgba(90,90,90,0.8)", width=0.8), **on))
        if white_signal is not None and np.any(white_signal[r - 1]):
            traces.append(dict(type="scatter", dx=dt * s, y=np.asarray(white_signal)[r - 1, ::s].astype(np.float32),
                               name="injected signal (whitened)", legendgroup="signal",
                               line=dict(color=SIGNAL_COLOUR, width=1.2), **on))
        for i, (name, cam) in enumerate(cams.items()):
            style = dict(fill="tozeroy", fillcolor=CAM_COLOUR, line=dict(color="rgba(255,140,0,0.6)", width=0.6)) \
                if i == 0 else dict(line=dict(color=CAM_TRUE_COLOUR, width=1.2, dash="dot"))
            traces.append(dict(type="scatter", dx=dt * sc, y=_norm(cam)[::sc], name=name, legendgroup=f"cam{i}",
                               **{**on, "yaxis": ya2}, **style))
        if det in merger:
            x = merger[det] * dt
            layout.setdefault("shapes", []).append(dict(type="line", x0=x, x1=x, xref=xa, y0=0, y1=1,
                                                        yref=f"{ya} domain",
                                                        line=dict(color="black", dash="dash", width=1.2)))
        layout[_axis_key(ya)]["title"] = dict(text=det)
        # explicit ticks: an overlaying axis otherwise copies the strain axis' tick positions
        layout[_axis_key(ya2)].update(range=[0, 1.05], tickmode="array", tickvals=[0, 0.5, 1], showgrid=False,
                                      **({"title": dict(text="CAM")} if cams else {}))
    layout[_axis_key(_axis_ids(len(DETECTORS))[0])]["title"] = dict(text="time in window [s]")
    layout.update(title=dict(text=title), height=height, margin=dict(l=60, r=60, t=60, b=40),
                  legend=dict(orientation="h", y=-0.12), template="plotly_white")
    return go.Figure(data=traces, layout=layout)


def _axis_ids(row: int) -> tuple[str, str, str]:
    """Plotly's names of the x axis, the strain y axis and the right-hand (CAM) y axis of ``row`` (from 1)
    in a one-column make_subplots grid with a secondary y axis per row."""
    return f"x{row if row > 1 else ''}", f"y{2 * row - 1 if row > 1 else ''}", f"y{2 * row}"


def _axis_key(axis_id: str) -> str:
    """'x2' -> 'xaxis2', 'y' -> 'yaxis' (the layout key of a trace's axis reference)."""
    return f"{axis_id[0]}axis{axis_id[1:]}"


@functools.lru_cache(maxsize=4)
def _stacked_layout_cached(rows: int) -> str:
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        specs=[[{"secondary_y": True}]] * rows)
    layout = fig.to_plotly_json()["layout"]
    layout.pop("template", None)
    return json.dumps(layout)


def _stacked_layout(rows: int) -> dict:
    """A fresh copy of the axes of make_subplots(rows, 1, shared x, a secondary y per row) as a plain dict:
    plotly's own geometry (domains, anchors, overlays), computed once per process."""
    return json.loads(_stacked_layout_cached(rows))


def fig2_figure(panels: Sequence[Mapping], sample_rate: float = SAMPLE_RATE, display_step: int = 2,
                cam_label: str = "Grad-CAM") -> go.Figure:
    """Sasaoka et al. (2023) Fig. 2: one column per sample, input strain on top, CAM below.

    Parameters
    ----------
    panels : sequence of dict
        Dicts with 'title', 'data' (3, T) whitened strain, 'cam' (T,), optional 'merger_index' (int,
        geocentric sample in the window).
    sample_rate : float, optional
        Sample rate [Hz]. Default 4096.
    display_step : int, optional
        Draw every n-th strain sample (the CAM every 8th). Default 2.
    cam_label : str, optional
        Legend name of the CAM. Default "Grad-CAM".

    Returns
    -------
    plotly.graph_objects.Figure

    Raises
    ------
    ValueError
        If ``panels`` is empty.
    """
    n = len(panels)
    if n == 0:
        raise ValueError("fig2_figure needs at least one panel")
    fig = make_subplots(rows=2, cols=n, shared_xaxes=True, column_titles=[p["title"] for p in panels],
                        vertical_spacing=0.06, horizontal_spacing=0.04, row_heights=[0.6, 0.4])
    dt, s = 1.0 / sample_rate, max(int(display_step), 1)
    for c, p in enumerate(panels, start=1):
        data = np.asarray(p["data"])
        # offsets keep the detectors apart without a third row: the paper draws them overlaid too
        off = 1.2 * np.nanmax(np.abs(data)) if data.size else 1.0
        for i, det in enumerate(DETECTORS):
            fig.add_trace(go.Scatter(x0=0.0, dx=dt * s, y=(data[i, ::s] + (1 - i) * off).astype(np.float32),
                                     mode="lines", name=det, legendgroup=det, showlegend=c == 1,
                                     line=dict(color=DETECTOR_COLOURS[det], width=0.7)), row=1, col=c)
        fig.add_trace(go.Scatter(x0=0.0, dx=dt * 8, y=_norm(p["cam"])[::8], mode="lines", fill="tozeroy",
                                 name=cam_label, legendgroup="cam", showlegend=c == 1,
                                 line=dict(color="darkorange", width=1)), row=2, col=c)
        if p.get("merger_index") is not None:
            for r in (1, 2):
                fig.add_vline(x=int(p["merger_index"]) * dt, line=dict(color="black", dash="dash", width=1),
                              row=r, col=c)
        fig.update_xaxes(title_text="time [s]", row=2, col=c)
    fig.update_yaxes(title_text="whitened strain", row=1, col=1)
    fig.update_yaxes(title_text="CAM (normalised)", range=[0, 1.05], row=2, col=1)
    fig.update_layout(height=520, template="plotly_white", margin=dict(l=60, r=20, t=60, b=40),
                      legend=dict(orientation="h", y=-0.12))
    return fig


def accuracy_vs_snr_figure(edges: Sequence[float], accuracy: Mapping[str, Sequence[float | None]],
                           counts: Mapping[str, Sequence[int]] | None = None,
                           baselines: Mapping[str, Mapping[str, Sequence[float | None]]] | None = None) -> go.Figure:
    """Accuracy per network-SNR bin, one line per class (and 'overall').

    Parameters
    ----------
    edges : (B + 1,) sequence of float
        Bin edges of network SNR.
    accuracy : dict of str to (B,) sequence
        {name: accuracy in [0, 1], or None for empty bins}.
    counts : dict of str to (B,) sequence of int, optional
        {name: windows per bin}, shown on hover. Default None.
    baselines : dict of str to dict, optional
        {method: {name: (B,)}} drawn dashed (e.g. a matched filter beside the CNN). Default None.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    e = np.asarray(edges, dtype=float)
    centres = 0.5 * (e[1:] + e[:-1])
    fig = go.Figure()

    def add(name: str, acc, dash: str | None = None, label: str | None = None, cnt=None) -> None:
        y = [np.nan if v is None else v for v in acc]
        fig.add_trace(go.Scatter(x=centres, y=y, mode="lines+markers", name=label or name,
                                 line=dict(color=CLASS_COLOURS.get(name), dash=dash),
                                 customdata=None if cnt is None else np.asarray(cnt),
                                 hovertemplate="SNR %{x}<br>accuracy %{y:.3f}"
                                 + ("<br>n=%{customdata}" if cnt is not None else "") + "<extra></extra>"))

    for name, acc in accuracy.items():
        add(name, acc, cnt=None if counts is None else counts.get(name))
    for method, accs in (baselines or {}).items():
        for name, acc in accs.items():
            add(name, acc, dash="dash", label=f"{name} ({method})")
    fig.update_layout(xaxis_title="network optimal SNR", yaxis_title="accuracy", yaxis_range=[0, 1.02],
                      template="plotly_white", title="Accuracy vs network SNR")
    return fig


def confusion_figure(matrix: np.ndarray, classes: Sequence[str] = CLASSES, normalise: bool = True) -> go.Figure:
    """Confusion matrix heatmap: rows true class, columns predicted.

    Parameters
    ----------
    matrix : (C, C) array_like
        Counts.
    classes : sequence of str, optional
        Default ``CLASSES``.
    normalise : bool, optional
        Show row fractions (counts on hover). Default True.

    Returns
    -------
    plotly.graph_objects.Figure

    Raises
    ------
    ValueError
        If ``matrix`` is not (C, C) for C = len(classes).
    """
    m = np.asarray(matrix, dtype=float)
    if m.shape != (len(classes), len(classes)):
        raise ValueError(f"matrix must be ({len(classes)}, {len(classes)}), got {m.shape}")
    rows = m.sum(1, keepdims=True)
    z = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0) if normalise else m
    text = [[f"{z[i, j]:.3f}" if normalise else f"{int(m[i, j])}" for j in range(len(classes))] for i in range(len(classes))]
    fig = go.Figure(go.Heatmap(z=z, x=list(classes), y=list(classes), text=text, texttemplate="%{text}",
                               customdata=m, colorscale="Blues", zmin=0, zmax=1 if normalise else None,
                               hovertemplate="true %{y}<br>predicted %{x}<br>%{z:.3f}<br>n=%{customdata}<extra></extra>"))
    fig.update_layout(xaxis_title="predicted class", yaxis_title="true class", yaxis_autorange="reversed",
                      template="plotly_white", title="Confusion matrix" + (" (row-normalised)" if normalise else ""),
                      width=560, height=500)
    return fig


def roc_figure(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str = "ROC",
               log_x: bool = True) -> go.Figure:
    """ROC curves, one line per legend name.

    Parameters
    ----------
    curves : dict of str to (fpr, tpr)
        {legend name: (fpr, tpr)}; a class name at the start of the legend name picks its colour,
        ' SNR 8' in it dashes it.
    title : str, optional
        Default "ROC".
    log_x : bool, optional
        Logarithmic false-positive-rate axis (points with fpr = 0 are dropped). Default True.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    fig = go.Figure()
    for name, (fpr, tpr) in curves.items():
        kind = name.split()[0]
        fpr = np.asarray(fpr, dtype=float)
        keep = fpr > 0 if log_x else np.ones_like(fpr, dtype=bool)
        fig.add_trace(go.Scatter(x=fpr[keep], y=np.asarray(tpr, dtype=float)[keep], mode="lines", name=name,
                                 line=dict(color=CLASS_COLOURS.get(kind), shape="hv",
                                           dash="dash" if "SNR 8" in name else None)))
    fig.update_layout(xaxis_title="false-positive rate (noise)", yaxis_title="true-positive rate",
                      xaxis_type="log" if log_x else "linear", yaxis_range=[0, 1.02], template="plotly_white",
                      title=title)
    return fig


def histogram_figure(values: Mapping[str, np.ndarray], xlabel: str, title: str = "", nbins: int = 60,
                     vline: float | None = None) -> go.Figure:
    """Overlaid histograms {class: values} (non-finite values dropped).

    ``xlabel``: x-axis title; ``title`` (default ""); ``nbins`` (default 60); ``vline`` (default None)
    marks a reference (e.g. 0 = merger). Returns a plotly Figure.
    """
    fig = go.Figure()
    for name, v in values.items():
        v = np.asarray(v, dtype=float)
        fig.add_trace(go.Histogram(x=v[np.isfinite(v)], name=name, opacity=0.6, nbinsx=nbins,
                                   marker_color=CLASS_COLOURS.get(name)))
    if vline is not None:
        fig.add_vline(x=vline, line=dict(color="black", dash="dash"))
    fig.update_layout(barmode="overlay", xaxis_title=xlabel, yaxis_title="samples", title=title,
                      template="plotly_white")
    return fig


def scatter_figure(x: Mapping[str, np.ndarray], y: Mapping[str, np.ndarray], xlabel: str, ylabel: str,
                   title: str = "", log_x: bool = False, hline: float | None = None) -> go.Figure:
    """Scatter of y against x per class ({class: (N,)} each).

    ``xlabel``, ``ylabel``: axis titles; ``title`` (default ""); ``log_x`` (default False); ``hline``
    (default None) draws a dashed horizontal reference line. Returns a plotly Figure.
    """
    fig = go.Figure()
    for name in x:
        fig.add_trace(go.Scatter(x=np.asarray(x[name], dtype=float), y=np.asarray(y[name], dtype=float),
                                 mode="markers", name=name, marker=dict(size=4, opacity=0.6,
                                                                         color=CLASS_COLOURS.get(name))))
    if hline is not None:
        fig.add_hline(y=hline, line=dict(color="black", dash="dash"))
    fig.update_layout(xaxis_title=xlabel, yaxis_title=ylabel, title=title, template="plotly_white",
                      xaxis_type="log" if log_x else "linear")
    return fig


def write_page(path: str | os.PathLike, figures: Sequence[go.Figure], title: str = "gwviz",
               plotlyjs: str = "inline", notes: Sequence[str] = ()) -> Path:
    """Write figures into one HTML page that opens offline (atomically; parent folders are created).

    Parameters
    ----------
    path : str or os.PathLike
    figures : sequence of plotly.graph_objects.Figure
    title : str, optional
        Page title. Default "gwviz".
    plotlyjs : {'inline', 'directory'}, optional
        'inline' (plotly.js embedded once; the page stands alone, +~4.7 MB, the default) or
        'directory' (a shared plotly.min.js written beside the page once, kept with it).
    notes : sequence of str, optional
        Paragraphs above the figures. Default none.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        For another ``plotlyjs``.
    """
    if plotlyjs not in ("inline", "directory"):
        raise ValueError(f"plotlyjs must be 'inline' or 'directory', got {plotlyjs!r}")
    import plotly.offline
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if plotlyjs == "directory":
        js = path.parent / "plotly.min.js"
        if not js.exists():
            js.write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page_html(figures, title, notes, inline_js=plotlyjs == "inline"), encoding="utf-8")
    os.replace(tmp, path)
    return path


def page_html(figures: Sequence[go.Figure], title: str = "gwviz", notes: Sequence[str] = (),
              inline_js: bool = True) -> str:
    """One HTML page of ``figures`` with ``notes`` above them.

    With ``inline_js`` (default True) plotly.js is embedded (~4.7 MB), so the page opens offline and
    fetches nothing (the app's figure download); else the page loads plotly.min.js from beside it.
    ``title`` defaults to "gwviz". Returns the HTML text.
    """
    import plotly.offline
    head = (f"<script type=\"text/javascript\">{plotly.offline.get_plotlyjs()}</script>" if inline_js
            else '<script src="plotly.min.js"></script>')
    body = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    body += "".join(f.to_html(full_html=False, include_plotlyjs=False) for f in figures)
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>{head}"
            f"</head><body><h2>{html.escape(title)}</h2>{body}</body></html>")
