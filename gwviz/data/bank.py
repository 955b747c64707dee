"""The waveform bank: polarisations of many intrinsic draws (masses, inclination, coalescence phase),
made once on all cores by :func:`gwviz.data.waveforms.polarisations` and reused by every batch
(:class:`gwviz.data.batch.BatchMaker`), the dataset builder and the evaluations. Waveforms are the
expensive part on the CPU and the cheap part to reuse; cached on disk as tensors only.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..constants import STRAIN_SCALE
from .params import SIGNAL_CLASSES, draw_params
from .waveforms import polarisations


def die_with_parent(parent_pid: int) -> None:
    """End this worker when the builder (process ``parent_pid``) ends, even by SIGKILL.

    SIGKILL runs no cleanup in the builder.
    Linux: PR_SET_PDEATHSIG makes the kernel SIGKILL this process when its parent exits. Elsewhere
    (or if prctl fails) a daemon thread polls the parent id once a second. Exits at once if the parent is gone.
    """
    import signal
    import threading
    armed = False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the builder died before prctl took effect
        os._exit(1)
    if not armed:
        def watch() -> None:
            import time
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()


def _one_waveform(args: tuple[str, int]) -> tuple[np.ndarray, np.ndarray, dict, int]:
    kind, seed = args
    p = draw_params(kind, np.random.default_rng(seed))
    pol = polarisations(p)
    return (pol.hp * STRAIN_SCALE).astype(np.float32), (pol.hc * STRAIN_SCALE).astype(np.float32), \
        {"mass1": p.mass1, "mass2": p.mass2, "inclination": p.inclination, "coa_phase": p.coa_phase}, pol.peak_index


@dataclass
class WaveformBank:
    """Polarisations of many intrinsic draws per signal class, reused by every batch.

    Attributes
    ----------
    hp, hc : dict of str to (K, L) tensor
        Polarisations × STRAIN_SCALE per class ('BBH', 'NSBH', 'BNS'), float32 once built.
    params : dict of str to (K, 4) ndarray
        mass1, mass2 [M☉], inclination, coa_phase [rad] of each row.
    peak_index : int
        Sample of the amplitude peak in every row.
    """

    hp: dict[str, torch.Tensor]
    hc: dict[str, torch.Tensor]
    params: dict[str, np.ndarray]
    peak_index: int

    @classmethod
    def build(cls, n_per_class: int, seed: int = 0, workers: int | None = None, progress: bool = True) -> "WaveformBank":
        """Make ``n_per_class`` waveforms per signal class in ``workers`` processes (default: all cores).

        Deterministic in ``seed`` (default 0); ``progress`` (default True) shows a tqdm bar per class. The workers
        end with this process (:func:`die_with_parent`).
        """
        from tqdm.auto import tqdm
        hp, hc, params, peak = {}, {}, {}, 0
        workers = workers or os.cpu_count() or 1
        # the workers end with this process, even when it is killed (a killed trainer or dataset builder
        # left them computing waveforms for minutes)
        with ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            for ci, kind in enumerate(SIGNAL_CLASSES):
                jobs = [(kind, int(s)) for s in np.random.SeedSequence([seed, ci]).generate_state(n_per_class)]
                res = list(tqdm(pool.map(_one_waveform, jobs, chunksize=8), total=n_per_class,
                                desc=f"waveforms {kind}", disable=not progress))
                hp[kind] = torch.from_numpy(np.stack([r[0] for r in res]))
                hc[kind] = torch.from_numpy(np.stack([r[1] for r in res]))
                params[kind] = np.array([[r[2][k] for k in ("mass1", "mass2", "inclination", "coa_phase")] for r in res])
                peak = res[0][3]
        return cls(hp, hc, params, peak)

    def to(self, device) -> "WaveformBank":
        """A copy with the polarisations on ``device`` (``params`` stay numpy)."""
        return WaveformBank({k: v.to(device) for k, v in self.hp.items()}, {k: v.to(device) for k, v in self.hc.items()},
                            self.params, self.peak_index)

    def save(self, path) -> None:
        """Write the bank to ``path`` as tensors only (loadable with ``weights_only=True``), atomically.

        A temporary file, synced to disk, then renamed, so a kill mid-write never leaves a truncated bank.
        """
        tmp = f"{path}.tmp"
        try:
            with open(tmp, "wb") as f:
                torch.save({"hp": self.hp, "hc": self.hc,
                            "params": {k: torch.from_numpy(np.asarray(v)) for k, v in self.params.items()},
                            "peak_index": int(self.peak_index)}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):  # only when the write failed: never leave a stray partial file
                os.unlink(tmp)

    @classmethod
    def load(cls, path) -> "WaveformBank":
        """Read a bank written by :meth:`save` (torch ``weights_only`` load: no pickle code runs).

        The contents are checked (one (K, L) float tensor per signal class in hp and hc, (K, 4)
        params, a peak index inside L, all finite). A corrupt or foreign file is rebuilt, with a
        RuntimeWarning, when ``<path>.json`` (train.py's record ``{"n_per_class": K, "seed": s}``) says how
        it was built, and saved over ``path``.

        Raises
        ------
        ValueError
            ``path`` is not a file, or it is corrupt with no usable record (the message names the file and what
            to do).
        """
        import json
        import warnings
        from pathlib import Path

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: no such waveform bank file")
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(d, dict) or not {"hp", "hc", "params", "peak_index"} <= set(d):
                raise ValueError("not a dict with hp, hc, params, peak_index")
            for name in ("hp", "hc", "params"):
                if not isinstance(d[name], dict) or set(d[name]) != set(SIGNAL_CLASSES):
                    raise ValueError(f"{name} must map each of {SIGNAL_CLASSES} to a tensor")
            lengths = set()
            for k in SIGNAL_CLASSES:
                hp, hc, par = d["hp"][k], d["hc"][k], d["params"][k]
                if not all(isinstance(t, torch.Tensor) and t.is_floating_point() for t in (hp, hc, par)):
                    raise ValueError(f"{k}: hp, hc and params must be float tensors")
                if hp.ndim != 2 or hp.shape != hc.shape or hp.shape[0] < 1 or tuple(par.shape) != (hp.shape[0], 4):
                    raise ValueError(f"{k}: shapes hp {tuple(hp.shape)}, hc {tuple(hc.shape)}, params "
                                     f"{tuple(par.shape)} (expected (K, L), (K, L), (K, 4))")
                if not all(bool(torch.isfinite(t).all()) for t in (hp, hc, par)):
                    raise ValueError(f"{k}: NaN/inf values")
                lengths.add(hp.shape[1])
            peak = d["peak_index"]
            peak = int(peak.item()) if isinstance(peak, torch.Tensor) and peak.numel() == 1 else peak
            if len(lengths) != 1 or isinstance(peak, bool) or not isinstance(peak, int) or not 0 <= peak < min(lengths):
                raise ValueError(f"waveform lengths {sorted(lengths)} and peak index {peak!r} do not fit")
            return cls(d["hp"], d["hc"], {k: v.numpy() for k, v in d["params"].items()}, peak)
        except Exception as err:  # noqa: BLE001 - zip/pickle/torch errors come in many types
            why = f"{type(err).__name__}: {err}"
        record = path.with_name(path.name + ".json")
        try:
            key = json.loads(record.read_text())
            n, seed = int(key["n_per_class"]), int(key["seed"])
            if n <= 0 or seed < 0:
                raise ValueError(f"n_per_class {n}, seed {seed}")
        except Exception:  # noqa: BLE001 - no usable record: say what to do instead
            raise ValueError(f"{path}: corrupt or foreign waveform bank cache ({why[:300]}); delete it and it is "
                             "rebuilt (train.py and gwviz.evaluation.evaluate --bank build and save a missing bank)") from None
        warnings.warn(f"{path}: corrupt waveform bank cache ({why[:300]}); rebuilding it as {record} records "
                      f"(n_per_class={n}, seed={seed})", RuntimeWarning, stacklevel=2)
        bank = cls.build(n, seed=seed)
        bank.save(path)
        return bank


def get_bank(path, n_per_class: int, seed: int, workers: int) -> WaveformBank:
    """The bank cached at ``path`` if it was built with (n_per_class, seed), else build and cache it.

    (n_per_class, seed) is recorded beside the bank in <path>.json; a bank is built with ``workers``
    processes (0 = all cores). Building is deterministic, so a resume on a fresh machine rebuilds the same bank.
    """
    import json
    from pathlib import Path
    path = Path(path)
    key = {"n_per_class": n_per_class, "seed": seed}
    meta = path.with_name(path.name + ".json")
    if path.exists() and meta.exists() and json.loads(meta.read_text()) == key:
        return WaveformBank.load(path)
    bank = WaveformBank.build(n_per_class, seed=seed, workers=workers or os.cpu_count())
    bank.save(path)
    meta.write_text(json.dumps(key))
    return bank
