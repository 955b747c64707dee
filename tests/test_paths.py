"""Security of what the app reads and writes: allowed roots (gwviz.paths), files that come from a page
(gwviz.explain.gallery.load_gallery), server settings (GWVIZ_WEIGHTS, GWVIZ_TORCH_THREADS) and the
project's .streamlit/config.toml. Every refusal is checked for its type and exact message, and
that the message does not reveal the server path it refused."""
from __future__ import annotations

import json
import os
import pickle
import re
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gwviz import paths, session
from gwviz.constants import CLASSES, DETECTORS, WINDOW_SAMPLES
from gwviz.explain.gallery import FORMAT, GallerySample, load_gallery, save_gallery

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path):
    """root/ with a/b/, a file, a symlink out to a secret folder, and one that stays inside."""
    root, outside = tmp_path / "root", tmp_path / "secret-outside"
    (root / "a" / "b").mkdir(parents=True)
    outside.mkdir()
    (outside / "passwd.hdf5").write_text("secret")
    (root / "a" / "f.txt").write_text("x")
    (root / "out").symlink_to(outside)
    (root / "out.hdf5").symlink_to(outside / "passwd.hdf5")
    (root / "in").symlink_to(root / "a")
    return root, outside


def refused(text, root, label="$R", **kw) -> str:
    with pytest.raises(ValueError) as err:
        paths.resolve_within(text, root, label, **kw)
    return str(err.value)


# --- resolve_within -----------------------------------------------------------------------------

def test_resolve_within_accepts_paths_inside(tree) -> None:
    root, _ = tree
    real = Path(os.path.realpath(root))
    assert paths.resolve_within("a/b", root) == real / "a" / "b"
    assert paths.resolve_within("", root) == paths.resolve_within(".", root) == real
    assert paths.resolve_within("a/b/../f.txt", root) == real / "a" / "f.txt"  # '..' that stays inside
    assert paths.resolve_within("in/f.txt", root) == real / "a" / "f.txt"  # a symlink that stays inside
    assert paths.resolve_within("new/dir", root, must_exist=False) == real / "new" / "dir"
    assert not (root / "new").exists()  # resolving never creates anything


@pytest.mark.parametrize("text, message", [
    ("..", "'..' leaves $R (with '..'); only paths inside it are allowed"),
    ("../secret-outside/passwd.hdf5", "'../secret-outside/passwd.hdf5' leaves $R (with '..'); only paths inside it "
                                      "are allowed"),
    ("a/../../secret-outside", "'a/../../secret-outside' leaves $R (with '..'); only paths inside it are allowed"),
    ("out", "'out' leaves $R (through a symbolic link); only paths inside it are allowed"),
    ("out/passwd.hdf5", "'out/passwd.hdf5' leaves $R (through a symbolic link); only paths inside it are allowed"),
    ("out.hdf5", "'out.hdf5' leaves $R (through a symbolic link); only paths inside it are allowed"),
    ("/etc/passwd", "absolute paths are not accepted: give a path relative to $R"),
    ("/", "absolute paths are not accepted: give a path relative to $R"),
    ("a/\x00b", "a path cannot contain a NUL byte"),
    ("nope/x.h5", "$R/nope/x.h5 does not exist"),
])
def test_resolve_within_refuses_escapes(tree, text, message) -> None:
    root, outside = tree
    msg = refused(text, root)
    assert msg == message
    assert str(outside) not in msg and str(root) not in msg  # never a server path


def test_resolve_within_refuses_absolute_even_inside_and_missing_roots(tree, tmp_path) -> None:
    root, _ = tree
    assert refused(str(root / "a"), root) == "absolute paths are not accepted: give a path relative to $R"
    assert refused("a", tmp_path / "missing", "$GWVIZ_DATA_DIR") == (
        "$GWVIZ_DATA_DIR does not exist on the server (ask whoever runs the app to create it or set the variable)")
    (tmp_path / "file-root").write_text("x")
    assert "does not exist on the server" in refused("", tmp_path / "file-root")  # a file is not a root
    link_root = tmp_path / "link-root"
    link_root.symlink_to(root)  # a root given through a symlink: inside means inside its target
    assert paths.resolve_within("a", link_root) == Path(os.path.realpath(root)) / "a"
    assert refused("../secret-outside", link_root) == ("'../secret-outside' leaves $R (with '..'); only paths "
                                                      "inside it are allowed")


def test_roots_come_from_the_environment(monkeypatch, tmp_path) -> None:
    for env in (paths.DATA_ENV, paths.GALLERY_ENV, paths.CACHE_ENV):
        monkeypatch.delenv(env, raising=False)
    assert paths.root(paths.DATA_ENV) is None  # no real data unless the server's owner says so
    assert paths.root(paths.GALLERY_ENV) == Path(os.path.realpath(REPO / "gallery"))
    assert paths.root(paths.CACHE_ENV) == Path(os.path.realpath(Path.home() / ".cache" / "gwviz" / "gwosc"))
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real")
    monkeypatch.setenv(paths.DATA_ENV, f"  {tmp_path / 'via'}  ")
    assert paths.root(paths.DATA_ENV) == Path(os.path.realpath(tmp_path / "real"))


# --- bounded walks ------------------------------------------------------------------------------

def test_walks_stay_inside_and_are_bounded(tree) -> None:
    root, _ = tree
    (root / "a" / "b" / "x.hdf5").write_text("x")
    (root / "a" / "y.gwf").write_text("y")
    real = Path(os.path.realpath(root))
    # the symlinked file out of the root and the symlinked folders are not followed
    assert paths.files_within(root, (".hdf5", ".gwf")) == [real / "a" / "b" / "x.hdf5", real / "a" / "y.gwf"]
    assert paths.files_within(root, pattern="b/*.hdf5") == [real / "a" / "b" / "x.hdf5"]
    assert paths.files_within(root, (".hdf5",), max_depth=1) == []  # a/b/ is two levels down
    assert paths.subfolders(root) == ["a", "a/b"]  # 'out' and 'in' are symlinks: not listed
    assert paths.subfolders(root, max_depth=1) == ["a"]
    assert paths.subfolders(root / "missing") == []
    for i in range(4):
        (root / f"{i}.h5").write_text("x")
    with pytest.raises(ValueError, match=r"^more than 3 matching files under the folder; choose a narrower one$"):
        paths.files_within(root, (".h5",), max_files=3)


def test_display_and_redact(monkeypatch, tree) -> None:
    root, outside = tree
    monkeypatch.setenv(paths.GALLERY_ENV, str(root))
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    assert paths.display(root / "a" / "b", root, "$G") == "$G/a/b"
    assert paths.display(root, root, "$G") == "$G"
    assert paths.display(outside, root, "$G") == "(outside $G)"
    msg = (f"{root}/a/gallery.h5: bad; {outside}/passwd.hdf5 unreadable; see https://gwosc.org/eventapi/x; "
           "ASD [1/√Hz]; export GWVIZ_DATA_DIR=/path/to/o3; no `*GW190521*/H1*.hdf5`")
    assert paths.redact(msg) == ("$GWVIZ_GALLERY_DIR/a/gallery.h5: bad; …/passwd.hdf5 unreadable; see "
                                 "https://gwosc.org/eventapi/x; ASD [1/√Hz]; export GWVIZ_DATA_DIR=/path/to/o3; no "
                                 "`*GW190521*/H1*.hdf5`")
    assert paths.redact("weights /srv/w.pt broken", {"/srv/w.pt": "$GWVIZ_WEIGHTS"}) == "weights $GWVIZ_WEIGHTS broken"


# --- settings: GWVIZ_TORCH_THREADS and GWVIZ_WEIGHTS ------------------------------------------------

@pytest.mark.parametrize("raw, message", [
    ("0", "$GWVIZ_TORCH_THREADS='0' is out of range; use 1 to 4 (this machine's CPUs)"),
    ("-1", "$GWVIZ_TORCH_THREADS='-1' is out of range; use 1 to 4 (this machine's CPUs)"),
    ("5", "$GWVIZ_TORCH_THREADS='5' is out of range; use 1 to 4 (this machine's CPUs)"),
    ("100000000000000000000000000", "$GWVIZ_TORCH_THREADS='10000000000000000000…' is out of range; use 1 to 4 "
                                    "(this machine's CPUs)"),
    ("abc", "$GWVIZ_TORCH_THREADS='abc' is not a whole number; use 1 to 4"),
    ("1.5", "$GWVIZ_TORCH_THREADS='1.5' is not a whole number; use 1 to 4"),
    ("0x2", "$GWVIZ_TORCH_THREADS='0x2' is not a whole number; use 1 to 4"),
])
def test_torch_threads_refuses_bad_values(raw, message) -> None:
    with pytest.raises(ValueError) as err:
        session.torch_threads(raw, cpus=4)
    assert str(err.value) == message


def test_torch_threads_accepts_good_values() -> None:
    assert session.torch_threads(None) == session.torch_threads("") == session.torch_threads("  ") == 1
    assert session.torch_threads(" 3 ", cpus=4) == 3 and session.torch_threads("4", cpus=4) == 4


class _Boom:
    """Unpickling this would run code: it writes a marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_weights_setting_problems_become_messages(tmp_path, weights) -> None:
    from safetensors.torch import save_file
    (tmp_path / "dir.safetensors").mkdir()
    (tmp_path / "text.safetensors").write_text("not weights")
    (tmp_path / "text.pt").write_text("not weights")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"), metadata={"format": "other"})
    marker = tmp_path / "marker"
    torch.save({"format": "gwviz-gwnet-v1", "model": _Boom(str(marker))}, tmp_path / "evil.pt")
    fallback = "Using the shipped weights instead" if session.default_classifier().trained else \
        "Using an UNTRAINED model instead"
    cases = {
        "missing.safetensors": "$GWVIZ_WEIGHTS does not name usable weights (ValueError: no such file).",
        "dir.safetensors": "$GWVIZ_WEIGHTS does not name usable weights (ValueError: is a directory, not a weights "
                           "file).",
        "text.safetensors": "$GWVIZ_WEIGHTS does not name usable weights (ValueError: not a readable safetensors "
                            "file (",
        "text.pt": "$GWVIZ_WEIGHTS does not name usable weights (ValueError: not a readable weights-only torch "
                   "checkpoint (",
        "evil.pt": "$GWVIZ_WEIGHTS does not name usable weights (ValueError: not a readable weights-only torch "
                   "checkpoint (UnpicklingError: ",
        "foreign.safetensors": "$GWVIZ_WEIGHTS does not name usable weights (ValueError: not gwviz weights (format "
                               "'other', expected 'gwviz-gwnet-v1')).",
    }
    for name, start in cases.items():
        clf, err = session.app_classifier(str(tmp_path / name))
        assert err is not None and err.startswith(start), (name, err)
        assert err.endswith(f"{fallback}; fix or unset $GWVIZ_WEIGHTS and restart the app.")
        assert str(tmp_path) not in err  # the server path of the file is not shown
        assert clf.trained == session.default_classifier().trained
    assert not marker.exists()  # the pickle in evil.pt never ran
    clf, err = session.app_classifier(weights)
    assert err is None and clf.trained and clf.config["width"] == 2
    assert session.app_classifier("")[1] is None


def test_strain_files_that_gwpy_would_unpickle_are_refused(tmp_path, monkeypatch) -> None:
    """gwpy's HDF5 reader unpickles a non-text 'channel' attribute: such files never reach it."""
    marker = tmp_path / "marker"
    folder = tmp_path / "data" / "gwpy_format" / "GW190521_data"
    folder.mkdir(parents=True)
    for det in DETECTORS:
        with h5py.File(folder / f"{det}_data_32s.hdf5", "w") as f:
            d = f.create_dataset(det, data=np.zeros(32 * 4096))
            d.attrs["channel"] = np.void(pickle.dumps(_Boom(str(marker))))
    want = "$GWVIZ_DATA_DIR/gwpy_format/GW190521_data/H1_data_32s.hdf5: attribute 'channel' of 'H1' is not text " \
           "(gwpy would unpickle it); refused"
    from gwviz.data.noise import noise_source
    for call in (lambda: noise_source("files", data_dir=tmp_path / "data"),
                 lambda: session.load_gw190521(tmp_path / "data")):
        with pytest.raises(ValueError) as err:
            call()
        monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "data"))  # what the page shows: redacted
        assert paths.redact(str(err.value)) == want
    assert not marker.exists()


# --- files from the page: gallery.h5 ------------------------------------------------------------

def _sample(kind: str) -> GallerySample:
    meta = {"simulated_noise": True}
    if kind != "noise":
        meta.update(mass1=30.0, mass2=20.0, chirp_mass=21.2, snr_network=15.0, merger_index=16000,
                    **{f"merger_index_{d}": 16000 for d in DETECTORS})
        meta["merger_index_V1"] = 16400  # a detector's merger can arrive after the window's end
    rng = np.random.default_rng(len(kind))
    return GallerySample(kind, rng.normal(size=(3, WINDOW_SAMPLES)), np.zeros((3, WINDOW_SAMPLES)),
                         rng.uniform(size=WINDOW_SAMPLES), rng.uniform(size=WINDOW_SAMPLES),
                         {c: 0.25 for c in CLASSES}, kind, meta)


def hand_made(path: Path, edit=None) -> Path:
    """A valid gallery.h5 of one sample per class, then ``edit(h5py.File)`` applied to it."""
    save_gallery(path, [_sample(k) for k in CLASSES], {"snr": 15.0, "weights": "test"})
    if edit is not None:
        with h5py.File(path, "a") as f:
            edit(f)
    return path


def _replace(name: str, data):
    def edit(f):
        del f["samples/0001"][name]
        f["samples/0001"].create_dataset(name, data=data)
    return edit


def _attr(key: str, value, where: str = "samples/0001"):
    def edit(f):
        f[where].attrs[key] = value
    return edit


def _meta(**changes):
    def edit(f):
        meta = json.loads(f["samples/0001"].attrs["meta"])
        meta.update(changes)
        f["samples/0001"].attrs["meta"] = json.dumps({k: v for k, v in meta.items() if v is not None})
    return edit


def test_hand_made_gallery_is_read(tmp_path, monkeypatch) -> None:
    def no_pickle(*a, **k):
        raise AssertionError("pickle used")
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    g = load_gallery(hand_made(tmp_path / "g.h5"))
    assert [s.kind for s in g.samples] == list(CLASSES) and g.attrs == {"snr": 15.0, "weights": "test"}
    assert g.samples[1].merger_index == {"H1": 16000, "L1": 16000, "V1": 16400} and g.samples[0].merger_index is None
    assert g.samples[1].data.dtype == np.float32 and g.samples[1].data.shape == (3, WINDOW_SAMPLES)
    with open(tmp_path / "g.h5", "rb") as fh:  # a file object (an upload) reads the same
        assert len(load_gallery(fh, name="uploaded file 'g.h5'").samples) == 4


S1 = "g.h5: sample '0001': "


@pytest.mark.parametrize("edit, message", [
    (_replace("cam", np.zeros(100)), S1 + "dataset 'cam' has shape (100,), expected (16384,)"),
    (_replace("data", np.zeros((2, WINDOW_SAMPLES))), S1 + "dataset 'data' has shape (2, 16384), expected (3, 16384)"),
    (_replace("data", np.zeros((3, WINDOW_SAMPLES), dtype=np.int64)),
     S1 + "dataset 'data' has dtype int64, expected floating point"),
    (_replace("probabilities", np.array([b"a", b"b", b"c", b"d"])),
     S1 + "dataset 'probabilities' has dtype |S1, expected floating point"),
    (_replace("probabilities", np.array([0.5, np.nan, 0.2, 0.3])),
     S1 + "dataset 'probabilities' has non-finite values"),
    (_replace("probabilities", np.array([2.0, 0.0, 0.0, 0.0])), S1 + "probabilities must lie in [0, 1]"),
    (lambda f: f["samples/0001"].pop("cam_true"), S1 + "missing dataset 'cam_true'"),
    (_attr("kind", "XRB"), S1 + "kind 'XRB' is not one of ['noise', 'BBH', 'NSBH', 'BNS']"),
    (_attr("predicted", 3), S1 + "attribute 'predicted' is missing or not text"),
    (_attr("meta", "{not json"), S1 + "attribute 'meta' is not valid JSON (Expecting property name enclosed in "
                                      "double quotes: line 1 column 2 (char 1))"),
    (_attr("meta", "[1, 2]"), S1 + "attribute 'meta' must be a JSON dict"),
    (_meta(mass1=None), S1 + "meta['mass1'] must be a number for a BBH sample"),
    (_meta(snr_network="high"), S1 + "meta['snr_network'] must be a number for a BBH sample"),
    (_meta(merger_index=10**9), S1 + "meta['merger_index'] must be a sample index in [-32768, 32768]"),
    (_meta(merger_index_L1=-40000), S1 + "meta['merger_index_L1'] must be a sample index in [-32768, 32768]"),
    (_meta(merger_index_H1=16000.5), S1 + "meta['merger_index_H1'] must be a sample index in [-32768, 32768]"),
    (_meta(merger_index=None), S1 + "meta has per-detector merger indices but no 'merger_index'"),
    (lambda f: f["samples"].create_dataset("0009", data=[1.0]), "g.h5: sample '0009': not a group"),
    (lambda f: f["samples/0001"].attrs.__delitem__("meta"), S1 + "attribute 'meta' is missing or not text"),
    (_attr("classes", json.dumps(["a", "b"]), "/"), "g.h5: classes ['a', 'b'] are not gwviz's ['noise', 'BBH', "
                                                    "'NSBH', 'BNS']"),
    (_attr("info", "3", "/"), "g.h5: file: attribute 'info' must be a JSON dict"),
    (_attr("format", np.array([1, 2]), "/"), "g.h5: not a gwviz gallery (format '[1 2]', expected "
                                             f"'{FORMAT}')"),
    (lambda f: f.__delitem__("samples"), "g.h5: no samples (expected a group 'samples' with one group per sample)"),
])
def test_hand_made_gallery_problems(tmp_path, edit, message) -> None:
    path = hand_made(tmp_path / "g.h5", edit)
    with pytest.raises(ValueError) as err:
        load_gallery(path, name="g.h5")
    assert str(err.value) == message


def test_gallery_never_reads_other_files(tmp_path, monkeypatch) -> None:
    """External links, external raw storage and virtual datasets would read any server file."""
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["data"] = np.ones((3, WINDOW_SAMPLES), dtype=np.float32)
    raw = tmp_path / "raw.bin"
    np.ones(WINDOW_SAMPLES, dtype=np.float32).tofile(raw)

    def ext_link(f):
        del f["samples/0001/data"]
        f["samples/0001/data"] = h5py.ExternalLink(str(secret), "/data")

    def soft_link(f):
        del f["samples/0001/cam"]
        f["samples/0001/cam"] = h5py.SoftLink("/samples/0000/cam")

    def external(f):
        del f["samples/0001/cam"]
        f["samples/0001"].create_dataset("cam", shape=(WINDOW_SAMPLES,), dtype=np.float32,
                                          external=[(str(raw), 0, h5py.h5f.UNLIMITED)])

    def virtual(f):
        layout = h5py.VirtualLayout(shape=(3, WINDOW_SAMPLES), dtype=np.float32)
        layout[:] = h5py.VirtualSource(str(secret), "data", shape=(3, WINDOW_SAMPLES))
        del f["samples/0001/data"]
        f["samples/0001"].create_virtual_dataset("data", layout)

    expected = {ext_link: "g.h5: 'samples/0001/data' is an external link; a gallery holds only its own datasets",
                soft_link: "g.h5: 'samples/0001/cam' is a soft link; a gallery holds only its own datasets",
                external: "g.h5: dataset 'samples/0001/cam' reads its data from other files; refused",
                virtual: "g.h5: dataset 'samples/0001/data' reads its data from other files; refused"}
    for edit, message in expected.items():
        path = hand_made(tmp_path / f"{edit.__name__}.h5", edit)
        with pytest.raises(ValueError) as err:
            load_gallery(path, name="g.h5")
        assert str(err.value) == message
    monkeypatch.setattr("gwviz.explain.gallery.MAX_SAMPLES", 3)
    with pytest.raises(ValueError, match=re.escape("g.h5: 4 samples; at most 3 are read")):
        load_gallery(hand_made(tmp_path / "many.h5"), name="g.h5")


# --- .streamlit/config.toml ---------------------------------------------------------------------

def test_streamlit_config_is_local_and_quiet(monkeypatch) -> None:
    from streamlit import config, net_util
    from streamlit.web import bootstrap
    cfg = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "localhost" and cfg["server"]["headless"] is True
    assert cfg["browser"] == {"serverAddress": "localhost", "gatherUsageStats": False}
    assert cfg["server"]["enableCORS"] is True and cfg["server"]["enableXsrfProtection"] is True
    assert cfg["server"]["allowedHosts"] == ["localhost", "127.0.0.1", "::1"]
    assert cfg["client"] == {"showErrorDetails": "type", "showErrorLinks": False, "toolbarMode": "viewer"}
    # every key is an option streamlit knows (a typo would be ignored silently)
    assert all(f"{s}.{k}" in config._config_options_template for s, opts in cfg.items() for k in opts)

    def lookup():
        raise AssertionError("looked up the machine's address")
    monkeypatch.chdir(REPO)  # streamlit reads .streamlit/config.toml from the working directory
    monkeypatch.setattr(net_util, "get_external_ip", lookup)
    monkeypatch.setattr(net_util, "get_internal_ip", lookup)
    printed = []
    monkeypatch.setattr("streamlit.cli_util.print_to_cli", lambda msg, **kw: printed.append(msg))
    try:
        config.get_config_options(force_reparse=True)
        assert config.get_where_defined("server.address").endswith(".streamlit/config.toml")
        bootstrap._print_url(False)  # what `streamlit run` prints at start: one local URL, no lookups
    finally:
        monkeypatch.undo()
        config.get_config_options(force_reparse=True)
    assert "  URL: " in printed and not any("External" in p or "Network" in p for p in printed)
