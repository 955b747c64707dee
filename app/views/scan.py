"""Scan: the network run over longer strain (gwviz.scan): the detection statistic every stride, the
triggers with their class, false-positive rate and attribution map. Strain comes from the bundled
events, simulated noise, an upload (stored only under $GWVIZ_CACHE/uploads) or GWOSC (online)."""
from __future__ import annotations

import numpy as np
import streamlit as st
from gwapp import common
from gwapp import figures as fig

from gwviz import paths, session
from gwviz.constants import DETECTORS, KNOWN_EVENTS, SAMPLE_RATE, WINDOW_DURATION, WINDOW_SAMPLES
from gwviz.data.gwosc import fetch_event_strain
from gwviz.data.noise import SimulatedNoise
from gwviz.scan import MERGER_BEFORE_END, report_figures, scan, window_rate
from gwviz.data.strain import MAX_UPLOAD_BYTES, STRAIN_SUFFIXES, cache_upload, read_detectors

BUNDLED = {
    "GW190521 (bundled: H1, L1, V1)": tuple(str(paths.BUNDLED_DATA / "gwpy_format" / "GW190521_data" / f"{d}_data_32s.hdf5")
                                            for d in DETECTORS),
    "GW190425 (bundled: L1 only)": (str(paths.BUNDLED_DATA / "GW190425" / "L1_data_32s.hdf5"),),
}
SIMULATED, UPLOAD, GWOSC = "Simulated O3 noise", "Upload strain files", "GWOSC event (online)"


@st.cache_resource(max_entries=4, show_spinner="Reading the strain …")
def _read(files: tuple[str, ...]) -> tuple[dict, float]:
    return read_detectors(list(files))


@st.cache_resource(max_entries=2, show_spinner="Simulating O3 noise …")
def _simulated(seconds: float, seed: int) -> tuple[dict, float]:
    seg = SimulatedNoise().segment(seconds, np.random.default_rng(seed), gps_start=0.0)
    return dict(zip(DETECTORS, seg.strain)), 0.0


@st.cache_resource(max_entries=8, show_spinner="Fetching from GWOSC …")
def _fetch(event: str) -> tuple[tuple[str, ...] | None, str | None]:
    """(files, note) or (None, error); failures are cached too, so offline costs its timeout once."""
    try:
        found, failed = fetch_event_strain(event, 32.0, cache_dir=paths.root(common.CACHE_ENV))
    except ValueError as err:
        return None, paths.redact(str(err))
    note = "; ".join(f"{d}: not fetched" for d in failed) or None
    return tuple(str(p) for p in found), note


@st.cache_data(max_entries=8, show_spinner="Scanning: whitening and classifying every window …")
def _scan(key: tuple, _strain: dict, t0: float, stride: float, rate: float, subset_weights: bool):
    clf = common.subset_classifier() if subset_weights else common.classifier()
    return scan(clf, _strain, stride=stride, rate=rate, t0=t0, method=session.DEFAULT_METHOD)


st.title("Scan strain")
st.markdown(
    "A search does not get one window with the signal at its end: it slides the network along the data. Each "
    "window is whitened from its own 16 s and classified; windows whose detection statistic λ passes the "
    "calibrated threshold become **triggers** (clustered within 1 s), each with its attribution map. "
    "With a detector missing, weights trained with detectors dropped (the **detector mask**: the shipped ones) "
    "and that network's own threshold are used. Command line and numbers: `python -m gwviz.scan`, `docs/scan.md`.")

source = st.radio("Strain", [*BUNDLED, SIMULATED, UPLOAD, GWOSC], horizontal=True, key="sc_source")
strain, t0, key, label = None, 0.0, None, ""
try:
    if source in BUNDLED:
        strain, t0 = _read(BUNDLED[source])
        key, label = (source,), f"{source}; GWOSC open data, CC BY 4.0 (gwviz/data/o3/README.md)"
    elif source == SIMULATED:
        c = st.columns(2)
        seconds = c[0].select_slider("Duration [s]", [32, 64, 128, 256], value=64, key="sc_seconds")
        seed = int(c[1].number_input("Noise seed", 0, 10_000, 0, key="sc_seed"))
        strain, t0 = _simulated(float(seconds), seed)
        key, label = (source, seconds, seed), f"{seconds} s of SIMULATED Gaussian O3 noise (seed {seed}): no signal"
    elif source == UPLOAD:
        files = st.file_uploader(
            "One file per detector (GWOSC HDF5, gwpy HDF5 or GWF; ≥ 16 s, cut to their common span)",
            type=[s.lstrip(".") for s in STRAIN_SUFFIXES], accept_multiple_files=True, key="sc_upload",
            help=f"Up to {MAX_UPLOAD_BYTES // 2**20} MiB per file; stored only in the cache folder ($GWVIZ_CACHE/uploads) "
                 "so that gwpy can read it, under a name made from its content")
        if files:
            stored = tuple(str(cache_upload(f.getvalue(), f.name, paths.root(common.CACHE_ENV))) for f in files)
            strain, t0 = _read(stored)
            key, label = (source, stored), "uploaded: " + ", ".join(f.name for f in files)
    else:
        event = st.selectbox("Event", sorted(KNOWN_EVENTS), index=sorted(KNOWN_EVENTS).index("GW190521"), key="sc_event")
        st.caption("32 s around the event from GWOSC with gwpy (needs the internet once; then read from $GWVIZ_CACHE).")
        if st.button("Fetch", key="sc_fetch") or st.session_state.get("sc_fetched") == event:
            st.session_state["sc_fetched"] = event
            fetched, note = _fetch(event)
            if fetched is None:
                common.show_error("Could not fetch: ", note)
            else:
                if note:
                    st.info(note)
                strain, t0 = _read(fetched)
                key, label = (source, fetched), f"{event} from GWOSC (REAL strain)"
except ValueError as err:
    common.show_error("Cannot read this strain: ", err)
    strain = None

if strain is None:
    st.stop()

available = [d for d in DETECTORS if d in strain]
c = st.columns(3)
dets = c[0].multiselect("Detectors", available, default=available, key="sc_dets_" + "".join(available))
stride = c[1].select_slider("Stride [s]", [0.1, 0.25, 0.5], value=0.1, key="sc_stride",
                            help="Training put every merger in the last 0.1 s of the window; larger strides can "
                                 "miss it or see it at the wrong place")
rate = c[2].radio("False-positive rate per window", [0.01, 0.001], format_func=lambda r: f"{r:g}", key="sc_rate",
                  horizontal=True)
if not dets:
    st.info("Choose at least one detector.")
    st.stop()
subset_weights = len(dets) < len(DETECTORS)
if subset_weights and common.subset_classifier() is None:
    st.error("Scanning fewer than three detectors needs weights trained with the detector mask (the shipped "
             "models/gwviz-resnet54.safetensors), and none are loaded.")
    st.stop()
st.caption(f"Strain: {label} · {len(next(iter(strain.values()))) / SAMPLE_RATE:g} s · weights: "
           + ("trained with the detector mask (any subset of H1, L1, V1)"
              if len((common.subset_classifier() if subset_weights else common.classifier()).subsets) > 1
              else "H1, L1, V1 only (trained without the detector mask)"))
try:
    res = _scan((*key, tuple(dets)), {d: strain[d] for d in dets}, t0, stride, rate, subset_weights)
except (ValueError, FloatingPointError) as err:
    common.show_error("Cannot scan: ", err)
    st.stop()

m = st.columns(4)
m[0].metric("Windows", f"{len(res.statistic):,}")
m[1].metric("Triggers", len(res.triggers))
m[2].metric("Detectors", res.detectors)
loud = res.triggers[0] if res.triggers else None
m[3].metric("Loudest", loud.label if loud else "—", f"λ = {loud.statistic:.2f}" if loud else None,
            delta_color="off", delta_arrow="off")
counts = window_rate(res)
if counts:
    st.caption(f"{counts['windows_above_threshold']} windows passed λ > {res.threshold:.2f}; on pure noise the "
               f"calibration expects {counts['expected_on_noise']:.1f} ± {counts['poisson_sigma']:.1f} "
               "(Poisson; neighbouring windows overlap, so the true scatter is larger).")
st.plotly_chart(report_figures(res, n_windows=0)[0], key="sc_timeline")

if not res.triggers:
    st.info("No window passed the threshold.")
    st.stop()
rows = [{"#": i + 1, "time [s]": round(t.time, 2), "GPS [s]": round(t.gps, 3), "class": t.label,
         "λ": round(t.statistic, 2), "FPR per window": None if t.fpr is None else float(f"{t.fpr:.2g}"),
         "windows": t.n_windows, "p(class)": round(t.probabilities[t.label], 3)} for i, t in enumerate(res.triggers)]
st.dataframe(rows, hide_index=True, key="sc_table")
pick = st.selectbox("Trigger", range(len(res.triggers)), key="sc_pick",
                    format_func=lambda i: f"#{i + 1}: {res.triggers[i].label} at {res.triggers[i].time:.2f} s, "
                                          f"λ = {res.triggers[i].statistic:.2f}")
trig = res.triggers[pick]
merger = WINDOW_DURATION - MERGER_BEFORE_END
st.plotly_chart(fig.strain_cam_figure(
    np.arange(WINDOW_SAMPLES) / SAMPLE_RATE, trig.window, trig.cam,
    f"Trigger #{pick + 1}: {trig.label} at {trig.time:.2f} s (GPS {trig.gps:.3f}) — window from {trig.window_start:.2f} s",
    {d: merger for d in dets}, cam_label=f"{fig.METHOD_NAMES[res.method]} for {trig.label}"), key="sc_window")
st.caption(f"Dashed: where this window puts a merger ({MERGER_BEFORE_END:g} s before its end, the middle of the last "
           "0.1 s where training put every merger). An absent detector is a flat, all-zero trace.")
st.plotly_chart(fig.probability_figure(trig.probabilities, f"Trigger #{pick + 1}: class probabilities"), key="sc_probs")
