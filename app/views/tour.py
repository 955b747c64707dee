"""Guided tour for a class: seven steps from raw strain to the network's decision and the limits of its
map, each with one control and one sentence of physics. The step, class and SNR live in the URL
(``?step=4&kind=BNS&snr=10``): a tour can be resumed after a reload and a step can be linked to."""
from __future__ import annotations

import numpy as np
import streamlit as st
from gwapp import common
from gwapp import figures as fig

from gwviz import session
from gwviz.constants import DETECTORS, SAMPLE_RATE, WINDOW_SAMPLES

#: One typical system per class [M☉] (inside the training ranges).
MASSES = {"BBH": (36.0, 29.0), "NSBH": (10.0, 1.4), "BNS": (1.5, 1.3)}
SNRS = [6.0, 8.0, 10.0, 12.0, 16.0, 20.0, 30.0]
STEPS = [
    ("Raw strain", "A detector records strain h ≈ 10⁻²¹, and what it sees is dominated by noise: seismic and "
     "thermal noise below ~50 Hz are orders of magnitude louder than any signal."),
    ("Whitening", "Dividing the data's spectrum by the noise amplitude spectral density makes the noise flat "
     "(white): every frequency then counts in proportion to how well the detector hears it."),
    ("A compact binary", "Two compact objects spiral together and the wave's frequency sweeps up (a chirp); the "
     "lighter the binary, the longer it stays in band — a BNS for minutes, so only its end fits in 4 s."),
    ("How loud", "The network optimal SNR √Σρ² measures the signal against the noise; even at SNR 20 the "
     "whitened chirp is hard to see by eye, which is why searches filter instead of look."),
    ("The decision", "The network gives four probabilities; gwviz calls a signal only when the log-odds "
     "λ = log((1 − p_noise)/p_noise) passes a threshold set on noise for a chosen false-positive rate."),
    ("Where it looks", "A class-activation map shows which times drove the score for a class: for a BBH the "
     "merger, for lighter systems earlier in the inspiral (HiResCAM; plain Grad-CAM blurs it here)."),
    ("Pitfalls", "A map is only an explanation if it depends on what the network learned: if it barely "
     "changes when the weights are randomised, it shows the input or the architecture (Adebayo et al. 2018)."),
]


def _query_int(name: str, lo: int, hi: int, default: int) -> int:
    try:
        v = int(st.query_params.get(name, default))
    except (TypeError, ValueError):
        return default
    return v if lo <= v <= hi else default


def _go(step: int) -> None:
    st.query_params["step"] = str(step)


st.title("Guided tour")
step = _query_int("step", 1, len(STEPS), 1)
kind = st.query_params.get("kind", "BBH")
kind = kind if kind in MASSES else "BBH"
try:
    snr = float(st.query_params.get("snr", 12))
except (TypeError, ValueError):
    snr = 12.0
snr = snr if snr in SNRS else 12.0
st.query_params.update({"step": str(step), "kind": kind, "snr": f"{snr:g}"})  # the URL resumes this step

st.progress(step / len(STEPS), text=f"Step {step} of {len(STEPS)}: {STEPS[step - 1][0]}")
st.markdown(f"**{STEPS[step - 1][1]}**")
clf = common.classifier()
common.model_banner(clf)
m1, m2 = MASSES[kind]
res = common.explore(("simulated", "", None), None, kind=kind, mass1=m1, mass2=m2, snr=snr, seed=0,
                     method=session.DEFAULT_METHOD)
t = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE
st.info(f"Noise: **SIMULATED** O3 Gaussian noise (seed 0); signal: {kind} {m1:g} + {m2:g} M☉ at network SNR {snr:g}.",
        icon=":material/science:")

if step == 1:
    det = st.radio("Detector", DETECTORS, horizontal=True, key="tour_det")
    i = DETECTORS.index(det)
    st.plotly_chart(fig.strain_figure(t, res.raw[i:i + 1], f"{det}: raw strain of the 4-s window", "strain", (det,)),
                    key="tour_raw")
    f, asd = session.asd(res.raw)
    st.plotly_chart(fig.asd_figure(f, asd, session.design_asd(f), "Noise spectrum of this window (Welch) and the O3 design"),
                    key="tour_asd")
elif step == 2:
    white = st.toggle("Whitened", value=True, key="tour_white")
    data = res.sample.data if white else res.raw
    st.plotly_chart(fig.strain_figure(t, data, "Whitened strain (unit variance)" if white else "Raw strain",
                                      "whitened" if white else "strain"), key="tour_white_fig")
elif step == 3:
    new = st.radio("Class", list(MASSES), index=list(MASSES).index(kind), horizontal=True, key="tour_kind")
    if new != kind:
        st.query_params["kind"] = new
        st.rerun()
    st.plotly_chart(fig.strain_cam_figure(t, res.sample.data, None, f"{kind} in whitened noise; the clean signal "
                                          "in black", res.merger_times(), clean=res.sample.white_signal),
                    key="tour_signal")
elif step == 4:
    new = st.select_slider("Network SNR", SNRS, value=snr, key="tour_snr")
    if new != snr:
        st.query_params["snr"] = f"{new:g}"
        st.rerun()
    m = res.sample.meta
    st.metric("Network SNR", f"{m['snr_network']:.1f}",
              ", ".join(f"{d} {m[f'snr_{d}']:.1f}" for d in DETECTORS), delta_color="off", delta_arrow="off")
    st.plotly_chart(fig.strain_cam_figure(t, res.sample.data, None, f"SNR {snr:g}: data (colour) and clean signal "
                                          "(black), whitened", res.merger_times(), clean=res.sample.white_signal),
                    key="tour_snr_fig")
elif step == 5:
    rate = st.radio("False-positive rate per window", [0.01, 0.001], format_func=lambda r: f"{r:g}", horizontal=True,
                    key="tour_rate")
    pred = clf.classify_window(res.sample.data, rate=rate) if clf.calibration is not None else res.prediction
    common.prediction_metric(st, "Decision", pred)
    st.plotly_chart(fig.probability_figure(pred.probabilities), key="tour_probs")
elif step == 6:
    method = st.radio("Map", ["hirescam", "gradcam"], format_func=fig.METHOD_NAMES.get, horizontal=True,
                      key="tour_method")
    shown = res if method == res.method else common.explore(
        ("simulated", "", None), None, kind=kind, mass1=m1, mass2=m2, snr=snr, seed=0, method=method)
    st.plotly_chart(fig.strain_cam_figure(t, shown.sample.data, shown.cam, f"{fig.METHOD_NAMES[method]} for "
                                          f"{shown.target}", shown.merger_times(),
                                          cam_label=fig.METHOD_NAMES[method]), key="tour_cam")
    st.caption("Measured over 1,000 samples per class (page *Where it looks*, `docs/gradcam.md`): HiResCAM's peaks "
               "follow the paper's claim, Grad-CAM's do not for this network.")
else:
    if st.button("Randomise the weights and compare the maps", key="tour_random"):
        rho = session.sanity_check(clf, res.sample.data, res.target)
        st.metric("Spearman ρ (trained vs. random weights, Grad-CAM)", f"{rho:.2f}")
        st.markdown("Near 1: the map would look the same without training — it explains little. Near 0: it "
                    "depends on what was learned.")

c = st.columns([1, 1, 4])
if step > 1:
    c[0].button("← Back", on_click=_go, args=(step - 1,), key="tour_back")
if step < len(STEPS):
    c[1].button("Next →", on_click=_go, args=(step + 1,), key="tour_next", type="primary")
c[2].caption(f"Link to this step: `?step={step}&kind={kind}&snr={snr:g}` · "
             + " · ".join(f"{i + 1}. {name}" for i, (name, _) in enumerate(STEPS)))
