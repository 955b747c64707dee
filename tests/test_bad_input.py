"""Bad input gets a clear ValueError and loses nothing."""
from __future__ import annotations

import re
import shutil

import h5py
import numpy as np
import pytest
import torch

from gwviz.model.checkpoint import atomic_torch_save, load_weights, save_weights
from gwviz.classifier import load_classifier
from gwviz.data.dataset import build_split, read_split
from gwviz.model.network import GWNet
from gwviz.data.noise import SimulatedNoise, StrainFiles
from gwviz.data.checks import check_strain
from gwviz.data.strain import read_strain
from gwviz.data.params import SignalParams
from gwviz.data.synth import make_sample
from gwviz.network_input import whiten_window


def _strain(n=16 * 4096, rng=np.random.default_rng(0)):
    return {d: rng.normal(size=n) * 1e-21 for d in ("H1", "L1", "V1")}


@pytest.mark.parametrize("kind,m1,m2", [("BBH", 90, 30), ("BBH", 4, 10), ("NSBH", 20, 3), ("NSBH", 40, 1.4),
                                        ("BNS", 2.5, 1.2), ("BNS", 1.4, 0.5)])
def test_masses_outside_class_range(kind, m1, m2):
    with pytest.raises(ValueError, match="outside the"):
        SignalParams(kind, m1, m2, snr=10)
    # the caller may say so explicitly
    assert SignalParams(kind, m1, m2, snr=10, allow_outside=True).mass1 == max(m1, m2) if kind != "NSBH" else m1


@pytest.mark.parametrize("snr", [0, -3, float("nan"), float("inf")])
def test_bad_snr(snr):
    with pytest.raises(ValueError, match="SNR"):
        SignalParams("BBH", 30, 20, snr=snr)


def test_bad_masses_and_class():
    with pytest.raises(ValueError, match="mass1"):
        SignalParams("BBH", float("nan"), 20, snr=10)
    with pytest.raises(ValueError, match="unknown class"):
        SignalParams("BHNS", 30, 1.4, snr=10)
    with pytest.raises(ValueError, match="unknown class"):
        make_sample("glitch", SimulatedNoise(), seed=0)


def test_strain_dict_errors():
    good = _strain()
    with pytest.raises(ValueError, match="exactly the detectors"):
        check_strain({"H1": good["H1"], "L1": good["L1"]}, 4096, 16)
    with pytest.raises(ValueError, match="sample_rate must be 4096"):
        check_strain(good, 16384, 16)
    with pytest.raises(ValueError, match="different lengths"):
        check_strain({**good, "V1": good["V1"][:-10]}, 4096, 16)
    with pytest.raises(ValueError, match="at least 16"):
        check_strain({d: v[:4096 * 8] for d, v in good.items()}, 4096, 16)
    bad = {**good, "L1": good["L1"].copy()}
    bad["L1"][1000:1100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_strain(bad, 4096, 16)
    with pytest.raises(ValueError, match="1D"):
        check_strain({**good, "H1": good["H1"].reshape(2, -1)}, 4096, 16)
    with pytest.raises(ValueError, match="window_start"):
        whiten_window(good, 4096, window_start=14.0)


def _write_gwpy(path, det, data, t0=1238170000.0, rate=4096):
    from gwpy.timeseries import TimeSeries
    TimeSeries(data, t0=t0, sample_rate=rate, name=f"{det}:STRAIN").write(str(path), format="hdf5", overwrite=True)


def test_nan_gaps_are_skipped(tmp_path):
    rng = np.random.default_rng(1)
    n = 40 * 4096
    for det in ("H1", "L1", "V1"):
        x = rng.normal(size=n) * 1e-21
        if det == "L1":
            x[20 * 4096: 21 * 4096] = np.nan  # a 1-s gap: only [0, 20) s and [21, 40) s are usable
        _write_gwpy(tmp_path / f"{det}.hdf5", det, x)
    src = StrainFiles(tmp_path, exclude_gps=[])
    spans = src.spans()
    assert len(spans) == 2 and spans[0][1] - spans[0][0] == pytest.approx(20.0)
    for i in range(10):
        seg = src.segment(16.0, np.random.default_rng(i))
        assert np.isfinite(seg.strain).all()
    # a gap that leaves no 16-s span is a clear error
    x = rng.normal(size=n) * 1e-21
    x[10 * 4096:11 * 4096] = np.nan
    x[25 * 4096:26 * 4096] = np.nan
    _write_gwpy(tmp_path / "L1.hdf5", "L1", x)
    with pytest.raises(ValueError, match="no 16-s span"):
        StrainFiles(tmp_path, exclude_gps=[]).segment(16.0, np.random.default_rng(0))


def test_missing_detector_and_wrong_rate(tmp_path):
    rng = np.random.default_rng(2)
    _write_gwpy(tmp_path / "H1.hdf5", "H1", rng.normal(size=20 * 4096))
    _write_gwpy(tmp_path / "L1.hdf5", "L1", rng.normal(size=20 * 4096))
    with pytest.raises(ValueError, match="V1"):
        StrainFiles(tmp_path)
    _write_gwpy(tmp_path / "V1_16k.hdf5", "V1", rng.normal(size=20 * 16384), rate=16384)  # as GWOSC's 16-kHz files
    with pytest.raises(ValueError, match="sample rate 16384"):
        StrainFiles(sorted(tmp_path.glob("*.hdf5")))


def test_corrupt_hdf5_and_dataset(tmp_path):
    bad = tmp_path / "H1_corrupt.hdf5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    with pytest.raises(ValueError, match="not a readable strain file"):
        read_strain(bad)
    assert bad.exists()  # nothing deleted
    with pytest.raises(ValueError, match="not a readable gwviz dataset"):
        read_split(bad)
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(ValueError, match="not a readable gwviz dataset"):
        read_split(tmp_path / "empty.h5")


class Evil:
    """A pickle payload: unpickling it would create a file. weights_only loading must refuse it."""

    def __reduce__(self):
        return (shutil.copy, (__file__, "pwned"))


def test_foreign_and_corrupt_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, foreign)
    with pytest.raises(ValueError, match="not a gwviz checkpoint"):
        load_classifier(foreign)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_classifier(corrupt)
    pickled = tmp_path / "evil.pt"
    torch.save({"format": "gwviz-gwnet-v1", "model": {}, "payload": Evil()}, pickled)
    with pytest.raises(ValueError, match="weights-only"):
        load_classifier(pickled)
    assert not (tmp_path / "pwned").exists()  # the payload never ran
    text = tmp_path / "README.md"  # a text file given as weights: one line, not torch's page of advice
    text.write_text("# not weights\n")
    with pytest.raises(ValueError, match=r"README.md: not a readable weights-only torch checkpoint \(\w+: [^\n]*\); "
                                         r"give a gwviz .safetensors file or training checkpoint$"):
        load_classifier(text)
    # weights of another shape: clear error, the file stays
    other = tmp_path / "other.safetensors"
    save_weights(GWNet(width=4, hidden=8), other, {"width": 8, "hidden": 64})
    with pytest.raises(ValueError, match="do not fit"):
        load_classifier(other)
    assert other.exists()
    with pytest.raises(ValueError, match="no such"):
        load_weights(tmp_path / "missing.safetensors")


def test_atomic_checkpoint_survives_interrupted_write(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    atomic_torch_save({"format": "gwviz-gwnet-v1", "model": GWNet(width=4, hidden=8).state_dict()}, path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"format": "x"}, path)
    assert path.read_bytes() == before  # the good checkpoint is untouched
    state, _, _ = load_weights(path)
    assert "head.1.weight" in state or len(state) > 10


def test_dataset_resume_keeps_finished_chunks(tmp_path):
    out = tmp_path / "ds"
    build_split(out, "val", 8, seed=3, workers=1, chunk=4, progress=False)
    strain, label, meta = read_split(out / "val.h5")
    assert strain.shape == (8, 3, 16384) and list(label) == [0, 1, 2, 3] * 2
    assert np.isnan(meta["snr"][0]) and 8 <= meta["snr"][1] <= 24
    # simulate an interruption: drop one chunk and the final file; rebuild only that chunk
    parts = sorted((out / "val.parts").glob("*.h5"))
    kept = parts[0].stat().st_mtime_ns
    parts[1].unlink()
    (out / "val.h5").unlink()
    build_split(out, "val", 8, seed=3, workers=1, chunk=4, progress=False)
    assert parts[0].stat().st_mtime_ns == kept
    again, _, _ = read_split(out / "val.h5")
    assert np.array_equal(again, strain)  # reproducible from the seed


# --- strain checks (gwviz.data.checks.check_strain: the one place every input strain goes through) ---

@pytest.mark.parametrize("dtype", ["int8", "int16", "int64", "uint16", "bool", "float16", "complex64",
                                   "complex128", "object", "<U8"])
def test_strain_dtypes_that_lose_the_data(dtype):
    """Integers and float16 whitened to zeros, complex was silently made real: now refused by name."""
    good = _strain()
    bad = {**good, "H1": (good["H1"] * 1e21).astype(dtype)}
    with pytest.raises(ValueError, match=rf"^H1: strain has dtype {dtype} \(.*\); pass float32 or float64 strain"):
        check_strain(bad, 4096, 16)


def test_strain_dtypes_that_hold_the_data():
    good = _strain()
    x64 = check_strain(good, 4096, 16)
    x32 = check_strain({d: v.astype(np.float32) for d, v in good.items()}, 4096, 16)
    assert x64.dtype == x32.dtype == np.float64 and np.allclose(x32, x64, rtol=1e-6)
    assert np.array_equal(check_strain({d: list(v) for d, v in good.items()}, 4096, 16), x64)


@pytest.mark.parametrize("det", ["H1", "L1", "V1"])
@pytest.mark.parametrize("value,counts", [(np.nan, "1 NaN and 0 inf"), (np.inf, "0 NaN and 1 inf"),
                                          (-np.inf, "0 NaN and 1 inf")])
def test_one_non_finite_sample(det, value, counts):
    bad = _strain()
    bad[det] = bad[det].copy()
    bad[det][4096] = value
    with pytest.raises(ValueError, match=rf"^{det}: strain contains {counts} samples \(first at 1.0000 s\)"):
        check_strain(bad, 4096, 16)


@pytest.mark.parametrize("det,value", [("V1", 0.0), ("H1", 3e-21), ("L1", -1.0)])
def test_flat_detector_refused(det, value):
    """A missing detector padded with zeros (or any constant) got 'noise' at p ~ 0.9; now refused."""
    bad = {**_strain(), det: np.full(16 * 4096, value)}
    with pytest.raises(ValueError, match=rf"^detector {det} is flat \(all samples equal {value:g}\): a missing "
                                         "detector cannot be padded with zeros"):
        check_strain(bad, 4096, 16)


def test_partly_flat_detector_refused():
    """Zero-padding or a zero-filled gap longer than MAX_FLAT_RUN (0.25 s) is refused, with where it is."""
    good = _strain()
    padded = {**good, "V1": np.r_[good["V1"][:8 * 4096], np.zeros(8 * 4096)]}
    with pytest.raises(ValueError, match=r"^V1: 8.000 s of identical samples \(value 0\) from 8.000 s"):
        check_strain(padded, 4096, 16)
    gap = {**good, "L1": good["L1"].copy()}
    gap["L1"][4096:4096 + 2048] = 0.0
    with pytest.raises(ValueError, match=r"^L1: 0.500 s of identical samples \(value 0\) from 1.000 s"):
        check_strain(gap, 4096, 16)
    gap["L1"][4096:4096 + 2048] = good["L1"][4096:4096 + 2048]
    gap["L1"][4096:4096 + 100] = 0.0  # a few zero samples are data, not padding
    assert check_strain(gap, 4096, 16).shape == (3, 16 * 4096)


@pytest.mark.parametrize("shape", [(1, -1), (-1, 1), (2, -1)])
def test_strain_2d_vs_1d(shape):
    good = _strain()
    with pytest.raises(ValueError, match=r"^L1: strain must be 1D, got shape"):
        check_strain({**good, "L1": good["L1"].reshape(shape)}, 4096, 16)
    with pytest.raises(ValueError, match=r"^H1: strain must be 1D, got shape \(\)"):
        check_strain({**good, "H1": 1e-21}, 4096, 16)


@pytest.mark.parametrize("cut", [1, 4096])
def test_strain_lengths_differ(cut):
    good = _strain()
    with pytest.raises(ValueError, match=r"^detector arrays have different lengths: .*'V1': " + str(16 * 4096 - cut)):
        check_strain({**good, "V1": good["V1"][:-cut]}, 4096, 16)


@pytest.mark.parametrize("rate", [16384, 2048, "4096", True, None, float("nan")])
def test_strain_sample_rate(rate):
    with pytest.raises(ValueError, match=r"^sample_rate must be 4096 Hz, got"):
        check_strain(_strain(), rate, 16)


def test_strain_container_and_range():
    good = _strain()
    with pytest.raises(ValueError, match="strain must be a dict"):
        check_strain(list(good.values()), 4096, 16)
    with pytest.raises(ValueError, match="exactly the detectors"):
        check_strain({**good, "X1": good["H1"]}, 4096, 16)
    with pytest.raises(ValueError, match=r"^H1: \|strain\| reaches [0-9.]+e\+100, above 1e\+60: whitening would overflow"):
        check_strain({**good, "H1": good["H1"] * 1e121}, 4096, 16)


@pytest.mark.parametrize("scale,what", [(1e21, "strain x 1e21 (units of 1e-21)"), (1e25, "whitened-like, rms 1e4"),
                                        (1e-7, "scaled down, rms 1e-28")])
def test_strain_in_other_units_refused(weights, scale, what):
    # whitening cannot see a scale: before, these were classified as if they were strain
    good = _strain()
    bad = {**good, "L1": good["L1"] * scale}
    with pytest.raises(ValueError, match=r"^L1: rms [0-9.e+-]+ is not detector strain \(raw strain has rms ~ 1e-19"):
        check_strain(bad, 4096, 16)
    clf = load_classifier(weights)
    for call in (clf.classify, clf.explain):
        with pytest.raises(ValueError, match=r"is not detector strain"):
            call(bad)
    white = {d: np.random.default_rng(1).normal(size=16 * 4096) for d in good}  # whitened data, rms 1
    with pytest.raises(ValueError, match=r"^H1: rms [0-9.]+ is not detector strain.*use classify_window"):
        clf.classify(white)
    check_strain({d: x * 1e2 for d, x in good.items()}, 4096, 16)  # rms 1e-19: raw O3 strain, accepted
    check_strain({d: x * 1e-4 for d, x in good.items()}, 4096, 16)  # rms 1e-25: accepted


# --- the Classifier API: the same refusals, and window_start of the wrong type ---

def test_classifier_refuses_flat_and_bad_window_start(weights):
    clf = load_classifier(weights)
    good = _strain()
    flat = {**good, "V1": np.zeros_like(good["V1"])}
    for call in (clf.classify, clf.explain):
        with pytest.raises(ValueError, match=r"^detector V1 is flat \(all samples equal 0\)"):
            call(flat)
    for bad in ("3", True, [3.0], np.array([3.0]), float("nan"), float("inf"), complex(3, 0)):
        with pytest.raises(ValueError, match=r"^window_start must be a finite number of seconds \(int or float\) or None"):
            clf.classify(good, window_start=bad)
    assert clf.classify(good, window_start=np.int64(5)).window_start == 5.0
    assert clf.classify(good, window_start=np.float32(5.5)).window_start == 5.5
    with pytest.raises(ValueError, match=r"window_start must be in \[1, 11\] s"):
        clf.classify(good, window_start=11.5)


def test_whitening_that_breaks_is_refused(weights, monkeypatch):
    """The guard behind check_strain: a non-finite whitened window never reaches the model."""
    import gwviz.network_input as network_input
    clf = load_classifier(weights)
    for value in (0.0, float("nan")):  # a zero PSD whitens to zeros, a NaN one to NaN
        monkeypatch.setattr(network_input, "welch_psd", lambda t, fs: torch.full((*t.shape[:2], 2049), value, dtype=t.dtype))
        with pytest.raises(ValueError, match=r"^whitening \['H1', 'L1', 'V1'\] gave a non-finite or flat window"):
            clf.classify(_strain())


def test_load_classifier_argument_types(weights, tmp_path):
    with pytest.raises(ValueError, match="path must be a weights file path"):
        load_classifier(123)
    with pytest.raises(ValueError, match="device must name a torch device"):
        load_classifier(weights, device="gpu please")
    # a folder was "no such weights file"; a non-bool flag passed silently
    with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path))}: a directory, not a weights file"):
        load_classifier(tmp_path)
    with pytest.raises(ValueError, match="^allow_untrained must be True or False, got 'yes'"):
        load_classifier(weights, allow_untrained="yes")


def test_windows_must_be_floating_point(weights):
    """An integer or bool whitened window (a cast that truncated it) was classified and explained as it
    was; now refused by classify_window, predict_windows and explain_window, as are half-precision
    windows (lossy, refused like half-precision strain); float32 and float64 agree."""
    clf = load_classifier(weights)
    window = make_sample("BBH", SimulatedNoise(), seed=1, snr_range=(20.0, 20.0)).data
    for bad in (np.round(window).astype(np.int64), window > 0, torch.as_tensor(window).round().int(),
                window.astype(np.float16), torch.as_tensor(window).bfloat16(), window.astype(np.complex64)):
        with pytest.raises(ValueError, match=r"^window has dtype .*: whitened strain is float32 or float64"):
            clf.classify_window(bad)
        with pytest.raises(ValueError, match=r"^windows has dtype .*: whitened strain is float32 or float64"):
            clf.predict_windows(bad[None])
        with pytest.raises(ValueError, match=r"^window has dtype .*: whitened strain is float32 or float64"):
            clf.explain_window(bad, target="BBH")
    ref = clf.classify_window(window)
    double = clf.classify_window(window.astype(np.float64))
    assert double.label == ref.label and np.allclose(double.logits, ref.logits, atol=1e-4)
    assert np.allclose(clf.predict_windows(torch.as_tensor(window)[None]), clf.predict_windows(window[None]))


def test_windows_that_cannot_be_whitened_strain_are_refused(weights):
    """Raw strain (σ ~ 1e-21) passed as a window, a constant channel, or values no whitening makes were
    classified as noise or as NSBH at λ = 190 (a constant window); now refused by all three methods.
    A loud glitch (1e4 σ in one sample) is whitened data and still classified."""
    clf = load_classifier(weights)
    window = make_sample("BBH", SimulatedNoise(), seed=1, snr_range=(20.0, 20.0)).data.astype(np.float32)
    constant_l1 = window.copy()
    constant_l1[1] = 1.0
    glitch = window.copy()
    glitch[0, 100] = 1e4
    cases = [(window * 1e-21, r"window(?: 0)?: H1 has σ = 1\.\d+e-21: not whitened strain .* goes to classify\(\)"),
             (np.ones_like(window), r"window(?: 0)?: H1 is constant: whitened strain is noise"),
             (constant_l1, r"window(?: 0)?: L1 is constant"),
             (window * 1e30, r"window reaches \|x\| = .*e\+30: whitened strain is O\(1\)")]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            clf.classify_window(bad)
        with pytest.raises(ValueError, match=message):
            clf.predict_windows(bad[None])
        with pytest.raises(ValueError, match=message):
            clf.explain_window(bad, target="BBH")
    with pytest.raises(ValueError, match=r"^window 1: L1 is constant"):
        clf.predict_windows(np.stack([window, constant_l1]))
    assert clf.classify_window(glitch).label in ("noise", "BBH", "NSBH", "BNS")
    assert clf.explain_window(glitch, target="BBH").shape == (16384,)


def test_make_sample_and_draw_params_check_their_arguments():
    """Each of these failed deep in numpy or LAL (AttributeError, 'high - low < 0', 'Input domain error',
    'high - low range exceeds valid bounds') or was ignored; now a ValueError (TypeError for a keyword
    draw_params does not take) naming the argument, before any waveform is made."""
    from gwviz.data.params import draw_params
    noise = SimulatedNoise()
    cases = [
        (dict(rng=5), ValueError, r"^rng must be a numpy.random.Generator"),
        (dict(seed=0, snr_range=(24, 8)), ValueError, r"^snr_range must be \(lo, hi\), two finite numbers with lo <= hi"),
        (dict(seed=0, snr_range=(float("nan"), 2)), ValueError, r"^snr_range must be \(lo, hi\)"),
        (dict(seed=0, snr_range=(0, 5)), ValueError, r"^snr_range \(0, 5\): network SNR must be a finite number > 0, got 0"),
        (dict(seed=0, gps_span=(2e9, 1e9)), ValueError, r"^gps_span must be \(lo, hi\)"),
        (dict(seed=0, merger_span=float("nan")), ValueError, r"^merger_span must be a finite number of seconds >= 0"),
        (dict(seed=0, foo=1), TypeError, r"^make_sample\(\) got unexpected keyword arguments \['foo'\]"),
        (dict(seed=0, params=SignalParams("BBH", 30, 20, snr=10), snr_range=(20, 20)), ValueError,
         r"^\['snr_range'\] would be ignored: params are given"),
    ]
    for kw, err, message in cases:
        with pytest.raises(err, match=message):
            make_sample("BBH", noise, **kw)
    for source in (None, "simulated"):
        with pytest.raises(ValueError, match=r"^noise_source must have segment\(duration, rng\)"):
            make_sample("BBH", source, seed=0)
    with pytest.raises(ValueError, match=r"^snr_range must be \(lo, hi\)"):  # checked for noise too
        make_sample("noise", noise, seed=0, snr_range=(24, 8))
    with pytest.raises(ValueError, match=r"^rng must be a numpy.random.Generator"):
        draw_params("BBH", 3)
    for gps in (1e300, -1.0, 2.0**31):
        with pytest.raises(ValueError, match=r"^gps must be a GPS time in \[0, 2147483647\] s \(1980 to 2048"):
            SignalParams("BBH", 30, 20, snr=10, gps=gps)
    assert SignalParams("BBH", 30, 20, snr=10, gps=0.0).gps == 0.0
    s = make_sample("noise", noise, seed=0, snr_range=(20, 20))  # draw ranges are unused for noise
    assert s.label == 0


# --- K1 (KAGRA): one refusal everywhere (the network knows H1, L1, V1 only), skipped by folder readers ---

K1_REFUSED = r"detector 'K1' \(KAGRA\) is not one the network knows: it uses H1, L1 and V1 only"


def test_k1_is_refused_the_same_way_by_every_reader_and_check(tmp_path, monkeypatch):
    """read_strain and the block reader used to return K1 strain, read_detectors / check_strain /
    Classifier.classify refused it with three different messages, and check_channel took it."""
    from gwviz.network_input import present_detectors
    from gwviz.data.gwosc import cached_open_strain, fetch_event_strain
    from gwviz.data.checks import UnknownDetectorError, check_channel
    from gwviz.data.strain import Strain, find_real_strains, one_file_per_detector, read_detectors
    from gwviz.data.stream import open_detectors, open_strain_file
    rng = np.random.default_rng(4)
    n = 20 * 4096
    for det in ("H1", "L1", "V1", "K1"):
        _write_gwpy(tmp_path / f"{det}.hdf5", det, rng.normal(size=n) * 1e-21)
    _write_gwpy(tmp_path / "unnamed_K1.hdf5", None, rng.normal(size=n) * 1e-21)  # no channel: the file name says K1
    k1, good = tmp_path / "K1.hdf5", _strain()
    x = good["H1"]
    refusals = [
        lambda: read_strain(k1), lambda: read_strain(tmp_path / "unnamed_K1.hdf5"), lambda: open_strain_file(k1),
        lambda: read_detectors([tmp_path / "H1.hdf5", k1]), lambda: open_detectors([tmp_path / "H1.hdf5", k1]),
        lambda: one_file_per_detector(["H1", "K1"]), lambda: Strain("K1", x, 0.0, 4096.0),
        lambda: check_strain({**good, "K1": x}, 4096, 16), lambda: check_strain({"H1": x, "K1": x}, 4096, 16),
        lambda: check_strain({"H1": x}, 4096, 16, detectors=("H1", "K1")), lambda: check_channel("K1", x, 4096),
        lambda: check_channel(f"{k1}: K1", x, 4096), lambda: present_detectors({"H1": x, "K1": x}),
        lambda: StrainFiles(tmp_path, detectors=("H1", "K1")),
        lambda: fetch_event_strain("GW190521", 32, ("H1", "K1"), cache_dir=tmp_path / "cache"),
        lambda: cached_open_strain("K1", 1242442951, 32, tmp_path / "cache"),
    ]

    def no_fetch(*args):
        raise AssertionError("K1 must be refused before anything is fetched")

    monkeypatch.setattr("gwviz.data.gwosc.fetch_to_cache", no_fetch)
    for i, refuse in enumerate(refusals):
        with pytest.raises(UnknownDetectorError, match=K1_REFUSED):
            refuse()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    assert issubclass(UnknownDetectorError, ValueError)
    check_channel(f"{k1}: H1", x, 4096)  # the detector is the label's last name; a path is just a path
    # the folder readers document that they skip other detectors' files: K1 among them
    src = StrainFiles(tmp_path, exclude_gps=[])
    assert sorted(src.strain) == ["H1", "L1", "V1"] and "K1" not in src.name
    assert sorted(find_real_strains(tmp_path)) == ["H1", "L1", "V1"]


# --- real-noise files with a flat detector: refused by the noise source, never a sample ---

def test_strain_files_with_flat_detector(tmp_path):
    """V1 all zeros made the dataset builder write signal-labelled samples with no signal and SNR NaN."""
    rng = np.random.default_rng(3)
    n = 40 * 4096
    for det in ("H1", "L1"):
        _write_gwpy(tmp_path / f"{det}.hdf5", det, rng.normal(size=n) * 1e-21)
    for value in (0.0, 2e-21):
        _write_gwpy(tmp_path / "V1.hdf5", "V1", np.full(n, value))
        with pytest.raises(ValueError, match=r"^detector V1 is flat \(all samples equal\): a missing detector cannot "
                                             r"be padded with zeros \(.*V1.hdf5\)"):
            StrainFiles(tmp_path, exclude_gps=[])
    # zero-padded for its first 20 s: only the last 20 s are usable, and every segment is real noise
    _write_gwpy(tmp_path / "V1.hdf5", "V1", np.r_[np.zeros(20 * 4096), rng.normal(size=20 * 4096) * 1e-21])
    src = StrainFiles(tmp_path, exclude_gps=[])
    assert src.spans() == [(pytest.approx(1238170020.0), pytest.approx(1238170040.0))]
    for i in range(5):
        s = make_sample("BBH", src, seed=i)
        assert s.meta["snr_network"] == pytest.approx(s.meta["snr"]) and np.abs(s.signal[2]).max() > 0
    _write_gwpy(tmp_path / "V1.hdf5", "V1", np.r_[np.zeros(30 * 4096), rng.normal(size=10 * 4096) * 1e-21])
    with pytest.raises(ValueError, match="no 16-s span"):
        StrainFiles(tmp_path, exclude_gps=[]).segment(16.0, np.random.default_rng(0))


def test_strain_file_of_integers_refused(tmp_path):
    _write_gwpy(tmp_path / "H1.hdf5", "H1", np.arange(20 * 4096, dtype=np.int32))
    with pytest.raises(ValueError, match=r"H1.hdf5: strain has dtype int32 \(integer samples"):
        read_strain(tmp_path / "H1.hdf5")
    with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path))}: a directory, not a strain file"):
        read_strain(tmp_path)  # was "no such file"


@pytest.mark.parametrize("device, message", [
    ("cuda", "device 'cuda' asked for, but CUDA is not available on this machine; use 'cpu'"),
    ("cuda:1", "device 'cuda:1' asked for, but CUDA is not available"),
    ("meta", "device 'meta': gwviz runs on 'cpu' or 'cuda[:N]'"),
])
def test_device_that_is_not_here(weights, monkeypatch, device, message):
    """'cuda' on a machine without a GPU was a RuntimeError deep in torch; now a message, for the
    classifier and for train.py alike (CI has no GPU; the patch makes the case the same everywhere)."""
    from gwviz.training import pick_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        load_classifier(weights, device=device)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        pick_device(device)


def test_gpu_index_beyond_the_machine(monkeypatch):
    from gwviz.classifier import check_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match=r"^device 'cuda:3': this machine has 1 CUDA device\(s\)"):
        check_device("cuda:3")


def test_odd_arguments_are_messages(weights):
    """Found by a sweep of odd arguments: each was a TypeError/RuntimeError or a silent NaN."""
    from gwviz.data.noise import SimulatedNoise
    clf = load_classifier(weights)
    with pytest.raises(ValueError, match=r"^window must be \(3, 16384\) whitened strain, got \(2, 16384\)"):
        clf.classify_window(np.zeros((2, 16384), np.float32))
    with pytest.raises(ValueError, match="^window contains NaN or inf"):
        clf.classify_window(np.full((3, 16384), np.nan, np.float32))
    with pytest.raises(ValueError, match="^windows contain NaN or inf"):  # was: NaN probabilities returned
        clf.predict_windows(np.full((1, 3, 16384), np.nan, np.float32))
    for seed in (1.5, -1, True, "3"):
        with pytest.raises(ValueError, match="^seed must be a non-negative integer or None"):
            make_sample("noise", SimulatedNoise(), seed=seed)


def test_rate_must_be_a_number():
    from gwviz.evaluation.calibration import Calibration
    cal = Calibration.from_dict({"thresholds": {"0.01": 1.0}, "fpr_grid": [1, 0.1], "stat_grid": [0, 1], "n_noise": 10})
    assert cal.threshold(0.01) == 1.0
    for rate in (None, "0.01", True, [0.01]):
        with pytest.raises(ValueError, match="^rate must be a number"):
            cal.threshold(rate)


def test_strain_too_long_to_whiten_in_one_piece_is_refused_before_any_copy():
    """A day of strain handed to classify() would have been copied to float64 and transformed whole
    (~8 GB for three detectors); it is refused from its length alone (here read-only views of one
    number, so nothing is allocated), pointing to the block-by-block scan."""
    import gwviz
    from gwviz.network_input import MAX_WHITEN_DURATION
    day = {d: np.broadcast_to(np.float64(1e-21), (86400 * 4096,)) for d in ("H1", "L1", "V1")}
    clf = gwviz.load_classifier()
    for call in (clf.classify, clf.explain, clf.analyse):
        with pytest.raises(ValueError, match=r"86400 s of strain: classify/explain whiten at most 4096 s .* gwviz.scan"):
            call(day)
    assert MAX_WHITEN_DURATION == 4096.0
