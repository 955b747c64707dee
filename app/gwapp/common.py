"""Cached resources and settings shared by the pages.

Settings (sidebar "Settings", defaults from the environment):
  GWVIZ_DATA_DIR     directory of real O3 strain files (GW190521 gwpy HDF5, GW190425 L1 GWF, ...)
  GWVIZ_GALLERY_DIR  folder of Grad-CAM galleries written by ``python -m gwviz.gallery`` (default gallery/)
  GWVIZ_WEIGHTS      weights file to load instead of models/gwviz-resnet54.safetensors
  GWVIZ_TORCH_THREADS  torch intra-op threads (default 1: one update is small, and on a shared or
                     busy CPU extra threads made it ~7x slower in bench/bench_app.py)
"""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st
import torch

from gwviz import session
from gwviz.classifier import Classifier
from gwviz.noise import DATA_DIR_ENV

GALLERY_ENV = "GWVIZ_GALLERY_DIR"
REPO = Path(__file__).resolve().parents[2]
THREADS_ENV = "GWVIZ_TORCH_THREADS"

torch.set_num_threads(max(1, int(os.environ.get(THREADS_ENV, "1"))))


@st.cache_resource(show_spinner="Loading the classifier …")
def classifier() -> Classifier:
    """The classifier, loaded once per server process."""
    return session.default_classifier()


@st.cache_resource(show_spinner="Preparing the noise source …", max_entries=8)
def noise_source(kind: str, data_dir: str = "", gps: float | None = None) -> tuple[object | None, str | None]:
    """(source, None) or (None, error message). Failures are cached too, so an offline GWOSC
    request costs its timeout once, not on every rerun (the page offers a retry)."""
    try:
        return session.noise_source(kind, data_dir or None, gps), None
    except ValueError as err:
        return None, str(err)


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


def settings_sidebar() -> None:
    """Sidebar settings shared by all pages; values live in st.session_state['data_dir'/'gallery_dir']."""
    with st.sidebar.expander("Settings", expanded=False):
        st.text_input("Data directory (real O3 strain)", value=os.environ.get(DATA_DIR_ENV, ""), key="data_dir",
                      help=f"Defaults to ${DATA_DIR_ENV}. Holds e.g. gwpy_format/GW190521_data/*.hdf5 and gwf/*.gwf.")
        st.text_input("Gallery folder", value=os.environ.get(GALLERY_ENV, str(REPO / "gallery")), key="gallery_dir",
                      help=f"Defaults to ${GALLERY_ENV} or gallery/ in the repository.")


def data_dir() -> str:
    return str(st.session_state.get("data_dir", os.environ.get(DATA_DIR_ENV, ""))).strip()


def gallery_dir() -> Path:
    return Path(str(st.session_state.get("gallery_dir", os.environ.get(GALLERY_ENV, REPO / "gallery"))).strip())


def model_banner(clf: Classifier) -> None:
    """Say loudly when the model is untrained (no shipped weights)."""
    if not clf.trained:
        st.warning("**Untrained model**: models/gwviz-resnet54.safetensors was not found, so a randomly "
                   "initialised network is used. Its probabilities and Grad-CAM maps are meaningless. "
                   "Train one or set GWVIZ_WEIGHTS.", icon=":material/warning:")


def noise_banner(meta: dict) -> None:
    """Always say which noise is shown; simulated noise is flagged."""
    if meta.get("simulated_noise", True):
        st.info(f"Noise: **SIMULATED** — {meta['noise_source']}", icon=":material/science:")
    else:
        st.success(f"Noise: **REAL** — {meta['noise_source']}", icon=":material/sensors:")


def prediction_metric(col, label: str, pred) -> None:
    """A metric with the predicted class and its probability."""
    col.metric(label, pred.label, f"p = {pred.probabilities[pred.label]:.2f}", delta_color="off", delta_arrow="off")


def no_data_dir_message(err: str) -> None:
    st.warning(f"{err}\n\nReal data needs a directory of strain files: start the app with "
               f"`{DATA_DIR_ENV}=/path/to/o3 streamlit run app/main.py` or type the path under *Settings* "
               "in the sidebar.")
