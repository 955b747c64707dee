"""Grad-CAM gallery: N samples per class at fixed SNR, with the CAM of the predicted and the true class.

    python -m gwviz.explain.gallery --weights models/gwviz-resnet54.safetensors --n 4 --snr 15 --seed 0 \\
        --out results/gallery [--noise simulated|files]

Samples come from :func:`gwviz.data.synth.make_sample` (the CPU path, full metadata). Writes

- ``gallery.h5``: per sample data (3, 16384), white_signal (3, 16384), cam (16384,) for the
  predicted class, cam_true (16384,) for the true class, probabilities (4,), metadata as JSON;
  read it back with :func:`load_gallery` (the app browses the same files);
- ``index.html``: whitened H1/L1/V1 strain with the CAMs overlaid and the merger dashed;
- ``fig2.html``: Sasaoka et al. (2023) Fig. 2, the first sample of each class, strain on top and
  CAM below. Both pages load ``plotly.min.js`` from their folder (offline).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import h5py
import numpy as np

from ..constants import CLASSES, DETECTORS, SAMPLE_RATE, WINDOW_SAMPLES
from ..paths import run_cli, snr_arg, writable_dir

FORMAT = "gwviz-gallery-v1"


@dataclass
class GallerySample:
    """One gallery entry.

    Attributes
    ----------
    kind : str
        True class.
    data, white_signal : (3, 16384) float32 ndarray
        Whitened window and the clean signal whitened with its filter.
    cam, cam_true : (16384,) float32 ndarray
        Raw Grad-CAM (or HiResCAM) for the predicted and the true class.
    probabilities : dict of str to float
        {class: p}.
    predicted : str
        The classifier's decision.
    meta : dict
        As :attr:`gwviz.data.synth.Sample.meta`.
    """

    kind: str
    data: np.ndarray
    white_signal: np.ndarray
    cam: np.ndarray
    cam_true: np.ndarray
    probabilities: dict[str, float]
    predicted: str
    meta: dict = field(default_factory=dict)

    @property
    def merger_index(self) -> dict[str, int] | None:
        """{detector: merger sample in the window}, None for noise."""
        if "merger_index" not in self.meta:
            return None
        return {d: int(self.meta.get(f"merger_index_{d}", self.meta["merger_index"])) for d in DETECTORS}

    def title(self, trained: bool = True) -> str:
        """Page title, e.g. 'BBH: m1 35.1 M☉, m2 20.3 M☉ (Mc 23.1 M☉), SNR 15.0 · predicted BBH (p=0.97)'.

        ``trained=False`` appends ' · UNTRAINED MODEL'.
        """
        m = self.meta
        head = self.kind if self.kind == "noise" else (
            f"{self.kind}: m1 {m['mass1']:.1f} M☉, m2 {m['mass2']:.1f} M☉ (Mc {m['chirp_mass']:.2f} M☉), "
            f"SNR {m['snr_network']:.1f}")
        tail = f" · predicted {self.predicted} (p={self.probabilities[self.predicted]:.2f})"
        return head + tail + ("" if trained else " · UNTRAINED MODEL")


@dataclass
class Gallery:
    """A gallery read back from ``gallery.h5``.

    Attributes
    ----------
    attrs : dict
        How it was made (weights, trained, snr, seed, noise, method, ...).
    samples : list of GallerySample
        In order.
    """

    attrs: dict
    samples: list[GallerySample]


METHOD_LABELS = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}


def make_entries(classifier, noise_source, n: int, snr: float, seed: int, classes=CLASSES,
                 progress: bool = True, method: str = "gradcam") -> list[GallerySample]:
    """``n`` samples of each class at network SNR ``snr``, seeds from (seed, class index).

    Parameters
    ----------
    classifier : Classifier
        Decides and explains.
    noise_source : object
        Noise source of :func:`gwviz.data.synth.make_sample`.
    n : int
        Samples per class (≥ 1).
    snr : float
        Network optimal SNR of the signals.
    seed : int
        Seed of all draws.
    classes : sequence of str, optional
        Default ``CLASSES``.
    progress : bool, optional
        Default True.
    method : {'gradcam', 'hirescam'}, optional
        Default 'gradcam'.

    Returns
    -------
    list of GallerySample

    Raises
    ------
    ValueError
        ``n`` < 1, or from sample synthesis or the classifier.
    """
    from tqdm.auto import tqdm

    from ..data.synth import make_sample
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = []
    with tqdm(total=n * len(classes), desc="gallery", unit="sample", disable=not progress) as bar:
        for kind in classes:
            seeds = np.random.SeedSequence([seed, CLASSES.index(kind)]).generate_state(n)
            for s in seeds:
                smp = make_sample(kind, noise_source, seed=int(s), snr_range=(snr, snr))
                pred, cam = classifier.classify_and_explain_window(smp.data, method)
                cam_true = cam if pred.label == kind else classifier.explain_window(smp.data, target=kind, method=method)
                out.append(GallerySample(kind, smp.data, smp.white_signal, cam, cam_true, pred.probabilities,
                                         pred.label, smp.meta))
                bar.update()
    return out


def _plain(v):
    """numpy scalars in metadata -> Python scalars for JSON."""
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"cannot store {type(v).__name__} in gallery metadata")


def save_gallery(path: str | os.PathLike, samples: list[GallerySample], attrs: dict) -> Path:
    """Write ``gallery.h5`` at ``path`` atomically (layout in the module docstring); returns ``path``.

    ``attrs`` are stored as JSON; TypeError for metadata that JSON cannot hold.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["classes"] = json.dumps(list(CLASSES))
        f.attrs["info"] = json.dumps(attrs)
        g = f.create_group("samples")
        for i, s in enumerate(samples):
            h = g.create_group(f"{i:04d}")
            for name in ("data", "white_signal"):
                h.create_dataset(name, data=np.asarray(getattr(s, name), dtype=np.float32), compression="gzip")
            h.create_dataset("cam", data=np.asarray(s.cam, dtype=np.float32))
            h.create_dataset("cam_true", data=np.asarray(s.cam_true, dtype=np.float32))
            h.create_dataset("probabilities", data=np.array([s.probabilities[c] for c in CLASSES]))
            h.attrs["kind"], h.attrs["predicted"] = s.kind, s.predicted
            h.attrs["meta"] = json.dumps(s.meta, default=_plain)
            # a few plain attributes too, so h5ls/HDFView show them without JSON
            for k in ("mass1", "mass2", "chirp_mass", "snr_network", "merger_index"):
                if k in s.meta:
                    h.attrs[k] = s.meta[k]
    os.replace(tmp, path)
    return path


#: Datasets of one sample and their shapes; anything else in a hand-made file is refused.
SHAPES = {"data": (len(DETECTORS), WINDOW_SAMPLES), "white_signal": (len(DETECTORS), WINDOW_SAMPLES),
          "cam": (WINDOW_SAMPLES,), "cam_true": (WINDOW_SAMPLES,), "probabilities": (len(CLASSES),)}
#: Metadata the pages format for a signal sample (GallerySample.title).
SIGNAL_META = ("mass1", "mass2", "chirp_mass", "snr_network")
#: Merger sample indices the reader accepts: within one window's length of the window.
MERGER_SLACK = 2 * WINDOW_SAMPLES
#: More samples than this is not a gallery the app should read (the page keeps them all in memory).
MAX_SAMPLES = 1000


def _text_attr(obj, key: str, where: str) -> str:
    v = obj.attrs.get(key)
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if not isinstance(v, str):
        raise ValueError(f"{where}: attribute {key!r} is missing or not text")
    return v


def _json_attr(obj, key: str, where: str, kind: type):
    try:
        v = json.loads(_text_attr(obj, key, where))
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: attribute {key!r} is not valid JSON ({err})") from None
    if not isinstance(v, kind):
        raise ValueError(f"{where}: attribute {key!r} must be a JSON {kind.__name__}")
    return v


def _refuse_foreign_storage(f: h5py.File) -> None:
    """Links to other files, external raw storage and virtual datasets would make h5py read files
    other than this one (anything on the server): refused before any data is read."""
    def check(name: str, link) -> str | None:  # a returned message stops the visit (raising inside it
        if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)):  # breaks h5py's lock: SystemError)
            what = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
            return f"{name!r} is {what}; a gallery holds only its own datasets"  # no '/': not a server path
        obj = f.get(name)
        if isinstance(obj, h5py.Dataset) and (obj.external or obj.is_virtual):
            return f"dataset {name!r} reads its data from other files; refused"
        return None
    problem = f.visititems_links(check)
    if problem:
        raise ValueError(problem)


def _dataset(h: h5py.Group, name: str, where: str) -> np.ndarray:
    ds = h.get(name)
    if not isinstance(ds, h5py.Dataset):
        raise ValueError(f"{where}: missing dataset {name!r}")
    if ds.shape != SHAPES[name]:  # checked before reading: a huge dataset is never loaded
        raise ValueError(f"{where}: dataset {name!r} has shape {ds.shape}, expected {SHAPES[name]}")
    if ds.dtype.kind != "f":
        raise ValueError(f"{where}: dataset {name!r} has dtype {ds.dtype}, expected floating point")
    a = np.asarray(ds[()], dtype=np.float64 if name == "probabilities" else np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: dataset {name!r} has non-finite values")
    return a


def _sample(h, where: str) -> GallerySample:
    if not isinstance(h, h5py.Group):
        raise ValueError(f"{where}: not a group")
    kind, predicted = _text_attr(h, "kind", where), _text_attr(h, "predicted", where)
    for key, v in (("kind", kind), ("predicted", predicted)):
        if v not in CLASSES:
            raise ValueError(f"{where}: {key} {v[:20]!r} is not one of {list(CLASSES)}")
    arrays = {name: _dataset(h, name, where) for name in SHAPES}
    p = arrays.pop("probabilities")
    if (p < 0).any() or (p > 1).any():
        raise ValueError(f"{where}: probabilities must lie in [0, 1]")
    meta = _json_attr(h, "meta", where, dict)
    need = SIGNAL_META if kind != "noise" else ()
    for key in need:
        if not isinstance(meta.get(key), (int, float)) or isinstance(meta.get(key), bool):
            raise ValueError(f"{where}: meta[{key!r}] must be a number for a {kind} sample")
    for key in ("merger_index", *(f"merger_index_{d}" for d in DETECTORS)):
        # a detector's merger can arrive just after the window's end (arrival delay): allow a window either side
        v = meta.get(key)
        ok = isinstance(v, int) and not isinstance(v, bool) and -MERGER_SLACK <= v <= MERGER_SLACK
        if v is not None and not ok:
            raise ValueError(f"{where}: meta[{key!r}] must be a sample index in [{-MERGER_SLACK}, {MERGER_SLACK}]")
    if any(f"merger_index_{d}" in meta for d in DETECTORS) and "merger_index" not in meta:
        raise ValueError(f"{where}: meta has per-detector merger indices but no 'merger_index'")
    return GallerySample(kind, arrays["data"], arrays["white_signal"], arrays["cam"], arrays["cam_true"],
                         dict(zip(CLASSES, map(float, p))), predicted, meta)


def load_gallery(source: str | os.PathLike | BinaryIO, name: str | None = None) -> Gallery:
    """Read a ``gallery.h5`` from a path or a binary file object (an upload).

    Every dataset, shape, dtype and attribute the pages use is checked, so a hand-made file gives
    a ValueError that says what is wrong, never a traceback later on the page; nothing is
    unpickled (h5py and JSON only) and no other file is read (external links, external storage and
    virtual datasets are refused).

    Parameters
    ----------
    source : str, path-like or binary file object
        The file, or an upload.
    name : str or None, optional
        How messages call the file. Default None: the path (or 'uploaded file').

    Returns
    -------
    Gallery

    Raises
    ------
    ValueError
        Missing, not HDF5, not a gwviz gallery, more than ``MAX_SAMPLES`` samples, or malformed.
    """
    if isinstance(source, (str, os.PathLike)):
        source = Path(source)
        name = name or str(source)
        if not source.is_file():
            raise ValueError(f"{name}: no such gallery file")
    name = name or "uploaded file"
    try:
        f = h5py.File(source, "r")
    except (OSError, ValueError) as err:
        raise ValueError(f"{name}: not an HDF5 file ({err})") from err
    try:
        with f:
            fmt = f.attrs.get("format")
            fmt = fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else fmt
            if not isinstance(fmt, str) or fmt != FORMAT:  # an array attribute must not reach `!=`
                raise ValueError(f"not a gwviz gallery (format {str(fmt)[:40]!r}, expected {FORMAT!r})")
            _refuse_foreign_storage(f)
            classes = _json_attr(f, "classes", "file", list)
            if classes != list(CLASSES):
                raise ValueError(f"classes {classes!r} are not gwviz's {list(CLASSES)}")
            info = _json_attr(f, "info", "file", dict)
            group = f.get("samples")
            if not isinstance(group, h5py.Group) or not len(group):
                raise ValueError("no samples (expected a group 'samples' with one group per sample)")
            if len(group) > MAX_SAMPLES:
                raise ValueError(f"{len(group)} samples; at most {MAX_SAMPLES} are read")
            samples = [_sample(group[key], f"sample {key[:20]!r}") for key in sorted(group)]
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    # h5py raises these for unreadable attributes/datasets (unsupported types, broken filters)
    except (OSError, KeyError, TypeError, RuntimeError, RecursionError) as err:
        raise ValueError(f"{name}: malformed gallery ({type(err).__name__}: {err})") from err
    return Gallery(info, samples)


def sample_figure(s: GallerySample, trained: bool = True, display_step: int = 2, sample_rate: float = SAMPLE_RATE,
                  label: str = "Grad-CAM"):
    """Strain + CAM figure of one gallery sample (:func:`gwviz.plots.strain_cam_figure`).

    The CAM of the true class is added when it differs from the predicted one; ``display_step``: draw every
    n-th sample (default 2); ``label``: name of the map (default 'Grad-CAM').
    """
    from ..plots import strain_cam_figure
    cams = {f"{label} ({s.predicted}, predicted)": s.cam}
    if s.predicted != s.kind:
        cams[f"{label} ({s.kind}, true)"] = s.cam_true
    return strain_cam_figure(s.data, cams, s.merger_index, s.title(trained), s.white_signal, sample_rate,
                             display_step)


def fig2(samples: list[GallerySample], trained: bool = True, display_step: int = 2, label: str = "Grad-CAM"):
    """Sasaoka et al. (2023) Fig. 2 from the first sample of each class present (plotly figure)."""
    from ..plots import fig2_figure
    first = {}
    for s in samples:
        first.setdefault(s.kind, s)
    panels = [{"title": f"{k} (predicted {s.predicted}, p={s.probabilities[s.predicted]:.2f})",
               "data": s.data, "cam": s.cam, "merger_index": s.meta.get("merger_index")}
              for k in CLASSES if (s := first.get(k)) is not None]
    fig = fig2_figure(panels, display_step=display_step, cam_label=label)
    fig.update_layout(title=f"Input strain (top) and {label} of the predicted class (bottom)"
                      + ("" if trained else " · UNTRAINED MODEL"))
    return fig


def write_pages(gallery: Gallery, out: str | os.PathLike, display_step: int = 2) -> list[Path]:
    """index.html and fig2.html for a gallery, in ``out``; returns their paths."""
    from ..plots import write_page
    out = Path(out)
    a = gallery.attrs
    trained = bool(a.get("trained", True))
    label = METHOD_LABELS.get(str(a.get("method", "gradcam")), "Grad-CAM")
    notes = [f"weights: {a.get('weights')} · noise: {a.get('noise_source', a.get('noise'))} · network SNR {a.get('snr')} · "
             f"seed {a.get('seed')} · dashed line: merger (arrival at each detector) · orange: {label} of the "
             f"predicted class (normalised), purple dotted: {label} of the true class when it differs"]
    if not trained:
        notes.append("UNTRAINED MODEL (random weights): the maps show the architecture, not learned evidence.")
    figs = [sample_figure(s, trained, display_step, label=label) for s in gallery.samples]
    return [write_page(out / "index.html", figs, f"gwviz {label} gallery", "directory", notes),
            write_page(out / "fig2.html", [fig2(gallery.samples, trained, display_step, label)],
                       "Sasaoka et al. (2023) Fig. 2 reproduction", "directory", notes[:1])]


def make_gallery(classifier, out: str | os.PathLike, n: int, snr: float, seed: int, noise_source=None,
                 info: dict | None = None, method: str = "gradcam", display_step: int = 2,
                 progress: bool = False, weights: str = "shipped") -> Gallery:
    """Make, write (``out``/gallery.h5, index.html, fig2.html) and read back a gallery.

    ``noise_source`` defaults to simulated O3 noise; ``info`` is merged into the file's attributes
    (how the noise was made); ``weights`` is how the attributes name the weights. The app calls
    this with its already loaded classifier and an ``out`` inside its gallery root. Other arguments as in
    :func:`make_entries` and :func:`write_pages`.
    """
    from ..data.noise import SimulatedNoise
    source = noise_source if noise_source is not None else SimulatedNoise()
    samples = make_entries(classifier, source, n, snr, seed, progress=progress, method=method)
    attrs = {"noise": "simulated", **(info or {}), "weights": weights, "trained": bool(classifier.trained),
             "snr": snr, "seed": seed, "n_per_class": n, "noise_source": getattr(source, "name", "simulated"),
             "method": method, "cam": f"{method} (gwviz.explain.attribution), raw; cam: predicted class, cam_true: true class"}
    out = Path(out)
    save_gallery(out / "gallery.h5", samples, attrs)
    gallery = load_gallery(out / "gallery.h5")
    write_pages(gallery, out, display_step)
    return gallery


def main(argv: list[str] | None = None) -> Gallery:
    """Command line (see the module docstring); returns the gallery written to ``--out``."""
    from ..evaluation.evaluate import add_common_args, load, make_noise_source
    ap = argparse.ArgumentParser(prog="python -m gwviz.explain.gallery", description=__doc__.split("\n")[0])
    add_common_args(ap)
    ap.add_argument("--n", type=int, default=4, help="samples per class")
    ap.add_argument("--snr", type=snr_arg, default=15.0, help="network optimal SNR of the signals (paper: 15)")
    ap.add_argument("--display-step", type=int, default=2, help="draw every n-th sample in the HTML (size)")
    ap.add_argument("--method", default="gradcam", choices=sorted(METHOD_LABELS),
                    help="map: Grad-CAM (the paper's) or HiResCAM (gradient x activation, bin by bin)")
    args = ap.parse_args(argv)
    # before the folder, the model or any sample
    if args.n < 1 or args.display_step < 1:
        ap.error(f"--n and --display-step must be >= 1, got {args.n} and {args.display_step}")
    writable_dir(args.out, results=("gallery.h5",), overwrite=args.overwrite)  # before the samples, not after
    clf = load(args)
    source, info = make_noise_source(args.noise, args.data_dir, args.gps_range)
    gallery = make_gallery(clf, args.out, args.n, args.snr, args.seed, source, info, args.method, args.display_step,
                           progress=not args.no_progress, weights=str(args.weights or "shipped"))
    print(f"{len(gallery.samples)} samples -> {args.out}", file=sys.stderr)
    return gallery


if __name__ == "__main__":
    run_cli(main, "python -m gwviz.explain.gallery")
