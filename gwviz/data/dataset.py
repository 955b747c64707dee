"""Dataset builder: HDF5 splits of (3, 16384) whitened windows with their metadata.

    python -m gwviz.data.dataset --out data/ --train 96000 --val 96000 --test 544000 --seed 0 \
        [--noise simulated|files|gwosc] [--data-dir DIR] [--workers N]

The class of sample i cycles noise, BBH, NSBH, BNS. In simulated noise the samples ride the batched
torch path of the trainer (:class:`gwviz.data.batch.BatchMaker`, through the one synthesis path): a
waveform bank per split (``min(n, 1024)`` intrinsic draws per class, seeded by (seed, split), cached
as ``<out>/<split>.bank.pt``) and batches of 16 whose sky positions, SNRs, merger times and noise
are drawn from a generator seeded by (seed, split, first sample of the chunk), so the split is a
pure function of (seed, split, n, chunk). In real noise ('files', 'gwosc') sample i is
:func:`gwviz.data.synth.make_sample` with every draw from ``SeedSequence([seed, split, i])``. Work is cut
into chunks written atomically to ``<out>/<split>.parts/``; an interrupted run resumes by skipping
finished chunks, and the final ``<out>/<split>.h5`` is assembled when all chunks exist.

Each split file holds ``strain`` (N, 3, 16384) float32, ``label`` (N,) int8 and one dataset per
metadata column (``meta/<name>``); attributes say the noise source and the seed.

Every part file records the run that wrote it (seed, split, size, chunk, noise source); a run with
other settings refuses to resume from it instead of mixing two datasets under one seed. Workers
die with the builder, even when it is killed with SIGKILL.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import h5py
import numpy as np

from ..constants import CLASSES, WINDOW_SAMPLES
from .bank import die_with_parent
from .noise import noise_source
from ..paths import DATA_ENV, int_at_least, run_cli, writable_dir

SPLITS = {"train": 0, "val": 1, "test": 2}
#: Numeric metadata columns stored per sample (NaN where a column does not apply, e.g. noise).
META_COLUMNS = ("mass1", "mass2", "chirp_mass", "snr", "snr_network", "snr_H1", "snr_L1", "snr_V1", "ra", "dec",
                "polarization", "inclination", "coa_phase", "gps", "gps_window_start", "merger_offset", "merger_index",
                "merger_index_H1", "merger_index_L1", "merger_index_V1", "gmst")
#: Intrinsic draws per class in a split's waveform bank (simulated noise), and rows per batch: 16 is the
#: fastest batch on a 2-core CPU (bench/bench_dataset.py).
BANK_PER_CLASS: int = 1024
BATCH: int = 16
#: Bytes of one sample in a split file: (3, 16384) float32 strain, an int8 label, the float64 metadata.
SAMPLE_BYTES: int = 3 * WINDOW_SAMPLES * 4 + 1 + 8 * len(META_COLUMNS)


_SOURCE = None
#: Layout version of part files; parts of another version are not resumed.
PART_FORMAT = "gwviz-dataset-part-v3"
#: What a part file must share with the run that resumes from it (attributes of the part).
RUN_KEYS = ("format", "seed", "split", "n", "chunk", "noise", "data_dir", "noise_source")


_MAKER = None


def _init_worker(kind: str, data_dir: str | None, seed: int, parent_pid: int, bank_path: str | None) -> None:
    global _SOURCE, _MAKER
    die_with_parent(parent_pid)
    import torch
    torch.set_num_threads(1)  # one process per core
    if bank_path:  # simulated noise: the batched path
        from .bank import WaveformBank
        from .batch import BatchMaker
        _MAKER = BatchMaker(WaveformBank.load(bank_path))
    else:
        _SOURCE = noise_source(kind, data_dir=data_dir, seed=seed)


def make_batch(seed: int, split: str, start: int, stop: int, maker):
    """Samples start..stop-1 of a simulated-noise split, deterministic in (seed, split, start).

    Made in batches of ``BATCH`` rows; the class of sample i is ``CLASSES[i % 4]``.

    Parameters
    ----------
    seed : int
        The dataset's seed.
    split : {'train', 'val', 'test'}
    start, stop : int
        First and one-past-last sample index.
    maker : BatchMaker
        A BatchMaker on the split's waveform bank.

    Returns
    -------
    strain : (n, 3, 16384) float32 ndarray
    label : (n,) ndarray
        Class indices.
    meta : dict of str to (n,) float64 ndarray
        The :data:`META_COLUMNS`.
    """
    import torch
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, SPLITS[split], start]).generate_state(1)[0]))
    out, labels, metas = [], [], []
    for a in range(start, stop, BATCH):
        b = min(a + BATCH, stop)
        x, y, _, meta = maker(b - a, g, labels=torch.arange(a, b) % len(CLASSES), meta=True)
        out.append(x.numpy())
        labels.append(y.numpy())
        metas.append(meta)
    return np.concatenate(out), np.concatenate(labels), {c: np.concatenate([m[c] for m in metas]) for c in META_COLUMNS}


def sample_at(seed: int, split: str, i: int, source):
    """The i-th sample of a split (deterministic: every draw from ``SeedSequence([seed, split, i])``).

    Parameters
    ----------
    seed : int
        The dataset's seed.
    split : {'train', 'val', 'test'}
    i : int
        Sample index; its class is ``CLASSES[i % 4]``.
    source : object
        Noise source (:func:`gwviz.data.noise.noise_source`).

    Returns
    -------
    Sample

    Raises
    ------
    ValueError
        From :func:`gwviz.data.synth.make_sample`.
    """
    from .synth import make_sample
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLITS[split], i]))
    return make_sample(CLASSES[i % len(CLASSES)], source, rng=rng)


def _chunk(args: tuple[dict, int, int, str]) -> str:
    run, start, stop, path = args
    n = stop - start
    if _MAKER is not None:
        strain, label, meta = make_batch(run["seed"], run["split"], start, stop, _MAKER)
        label = label.astype(np.int8)
        source_names = {run["noise_source"]}
    else:
        strain = np.empty((n, 3, WINDOW_SAMPLES), np.float32)
        label = np.empty(n, np.int8)
        meta = {c: np.full(n, np.nan) for c in META_COLUMNS}
        source_names = set()
        for j, i in enumerate(range(start, stop)):
            s = sample_at(run["seed"], run["split"], i, _SOURCE)
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
        f.attrs.update(run)
        f.attrs["sample_noise_sources"] = "; ".join(sorted(source_names))
    os.replace(tmp, path)
    return path


def _plain(v):
    """h5py attribute -> plain Python value, for comparisons and messages."""
    return v.item() if isinstance(v, np.generic) else v


def check_parts(parts: Path, run: dict) -> None:
    """Refuse to resume from part files that another run wrote.

    Parameters
    ----------
    parts : Path
        The ``<out>/<split>.parts`` folder.
    run : dict
        This run's :data:`RUN_KEYS` values.

    Raises
    ------
    ValueError
        Naming the first mismatched (or unreadable) part, every key that differs, and what to do.
    """
    for p in sorted(parts.glob("*.h5")):
        try:
            with h5py.File(p, "r") as f:
                rec = {k: _plain(f.attrs.get(k)) for k in RUN_KEYS}
        except OSError as err:
            raise ValueError(f"{p}: unreadable part file ({err}); delete it (it is rebuilt) and run again") from err
        diff = {k: (rec[k], run[k]) for k in RUN_KEYS if rec[k] != run[k]}
        if diff:
            said = ", ".join(f"{k}={a!r} (this run: {b!r})" for k, (a, b) in diff.items())
            raise ValueError(f"{p} was written by another run: {said}. Resuming would mix two datasets; rerun with "
                             f"that run's settings, use another --out, or delete {parts} to start over")


def _check_int(name: str, v, lo: int) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def build_split(out: Path, split: str, n: int, seed: int, noise: str = "simulated", data_dir: str | None = None,
                workers: int | None = None, chunk: int = 64, progress: bool = True) -> Path:
    """Write ``out/<split>.h5`` with n samples; resumable (finished chunks of the same run are kept).

    Parameters
    ----------
    out : path
        Output folder (created).
    split : {'train', 'val', 'test'}
    n : int
        Samples in the split (>= 1).
    seed : int
        Non-negative. In real noise sample i is a function of (seed, split, i) alone; in simulated noise
        also of ``n`` (the bank has min(n, 1024) draws per class) and ``chunk`` (batch seeds per chunk).
    noise : {'simulated', 'files', 'gwosc'}, optional
        Noise source (see :func:`gwviz.data.noise.noise_source`), built here first so that bad data fails
        before any worker starts. Default 'simulated'.
    data_dir : str or None, optional
        Real strain for ``noise='files'``; default None: $GWVIZ_DATA_DIR.
    workers : int or None, optional
        Processes (>= 1); default None: all cores.
    chunk : int, optional
        Samples per part file (>= 1). Default 64.
    progress : bool, optional
        Show a tqdm bar. Default True.

    Returns
    -------
    Path
        The split file.

    Raises
    ------
    ValueError
        Bad arguments, an unwritable ``out``, a split larger than the free space of ``out`` (``n`` ×
        :data:`SAMPLE_BYTES`), part files of another run, or a sample that cannot be made (the first
        worker error; the other chunks are cancelled).
    """
    from tqdm.auto import tqdm
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    n = _check_int(f"number of {split} samples", n, 1)
    chunk, seed = _check_int("chunk", chunk, 1), _check_int("seed", seed, 0)
    workers = _check_int("workers", workers, 1) if workers is not None else (os.cpu_count() or 1)
    out = writable_dir(out, "out")
    # a split that cannot fit on the disk is refused before the bank, the workers and the list of chunks
    # (a mistyped --train 10**20 built banks for minutes, then filled the memory with chunk names)
    need, free = n * SAMPLE_BYTES, shutil.disk_usage(out).free
    if need > free:
        raise ValueError(f"{n} {split} samples need at least {need / 1e9:.4g} GB ({SAMPLE_BYTES} bytes each, "
                         f"the part files as much again) and {out} has {free / 1e9:.4g} GB free; ask for fewer")
    source = noise_source(noise, data_dir=data_dir, seed=seed)  # fails here, with its message, on bad data
    data_dir_used = data_dir or (os.environ.get(DATA_ENV, "") if noise == "files" else "")
    run = {"format": PART_FORMAT, "seed": seed, "split": split, "n": n, "chunk": chunk, "noise": noise,
           "data_dir": str(Path(data_dir_used).resolve()) if data_dir_used else "", "noise_source": source.name}
    parts = out / f"{split}.parts"
    parts.mkdir(parents=True, exist_ok=True)
    check_parts(parts, run)
    bank_path = None
    if noise == "simulated":  # one bank per split, built once here (all cores) and read by every worker
        from .bank import get_bank
        bank_path = out / f"{split}.bank.pt"
        bank_seed = int(np.random.SeedSequence([seed, SPLITS[split], 2**20]).generate_state(1)[0] >> 1)
        get_bank(bank_path, min(n, BANK_PER_CLASS), bank_seed, workers)
    jobs = [(run, a, min(a + chunk, n), str(parts / f"{a:09d}-{min(a + chunk, n):09d}.h5")) for a in range(0, n, chunk)]
    todo = [j for j in jobs if not Path(j[-1]).exists()]
    bar = tqdm(total=n, initial=n - sum(j[2] - j[1] for j in todo), desc=f"{split}", unit="sample", disable=not progress)
    # fork (where it exists) keeps the builder the workers' parent, which die_with_parent watches
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(noise, data_dir, seed, os.getpid(), str(bank_path) if bank_path else None))
    try:
        futures = {pool.submit(_chunk, j): j for j in todo}
        for fut in as_completed(futures):
            fut.result()
            j = futures[fut]
            bar.update(j[2] - j[1])
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # do not compute the rest of a failed split
        raise
    pool.shutdown()
    bar.close()
    final = out / f"{split}.h5"
    tmp = out / f"{split}.h5.tmp"
    with h5py.File(tmp, "w") as f:
        ds = f.create_dataset("strain", (n, 3, WINDOW_SAMPLES), np.float32, chunks=(1, 3, WINDOW_SAMPLES))
        lab = f.create_dataset("label", (n,), np.int8)
        metas = {c: f.create_dataset(f"meta/{c}", (n,), np.float64) for c in META_COLUMNS}
        sources = set()
        for _, a, b, path in jobs:
            with h5py.File(path, "r") as p:
                ds[a:b], lab[a:b] = p["strain"][...], p["label"][...]
                for c in META_COLUMNS:
                    metas[c][a:b] = p[f"meta/{c}"][...]
                sources.add(p.attrs["sample_noise_sources"])
        f.attrs.update({"noise_source": "; ".join(sorted(sources)), "seed": seed, "split": split,
                        "classes": json.dumps(CLASSES), "sample_rate": 4096, "noise": noise,
                        "data_dir": run["data_dir"], "chunk": chunk})
    os.replace(tmp, final)
    return final


def read_split(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Load a split file written by :func:`build_split`.

    Parameters
    ----------
    path : str or Path
        A split file (``<out>/<split>.h5``).

    Returns
    -------
    strain : (N, 3, 16384) float32 ndarray
    label : (N,) int8 ndarray
    meta : dict of str to (N,) float64 ndarray
        One entry per ``meta/<name>`` dataset.

    Raises
    ------
    ValueError
        The file is missing, not HDF5, or lacks ``strain``, ``label`` or ``meta``.
    """
    try:
        with h5py.File(path, "r") as f:
            return f["strain"][...], f["label"][...], {c: f[f"meta/{c}"][...] for c in f["meta"]}
    except (OSError, KeyError) as err:
        raise ValueError(f"{path}: not a readable gwviz dataset ({err})") from err


_int_at_least = int_at_least  # argparse type: an integer >= lo (one home: gwviz.paths)


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module docstring): build the splits asked for, in order train, val, test.

    Parameters
    ----------
    argv : list of str or None, optional
        Arguments; default None: ``sys.argv[1:]``.
    """
    ap = argparse.ArgumentParser(prog="python -m gwviz.data.dataset", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train", type=_int_at_least(0), default=96000, help="samples (0: skip the split)")
    ap.add_argument("--val", type=_int_at_least(0), default=96000)
    ap.add_argument("--test", type=_int_at_least(0), default=544000)
    ap.add_argument("--seed", type=_int_at_least(0), default=0)
    ap.add_argument("--noise", default="simulated", choices=["simulated", "files", "gwosc"])
    ap.add_argument("--data-dir", default=None, help="real strain files for --noise files (default $GWVIZ_DATA_DIR)")
    ap.add_argument("--workers", type=_int_at_least(1), default=None)
    ap.add_argument("--chunk", type=_int_at_least(1), default=64)
    a = ap.parse_args(argv)
    try:
        writable_dir(a.out)
    except ValueError as err:
        ap.error(str(err))
    try:
        for split in SPLITS:
            n = getattr(a, split)
            if n:
                print(build_split(a.out, split, n, a.seed, a.noise, a.data_dir, a.workers, a.chunk))
    except ValueError as err:  # bad data or a mismatched resume: the message is the whole story
        ap.exit(1, f"{ap.prog}: error: {err}\n")


if __name__ == "__main__":
    run_cli(main, "python -m gwviz.data.dataset")
