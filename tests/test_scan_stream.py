"""gwviz.data.stream and the scan of files block by block: the same numbers as the whole-file scan,
every check the whole-file read makes, and memory bounded by the block, not the file."""
from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from gwviz import session
from gwviz.data.strain import read_detectors
from gwviz.data.stream import (FLAT_LOOKBACK, StrainFile, block_plan, check_block, open_detectors,
                               open_strain_file, write_gwosc_hdf5)
from gwviz.scan import main, scan, time_slide_background
from test_scan import GW190521

RATE, T0 = 4096, 1238170000.0
#: starts of the synthetic files: H1 at T0, L1 at T0 + 1.5 s, V1 at T0 − 2 s (each as long as the
#: simulation less its shift: 300 s make a common span of 294.5 s from T0 + 1.5 s)
STARTS = {"H1": 0.0, "L1": 1.5, "V1": -2.0}


def _write_long(folder, duration=300.0, edit=None):
    """Simulated O3 noise of H1, L1, V1 in GWOSC HDF5 files (starts STARTS, so the spans differ and
    are cut to their common one); ``edit(det, x)`` may change a detector's samples first."""
    from gwviz.data.noise import SimulatedNoise
    x = SimulatedNoise().segment(duration, np.random.default_rng(5)).strain
    files = []
    for det, row in zip(STARTS, x):
        row = row[: len(row) - int(abs(STARTS[det]) * RATE)]
        if edit is not None:
            row = edit(det, row.copy())
        files.append(str(write_gwosc_hdf5(folder / f"{det[0]}-{det}_SIM.hdf5", det, row, T0 + STARTS[det])))
    return files


def _folder(path):
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def long_files(tmp_path_factory):
    return _write_long(tmp_path_factory.mktemp("long"))


def _read_all(stream, stride=0.5, batch=4):
    """Read (and so check) the stream exactly as a scan does, without the network."""
    for a, b, *_ in block_plan(stream.n, 16 * RATE, int(stride * RATE), stream.block, batch):
        stream.read(a, b)


def _same_result(a, b):
    """Two ScanResults agree: windows, statistic, probabilities, labels and triggers (with maps)."""
    assert np.array_equal(a.window_starts, b.window_starts) and a.t0 == b.t0 and a.detectors == b.detectors
    np.testing.assert_allclose(b.statistic, a.statistic, rtol=0, atol=1e-6)
    np.testing.assert_allclose(b.probabilities, a.probabilities, rtol=0, atol=1e-7)
    assert np.array_equal(a.labels, b.labels) and len(a.triggers) == len(b.triggers)
    for s, t in zip(a.triggers, b.triggers):
        assert (s.time, s.gps, s.label, s.n_windows) == (t.time, t.gps, t.label, t.n_windows)
        assert s.statistic == pytest.approx(t.statistic, abs=1e-6)
        if s.cam is not None:
            np.testing.assert_allclose(t.window, s.window, atol=1e-6)
            np.testing.assert_allclose(t.cam, s.cam, atol=1e-5)


def test_gw190521_in_blocks_is_the_whole_file_scan():
    """20-s blocks: four reads of the 32 s, the same statistic, trigger and map as the whole-file scan."""
    clf = session.default_classifier()
    strain, t0 = read_detectors([str(p) for p in GW190521])
    whole = scan(clf, strain, t0=t0, stride=0.5, method="hirescam")
    stream = open_detectors([str(p) for p in GW190521], block=20)
    assert stream.t0 == t0 and stream.n == 32 * RATE and stream.detectors == ("H1", "L1", "V1")
    assert len(block_plan(stream.n, 16 * RATE, 2048, stream.block, 4)) == 4
    blocks = scan(clf, stream, t0=stream.t0, stride=0.5, method="hirescam")
    _same_result(whole, blocks)
    assert blocks.triggers[0].cam is not None and len(blocks.statistic) == 33


def test_time_slides_from_files_are_those_of_the_strain_in_memory():
    clf = session.default_classifier()
    strain, _ = read_detectors([str(p) for p in GW190521])
    stream = open_detectors([str(p) for p in GW190521], block=20)
    a = time_slide_background(clf, strain, slide=3.0, n_slides=2, stride=0.5)
    b = time_slide_background(clf, stream, slide=3.0, n_slides=2, stride=0.5)
    assert a["live_time_s"] == b["live_time_s"] and a["slides"] == b["slides"] == 2
    np.testing.assert_allclose(b["statistics"], a["statistics"], atol=1e-6)


def test_minutes_of_gwosc_files_scan_in_blocks_as_whole_with_one_block_in_memory(long_files, monkeypatch):
    """300 s of 3-detector simulated noise in GWOSC HDF5 files with different spans: the 30-s-block
    scan equals the whole-file scan; no read asks for more than one block, the reads cover the
    common span, and the numpy memory of the scan peaks near one block, far below the strain (batch 1:
    a batch's segments are copied, and at a 4-s stride 4 windows span 28 s, nearly the block)."""
    import tracemalloc
    clf = session.default_classifier()
    strain, t0 = read_detectors(long_files)
    whole = scan(clf, strain, t0=t0, stride=4.0, batch=1, method="gradcam")
    n_strain_bytes = sum(x.nbytes for x in strain.values())
    del strain
    reads = []
    real = StrainFile.read_native

    def spy(self, i0, i1):
        reads.append((self.detector, i0, i1))
        return real(self, i0, i1)

    monkeypatch.setattr(StrainFile, "read_native", spy)
    stream = open_detectors(long_files, block=30)
    assert stream.t0 == t0 == T0 + 1.5 and stream.n == int(294.5 * RATE)
    tracemalloc.start()
    try:
        blocks = scan(clf, stream, t0=stream.t0, stride=4.0, batch=1, method="gradcam")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _same_result(whole, blocks)
    block_bytes = 3 * 30 * RATE * 8
    assert max(i1 - i0 for _, i0, i1 in reads) <= 30 * RATE
    for det, first in zip(stream.detectors, stream.firsts):  # every sample of the span was read (and checked)
        spans = sorted((i0, i1) for d, i0, i1 in reads if d == det)
        assert spans[0][0] == first and max(i1 for _, i1 in spans) == first + stream.n
        assert all(b0 <= a1 for (_, a1), (b0, _) in zip(spans[:-1], spans[1:]))
    assert peak < 2.5 * block_bytes < 0.4 * n_strain_bytes, f"peak {peak / 1e6:.1f} MB, block {block_bytes / 1e6:.1f} MB"


def test_cli_scans_files_in_blocks_and_checks_the_block_first(tmp_path, long_files):
    rep = main([*long_files, "--block", "40", "--stride", "8", "--out", str(tmp_path / "o"), "--no-progress",
                "--method", "gradcam"])
    clf = session.default_classifier()
    strain, t0 = read_detectors(long_files)
    whole = scan(clf, strain, t0=t0, stride=8.0, method=None)
    assert rep["block_s"] == 40 and rep["t0"] == t0 and rep["n_windows"] == len(whole.statistic)
    np.testing.assert_allclose(rep["statistic"], whole.statistic, atol=1e-6)
    missing = [str(tmp_path / f"{d}.hdf5") for d in ("H1", "L1", "V1")]  # never opened
    for bad in ("5", "19.9", "nan", "inf", "-1", "1e6"):
        with pytest.raises(ValueError, match=r"--block must be a number of seconds in \[20, 86400\]"):
            main([*missing, "--block", bad, "--out", str(tmp_path / "bad"), "--device", "cpu"])


@pytest.mark.parametrize("bad", [0, 5, 19.9, float("nan"), float("inf"), -1, "256", True, None, 1e6])
def test_block_refusals(bad):
    with pytest.raises(ValueError, match="block must be a number of seconds"):
        check_block(bad)
    with pytest.raises(ValueError, match="block must be a number of seconds"):
        open_detectors([str(p) for p in GW190521], block=bad)


def test_a_directory_is_not_a_strain_file(tmp_path):
    with pytest.raises(ValueError, match="a directory, not a strain file"):
        open_detectors([str(tmp_path), str(GW190521[1])])


@pytest.mark.parametrize("a,b", [(-1, 10), (0, 0), (10, 5), (0, 4097)])
def test_reads_outside_the_strain_are_errors_in_memory_as_from_files(a, b):
    """A short numpy slice would pass for a window: both readers refuse spans outside [0, n)."""
    from gwviz.data.stream import ArrayStrain
    mem = ArrayStrain((np.ones(4096), np.ones(4096)), ("H1", "L1"))
    with pytest.raises(ValueError, match="outside"):
        mem.read(a, b)
    assert [len(r) for r in mem.read(0, 4096)] == [4096, 4096]
    files = open_detectors([str(p) for p in GW190521])
    with pytest.raises(ValueError, match="outside"):
        files.read(a, files.n + 1 if b == 4097 else b)


@pytest.mark.parametrize("n_s,stride,block,batch", [(32, 0.5, 20, 4), (300, 0.1, 20, 256), (100, 30.0, 20, 1),
                                                   (100, 17.0, 20, 3), (16, 0.1, 20, 4), (61.3, 1 / 4096, 20, 7),
                                                   (3600, 0.1, 256, 4)])
def test_block_plan_covers_every_sample_and_window_once(n_s, stride, block, batch):
    n, n_seg, step, nb = int(n_s * RATE), 16 * RATE, int(round(stride * RATE)), int(block * RATE)
    plan = block_plan(n, n_seg, step, nb, batch)
    n_win = (n - n_seg) // step + 1
    assert plan[0][0] == 0 and plan[-1][1] == n and plan[-1][3] == n_win
    windows = []
    for i, (a, b, w0, w1) in enumerate(plan):
        assert 0 < b - a <= nb and (i == len(plan) - 1 or (w1 - w0) % batch == 0 or w1 - w0 < batch)
        assert all(a <= w * step and w * step + n_seg <= b for w in range(w0, w1))
        windows += range(w0, w1)
    assert windows == list(range(n_win))
    for (_, b0, *_), (a1, *_) in zip(plan[:-1], plan[1:]):
        assert b0 - a1 >= FLAT_LOOKBACK  # overlap: no flat run hides across a boundary


def test_other_layouts_and_16_khz_read_as_read_detectors(tmp_path):
    """gwpy HDF5 (float32), GWF at 16 kHz (decimated per block with a margin) and GWOSC HDF5: each
    stretch the stream reads is read_detectors' samples, to the bit."""
    from gwpy.timeseries import TimeSeries
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 60 * RATE)) * 1e-21
    write_gwosc_hdf5(tmp_path / "H-H1.hdf5", "H1", x[0], T0)
    TimeSeries(rng.normal(size=62 * 4 * RATE) * 1e-21, t0=T0 - 1, sample_rate=4 * RATE,
               channel="L1:GWOSC-16KHZ_R1_STRAIN").write(str(tmp_path / "L-L1.gwf"))
    TimeSeries(x[2].astype(np.float32), t0=T0 + 2, sample_rate=RATE, channel="V1:STRAIN", name="V1:STRAIN").write(
        str(tmp_path / "V1.hdf5"), format="hdf5")
    files = [str(tmp_path / f) for f in ("V1.hdf5", "L-L1.gwf", "H-H1.hdf5")]
    whole, t0 = read_detectors(files)
    stream = open_detectors(files, block=20)
    assert stream.t0 == t0 and stream.detectors == ("H1", "L1", "V1") and stream.files[1].factor == 4
    for a, b, *_ in [*block_plan(stream.n, 16 * RATE, 410, stream.block, 4), (0, stream.n), (5, 77)]:
        for det, row in zip(stream.detectors, stream.read(a, b)):
            assert np.array_equal(row, whole[det][a:b]), (det, a, b)


def test_checks_run_block_by_block_with_the_whole_file_messages(tmp_path):
    """NaN, a flat run across a read boundary and values out of range in the middle of a file: the
    block read stops with the error the whole-file check gives (times from the span's start)."""
    def at(det, t):  # sample of ``det``'s file at t [s] after the common span's start (L1's start)
        return int((t + STARTS["L1"] - STARTS[det]) * RATE)

    def nan(det, x):
        if det == "V1":
            x[at("V1", 100.0)] = np.nan
        return x

    def flat(det, x):
        if det == "H1":  # at stride 30 s, 20-s reads [0, 20) and [19.75, 39.75) share only 0.25 s
            x[at("H1", 19.9):at("H1", 20.3)] = 0.0
        return x

    def huge(det, x):
        if det == "L1":
            x[at("L1", 60.0)] = 1e70
        return x

    clf = session.default_classifier()
    for name, edit, stride, message in (
            ("nan", nan, 0.5, r"^V1: strain contains 1 NaN and 0 inf samples \(first at 100\.0000 s\)"),
            ("huge", huge, 0.5, r"^L1: \|strain\| reaches 1e\+70, above 1e\+60"),
            ("flat", flat, 30.0, r"^H1: 0\.400 s of identical samples \(value 0\) from 19\.900 s")):
        files = _write_long(_folder(tmp_path / name), 120.0, edit)
        whole, _ = read_detectors(files)
        with pytest.raises(ValueError, match=message) as in_memory:
            scan(clf, whole, stride=stride, method=None)
        with pytest.raises(ValueError) as in_blocks:
            _read_all(open_detectors(files, block=20), stride=stride, batch=1)
        assert str(in_blocks.value) == str(in_memory.value)


def test_flat_or_missing_detector_files(tmp_path):
    good = _write_long(_folder(tmp_path / "g"), 40.0)
    zeros = write_gwosc_hdf5(tmp_path / "V1_zero.hdf5", "V1", np.zeros(40 * RATE), T0 - 2)
    files = [*good[:2], str(zeros)]
    with pytest.raises(ValueError, match=r"^detector V1 is flat \(all samples equal 0\): a missing detector"):
        _read_all(open_detectors(files, block=60))  # one block: the whole-file message
    with pytest.raises(ValueError, match=r"^V1: 20\.000 s of identical samples \(value 0\) from 0\.000 s"):
        _read_all(open_detectors(files, block=20))  # a block of a longer file: a flat run


def _gwpy_file(path, data, rate=RATE, t0=T0):
    from gwpy.timeseries import TimeSeries
    name = f"{path.name[:2]}:STRAIN"
    TimeSeries(data, t0=t0, sample_rate=rate, channel=name, name=name).write(str(path), format="hdf5")
    return str(path)


def test_files_are_refused_before_any_sample_is_read(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    ok = [_gwpy_file(tmp_path / f"{d}.hdf5", rng.normal(size=20 * RATE) * 1e-21) for d in ("H1", "L1")]
    monkeypatch.setattr(StrainFile, "read_native", lambda *a: pytest.fail("samples read"))
    cases = [
        (_gwpy_file(tmp_path / "V1_int.hdf5", np.arange(20 * RATE, dtype=np.int32)),
         r"V1_int.hdf5: strain has dtype int32 \(integer samples"),
        (_gwpy_file(tmp_path / "V1_f16.hdf5", rng.normal(size=20 * RATE).astype(np.float16)), "dtype float16"),
        (_gwpy_file(tmp_path / "V1_2k.hdf5", rng.normal(size=20 * 2048), rate=2048),
         r"sample rate 2048 Hz is not a whole multiple of 4096 Hz"),
        (_gwpy_file(tmp_path / "V1_late.hdf5", rng.normal(size=20 * RATE), t0=T0 + 10),
         r"the files overlap for 10 s; a scan needs 16 s"),
        (ok[0], r"each of \['H1', 'L1', 'V1'\] at most once; got detectors \['H1', 'L1', 'H1'\]"),
        (str(tmp_path / "V1_none.hdf5"), "V1_none.hdf5: no such file"),
    ]
    with h5py.File(tmp_path / "V1_2d.hdf5", "w") as f:
        f.create_dataset("V1", data=np.zeros((2, 10)))
    cases.append((str(tmp_path / "V1_2d.hdf5"), r"V1_2d.hdf5: not a readable strain file \(.*2-dimensional"))
    with h5py.File(tmp_path / "V1_evil.hdf5", "w") as f:
        f.create_dataset("V1", data=np.zeros(10)).attrs["channel"] = np.void(pickle.dumps("x"))
    cases.append((str(tmp_path / "V1_evil.hdf5"), r"is not text \(gwpy would unpickle it\); refused"))
    (tmp_path / "V1_junk.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    cases.append((str(tmp_path / "V1_junk.hdf5"), "V1_junk.hdf5: not a readable strain file"))
    for path, message in cases:
        with pytest.raises(ValueError, match=message):
            open_detectors([*ok, path])


def test_a_file_corrupt_midway_stops_the_scan_with_its_name(tmp_path, long_files):
    """A damaged gzip chunk 150 s into H1: the reads before it pass, the one that meets it raises a
    ValueError naming the file and GPS span, and the CLI writes no report; a truncated file is
    refused when opened."""
    import shutil
    bad = tmp_path / "H-H1_SIM.hdf5"
    shutil.copy(long_files[0], bad)
    with h5py.File(bad, "r") as f:
        chunk = f["strain/Strain"].id.get_chunk_info(150)  # 1-s chunks: seconds 150-151
    with open(bad, "r+b") as fh:
        fh.seek(chunk.byte_offset + 64)
        fh.write(b"\xff" * 512)
    files = [str(bad), *long_files[1:]]
    stream = open_detectors(files, block=20)
    stream.read(0, 100 * RATE)  # before the damage
    with pytest.raises(ValueError, match=r"H-H1_SIM.hdf5: cannot read GPS 12381701\d\d\.\d+ to .*corrupt there"):
        _read_all(stream)
    out = tmp_path / "o"
    with pytest.raises(ValueError, match="H-H1_SIM.hdf5: cannot read GPS"):
        main([*files, "--block", "60", "--stride", "8", "--out", str(out), "--no-progress", "--method", "gradcam"])
    assert not (out / "scan.json").exists()
    cut = tmp_path / "H1_cut.hdf5"
    cut.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"H1_cut.hdf5: not a readable strain file \(OSError: .*truncated"):
        open_strain_file(cut)


def test_a_file_that_shrinks_after_it_was_opened_is_an_error(tmp_path):
    """A read that comes back short (the file was rewritten under the scan) is an error, not fewer windows."""
    files = _write_long(tmp_path, 60.0)
    stream = open_detectors(files, block=20)
    with h5py.File(files[2], "r") as f:
        head = f["strain/Strain"][: 30 * RATE]
    write_gwosc_hdf5(files[2], "V1", head, T0 - 2)
    stream.read(0, 20 * RATE)
    with pytest.raises(ValueError, match=r"V-V1_SIM.hdf5: reading GPS .* gave \d+ samples, not 81920: the file is "
                                         "truncated or changed since it was opened"):
        stream.read(20 * RATE, 40 * RATE)
