"""Where the network looks, over many samples: the CAM timing statistics (gwviz.explain.camstats) of the
shipped weights, and a small live sample computed on request."""
from __future__ import annotations

import json

import streamlit as st
from gwapp import common

from gwviz import session
from gwviz.explain.camstats import collect, figures, summarise
from gwviz.constants import CLASSES
from gwviz.explain.gallery import METHOD_LABELS
from gwviz.data.noise import noise_source
from gwviz.paths import REPO

st.title("Where does the network look?")
st.markdown(
    "Sasaoka et al. (2023, Fig. 2) report Grad-CAM attention at the merger for BBH, earlier for NSBH, earliest for "
    "BNS and flat for noise. `python -m gwviz.explain.camstats` tests that claim over many samples: the time of each map's "
    "peak and its weighted centroid relative to the merger, and how flat it is (normalised entropy, 1 = flat). "
    "Method details and the comparison: `docs/gradcam.md`.")
methods = list(METHOD_LABELS)
method = st.radio("Map", methods, index=methods.index(session.DEFAULT_METHOD), format_func=METHOD_LABELS.get,
                  horizontal=True, key="cs_method")

st.header("Measured on the shipped weights")
path = REPO / "docs" / "camstats" / f"camstats-{method}.json"
try:
    pre = json.loads(path.read_text())
    true = pre["stats"]["true"]
except (OSError, ValueError, KeyError, TypeError) as e:
    st.warning(f"No precomputed statistics for {METHOD_LABELS[method]} ({type(e).__name__}); "
               "make them with `python -m gwviz.explain.camstats --method ... --out docs/camstats/...`, or use the live sample.")
else:
    (st.success if pre["stats"]["true"]["claim"]["holds"] else st.error)(pre["statement"])
    rows = []
    for c in CLASSES:
        s = true[c]
        med = lambda k: None if s[k]["median"] is None else round(s[k]["median"], 3)  # noqa: E731
        rows.append({"class": c, "peak − merger [s]": med("peak_offset"), "centroid − merger [s]": med("centroid_offset"),
                     "max / mean": med("max_over_mean"), "normalised entropy": med("entropy")})
    st.dataframe(rows, hide_index=True, key="cs_table")
    st.caption(f"{pre['n_per_class']:,} samples per class at network SNR {pre['snr']:g} in simulated O3 noise, "
               f"seed {pre['seed']}; maps of the true class; medians. Randomisation check: mean Spearman ρ "
               f"(trained vs random-weight maps) {pre['randomisation_check']['mean_spearman_rho']:+.3f}.")

st.header("A live sample")
c = st.columns(3)
n = int(c[0].number_input("Samples per class", 1, 8, 3, key="cs_n"))
snr = float(c[1].number_input("Network SNR", 6.0, 40.0, 15.0, 1.0, key="cs_snr"))
seed = int(c[2].number_input("Seed", 0, 10_000, 0, key="cs_seed"))
if st.button(f"Compute on {n * len(CLASSES)} new samples", key="cs_go"):
    try:
        with st.spinner("Injecting, classifying and explaining …"):
            d = collect(common.classifier(), noise_source("simulated"), n, snr, seed, progress=False,
                        method=method)
    except (ValueError, FloatingPointError) as e:
        common.show_error("Cannot compute: ", e)
    else:
        st.session_state["cs_live"] = (method, n, snr, seed, d)
live = st.session_state.get("cs_live")
if live is not None:
    m, n_, snr_, seed_, d = live
    claim = summarise(d)["true"]["claim"]
    (st.success if claim["holds"] else st.warning)(f"{n_} per class, SNR {snr_:g}, seed {seed_}, "
                                                  f"{METHOD_LABELS[m]}: {claim['statement']}")
    for i, f in enumerate(figures(d, target="true")):
        st.plotly_chart(f, key=f"cs_fig{i}")
    st.caption("A few samples scatter widely: the precomputed statistics above use 1,000 per class.")
