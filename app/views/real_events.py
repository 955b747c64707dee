"""Real events: GW190521 (H1, L1, V1) classified and explained; GW190425 (L1 only): classified and explained
by weights trained with the detector mask (the shipped ones; weights without it refuse), with a what-if."""
from __future__ import annotations

import numpy as np
import streamlit as st
from gwapp import common
from gwapp import figures as fig

from gwviz import paths, session
from gwviz.network_input import EDGE_GUARD
from gwviz.constants import DETECTORS, SAMPLE_RATE, WINDOW_DURATION, WINDOW_SAMPLES
from gwviz.explain.attribution import METHODS
from gwviz.data.noise import KNOWN_EVENTS

st.title("Real events")
clf = common.classifier()
common.model_banner(clf)
if paths.root(common.DATA_ENV) is None:  # no data folder configured: the copies shipped with gwviz
    ddir, where = "", "the bundled example data"
    st.info(f"Reading the example events bundled with gwviz (GWOSC open data, CC BY 4.0; sources in "
            f"gwviz/data/o3/README.md). Start the app with `{common.DATA_ENV}=/path/to/o3` to read your own files.",
            icon=":material/inventory_2:")
else:
    ddir, err = common.data_dir()
    if err:
        common.no_data_dir_message(err)
        st.stop()
    where = common.data_label(ddir)

st.header("GW190521 — a heavy binary black hole seen by H1, L1 and V1")
try:
    ev = common.gw190521(ddir)
except ValueError as e:
    common.show_error(f"Cannot read GW190521 from {where}: ", e)
else:
    dur = len(ev.strain["H1"]) / ev.sample_rate
    st.success(f"Noise: **REAL** — O3a strain, 32 s around GPS {KNOWN_EVENTS['GW190521']:.1f} "
               f"(files: {', '.join(p.split('/')[-1] for p in ev.files)})", icon=":material/sensors:")
    c = st.columns(3)
    start = c[0].slider("Window start [s after the file start]", EDGE_GUARD, dur - EDGE_GUARD - WINDOW_DURATION,
                        float(round(ev.window_start, 2)), 0.05, key="ev_start",
                        help=f"Default puts the merger {session.EVENT_OFFSET:g} s before the window's end, "
                        "like the training data")
    method = c[1].selectbox("Attribution method", METHODS, index=METHODS.index(session.DEFAULT_METHOD),
                            format_func=fig.METHOD_NAMES.get, key="ev_method")
    target = c[2].selectbox("Explain class", ["predicted", "noise", "BBH", "NSBH", "BNS"], key="ev_target")
    try:
        pred, cam, window = session.analyse_event(clf, ev, start, method, None if target == "predicted" else target)
    except (ValueError, FloatingPointError) as e:
        common.show_error("Cannot classify this window: ", e)
    else:
        t = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE
        merger = ev.event_time - start
        inside = 0 <= merger <= WINDOW_DURATION
        m = st.columns(3)
        common.prediction_metric(m[0], "Model says", pred)
        m[1].metric("p(BBH)", f"{pred.probabilities['BBH']:.2f}")
        m[2].metric("Merger in window at", f"{merger:.2f} s" if inside else "outside")
        merger_times = {d: merger for d in DETECTORS} if inside else None
        st.plotly_chart(fig.strain_cam_figure(
            t, window, cam, f"GW190521, window from {start:.2f} s — model: {pred.label} "
            f"(p = {pred.probabilities[pred.label]:.2f})", merger_times,
            cam_label=f"{fig.METHOD_NAMES[method]} for {target if target != 'predicted' else pred.label}"),
            key="ev_cam")
        st.plotly_chart(fig.probability_figure(pred.probabilities, "GW190521: class probabilities"), key="ev_probs")
        st.caption("The whole 32 s estimate the noise PSD for whitening (Classifier.classify); the dashed line is the "
                   "catalogue (geocentric) merger time. GW190521 (~150 M☉ total) is heavier than anything in the "
                   "training set (BBH masses 5–80 M☉ each): a short, low-frequency signal.")

st.header("GW190425 — a binary neutron star seen only by L1")
st.markdown(
    "The network reads a (3, 16384) window — H1, L1 and V1 in fixed channels. During GW190425 Hanford was offline "
    "and Virgo's SNR was tiny; our data has only L1 (GWOSC, 16 kHz, resampled to 4096 Hz). Weights trained as the "
    "paper did, always on three detectors, never saw a missing one: with them gwviz **refuses** rather than "
    "silently feed zeros, which would be out-of-distribution input. The shipped weights were trained with "
    "detectors dropped at random and told which are absent (a **detector mask**), so they answer for L1 alone, "
    "with L1's own calibrated threshold.")
try:
    raw, l1 = common.gw190425_l1(ddir)
except ValueError as e:
    common.show_error(f"Cannot read GW190425 L1 from {where}: ", e)
else:
    ev_t = KNOWN_EVENTS["GW190425"] - l1.t0
    how = f"resampled to {l1.sample_rate:g} Hz with gwpy" if raw is not l1 else "resampled from GWOSC's 16 kHz with gwpy"
    st.success(f"Noise: **REAL** — L1 only, {raw.path.split('/')[-1]} ({raw.sample_rate:g} Hz, {how})",
               icon=":material/sensors:")
    sl = slice(int((ev_t - 0.25) * raw.sample_rate), int((ev_t + 0.25) * raw.sample_rate))
    sl4 = slice(int((ev_t - 0.25) * l1.sample_rate), int((ev_t + 0.25) * l1.sample_rate))
    series = [(f"L1 as read ({raw.sample_rate:g} Hz)", np.arange(len(raw.data))[sl] / raw.sample_rate, raw.data[sl])]
    if raw is not l1:
        series.append((f"L1 resampled ({l1.sample_rate:g} Hz)", np.arange(len(l1.data))[sl4] / l1.sample_rate, l1.data[sl4]))
    st.plotly_chart(fig.overlay_figure(series,
        "GW190425 L1 strain, 0.5 s around the merger (raw, low-frequency dominated)", "strain"), key="l1_strain")
    if st.checkbox("Q-transform of L1 around the merger (gwpy whitens the 32 s)", value=True, key="l1_q"):
        qt, qf, qe = session.q_transform(l1.data, l1.sample_rate, whiten=True, frange=(20.0, 512.0),
                                         outseg=(ev_t - 4.0, ev_t + 0.5), qrange=(16, 128))
        st.plotly_chart(fig.qtransform_figure(qt - ev_t, qf, qe, "GW190425 L1 Q-transform (time from the merger)"),
                        key="l1_qplot")
        st.caption("A binary neutron star sweeps up through the band for minutes; with L1 alone its track is faint.")
    msg = session.refusal_message(clf, {"L1": l1.data}, l1.sample_rate)
    st.markdown("**What the app's weights answer for `{'L1': strain}`:**")
    if msg:
        st.error(f"ValueError: {msg}")
    else:
        st.info("Classified: these weights were trained with the detector mask and take a missing detector (below).")
    sub = common.subset_classifier()
    if sub is None:
        st.info("No weights here take a missing detector: the shipped models/gwviz-resnet54.safetensors (trained "
                "with the detector mask) are not installed.")
    else:
        st.markdown("**What weights trained with the detector mask answer for L1 alone** (window ending 0.05 s "
                    "after the merger):")
        try:
            l1_event = session.RealEvent("GW190425 (L1 only)", {"L1": l1.data}, SAMPLE_RATE, l1.t0, ev_t,
                                         session.event_window_start(ev_t), [l1.path])
            pred, cam, window = session.analyse_event(sub, l1_event, method=session.DEFAULT_METHOD)
        except (ValueError, FloatingPointError) as e:
            common.show_error("", e)
        else:
            common.prediction_metric(st, "Detector-mask weights, L1 only", pred)
            st.plotly_chart(fig.strain_cam_figure(
                np.arange(WINDOW_SAMPLES) / SAMPLE_RATE, window, cam,
                f"GW190425, L1 alone — model: {pred.label} (p = {pred.probabilities[pred.label]:.2f}); "
                "H1 and V1 did not observe (zero channels)", {"L1": ev_t - l1_event.window_start},
                cam_label=f"{fig.METHOD_NAMES[session.DEFAULT_METHOD]} for {pred.label}"), key="l1_only_cam")
    if st.checkbox("What-if: fill the missing H1 and V1 with SIMULATED noise", key="whatif"):
        st.warning("WHAT-IF ONLY — H1 and V1 below are **simulated** Gaussian O3 noise, not data. The result "
                   "says how the model treats L1 evidence alone, not what H1/V1 would have seen.")
        try:
            wi = session.gw190425_what_if(l1, seed=0)
            pred, cam, window = session.analyse_event(clf, wi)
            start = wi.window_start
        except (ValueError, FloatingPointError) as e:
            common.show_error("", e)
        else:
            t = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE
            common.prediction_metric(st, "What-if model answer", pred)
            st.plotly_chart(fig.strain_cam_figure(
                t, window, cam, f"WHAT-IF: L1 real + H1/V1 simulated — model: {pred.label}",
                {"L1": ev_t - start}), key="whatif_cam")
            st.plotly_chart(fig.probability_figure(pred.probabilities, "What-if class probabilities"),
                            key="whatif_probs")
