"""Learn: a guided, interactive tour — whitening, signal geometry, and what Grad-CAM does (and does not) mean."""
from __future__ import annotations

import math

import numpy as np
import streamlit as st
from gwapp import common
from gwapp import figures as fig

from gwviz import session
from gwviz.constants import CLASSES, DETECTORS, SAMPLE_RATE, WINDOW_SAMPLES
from gwviz.data.params import MASS_RANGES

st.title("Learn: from strain to an explained decision")
clf = common.classifier()
t = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE

step1, step2, step3 = st.tabs(["1 · Whitening", "2 · The signal in three detectors", "3 · What Grad-CAM means"])

with step1:
    st.markdown(
        "Raw detector strain is dominated by low-frequency seismic and thermal noise, ~100× larger than a "
        "signal's strain. **Whitening** divides the data's spectrum by the noise amplitude spectral density (ASD), "
        "so that every frequency carries unit noise and the CNN sees the same noise level in every window. "
        "Even then a signal at network SNR 20 is rarely visible by eye in the time series: its SNR is spread over "
        "many cycles, which a matched filter (or the CNN) adds up (tab 2 shows the clean whitened signal). "
        "gwviz estimates the ASD with a median-Welch average over the 16 s around the window.")
    c = st.columns(3)
    k1 = c[0].selectbox("Injected class", CLASSES, index=1, key="l1_kind")
    snr1 = c[1].slider("Network SNR", 1.0, 50.0, 20.0, 1.0, key="l1_snr", disabled=k1 == "noise")
    seed1 = int(c[2].number_input("Seed", 0, 10_000, 1, key="l1_seed"))
    m = {"BBH": (36, 29), "NSBH": (10, 1.4), "BNS": (1.5, 1.3)}.get(k1, (0, 0))
    try:
        r1 = session.explore(k1, *m, snr1, seed=seed1, classifier=clf)
    except (ValueError, FloatingPointError) as e:
        common.show_error("", e)
    else:
        common.noise_banner(r1.sample.meta)
        a, b = st.columns(2)
        a.plotly_chart(fig.strain_figure(t, r1.raw * 1e21, "Raw strain in the window", "strain ×1e21"), key="l1_raw")
        b.plotly_chart(fig.strain_figure(t, r1.sample.data, "Whitened strain (what the CNN sees)", "σ"),
                       key="l1_white")
        f, asd = session.asd(r1.raw)
        st.plotly_chart(fig.asd_figure(f, asd, session.design_asd(f), "ASD of the raw window vs. the O3 design curves"),
                        key="l1_asd")
        st.caption("Whitening flattens exactly this curve: frequencies where the ASD is high are turned down.")

with step2:
    st.markdown(
        "A detector measures h = F₊·h₊ + F×·h×: its **antenna patterns** F₊, F× depend on the sky position "
        "and polarisation, so the same wave has different amplitudes in H1, L1 and V1, and it arrives at different "
        "times (up to ~27 ms between the sites). Heavier binaries merge at lower frequency and sweep through the "
        "band in a fraction of a second; light ones chirp for minutes. The SNR sets the overall amplitude.")
    c = st.columns(4)
    k2 = c[0].selectbox("Class", [k for k in CLASSES if k != "noise"], key="l2_kind")
    (lo1, hi1), (lo2, hi2) = MASS_RANGES[k2]
    m1 = c[1].slider("m1 [M☉]", lo1, hi1, {"BBH": 36.0, "NSBH": 10.0, "BNS": 1.5}[k2], key=f"l2_m1_{k2}")
    m2 = c[2].slider("m2 [M☉]", lo2, hi2, {"BBH": 29.0, "NSBH": 1.4, "BNS": 1.3}[k2], key=f"l2_m2_{k2}")
    snr2 = c[3].slider("Network SNR", 1.0, 50.0, 15.0, 1.0, key="l2_snr")
    c = st.columns(4)
    ra2 = c[0].slider("RA [deg]", 0.0, 360.0, 197.0, 5.0, key="l2_ra")
    dec2 = c[1].slider("Dec [deg]", -90.0, 90.0, -23.0, 5.0, key="l2_dec")
    psi2 = c[2].slider("Polarisation ψ [deg]", 0.0, 180.0, 0.0, 5.0, key="l2_psi")
    iota2 = c[3].slider("Inclination ι [deg]", 0.0, 180.0, 30.0, 5.0, key="l2_iota")
    try:
        r2 = session.explore(k2, m1, m2, snr2, math.radians(ra2), math.radians(dec2), math.radians(psi2),
                             math.radians(iota2), 0.05, seed=0, classifier=clf)
    except (ValueError, FloatingPointError) as e:
        common.show_error("", e)
    else:
        meta = r2.sample.meta
        cols = st.columns(3)
        for col, d in zip(cols, DETECTORS):
            col.metric(f"{d}: SNR", f"{meta[f'snr_{d}']:.1f}")
            col.caption(f"F₊ = {meta[f'fplus_{d}']:+.2f}, F× = {meta[f'fcross_{d}']:+.2f}, "
                        f"delay {1e3 * meta[f'delay_{d}']:+.1f} ms")
        a, b = st.columns(2)
        a.plotly_chart(fig.strain_figure(t, r2.sample.signal * 1e21, f"Clean projected {k2} signal (m1={m1:g}, "
                                         f"m2={m2:g} M☉)", "strain ×1e21"), key="l2_signal")
        b.plotly_chart(fig.strain_figure(t, r2.sample.white_signal, "The same signal whitened (σ units)", "σ"),
                       key="l2_white")
        amap = session.antenna_map(meta["gps"], math.radians(psi2))
        st.plotly_chart(fig.antenna_figure(amap, math.radians(ra2), math.radians(dec2),
                                           "Network antenna response over the sky at the merger time"), key="l2_sky")
        st.caption("Bright: the network is sensitive there. At a fixed network SNR a source in a dark region "
                   "would have to be much closer.")

with step3:
    st.markdown(
        "**Grad-CAM** weights the feature maps of the last residual block by the gradient of the class score and "
        "keeps the positive part: a time profile of *where* evidence for a class sits. Its limits:\n"
        "- **coarse**: one value per 32 input samples (7.8 ms), linearly interpolated;\n"
        "- **one map for all detectors**: the network mixes H1, L1 and V1 early, so it cannot say which "
        "detector mattered;\n"
        "- **positive evidence only** (ReLU) and relative (normalised to 1): a flat or empty map is not 'no signal';\n"
        "- it can look plausible even for a network that learned nothing: the **randomisation check** (Adebayo et "
        "al. 2018) compares the map with that of the same network with random weights — a high rank correlation "
        "ρ means the map shows the architecture, not what was learned;\n"
        "- **averaged channel weights**: Grad-CAM weights each channel by its gradient averaged over all 512 "
        "bins; with our fully connected head the merger bins can get the opposite sign, and the ReLU then erases "
        "the merger. **HiResCAM** (gradient × activation bin by bin, Draelos & Carin 2020) avoids this: on the "
        "shipped model it puts BBH attention at the merger, NSBH earlier, BNS earliest and noise flat "
        "(docs/gradcam.md), while Grad-CAM does not;\n"
        "- other methods (integrated gradients, occlusion) ask the question differently: agreement between them "
        "is reassuring, disagreement is a warning.")
    common.model_banner(clf)
    c = st.columns(3)
    k3 = c[0].selectbox("Injected class", [k for k in CLASSES if k != "noise"], key="l3_kind")
    snr3 = c[1].slider("Network SNR", 4.0, 40.0, 16.0, 1.0, key="l3_snr")
    target3 = c[2].selectbox("Explain class", CLASSES, index=1, key="l3_target")
    m3 = {"BBH": (36, 29), "NSBH": (10, 1.4), "BNS": (1.5, 1.3)}[k3]
    r3 = session.explore(k3, *m3, snr3, seed=3, classifier=clf, target=target3)
    st.plotly_chart(fig.strain_cam_figure(t, r3.sample.data, r3.cam, f"Grad-CAM for {target3} on an injected {k3} "
                                          f"(model: {r3.prediction.label})", r3.merger_times(), height=480),
                    key="l3_cam")
    cheap = st.checkbox("Quick settings (fewer IG steps, coarse occlusion)", value=True, key="l3_cheap")
    if st.button("Run the sanity checks", key="l3_run"):
        with st.spinner("Randomising the weights and computing four attribution methods …"):
            rho = session.sanity_check(clf, r3.sample.data, target3)
            profiles = session.compare_attributions(clf, r3.sample.data, target3, cheap=cheap)
        st.session_state["l3_result"] = (k3, snr3, target3, rho, profiles)
    res = st.session_state.get("l3_result")
    if res is not None and res[:3] == (k3, snr3, target3):
        rho, profiles = res[3], res[4]
        verdict = ("fails: the map barely depends on the learned weights" if rho > 0.5 else
                   "passes: the map changes when the weights are randomised")
        st.metric("Randomisation check: Spearman ρ (trained vs. random weights)", f"{rho:.2f}")
        note = " (an all-zero map gives ρ = 0 by convention)." if rho == 0 else "."
        st.markdown(f"The check **{verdict}**{note}")
        merger = r3.merger_times().get("H1")
        st.plotly_chart(fig.attribution_figure(t, profiles, f"Four attribution methods for {target3}", merger),
                        key="l3_compare")
