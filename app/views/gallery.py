"""Gallery: browse per-class Grad-CAM galleries written by ``python -m gwviz.gallery`` (gallery.h5 files)."""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st
from gwapp import common

from gwviz import session
from gwviz.constants import CLASSES

st.title("Grad-CAM gallery")
st.markdown("Samples of every class at a fixed SNR with the Grad-CAM of the predicted class (orange) and, when the "
            "model is wrong, of the true class (purple, dotted). Written by `python -m gwviz.gallery --out DIR`; "
            "this page reads every `gallery.h5` under the gallery folder (sidebar *Settings*).")
root = common.gallery_dir()


@st.cache_resource(max_entries=8, show_spinner="Reading the gallery …")
def _load(path: str, mtime: float):  # mtime in the key: a regenerated file is read again
    from gwviz.gallery import load_gallery
    return load_gallery(path)


def _find(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("gallery.h5") if len(p.relative_to(folder).parts) <= 3)


with st.expander("Make a small gallery here", expanded=not _find(root)):
    c = st.columns(3)
    n = int(c[0].number_input("Samples per class", 1, 2, 1, key="gal_n"))
    snr = float(c[1].number_input("Network SNR", 4.0, 50.0, 15.0, 1.0, key="gal_snr"))
    seed = int(c[2].number_input("Seed", 0, 10_000, 0, key="gal_seed"))
    out = root / "small"
    st.caption(f"Runs `python -m gwviz.gallery --n {n} --snr {snr:g} --seed {seed} --out {out}` in the app process.")
    if st.button("Generate", key="gal_make"):
        args = ["--n", str(n), "--snr", str(snr), "--seed", str(seed), "--out", str(out), "--no-progress",
                "--allow-untrained"]
        if os.environ.get(session.WEIGHTS_ENV):
            args += ["--weights", os.environ[session.WEIGHTS_ENV]]
        try:
            from gwviz.gallery import main as gallery_main
            with st.spinner(f"Making {n * len(CLASSES)} samples with Grad-CAM …"):
                gallery_main(args)
        except (ValueError, OSError) as e:
            st.error(f"Could not make the gallery in {out}: {e}")
        else:
            st.session_state["gal_file"] = str((out / "gallery.h5").relative_to(root))  # show the new one
            st.success(f"Wrote {out / 'gallery.h5'} (+ index.html, fig2.html)")

found = _find(root)
if not found:
    st.warning(f"No gallery.h5 under {root}. Make one above, or run `python -m gwviz.gallery --n 4 --out {root}` "
               f"and/or set {common.GALLERY_ENV}.")
    st.stop()

labels = [str(p.relative_to(root)) for p in found]
if st.session_state.get("gal_file") not in labels:
    st.session_state.pop("gal_file", None)
choice = st.selectbox("Gallery file", labels, key="gal_file")
path = root / choice
try:
    gal = _load(str(path), path.stat().st_mtime)
except (ValueError, OSError, KeyError) as e:
    st.error(f"Cannot read {path}: {e}")
    st.stop()

from gwviz.gallery import fig2, sample_figure  # noqa: E402 - only after the module was found usable

a = gal.attrs
trained = bool(a.get("trained", True))
if not trained:
    st.warning("**Untrained model** made this gallery: the maps show the architecture, not learned evidence.")
st.caption(f"weights: {a.get('weights')} · noise: {a.get('noise_source', a.get('noise'))} · "
           f"network SNR {a.get('snr')} · seed {a.get('seed')} · {len(gal.samples)} samples")
if any(not s.meta.get("simulated_noise", True) for s in gal.samples):
    st.success("Noise: **REAL** (see the gallery's noise source above)", icon=":material/sensors:")
else:
    st.info("Noise: **SIMULATED** Gaussian O3 noise", icon=":material/science:")

kinds = [k for k in CLASSES if any(s.kind == k for s in gal.samples)]
kind = st.radio("Class", kinds, horizontal=True, key="gal_kind")
members = [s for s in gal.samples if s.kind == kind]
correct = sum(s.predicted == s.kind for s in members)
st.metric(f"{kind}: correctly classified", f"{correct}/{len(members)}")
i = st.number_input("Sample", 1, len(members), 1, key=f"gal_i_{kind}") if len(members) > 1 else 1
st.plotly_chart(sample_figure(members[int(i) - 1], trained), key="gal_sample")
if st.checkbox("Show Sasaoka et al. (2023) Fig. 2 (first sample of each class)", key="gal_fig2"):
    st.plotly_chart(fig2(gal.samples, trained), key="gal_fig2_chart")
