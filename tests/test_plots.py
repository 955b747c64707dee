"""gwviz.plots.strain_cam_figure builds its figure as one dict (plotly's validators made the incremental
construction cost as much as the app's whole update): it must stay the figure plotly's own subplot API
draws, for every combination of inputs."""
from __future__ import annotations

import base64
import json

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from gwviz.constants import DETECTORS
from gwviz.plots import CAM_COLOUR, CAM_TRUE_COLOUR, SIGNAL_COLOUR, strain_cam_figure

RNG = np.random.default_rng(0)
DATA = RNG.standard_normal((3, 16384)).astype(np.float32)
CAM = np.abs(RNG.standard_normal(16384))


def reference(data, cams, merger, title, white, rate, step, height) -> go.Figure:
    """The same figure through make_subplots, add_trace(row=...), add_vline and update_yaxes."""
    cams = {"Grad-CAM": cams} if cams is not None and not isinstance(cams, dict) else dict(cams or {})
    merger = {} if merger is None else merger if isinstance(merger, dict) else {d: merger for d in DETECTORS}
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.03, specs=[[{"secondary_y": True}]] * 3)
    dt, sc = 1 / rate, max(step, 8)
    for r, det in enumerate(DETECTORS, start=1):
        first = r == 1
        fig.add_trace(go.Scatter(x0=0.0, dx=dt * step, y=data[r - 1, ::step].astype(np.float32), mode="lines",
                                 name="whitened strain", legendgroup="strain", showlegend=first,
                                 line=dict(color="rgba(90,90,90,0.8)", width=0.8)), row=r, col=1)
        if white is not None and np.any(white[r - 1]):
            fig.add_trace(go.Scatter(x0=0.0, dx=dt * step, y=white[r - 1, ::step].astype(np.float32), mode="lines",
                                     name="injected signal (whitened)", legendgroup="signal", showlegend=first,
                                     line=dict(color=SIGNAL_COLOUR, width=1.2)), row=r, col=1)
        for i, (name, cam) in enumerate(cams.items()):
            y = np.clip(cam, 0, None) / np.clip(cam, 0, None).max()
            style = dict(fill="tozeroy", fillcolor=CAM_COLOUR, line=dict(color="rgba(255,140,0,0.6)", width=0.6)) \
                if i == 0 else dict(line=dict(color=CAM_TRUE_COLOUR, width=1.2, dash="dot"))
            fig.add_trace(go.Scatter(x0=0.0, dx=dt * sc, y=y.astype(np.float32)[::sc], mode="lines", name=name,
                                     legendgroup=f"cam{i}", showlegend=first, **style), row=r, col=1, secondary_y=True)
        if det in merger:
            fig.add_vline(x=merger[det] * dt, line=dict(color="black", dash="dash", width=1.2), row=r, col=1)
        fig.update_yaxes(title_text=det, row=r, col=1, secondary_y=False)
        fig.update_yaxes(range=[0, 1.05], tickmode="array", tickvals=[0, 0.5, 1], showgrid=False,
                         title_text="CAM" if cams else None, row=r, col=1, secondary_y=True)
    fig.update_xaxes(title_text="time in window [s]", row=3, col=1)
    fig.update_layout(title=title, height=height, margin=dict(l=60, r=60, t=60, b=40),
                      legend=dict(orientation="h", y=-0.12), template="plotly_white")
    return fig


def _array(y) -> np.ndarray:
    """A trace's y as plotly's JSON has it: a list, or base64 bytes with their dtype."""
    if isinstance(y, dict):
        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]).astype(float)
    return np.asarray(y, dtype=float)


@pytest.mark.parametrize("cams,merger,white,rate,step,height", [
    ({"HiResCAM": CAM}, 16000, DATA * 0.1, 4096.0, 1, 520),
    (None, None, None, 4096.0, 1, 520),
    (CAM, {"H1": 16000, "V1": 15990}, np.vstack([DATA[0] * 0.1, 0 * DATA[1], DATA[2]]), 4096.0, 4, 300),
    ({"a": CAM, "b": CAM[::-1].copy()}, 100, None, 2048.0, 2, 400),
])
def test_strain_cam_figure_is_plotlys_subplot_figure(cams, merger, white, rate, step, height):
    got = strain_cam_figure(DATA, cams, merger, "title", white, rate, display_step=step, height=height)
    want = reference(DATA, cams, merger, "title", white, rate, step, height)
    g, w = json.loads(got.to_json()), json.loads(want.to_json())
    assert g["layout"] == w["layout"]
    assert len(g["data"]) == len(w["data"])
    for a, b in zip(g["data"], w["data"]):
        ya, yb = a.pop("y"), b.pop("y")
        assert a == b
        np.testing.assert_allclose(_array(ya), _array(yb), rtol=1e-6)


def test_strain_cam_figure_refuses_other_shapes():
    with pytest.raises(ValueError, match=r"data must be \(3, T\)"):
        strain_cam_figure(DATA[:2])
