"""Explore: pick a source and noise, inject (gwviz.data.synth.make_sample), whiten, classify, explain."""
from __future__ import annotations

import math

import numpy as np
import streamlit as st
from gwapp import common
from gwapp import figures as fig

from gwviz import export, session
from gwviz.plots import page_html
from gwviz.constants import CLASSES, DETECTORS, MERGER_SPAN
from gwviz.explain.attribution import METHODS
from gwviz.data.params import MASS_RANGES, O3_GPS_SPAN

DEFAULT_MASSES = {"BBH": (36.0, 29.0), "NSBH": (10.0, 1.4), "BNS": (1.5, 1.3)}
NOISE_LABELS = {"simulated": "Simulated O3 (offline)", "files": "Real O3 from the data directory",
                "gwosc": "Real O3 fetched from GWOSC"}

st.title("Explore: what does the CNN see?")
sb = st.sidebar
sb.header("Source")
kind = sb.selectbox("Class", CLASSES, index=1, key="kind",
                    help="noise: no signal; BBH/NSBH/BNS: a binary of that class is injected")
free = False
m1 = m2 = 0.0
if kind != "noise":
    (lo1, hi1), (lo2, hi2) = MASS_RANGES[kind]
    free = sb.checkbox("Free mass entry (outside the training range)", key="free_masses",
                       help="Lets you type any mass; values outside the class range are refused with a message")
    d1, d2 = DEFAULT_MASSES[kind]
    bounds1 = dict(min_value=0.0, max_value=1000.0) if free else dict(min_value=lo1, max_value=hi1)
    bounds2 = dict(min_value=0.0, max_value=1000.0) if free else dict(min_value=lo2, max_value=hi2)
    # one widget per class (and mode): a BBH mass never has to fit the BNS bounds
    m1 = sb.number_input(f"m1 [M☉] ({'black hole' if kind == 'NSBH' else 'heavier'}; {lo1:g}–{hi1:g})", value=d1,
                         step=0.1 if kind == "BNS" else 1.0, key=f"m1_{kind}_{free}", **bounds1)
    m2 = sb.number_input(f"m2 [M☉] ({'neutron star' if kind == 'NSBH' else 'lighter'}; {lo2:g}–{hi2:g})", value=d2,
                         step=0.05 if kind != "BBH" else 1.0, key=f"m2_{kind}_{free}", **bounds2)
snr = sb.slider("Network SNR", 0.0, 50.0, 12.0, 0.5, key="snr", disabled=kind == "noise",
                help="Network optimal SNR inside the 4-s window (training: 8–24); must be > 0")
with sb.expander("Sky position and orientation", expanded=False):
    ra = st.slider("Right ascension [deg]", 0.0, 360.0, 197.0, 1.0, key="ra")
    dec = st.slider("Declination [deg]", -90.0, 90.0, -23.0, 1.0, key="dec")
    psi = st.slider("Polarisation ψ [deg]", 0.0, 180.0, 0.0, 1.0, key="psi")
    iota = st.slider("Inclination ι [deg]", 0.0, 180.0, 30.0, 1.0, key="iota")
offset = sb.slider("Merger time before the window's end [s]", 0.0, 2.0, 0.05, 0.01, key="offset",
                   help=f"Training put mergers in the last {MERGER_SPAN:g} s of the window")
sb.header("Noise")
noise_kind = sb.radio("Noise source", list(NOISE_LABELS), format_func=NOISE_LABELS.get, key="noise_kind")
gps = None
if noise_kind == "gwosc":
    gps = sb.number_input("GPS start [s] (O3a, H1+L1+V1)", min_value=float(O3_GPS_SPAN[0]),
                          max_value=float(O3_GPS_SPAN[1] - 64), value=1238166018.0, step=64.0, format="%.0f", key="gps")
seed = int(sb.number_input("Random seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="seed"))
sb.header("Explanation")
target = sb.selectbox("Explain class", ["predicted", *CLASSES], key="target")
method = sb.selectbox("Attribution method", METHODS, index=METHODS.index(session.DEFAULT_METHOD),
                      format_func=fig.METHOD_NAMES.get, key="method",
                      help="HiResCAM by default: on the shipped weights its maps reproduce the paper's timing claim, "
                           "while Grad-CAM (the paper's method) does not for this network's fully connected head "
                           "(docs/gradcam.md). Grad-CAM and HiResCAM are instant; integrated gradients and occlusion "
                           "take a few seconds")
sb.header("Display")
show_clean = sb.checkbox("Show the clean whitened signal", key="show_clean", disabled=kind == "noise")
show_q = sb.checkbox("Q-transform spectrogram", key="show_q")
show_mf = sb.checkbox("Matched filter beside the network", key="show_mf", disabled=kind == "noise",
                      help="The optimal filter for this very signal: its SNR time series in each detector, "
                           "on the time axis of the network's map")
q_input = sb.radio("Q-transform input", ["whitened window", "raw window (gwpy whitens)"], key="q_input",
                   disabled=not show_q, horizontal=True)

clf = common.classifier()
common.model_banner(clf)

if kind in ("BBH", "BNS") and m2 > m1:
    st.caption(f"m2 > m1: the masses are swapped so that m1 is the heavier ({m2:g} + {m1:g} M☉).")
if kind != "noise" and offset > MERGER_SPAN:
    st.caption(f"Merger {offset:g} s before the window's end: outside the training range (last {MERGER_SPAN:g} s).")

ddir, err = common.data_dir() if noise_kind == "files" else ("", None)
source, err = (None, err) if err else common.noise_source(noise_kind, ddir, gps)
if err is not None:
    if noise_kind == "files":
        common.no_data_dir_message(err)
    else:
        st.error(f"Could not get the noise: {err}")
    if st.button("Retry", key="retry_noise", help="Failures are remembered; this tries again"):
        common.noise_source.clear()
        st.rerun()
    st.stop()

try:
    res = common.explore((noise_kind, ddir, gps), source, kind=kind, mass1=m1, mass2=m2, snr=snr,
                         ra=math.radians(ra), dec=math.radians(dec), polarization=math.radians(psi),
                         inclination=math.radians(iota), merger_offset=offset, seed=seed, method=method,
                         target=None if target == "predicted" else target)
# bad masses, SNR <= 0, noise too short, NaN out of broken weights: a message, never a traceback
except (ValueError, FloatingPointError) as e:
    common.show_error("Cannot make this sample: ", e)
    st.stop()

meta, pred = res.sample.meta, res.prediction
common.noise_banner(meta)

cols = st.columns(5)
common.prediction_metric(cols[0], "Model says", pred)
if kind == "noise":
    cols[1].metric("Network SNR", "—")
    for c, d in zip(cols[2:], DETECTORS):
        c.metric(f"{d} SNR", "—")
else:
    cols[1].metric("Network SNR", f"{meta['snr_network']:.1f}")
    for c, d in zip(cols[2:], DETECTORS):
        c.metric(f"{d} SNR", f"{meta[f'snr_{d}']:.1f}")

if kind == "noise":
    what = "Noise only"
else:
    what = f"Injected {kind} ({meta['mass1']:.1f} + {meta['mass2']:.1f} M☉), network SNR {meta['snr_network']:.1f}"
title = f"{what} — model: {pred.label} (p = {pred.probabilities[pred.label]:.2f})"
cam_label = f"{fig.METHOD_NAMES[method]} for {res.target}"
main_fig = fig.strain_cam_figure(res.time, res.sample.data, res.cam, title, res.merger_times(),
                                 res.sample.white_signal if show_clean and kind != "noise" else None, cam_label)
st.plotly_chart(main_fig, key="strain_cam")
st.caption("Whitened strain (units of noise σ) with the attribution map (orange, right axis, normalised to 1) "
           "of the explained class. Dashed: merger time in each detector. One map serves all three detectors: "
           "the network's first layers mix them.")

left, right = st.columns([1, 1])
left.plotly_chart(fig.probability_figure(pred.probabilities, f"Class probabilities ({pred.label})"), key="probs")
with right:
    st.markdown(f"**Explained class:** {res.target} &nbsp; **Method:** {fig.METHOD_NAMES[method]}")
    if kind != "noise":
        st.markdown(f"Chirp mass {meta['chirp_mass']:.2f} M☉ · merger GPS {meta['gps']:.2f} s · "
                    f"approximant {meta['approximant']} · waveform from {meta['f_start']:.1f} Hz")
        st.markdown("Arrival delays vs. geocentre: " + ", ".join(
            f"{d} {1e3 * meta[f'delay_{d}']:+.1f} ms" for d in DETECTORS))
    st.caption(f"Window starts at GPS {meta['gps_window_start']:.3f} s. Update took {res.elapsed:.2f} s.")
    with st.expander("All metadata"):
        st.json({k: (float(v) if isinstance(v, (np.floating,)) else v) for k, v in meta.items()})

if show_mf and kind != "noise":
    # imported here: gwviz.baseline loads the whole matched-filter package, which the first page does not show
    from gwviz.baseline.snr_series import snr_series
    idx = {d: int(meta[f"merger_index_{d}"]) for d in DETECTORS}
    t_mf, rho = snr_series(res.sample.data, res.sample.white_signal, idx)
    best = {d: float(rho[i].max()) for i, d in enumerate(DETECTORS)}
    st.plotly_chart(fig.mf_vs_cam_figure(
        t_mf, rho, res.cam, cam_label, res.merger_times(),
        "Matched filter with the injected template vs the network's map — where does each find the signal?"),
        key="mf_cam")
    st.caption("Each coloured line: the matched-filter SNR |ρ| of the exact injected waveform in one detector, "
               "as a function of where the template's merger is placed (peaks: "
               + ", ".join(f"{d} {v:.1f}" for d, v in best.items()) + "; optimal SNRs "
               + ", ".join(f"{d} {meta[f'snr_{d}']:.1f}" for d in DETECTORS) + "). The filter knows the waveform "
               "and finds the merger to a millisecond; the network (orange) only learned what signals look like.")

with st.expander("Hear it · take it home", expanded=False):
    loudest = DETECTORS[0] if kind == "noise" else max(DETECTORS, key=lambda d: meta[f"snr_{d}"])
    row = DETECTORS.index(loudest)
    peak = float(np.argmax(res.cam)) / len(res.cam) * 4.0  # [s] in the 4-s window
    st.markdown(f"**{loudest}**, the detector with the most SNR, played {export.SPEED_UP}× faster "
                f"({export.AUDIO_BAND[0]:g}–{export.AUDIO_BAND[1]:g} Hz heard "
                f"{export.SPEED_UP}× higher): the map's loudest part is at {peak:.2f} s of the window, "
                f"{peak / export.SPEED_UP:.2f} s into the sound.")
    a, b = st.columns(2)
    sound, rate = export.audible(res.sample.data[row])
    a.caption(f"Whitened {loudest} (noise + signal)")
    a.audio(sound, sample_rate=rate)
    if kind != "noise":
        clean, rate = export.audible(res.sample.white_signal[row])
        b.caption(f"The clean whitened signal in {loudest}")
        b.audio(clean, sample_rate=rate)
    stem = f"gwviz_{kind}_seed{seed}"
    d1, d2, d3 = st.columns(3)  # made only when clicked (callables): the page stays fast
    d1.download_button("Sample (HDF5)", lambda: export.sample_hdf5(res), f"{stem}.h5", "application/x-hdf5",
                       key="dl_h5", on_click="ignore", help="whitened and raw strain, clean signal, map, "
                       "probabilities and metadata")
    d2.download_button("Explanation (CSV)", lambda: export.explanation_csv(res), f"{stem}_{method}.csv", "text/csv",
                       key="dl_csv", on_click="ignore", help="time, attribution map and whitened strain per sample")
    d3.download_button(
        "Figures (HTML)", lambda: page_html([main_fig, fig.probability_figure(pred.probabilities)], title,
                                            [res.noise_label, pred.rule_text]),
        f"{stem}_{method}.html", "text/html", key="dl_html", on_click="ignore",
        help="the strain + map and the probabilities, interactive, opening offline (plotly.js inside); "
             "a PNG of any figure: the camera icon in its toolbar")

if show_q:
    raw = q_input.startswith("raw")
    try:
        spec = [session.q_transform((res.raw if raw else res.sample.data)[i], whiten=raw)
                for i in range(len(DETECTORS))]
    except ValueError as e:
        common.show_error("Q-transform failed: ", e)
    else:
        qcols = st.columns(len(DETECTORS))
        for c, d, (qt, qf, qe) in zip(qcols, DETECTORS, spec):
            c.plotly_chart(fig.qtransform_figure(qt, qf, qe, f"{d} Q-transform ({'raw' if raw else 'whitened'})"),
                           key=f"q_{d}")
