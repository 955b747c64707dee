"""gwviz app: ``streamlit run app/main.py``.

Pages: Explore (inject, classify, explain), Gallery (per-class CAM galleries), Learn
(whitening, signal geometry, what Grad-CAM means), Guided tour (seven linkable steps for a class), Where it looks (CAM statistics over many
samples), Real events (GW190521, GW190425) and Scan (the network slid over longer strain).
Settings come from the environment only (GWVIZ_DATA_DIR, GWVIZ_GALLERY_DIR, GWVIZ_CACHE, GWVIZ_WEIGHTS,
GWVIZ_TORCH_THREADS; see app/gwapp/common.py and gwviz/paths.py); .streamlit/config.toml keeps the
server on localhost (app/README.md says how to expose it on purpose).
"""
from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

_T0 = time.perf_counter()

# `streamlit run` puts app/ on sys.path; AppTest and other runners may not.
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import streamlit as st  # noqa: E402

# The first run imports torch and gwviz and loads the model: some 350,000 objects that live as long as
# the server, and hardly any garbage. Python's cyclic collector would re-scan that growing heap
# again and again meanwhile, and after it on every full collection: 0.9 s of a 3.9-s first load went
# to collections (timed with gc.callbacks), 0.06 s with this. So the collector waits until they are
# made, then gc.freeze() moves them out of its way, once per process: reference counting still frees
# them, only cycles among them are never collected. Later runs import nothing and find the model
# cached, so for them this is a no-op.
_gc_was_enabled = gc.isenabled()
gc.disable()
try:
    from gwapp.common import settings_errors, settings_sidebar  # noqa: E402

    # a local image: a ":material/..." or emoji page icon makes the browser fetch it from fonts.gstatic.com
    st.set_page_config(page_title="gwviz — what does the CNN see?", page_icon=str(_HERE / "icon.png"),
                       layout="wide")

    pages = [
        st.Page(str(_HERE / "views" / "explore.py"), title="Explore", icon=":material/explore:", default=True),
        st.Page(str(_HERE / "views" / "gallery.py"), title="Gallery", icon=":material/photo_library:"),
        st.Page(str(_HERE / "views" / "learn.py"), title="Learn", icon=":material/school:"),
        st.Page(str(_HERE / "views" / "tour.py"), title="Guided tour", icon=":material/tour:"),
        st.Page(str(_HERE / "views" / "camstats.py"), title="Where it looks", icon=":material/query_stats:"),
        st.Page(str(_HERE / "views" / "real_events.py"), title="Real events", icon=":material/sensors:"),
        st.Page(str(_HERE / "views" / "scan.py"), title="Scan", icon=":material/timeline:"),
    ]
    page = st.navigation(pages)
    settings_errors()  # a wrong GWVIZ_WEIGHTS / GWVIZ_TORCH_THREADS: a message on every page, not a traceback
finally:
    # once per process; a flag in a module that outlives the runs, not gc.get_freeze_count(), which
    # walks the frozen list (26 ms a rerun with the model loaded, a tenth of a slider move)
    import gwapp.common as _common  # noqa: E402
    if not getattr(_common, "gc_frozen", False):
        gc.freeze()
        _common.gc_frozen = True
    if _gc_was_enabled:
        gc.enable()
settings_sidebar()
page.run()
# This run's server time (the whole script: compute, figures, messages queued), read by bench/bench_app.py
st.session_state["_gwviz_run_s"] = time.perf_counter() - _T0
