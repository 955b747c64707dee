"""The dataset builder (python -m gwviz.data.dataset) refuses what would give a wrong dataset: bad sizes,
an unwritable --out, part files of another run, a flat detector; and its workers die with it."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from gwviz.data.dataset import PART_FORMAT, build_split, main, read_split

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("kw,message", [
    ({"chunk": -2}, "chunk must be an integer >= 1, got -2"),
    ({"chunk": 0}, "chunk must be an integer >= 1, got 0"),
    ({"chunk": 2.5}, "chunk must be an integer >= 1, got 2.5"),
    ({"chunk": True}, "chunk must be an integer >= 1, got True"),
    ({"n": 0}, "number of val samples must be an integer >= 1, got 0"),
    ({"n": -5}, "number of val samples must be an integer >= 1, got -5"),
    ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ({"workers": 0}, "workers must be an integer >= 1, got 0"),
    ({"split": "training"}, "split must be one of \\['train', 'val', 'test'\\], got 'training'"),
    ({"noise": "gaussian"}, r"noise must be one of \('simulated', 'files', 'gwosc'\), got 'gaussian'"),
])
def test_build_split_arguments(tmp_path, kw, message):
    """--chunk -2 wrote an all-zero 'noise' dataset; now every size is checked before any work."""
    args = {"split": "val", "n": 4, "seed": 0, "chunk": 4, "workers": 1, **kw}
    with pytest.raises(ValueError, match=f"^{message}"):
        build_split(tmp_path / "ds", args.pop("split"), args.pop("n"), progress=False, **args)
    assert not (tmp_path / "ds" / "val.h5").exists()


@pytest.mark.parametrize("argv,message", [
    (["--chunk", "-2"], "argument --chunk: must be >= 1, got -2"),
    (["--chunk", "0"], "argument --chunk: must be >= 1, got 0"),
    (["--chunk", "four"], "argument --chunk: 'four' is not an integer"),
    (["--workers", "0"], "argument --workers: must be >= 1, got 0"),
    (["--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["--val", "-5"], "argument --val: must be >= 0, got -5"),
])
def test_cli_rejects_bad_numbers(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "ds"), "--train", "0", "--test", "0", "--val", "4", *argv])
    assert exit_.value.code == 2
    assert f"python -m gwviz.data.dataset: error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()  # refused before anything was written


def test_split_larger_than_the_disk_is_refused_first(tmp_path, capsys):
    """--train 99999999999999999999 built three waveform banks for a minute, then filled the memory with
    the list of chunk names; now the split's size is held against the free space before any work."""
    with pytest.raises(SystemExit) as stop:
        main(["--out", str(tmp_path / "ds"), "--train", str(10**20), "--val", "0", "--test", "0", "--workers", "1"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert re.search(r"error: 100000000000000000000 train samples need at least [0-9.e+]+ GB \(196777 bytes each, "
                     r"the part files as much again\) and .* has [0-9.]+ GB free; ask for fewer", err)
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == []  # no bank, no parts


def test_data_dir_that_is_a_file(tmp_path, data_dir):
    """It said "does not exist" for a file that exists."""
    f = next((data_dir / "gwpy_format" / "GW190521_data").glob("*.hdf5"))
    with pytest.raises(ValueError, match=rf"^data directory {re.escape(str(f))} is a file, not a directory"):
        build_split(tmp_path / "ds", "val", 4, seed=0, noise="files", data_dir=str(f), workers=1, progress=False)


def test_unwritable_out(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, why in ((afile, "it is a file, not a folder"), (afile / "sub", "Not a directory"),
                     (Path("/proc/gwviz-test"), "No such file or directory")):
        with pytest.raises(SystemExit) as exit_:
            main(["--out", str(out), "--train", "0", "--test", "0", "--val", "4", "--workers", "1"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"error: --out {out}: " in err and why in err and "Traceback" not in err
        with pytest.raises(ValueError, match=f"out {out}: "):
            build_split(out, "val", 4, seed=0, workers=1, chunk=4, progress=False)


def _first_build(out: Path) -> np.ndarray:
    build_split(out, "val", 4, seed=3, workers=1, chunk=4, progress=False)
    strain, _, _ = read_split(out / "val.h5")
    (out / "val.h5").unlink()  # as if interrupted before the final assembly
    return strain


def test_resume_refuses_parts_of_another_run(tmp_path, capsys, data_dir):
    """Parts of another seed, size, chunk or noise source were reused and labelled with the new seed."""
    out = tmp_path / "ds"
    strain = _first_build(out)
    part = next((out / "val.parts").glob("*.h5"))
    with h5py.File(part) as f:
        assert f.attrs["format"] == PART_FORMAT and f.attrs["seed"] == 3 and f.attrs["n"] == 4
    for kw, said in [({"seed": 4}, "seed=3 (this run: 4)"), ({"n": 8}, "n=4 (this run: 8)"),
                     ({"chunk": 2}, "chunk=4 (this run: 2)"),
                     ({"noise": "files", "data_dir": str(data_dir / "gwpy_format")}, "noise='simulated' (this run: 'files')")]:
        args = {"n": 4, "seed": 3, "chunk": 4, **kw}
        with pytest.raises(ValueError, match=rf"^{part} was written by another run: .*{said.replace('(', '[(]').replace(')', '[)]')}"
                                             rf".*Resuming would mix two datasets; rerun with that run's settings, use "
                                             rf"another --out, or delete {out / 'val.parts'} to start over"):
            build_split(out, "val", args.pop("n"), progress=False, workers=1, **args)
        assert not (out / "val.h5").exists()
    # the CLI says the same, without a traceback
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(out), "--train", "0", "--test", "0", "--val", "4", "--chunk", "4", "--seed", "4", "--workers", "1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "was written by another run: seed=3 (this run: 4)" in err and "Traceback" not in err
    # the same settings resume, and the result is the first run's data
    build_split(out, "val", 4, seed=3, workers=1, chunk=4, progress=False)
    again, _, _ = read_split(out / "val.h5")
    assert np.array_equal(again, strain)
    with h5py.File(out / "val.h5") as f:
        assert f.attrs["seed"] == 3 and f.attrs["noise"] == "simulated"


def test_resume_refuses_old_or_unreadable_parts(tmp_path):
    out = tmp_path / "ds"
    _first_build(out)
    part = next((out / "val.parts").glob("*.h5"))
    with h5py.File(part, "a") as f:  # a part of the previous layout records no run
        for k in list(f.attrs):
            del f.attrs[k]
    with pytest.raises(ValueError, match=r"was written by another run: format=None \(this run: 'gwviz-dataset-part-v3'\)"):
        build_split(out, "val", 4, seed=3, workers=1, chunk=4, progress=False)
    part.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ValueError, match=rf"^{part}: unreadable part file .*; delete it \(it is rebuilt\) and run again"):
        build_split(out, "val", 4, seed=3, workers=1, chunk=4, progress=False)


def test_flat_detector_files_are_refused_before_any_sample(tmp_path):
    """Real-noise files whose V1 is zeros: the builder wrote 'BBH' samples with no signal, SNR NaN."""
    from gwpy.timeseries import TimeSeries
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    for det in ("H1", "L1", "V1"):
        x = rng.normal(size=40 * 4096) * 1e-21 if det != "V1" else np.zeros(40 * 4096)
        TimeSeries(x, t0=1238170000.0, sample_rate=4096, name=f"{det}:STRAIN").write(str(data / f"{det}.hdf5"),
                                                                                      format="hdf5")
    with pytest.raises(ValueError, match=r"^detector V1 is flat \(all samples equal\): a missing detector cannot be "
                                         "padded with zeros"):
        build_split(tmp_path / "ds", "train", 8, seed=0, noise="files", data_dir=str(data), workers=1, chunk=4,
                    progress=False)
    assert not list((tmp_path / "ds").glob("**/*.h5"))


def _live_children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` and that are not zombies (a zombie holds no memory)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                state, ppid = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[:2]
            except (OSError, ValueError):
                continue
            if int(ppid) == pid and state != "Z":
                out.append(int(p))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_die_with_a_killed_builder(tmp_path):
    """kill -9 of the builder left its workers (~315 MB each) computing for minutes (Linux: reads /proc)."""
    proc = subprocess.Popen([sys.executable, "-m", "gwviz.data.dataset", "--out", str(tmp_path / "ds"), "--train", "0",
                             "--test", "0", "--val", "4000", "--workers", "2", "--chunk", "4"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        t0 = time.time()
        while len(_live_children(proc.pid)) < 2 and time.time() - t0 < 120:
            time.sleep(0.2)
        workers = _live_children(proc.pid)
        assert len(workers) == 2, "the builder never started its two workers"
        time.sleep(1.0)
        assert all(_alive(w) for w in workers)  # working, before the kill
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        t0 = time.time()
        while any(_alive(w) for w in workers) and time.time() - t0 < 5:
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], "workers outlived the killed builder"
    finally:  # never leave a process of this test behind, whatever failed
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


def test_a_failing_sample_stops_the_build(tmp_path, monkeypatch):
    """The first worker error is raised as is, and the chunks not yet started are cancelled instead
    of being computed before the error shows (the workers are forked, so they see this patch)."""
    import gwviz.data.dataset as dataset
    real = dataset.make_batch

    def failing(seed, split, start, stop, maker):  # simulated noise: the batched path
        if start == 0:
            raise ValueError("sample 0 cannot be made")
        return real(seed, split, start, stop, maker)

    monkeypatch.setattr(dataset, "make_batch", failing)
    with pytest.raises(ValueError, match="^sample 0 cannot be made$"):
        build_split(tmp_path / "ds", "val", 40, seed=0, workers=1, chunk=1, progress=False)
    assert len(list((tmp_path / "ds" / "val.parts").glob("*.h5"))) <= 3  # 39 would be computed without cancel
    assert not (tmp_path / "ds" / "val.h5").exists()


def test_simulated_split_rides_the_batched_path_with_true_metadata(tmp_path):
    """Simulated noise: BatchMaker rows with metadata that says what they are (class masses in range,
    network SNR = the target over H1, L1, V1, the merger in the last 0.1 s of the window), the same split
    from the same (seed, n, chunk), and a cached bank beside it."""
    from gwviz.data.params import MASS_RANGES
    a = build_split(tmp_path / "a", "val", 8, seed=5, workers=1, chunk=4, progress=False)
    b = build_split(tmp_path / "b", "val", 8, seed=5, workers=1, chunk=4, progress=False)
    x, y, m = read_split(a)
    assert np.array_equal(x, read_split(b)[0]) and (tmp_path / "a" / "val.bank.pt").exists()
    assert y.tolist() == [0, 1, 2, 3] * 2 and x.dtype == np.float32 and 0.9 < x.std() < 1.1
    sig = y > 0
    assert np.isnan(m["mass1"][~sig]).all() and np.isfinite(m["gmst"]).all() and np.isnan(m["gps"]).all()
    for i in np.flatnonzero(sig):
        (lo1, hi1), (lo2, hi2) = MASS_RANGES[("noise", "BBH", "NSBH", "BNS")[y[i]]]
        assert lo1 <= m["mass1"][i] <= hi1 and lo2 <= m["mass2"][i] <= hi2
    snr_det = np.stack([m[f"snr_{d}"] for d in ("H1", "L1", "V1")])[:, sig]
    assert np.allclose(np.sqrt((snr_det ** 2).sum(0)), m["snr"][sig], rtol=1e-4)
    assert np.allclose(m["snr_network"][sig], m["snr"][sig], rtol=1e-4) and (8 <= m["snr"][sig]).all()
    assert ((m["merger_index"][sig] >= 16384 - 410) & (m["merger_index"][sig] <= 16384)).all()
    assert not np.array_equal(x, read_split(build_split(tmp_path / "c", "val", 8, seed=6, workers=1, chunk=4,
                                                         progress=False))[0])
