"""Cached resources and settings shared by the pages.

Settings come from the environment of whoever starts the server, never from the page
(see gwviz.paths for the allowed roots):
  GWVIZ_DATA_DIR     directory of real O3 strain files (GW190521 gwpy HDF5, GW190425 L1 GWF, ...);
                     the sidebar only chooses among its subfolders
  GWVIZ_GALLERY_DIR  folder of Grad-CAM galleries (default gallery/ in the repository)
  GWVIZ_CACHE        GWOSC download cache (default ~/.cache/gwviz/gwosc)
  GWVIZ_WEIGHTS      weights file to load instead of models/gwviz-resnet54.safetensors
  GWVIZ_TORCH_THREADS  torch intra-op threads (default 1: one update is small, and on a shared or
                     busy CPU extra threads made it ~7x slower in bench/bench_app.py)
A wrong setting is shown with st.error on every page (settings_errors) and the app carries on.
"""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st
import torch

from gwviz.data.noise import noise_source as make_noise
from gwviz import paths, session
from gwviz.classifier import Classifier

DATA_ENV, GALLERY_ENV, CACHE_ENV = paths.DATA_ENV, paths.GALLERY_ENV, paths.CACHE_ENV
THREADS_ENV, WEIGHTS_ENV = session.THREADS_ENV, session.WEIGHTS_ENV
WHOLE = "."  # the data root itself in the folder select box


def apply_torch_threads() -> str | None:
    """Set torch's thread count from $GWVIZ_TORCH_THREADS on every run (cheap; a test or a restart
    with another value takes effect); a bad value keeps 1 thread and returns the message."""
    try:
        n, err = session.torch_threads(os.environ.get(THREADS_ENV)), None
    except ValueError as e:
        n, err = 1, f"{e}. Using 1 thread."
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return err


@st.cache_resource(show_spinner="Loading the classifier …", max_entries=2)
def _classifier(weights: str) -> tuple[Classifier, str | None]:
    clf, err = session.app_classifier(weights)
    return clf, None if err is None else paths.redact(err)


@st.cache_resource(show_spinner="Loading the shipped weights …", max_entries=1)
def _shipped_subset_classifier() -> Classifier | None:
    return session.subset_classifier()


def subset_classifier() -> Classifier | None:
    """A classifier for one or two detectors: the app's own where its weights take detector subsets
    (the shipped ones do), else the shipped weights, or None where neither does."""
    clf = classifier()
    return clf if len(clf.subsets) > 1 else _shipped_subset_classifier()


def classifier() -> Classifier:
    """The classifier, loaded once per server process and $GWVIZ_WEIGHTS value (a bad value: the
    fallback model, see settings_errors)."""
    return _classifier(os.environ.get(WEIGHTS_ENV, ""))[0]


def weights_label() -> str:
    """How a gallery made by the app names its weights: the file name, 'shipped' or 'untrained'."""
    weights = os.environ.get(WEIGHTS_ENV, "").strip()
    clf, err = _classifier(weights)
    if weights and err is None:
        return Path(weights).name
    return "shipped" if clf.trained else "untrained"


def settings_errors() -> None:
    """Show what is wrong with the server's settings, on every page."""
    for err in (apply_torch_threads(), _classifier(os.environ.get(WEIGHTS_ENV, ""))[1]):
        if err:
            st.error(err, icon=":material/settings_alert:")


@st.cache_resource(show_spinner="Preparing the noise source …", max_entries=8)
def noise_source(kind: str, data_dir: str = "", gps: float | None = None) -> tuple[object | None, str | None]:
    """(source, None) or (None, error message). Failures are cached too, so an offline GWOSC
    request costs its timeout once, not on every rerun (the page offers a retry)."""
    try:
        return make_noise(kind, data_dir=data_dir or None, gps=gps), None
    except ValueError as err:
        return None, paths.redact(str(err))


@st.cache_resource(show_spinner="Reading GW190521 …", max_entries=4)
def gw190521(data_dir: str) -> session.RealEvent:
    return session.load_gw190521(data_dir)


@st.cache_resource(show_spinner="Reading and resampling GW190425 (L1) …", max_entries=4)
def gw190425_l1(data_dir: str):
    return session.load_gw190425_l1(data_dir)


@st.cache_data(max_entries=16, show_spinner="Injecting, whitening, classifying, explaining …")
def explore(noise_key: tuple, _source, **kwargs) -> session.ExploreResult:
    """:func:`gwviz.session.explore`, cached on its arguments, so that display-only changes (clean
    signal, Q-transform) do not recompute a slow attribution. ``noise_key`` identifies ``_source``."""
    return session.explore(noise=_source, classifier=classifier(), **kwargs)


@st.cache_data(ttl=60, show_spinner=False)
def _data_subfolders(root: str) -> list[str]:  # a short TTL: new folders appear within a minute
    return paths.subfolders(root)


def settings_sidebar() -> None:
    """Sidebar settings shared by all pages: the data folder, chosen among the subfolders of
    $GWVIZ_DATA_DIR (st.session_state['data_dir'], relative to it). Nothing here is free text."""
    with st.sidebar.expander("Settings", expanded=False):
        root = paths.root(DATA_ENV)
        if root is None or not root.is_dir():
            st.caption(f"Real data: start the app with `{DATA_ENV}=/path/to/o3` (a folder of strain files).")
            return
        options = [WHOLE, *_data_subfolders(str(root))]
        if st.session_state.get("data_dir") not in options:  # a folder that went away: back to the root
            st.session_state["data_dir"] = WHOLE
        st.selectbox("Data folder (real O3 strain)", options, key="data_dir",
                     format_func=lambda v: f"${DATA_ENV}" if v == WHOLE else f"${DATA_ENV}/{v}",
                     help=f"Folders inside ${DATA_ENV} (set when the app is started). Holds e.g. "
                          "gwpy_format/GW190521_data/*.hdf5 and gwf/*.gwf.")


def data_dir() -> tuple[str, str | None]:
    """(the chosen data folder as a server path, None), or ("", a message for the page)."""
    root = paths.root(DATA_ENV)
    if root is None:
        return "", (f"no data directory: set ${DATA_ENV} (e.g. export {DATA_ENV}=/path/to/o3) and restart the app")
    try:
        return str(paths.resolve_within(st.session_state.get("data_dir", WHOLE), root, f"${DATA_ENV}")), None
    except ValueError as err:
        return "", str(err)


def data_label(folder: str) -> str:
    """How the page names a data folder: $GWVIZ_DATA_DIR/...."""
    root = paths.root(DATA_ENV)
    return paths.display(folder, root, f"${DATA_ENV}") if root else f"${DATA_ENV}"


def gallery_root() -> Path:
    """The real path of $GWVIZ_GALLERY_DIR (default gallery/ in the repository); may not exist yet."""
    return paths.root(GALLERY_ENV)


def show_error(prefix: str, err: BaseException | str) -> None:
    """st.error with server paths removed from the message."""
    st.error(f"{prefix}{paths.redact(str(err))}")


def model_banner(clf: Classifier) -> None:
    """Say loudly when the model is untrained (no shipped weights)."""
    if not clf.trained:
        st.warning("**Untrained model**: models/gwviz-resnet54.safetensors was not found, so a randomly "
                   "initialised network is used. Its probabilities and Grad-CAM maps are meaningless. "
                   "Train one or set GWVIZ_WEIGHTS.", icon=":material/warning:")


def noise_banner(meta: dict) -> None:
    """Always say which noise is shown; simulated noise is flagged (the source's name can hold the
    GWOSC cache path: redacted)."""
    if meta.get("simulated_noise", True):
        st.info(f"Noise: **SIMULATED** — {paths.redact(meta['noise_source'])}", icon=":material/science:")
    else:
        st.success(f"Noise: **REAL** — {paths.redact(meta['noise_source'])}", icon=":material/sensors:")


def prediction_metric(col, label: str, pred) -> None:
    """A metric with the predicted class and its probability, and a caption saying which rule decided."""
    col.metric(label, pred.label, f"p = {pred.probabilities[pred.label]:.2f}", delta_color="off", delta_arrow="off")
    col.caption(pred.rule_text)


def no_data_dir_message(err: str) -> None:
    st.warning(f"{paths.redact(err)}\n\nReal data needs a directory of strain files: start the app with "
               f"`{DATA_ENV}=/path/to/o3 streamlit run app/main.py`; *Settings* in the sidebar then chooses "
               "among its subfolders.")
