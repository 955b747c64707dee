"""Gallery: browse per-class Grad-CAM galleries written by ``python -m gwviz.explain.gallery`` (gallery.h5 files).

Files come from $GWVIZ_GALLERY_DIR (listed, never typed) or from an upload; "Generate" writes only
into $GWVIZ_GALLERY_DIR/small. Nothing read here is unpickled (gwviz.explain.gallery.load_gallery: h5py + JSON)."""
from __future__ import annotations

import io
import re
from pathlib import Path

import streamlit as st
from gwapp import common

from gwviz import paths, session
from gwviz.explain.gallery import METHOD_LABELS
from gwviz.constants import CLASSES

LABEL = f"${common.GALLERY_ENV}"
st.title("CAM gallery")
st.markdown("Samples of every class at a fixed SNR with the class-activation map (HiResCAM or Grad-CAM, as the file "
            "says) of the predicted class (orange) and, when the "
            "model is wrong, of the true class (purple, dotted). Written by `python -m gwviz.explain.gallery --out DIR`; "
            f"this page reads every `gallery.h5` in the gallery folder (`{LABEL}`, set when the app is started) "
            "or a `gallery.h5` you upload.")
root = common.gallery_root()


@st.cache_resource(max_entries=8, show_spinner="Reading the gallery …")
def _load(path: str, mtime: float):  # mtime in the key: a regenerated file is read again
    from gwviz.explain.gallery import load_gallery
    return load_gallery(path, name=paths.display(path, root, LABEL))


@st.cache_resource(max_entries=2, show_spinner="Reading the uploaded gallery …")
def _load_upload(data: bytes, name: str):
    from gwviz.explain.gallery import load_gallery
    return load_gallery(io.BytesIO(data), name=name)  # read from memory: the upload never touches the disk


def _find(folder: Path) -> list[str]:
    """gallery.h5 files up to 3 levels down, relative to the root (symlinks out of it are skipped)."""
    if not folder.is_dir():
        return []
    return [p.relative_to(folder).as_posix() for p in paths.files_within(folder, pattern="gallery.h5", max_depth=2)]


def _plain(text) -> str:
    """Gallery attributes are file content: escape markdown so a file cannot add links, images,
    HTML or LaTeX ('.', '-', '+' only matter at a line's start, which is ours)."""
    return re.sub(r"([\\`*_{}\[\]()#!|<>~$])", r"\\\1", str(text))


with st.expander("Make a small gallery here", expanded=not _find(root)):
    c = st.columns(4)
    n = int(c[0].number_input("Samples per class", 1, 2, 1, key="gal_n"))
    snr = float(c[1].number_input("Network SNR", 4.0, 50.0, 15.0, 1.0, key="gal_snr"))
    seed = int(c[2].number_input("Seed", 0, 10_000, 0, key="gal_seed"))
    cam_methods = list(METHOD_LABELS)  # the class-activation maps a gallery stores
    gal_method = c[3].selectbox("Map", cam_methods, index=cam_methods.index(session.DEFAULT_METHOD),
                                format_func=METHOD_LABELS.get, key="gal_method")
    st.caption(f"Makes {n} sample(s) per class at network SNR {snr:g} (seed {seed}) with the app's model in "
               f"simulated noise, like `python -m gwviz.explain.gallery --n {n} --snr {snr:g} --seed {seed} "
               f"--method {gal_method} --out {LABEL}/small`.")
    if st.button("Generate", key="gal_make"):
        try:
            root.mkdir(parents=True, exist_ok=True)  # the configured root itself, never a page path
            out = paths.resolve_within("small", root, LABEL, must_exist=False)  # refuses a symlink out
            from gwviz.explain.gallery import make_gallery
            with st.spinner(f"Making {n * len(CLASSES)} samples with {METHOD_LABELS[gal_method]} …"):
                make_gallery(common.classifier(), out, n, snr, seed, method=gal_method, weights=common.weights_label())
        except (ValueError, OSError, FloatingPointError) as e:
            common.show_error(f"Could not make the gallery in {LABEL}/small: ", e)
        else:
            st.session_state["gal_file"] = "small/gallery.h5"  # show the new one
            st.success(f"Wrote {LABEL}/small/gallery.h5 (+ index.html, fig2.html)")

found = _find(root)
upload = st.file_uploader("Or open a gallery.h5 from your computer", type=["h5", "hdf5"], key="gal_upload",
                          help="Read in memory and checked (datasets, shapes, types); never stored on the server")
if upload is not None:
    source = f"uploaded {upload.name}"
    loader = lambda: _load_upload(upload.getvalue(), f"uploaded file {upload.name!r}")  # noqa: E731
elif found:
    if st.session_state.get("gal_file") not in found:
        st.session_state.pop("gal_file", None)
    choice = st.selectbox("Gallery file", found, key="gal_file", format_func=lambda v: f"{LABEL}/{v}")
    source = f"{LABEL}/{choice}"

    def loader():
        path = paths.resolve_within(choice, root, LABEL)  # again at read time: the tree may have changed
        return _load(str(path), path.stat().st_mtime)
else:
    st.warning(f"No gallery.h5 in {LABEL} yet. Make one above, upload one, or run `python -m gwviz.explain.gallery --n 4 "
               f"--out <folder>` and start the app with {common.GALLERY_ENV}=<folder>.")
    st.stop()

try:
    gal = loader()
except (ValueError, OSError) as e:
    common.show_error("Cannot read the gallery: ", e)  # the message starts with the file's name
    st.stop()

from gwviz.explain.gallery import fig2, sample_figure  # noqa: E402 - only after the module was found usable

a = gal.attrs
trained = bool(a.get("trained", True))
if not trained:
    st.warning("**Untrained model** made this gallery: the maps show the architecture, not learned evidence.")
st.caption(_plain(f"{source} · weights: {paths.redact(str(a.get('weights')))} · noise: "
                  f"{paths.redact(str(a.get('noise_source', a.get('noise'))))} · network SNR {a.get('snr')} · "
                  f"seed {a.get('seed')} · {len(gal.samples)} samples"))
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
