"""Grad-CAM gallery: N samples per class at fixed SNR, with the CAM of the predicted and the true class.

    python -m gwviz.gallery --weights models/gwviz-resnet54.safetensors --n 4 --snr 15 --seed 0 \\
        --out results/gallery [--noise simulated|files]

Samples come from :func:`gwviz.synth.make_sample` (the CPU path, full metadata). Writes

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

import h5py
import numpy as np

from .constants import CLASSES, DETECTORS, SAMPLE_RATE

FORMAT = "gwviz-gallery-v1"


@dataclass
class GallerySample:
    """One gallery entry: data, white_signal (3, 16384) whitened; cam, cam_true (16384,) raw
    Grad-CAM for the predicted and the true class; probabilities {class: p}; meta as make_sample."""

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
        """'BBH: m1 35.1 M☉, m2 20.3 M☉ (Mc 23.1 M☉), SNR 15.0 · predicted BBH (p=0.97)'."""
        m = self.meta
        head = self.kind if self.kind == "noise" else (
            f"{self.kind}: m1 {m['mass1']:.1f} M☉, m2 {m['mass2']:.1f} M☉ (Mc {m['chirp_mass']:.2f} M☉), "
            f"SNR {m['snr_network']:.1f}")
        tail = f" · predicted {self.predicted} (p={self.probabilities[self.predicted]:.2f})"
        return head + tail + ("" if trained else " · UNTRAINED MODEL")


@dataclass
class Gallery:
    """attrs: how the gallery was made (weights, trained, snr, seed, noise...); samples in order."""

    attrs: dict
    samples: list[GallerySample]


METHOD_LABELS = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}


def make_entries(classifier, noise_source, n: int, snr: float, seed: int, classes=CLASSES,
                 progress: bool = True, method: str = "gradcam") -> list[GallerySample]:
    """``n`` samples of each class at network SNR ``snr``, seeds from (seed, class index)."""
    from tqdm.auto import tqdm

    from .synth import make_sample
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = []
    with tqdm(total=n * len(classes), desc="gallery", unit="sample", disable=not progress) as bar:
        for kind in classes:
            seeds = np.random.SeedSequence([seed, CLASSES.index(kind)]).generate_state(n)
            for s in seeds:
                smp = make_sample(kind, noise_source, seed=int(s), snr_range=(snr, snr))
                pred = classifier.classify_window(smp.data)
                cam = classifier.explain_window(smp.data, target=pred.label, method=method)
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
    """Write ``gallery.h5`` atomically (layout in the module docstring)."""
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


def load_gallery(path: str | os.PathLike) -> Gallery:
    """Read a ``gallery.h5``. Raises ValueError for missing or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such gallery file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not an HDF5 file ({err})") from err
    with f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path}: not a gwviz gallery (format {f.attrs.get('format')!r}, expected {FORMAT!r})")
        classes = json.loads(f.attrs["classes"])
        samples = []
        for key in sorted(f["samples"]):
            h = f["samples"][key]
            samples.append(GallerySample(
                str(h.attrs["kind"]), h["data"][()], h["white_signal"][()], h["cam"][()], h["cam_true"][()],
                {c: float(p) for c, p in zip(classes, h["probabilities"][()])}, str(h.attrs["predicted"]),
                json.loads(h.attrs["meta"])))
        return Gallery(json.loads(f.attrs["info"]), samples)


def sample_figure(s: GallerySample, trained: bool = True, display_step: int = 2, sample_rate: float = SAMPLE_RATE,
                  label: str = "Grad-CAM"):
    """Strain + CAM figure of one gallery sample (:func:`gwviz.plots.strain_cam_figure`)."""
    from .plots import strain_cam_figure
    cams = {f"{label} ({s.predicted}, predicted)": s.cam}
    if s.predicted != s.kind:
        cams[f"{label} ({s.kind}, true)"] = s.cam_true
    return strain_cam_figure(s.data, cams, s.merger_index, s.title(trained), s.white_signal, sample_rate,
                             display_step)


def fig2(samples: list[GallerySample], trained: bool = True, display_step: int = 2, label: str = "Grad-CAM"):
    """Sasaoka et al. (2023) Fig. 2 from the first sample of each class present."""
    from .plots import fig2_figure
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
    """index.html and fig2.html for a gallery."""
    from .plots import write_page
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


def main(argv: list[str] | None = None) -> Gallery:
    from .evaluate import add_common_args, load, make_noise_source
    ap = argparse.ArgumentParser(prog="python -m gwviz.gallery", description=__doc__.split("\n")[0])
    add_common_args(ap)
    ap.add_argument("--n", type=int, default=4, help="samples per class")
    ap.add_argument("--snr", type=float, default=15.0, help="network optimal SNR of the signals (paper: 15)")
    ap.add_argument("--display-step", type=int, default=2, help="draw every n-th sample in the HTML (size)")
    ap.add_argument("--method", default="gradcam", choices=sorted(METHOD_LABELS),
                    help="map: Grad-CAM (captum LayerGradCam) or HiResCAM (gradient x activation)")
    args = ap.parse_args(argv)
    clf = load(args)
    source, info = make_noise_source(args.noise, args.data_dir, args.gps_range)
    samples = make_entries(clf, source, args.n, args.snr, args.seed, progress=not args.no_progress, method=args.method)
    attrs = {**info, "weights": str(args.weights or "shipped"), "trained": bool(clf.trained), "snr": args.snr,
             "seed": args.seed, "n_per_class": args.n, "noise_source": getattr(source, "name", args.noise),
             "method": args.method,
             "cam": f"{args.method} (gwviz.explain), raw; cam: predicted class, cam_true: true class"}
    out = Path(args.out)
    save_gallery(out / "gallery.h5", samples, attrs)
    gallery = load_gallery(out / "gallery.h5")
    write_pages(gallery, out, args.display_step)
    print(f"{len(samples)} samples -> {out}", file=sys.stderr)
    return gallery


if __name__ == "__main__":
    main()
