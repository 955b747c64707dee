"""Dataset builder: HDF5 splits of (3, 16384) whitened windows with their metadata.

    python -m gwviz.dataset --out data/ --train 96000 --val 96000 --test 544000 --seed 0 \
        [--noise simulated|files|gwosc] [--data-dir DIR] [--workers N]

Sample i of a split is a pure function of (seed, split, i): the class cycles noise, BBH, NSBH,
BNS and every random draw comes from ``SeedSequence([seed, split, i])``. Work is cut into chunks
written atomically to ``<out>/<split>.parts/``; an interrupted run resumes by skipping finished
chunks, and the final ``<out>/<split>.h5`` is assembled when all chunks exist.

Each split file holds ``strain`` (N, 3, 16384) float32, ``label`` (N,) int8 and one dataset per
metadata column (``meta/<name>``); attributes say the noise source and the seed.
"""
from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import h5py
import numpy as np

from .constants import CLASSES, WINDOW_SAMPLES

SPLITS = {"train": 0, "val": 1, "test": 2}
#: Numeric metadata columns stored per sample (NaN where a column does not apply, e.g. noise).
META_COLUMNS = ("mass1", "mass2", "chirp_mass", "snr", "snr_network", "snr_H1", "snr_L1", "snr_V1", "ra", "dec",
                "polarization", "inclination", "coa_phase", "gps", "gps_window_start", "merger_offset", "merger_index",
                "merger_index_H1", "merger_index_L1", "merger_index_V1")


def make_noise_source(kind: str, data_dir: str | None = None, seed: int = 0):
    """Noise source by name: 'simulated' (offline default), 'files' (data_dir or $GWVIZ_DATA_DIR), 'gwosc'."""
    from .noise import GwoscNoise, SimulatedNoise, StrainFiles
    if kind == "simulated":
        return SimulatedNoise()
    if kind == "files":
        return StrainFiles(data_dir)
    if kind == "gwosc":
        return GwoscNoise(seed=seed)
    raise ValueError(f"unknown noise source {kind!r}; use simulated, files or gwosc")


_SOURCE = None


def _init_worker(kind: str, data_dir: str | None, seed: int) -> None:
    global _SOURCE
    import torch
    torch.set_num_threads(1)  # one process per core
    _SOURCE = make_noise_source(kind, data_dir, seed)


def sample_at(seed: int, split: str, i: int, source):
    """The i-th sample of a split (deterministic)."""
    from .synth import make_sample
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLITS[split], i]))
    return make_sample(CLASSES[i % len(CLASSES)], source, rng=rng)


def _chunk(args: tuple[int, str, int, int, str]) -> str:
    seed, split, start, stop, path = args
    n = stop - start
    strain = np.empty((n, 3, WINDOW_SAMPLES), np.float32)
    label = np.empty(n, np.int8)
    meta = {c: np.full(n, np.nan) for c in META_COLUMNS}
    source_names = set()
    for j, i in enumerate(range(start, stop)):
        s = sample_at(seed, split, i, _SOURCE)
        strain[j], label[j] = s.data, s.label
        for c in META_COLUMNS:
            if c in s.meta:
                meta[c][j] = s.meta[c]
        source_names.add(s.meta["noise_source"])
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f["strain"], f["label"] = strain, label
        for c, v in meta.items():
            f[f"meta/{c}"] = v
        f.attrs["noise_source"] = "; ".join(sorted(source_names))
    os.replace(tmp, path)
    return path


def build_split(out: Path, split: str, n: int, seed: int, noise: str = "simulated", data_dir: str | None = None,
                workers: int | None = None, chunk: int = 64, progress: bool = True) -> Path:
    """Write ``out/<split>.h5`` with n samples; resumable (finished chunks are kept)."""
    from tqdm.auto import tqdm
    if n <= 0:
        raise ValueError(f"number of {split} samples must be > 0, got {n}")
    parts = out / f"{split}.parts"
    parts.mkdir(parents=True, exist_ok=True)
    jobs = [(seed, split, a, min(a + chunk, n), str(parts / f"{a:09d}-{min(a + chunk, n):09d}.h5"))
            for a in range(0, n, chunk)]
    todo = [j for j in jobs if not Path(j[-1]).exists()]
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=n, initial=n - sum(j[3] - j[2] for j in todo), desc=f"{split}", unit="sample", disable=not progress)
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(noise, data_dir, seed)) as pool:
        futures = {pool.submit(_chunk, j): j for j in todo}
        for fut in as_completed(futures):
            fut.result()
            j = futures[fut]
            bar.update(j[3] - j[2])
    bar.close()
    final = out / f"{split}.h5"
    tmp = out / f"{split}.h5.tmp"
    with h5py.File(tmp, "w") as f:
        ds = f.create_dataset("strain", (n, 3, WINDOW_SAMPLES), np.float32, chunks=(1, 3, WINDOW_SAMPLES))
        lab = f.create_dataset("label", (n,), np.int8)
        metas = {c: f.create_dataset(f"meta/{c}", (n,), np.float64) for c in META_COLUMNS}
        sources = set()
        for _, _, a, b, path in jobs:
            with h5py.File(path, "r") as p:
                ds[a:b], lab[a:b] = p["strain"][...], p["label"][...]
                for c in META_COLUMNS:
                    metas[c][a:b] = p[f"meta/{c}"][...]
                sources.add(p.attrs["noise_source"])
        f.attrs.update({"noise_source": "; ".join(sorted(sources)), "seed": seed, "split": split,
                        "classes": json.dumps(CLASSES), "sample_rate": 4096})
    os.replace(tmp, final)
    return final


def read_split(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Load (strain (N, 3, 16384), label (N,), meta columns) from a split file; ValueError if corrupt."""
    try:
        with h5py.File(path, "r") as f:
            return f["strain"][...], f["label"][...], {c: f[f"meta/{c}"][...] for c in f["meta"]}
    except (OSError, KeyError) as err:
        raise ValueError(f"{path}: not a readable gwviz dataset ({err})") from err


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train", type=int, default=96000)
    ap.add_argument("--val", type=int, default=96000)
    ap.add_argument("--test", type=int, default=544000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", default="simulated", choices=["simulated", "files", "gwosc"])
    ap.add_argument("--data-dir", default=None, help="real strain files for --noise files (default $GWVIZ_DATA_DIR)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--chunk", type=int, default=64)
    a = ap.parse_args(argv)
    for split in SPLITS:
        n = getattr(a, split)
        if n:
            print(build_split(a.out, split, n, a.seed, a.noise, a.data_dir, a.workers, a.chunk))


if __name__ == "__main__":
    main()
