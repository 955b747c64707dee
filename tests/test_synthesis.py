"""Physics of the one synthesis path: SNR, whitening, merger placement, projection."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pycbc.detector import Detector
from pycbc.filter import sigma
from pycbc.psd import welch as pycbc_welch
from pycbc.types import FrequencySeries, TimeSeries

from gwviz.constants import DETECTORS, F_UPPER_SNR, SAMPLE_RATE, WINDOW_SAMPLES
from gwviz.data.detectors import antenna_patterns, gmst, time_delays
from gwviz.data.noise import NoiseSegment, SimulatedNoise, StrainFiles
from gwviz.data.params import SignalParams, draw_params
from gwviz.data.psd import analytic_psd, welch_psd
from gwviz.constants import STRAIN_SCALE
from gwviz.data.projection import project
from gwviz.data.synth import Injection, make_sample, synthesize
from gwviz.data.waveforms import polarisations

FS = SAMPLE_RATE
DF_WIN = FS / WINDOW_SAMPLES  # 0.25 Hz


def pycbc_network_snr(signal: np.ndarray, psds: list[np.ndarray]) -> float:
    """Independent SNR: pycbc.filter.sigma of each detector's window with the given PSD."""
    total = 0.0
    for h, p in zip(signal, psds):
        ts = TimeSeries(h, delta_t=1.0 / FS)
        total += sigma(ts, psd=FrequencySeries(p, delta_f=DF_WIN), low_frequency_cutoff=20.0,
                       high_frequency_cutoff=F_UPPER_SNR) ** 2
    return float(np.sqrt(total))


@pytest.mark.parametrize("kind", ["BBH", "NSBH", "BNS"])
def test_snr_simulated_matches_pycbc_sigma(kind):
    noise = SimulatedNoise()
    rng = np.random.default_rng(11)
    for _ in range(2):
        s = make_sample(kind, noise, rng=rng)
        psds = [analytic_psd(d, DF_WIN, WINDOW_SAMPLES // 2 + 1) for d in DETECTORS]
        got = pycbc_network_snr(s.signal, psds)
        assert got == pytest.approx(s.meta["snr"], rel=0.02)
        assert s.meta["snr_network"] == pytest.approx(s.meta["snr"], rel=1e-6)


@pytest.mark.parametrize("kind", ["BBH", "NSBH", "BNS"])
def test_snr_real_noise_matches_pycbc_sigma(kind, data_dir):
    """In real noise the SNR uses the PSD of the noise it goes into: pycbc's own median Welch
    estimate of the noise-only segment must give the same SNR within 2 %."""
    source = StrainFiles(data_dir / "gwpy_format")
    rng = np.random.default_rng(5)
    seg = source.segment(16.0, rng)
    noise = seg.strain.copy()
    s = make_sample(kind, source, rng=rng, segment=seg)
    psds = []
    for x in noise:
        p = pycbc_welch(TimeSeries(x * STRAIN_SCALE, delta_t=1 / FS), seg_len=FS, seg_stride=FS // 2,
                        avg_method="median", window="hann")
        psds.append(np.interp(np.arange(WINDOW_SAMPLES // 2 + 1) * DF_WIN, p.sample_frequencies, p.numpy())
                    / STRAIN_SCALE ** 2)
    assert pycbc_network_snr(s.signal, psds) == pytest.approx(s.meta["snr"], rel=0.02)


def _white_psd_stats(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variance per detector and the Welch PSD (× fs/2, so white = 1) per detector in 30-1000 Hz."""
    x = torch.as_tensor(windows, dtype=torch.float64)  # (N, 3, T)
    var = x.var(-1).mean(0).numpy()
    p = welch_psd(x, FS, seg_duration=0.5).mean(0).numpy() * FS / 2  # 2 Hz bins
    f = np.arange(p.shape[-1]) * 2.0
    band = (f >= 30) & (f <= 1000)
    return var, p[:, band]


def _assert_white(windows, tol_all: float, tol_90: float = 0.2):
    var, p = _white_psd_stats(windows)
    assert np.all(np.abs(var - 1) < 0.05), var
    # Flat: 30-Hz averages of the PSD (white, unit variance = 1) across 30-1000 Hz. Real O3 data
    # keeps some non-stationary lines (e.g. L1 near 950-966 Hz), so the bound on every band is
    # looser there than on 90 % of the band.
    smooth = np.stack([np.convolve(q, np.ones(15) / 15, mode="valid") for q in p])
    assert np.all(np.abs(smooth - 1) < tol_all), (smooth.min(), smooth.max())
    lo, hi = np.percentile(smooth, [5, 95], axis=1)
    assert np.all(lo > 1 - tol_90) and np.all(hi < 1 + tol_90), (lo, hi)


def test_whitened_simulated_noise_is_white():
    noise = SimulatedNoise()
    rng = np.random.default_rng(0)
    _assert_white(np.stack([make_sample("noise", noise, rng=rng).data for _ in range(6)]), tol_all=0.2, tol_90=0.15)


def test_whitened_real_noise_is_white(data_dir):
    source = StrainFiles(data_dir / "gwpy_format")
    rng = np.random.default_rng(1)
    _assert_white(np.stack([make_sample("noise", source, rng=rng).data for _ in range(6)]), tol_all=0.35, tol_90=0.2)


def test_merger_index_at_waveform_peak():
    """The amplitude envelope of the injected signal peaks at the recorded merger index.

    A second injection with the coalescence phase advanced by π/4 is the quadrature of the
    first for the dominant (2,2) mode with the same SNR scaling, so h² + h_q² is the squared
    envelope in each detector (exact for SEOBNRv4; SpinTaylorT4 ends at its peak)."""
    import copy
    noise = SimulatedNoise()
    rng = np.random.default_rng(3)
    checked = 0
    for kind in ("BBH", "BBH", "NSBH", "BNS"):
        p = draw_params(kind, rng)
        if kind != "BBH":
            p.inclination = 0.0
        seg = noise.segment(16.0, rng)
        q = copy.deepcopy(p)
        q.coa_phase += np.pi / 4
        a = make_sample(kind, noise, params=p, segment=copy.deepcopy(seg))
        b = make_sample(kind, noise, params=q, segment=copy.deepcopy(seg))
        for j, d in enumerate(DETECTORS):
            m = a.meta[f"merger_index_{d}"]
            if m >= WINDOW_SAMPLES - 2:  # this detector sees the merger after the window's end
                continue
            env = a.signal[j] ** 2 + b.signal[j] ** 2
            # SpinTaylorT4 stops abruptly at its peak, light systems above 1.5 kHz, where injected signals are
            # band-limited like 4-kHz data (SIGNAL_BAND): the envelope of what is left peaks up to 2 ms early.
            tol = 1 if kind == "BBH" else 8
            assert abs(int(np.argmax(env)) - m) <= tol, (kind, d, int(np.argmax(env)), m)
            checked += 1
    assert checked >= 8


def test_injected_signals_are_band_limited_like_4khz_data():
    """A light BNS, which SpinTaylorT4 runs to ~2 kHz, is injected with nothing above F_SIGNAL_STOP and its
    spectrum untouched below F_UPPER_SNR (the SNR band), as a real signal in GWOSC's anti-aliased 4-kHz strain."""
    from gwviz.constants import F_SIGNAL_STOP
    from gwviz.data.projection import band_response
    p = draw_params("BNS", np.random.default_rng(2))
    p.mass1, p.mass2 = 1.05, 1.02
    s = make_sample("BNS", SimulatedNoise(), params=p, rng=np.random.default_rng(4))
    power = np.abs(np.fft.rfft(s.signal, axis=-1)) ** 2
    f = np.fft.rfftfreq(WINDOW_SAMPLES, 1 / FS)
    raw = polarisations(p, FS)  # the unlimited waveform does reach above the stop band
    raw_power = np.abs(np.fft.rfft(raw.hp[raw.peak_index - WINDOW_SAMPLES // 2:raw.peak_index])) ** 2
    raw_f = np.fft.rfftfreq(WINDOW_SAMPLES // 2, 1 / FS)
    assert raw_power[raw_f > F_SIGNAL_STOP].sum() > 1e-4 * raw_power.sum()
    assert power[:, f > F_SIGNAL_STOP + 10].sum() < 1e-5 * power.sum()  # what is left: the 4-s crop's leakage
    assert power[:, (f >= 20) & (f <= F_UPPER_SNR)].sum() > 0.99 * power.sum()
    r = band_response(torch.tensor([0.0, 1500.0, 1550.0, 1600.0, 2000.0], dtype=torch.float64), 1500.0, 1600.0)
    assert r.tolist() == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0], abs=1e-12)
    with pytest.raises(ValueError, match="f_pass < f_stop"):
        band_response(torch.zeros(3), 1600.0, 1500.0)


def test_projection_places_peak_with_fractional_delay():
    n = 8192
    t = np.arange(n)
    pulse = torch.as_tensor(np.exp(-0.5 * ((t - 1000) / 6.0) ** 2))[None]
    shift = torch.tensor([[0.0123, -0.0071, 0.02]])  # s
    out = project(pulse, torch.zeros_like(pulse), torch.ones(1, 3, dtype=torch.float64),
                  torch.zeros(1, 3, dtype=torch.float64), shift.double(), n, FS)[0].numpy()
    for row, sh in zip(out, shift[0].numpy()):
        # parabolic peak interpolation: sub-sample peak position
        k = int(np.argmax(row))
        y0, y1, y2 = row[k - 1:k + 2]
        peak = k + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
        assert peak == pytest.approx(1000 + sh * FS, abs=0.05)


def test_antenna_patterns_and_delays_match_pycbc():
    rng = np.random.default_rng(7)
    ra, dec, psi = rng.uniform(0, 2 * np.pi, 20), np.arcsin(rng.uniform(-1, 1, 20)), rng.uniform(0, np.pi, 20)
    gps = rng.uniform(1238163456, 1239879680, 20)
    g = torch.as_tensor(gmst(gps))
    fp, fc = antenna_patterns(torch.as_tensor(ra), torch.as_tensor(dec), torch.as_tensor(psi), g)
    dt = time_delays(torch.as_tensor(ra), torch.as_tensor(dec), g)
    for j, d in enumerate(DETECTORS):
        det = Detector(d, reference_time=None)  # exact sidereal time, not pycbc's linear estimate
        for i in range(20):
            ep, ec = det.antenna_pattern(ra[i], dec[i], psi[i], gps[i])
            # LAL's GMST and astropy's (pycbc) differ by ~1e-5 rad (UT1/nutation conventions)
            assert fp[i, j].item() == pytest.approx(ep, abs=1e-4)
            assert fc[i, j].item() == pytest.approx(ec, abs=1e-4)
            assert dt[i, j].item() == pytest.approx(det.time_delay_from_earth_center(ra[i], dec[i], gps[i]), abs=1e-5)


def test_sample_delays_match_pycbc_time_delay_from_detector():
    noise = SimulatedNoise()
    rng = np.random.default_rng(9)
    for _ in range(3):
        s = make_sample("BBH", noise, rng=rng)
        m = s.meta
        for a, b in (("H1", "L1"), ("H1", "V1"), ("L1", "V1")):
            want = Detector(a, reference_time=None).time_delay_from_detector(
                Detector(b, reference_time=None), m["ra"], m["dec"], m["gps"])
            got = (m[f"merger_index_{a}"] - m[f"merger_index_{b}"]) / FS
            assert abs(got - want) <= 1.0 / FS + 1e-9


def test_merger_lands_in_last_tenth_of_second():
    noise = SimulatedNoise()
    rng = np.random.default_rng(4)
    for _ in range(5):
        s = make_sample("NSBH", noise, rng=rng)
        assert WINDOW_SAMPLES - 0.1 * FS <= s.meta["merger_index"] <= WINDOW_SAMPLES


def test_polarisations_cover_the_window_and_start_late_for_bns():
    p = SignalParams("BNS", 1.0, 1.0, snr=10)
    pol = polarisations(p)
    assert pol.f_start > 40  # not the 281-s waveform from 20 Hz
    first = np.flatnonzero(pol.hp)[0]
    assert (pol.peak_index - first) / FS >= 5.5  # window (4 s) + half whitening filter + taper
    assert np.argmax(pol.hp ** 2 + pol.hc ** 2) == pol.peak_index


def test_polarisations_are_cached_on_intrinsic_parameters_only_and_returned_as_copies():
    """An SNR or sky change reuses the waveform; masses, inclination or phase make a new one; a caller
    writing into its arrays does not change what the next caller gets."""
    from gwviz.data import waveforms
    waveforms._intrinsic.cache_clear()
    a = polarisations(SignalParams("BBH", 36.0, 29.0, snr=10, inclination=0.4, ra=1.0))
    a.hp[:] = 0.0  # the caller's own copy
    b = polarisations(SignalParams("BBH", 36.0, 29.0, snr=20, inclination=0.4, ra=2.0, dec=0.5))
    assert waveforms._intrinsic.cache_info().hits == 1
    assert np.any(b.hp) and b.hp.flags.writeable and b.peak_index == a.peak_index
    waveforms._intrinsic.cache_clear()
    fresh = polarisations(SignalParams("BBH", 36.0, 29.0, snr=20, inclination=0.4))
    np.testing.assert_array_equal(fresh.hp, b.hp)  # the cached waveform is LAL's, untouched
    for other in (SignalParams("BBH", 36.0, 28.0, snr=20, inclination=0.4),
                  SignalParams("BBH", 36.0, 29.0, snr=20, inclination=0.5),
                  SignalParams("BBH", 36.0, 29.0, snr=20, inclination=0.4, coa_phase=1.0)):
        assert not np.array_equal(polarisations(other).hp, fresh.hp)
    assert waveforms._intrinsic.cache_info().hits == 0


def test_batched_float32_path_agrees_with_cpu_sample():
    """The trainer's batched float32 path (same synthesize) reproduces the float64 CPU sample."""
    noise = SimulatedNoise()
    rng = np.random.default_rng(21)
    p = draw_params("BBH", rng)
    seg = noise.segment(16.0, np.random.default_rng(1))
    ref = make_sample("BBH", noise, params=p, segment=seg)
    seg2 = noise.segment(16.0, np.random.default_rng(1))
    p.snr = ref.meta["snr"]
    got = make_sample("BBH", noise, params=p, segment=seg2, dtype=torch.float32)
    err = np.linalg.norm(got.data - ref.data) / np.linalg.norm(ref.data)
    assert err < 1e-3  # float32 FFTs over 16 s of coloured noise
    # a batch of two rows equals the rows made one at a time
    noise_t = torch.as_tensor(np.stack([seg.strain, seg.strain[::-1].copy()]) * STRAIN_SCALE)
    pol = polarisations(p)
    hp = torch.as_tensor(np.stack([pol.hp, pol.hp]) * STRAIN_SCALE)
    hc = torch.as_tensor(np.stack([pol.hc, pol.hc]) * STRAIN_SCALE)
    fp, fc, dl = torch.rand(2, 3, dtype=torch.float64), torch.rand(2, 3, dtype=torch.float64), torch.rand(2, 3, dtype=torch.float64) * 0.02
    mo, snr = torch.tensor([0.03, 0.07], dtype=torch.float64), torch.tensor([10.0, 20.0], dtype=torch.float64)
    both = synthesize(noise_t, FS, Injection(hp=hp, hc=hc, peak_index=pol.peak_index, fp=fp, fc=fc, delays=dl,
                                             merger_offset=mo, snr=snr))
    for i in range(2):
        r = slice(i, i + 1)
        one = synthesize(noise_t[r], FS, Injection(hp=hp[r], hc=hc[r], peak_index=pol.peak_index, fp=fp[r], fc=fc[r],
                                                   delays=dl[r], merger_offset=mo[r], snr=snr[r]))
        assert torch.allclose(both.data[i], one.data[0], atol=1e-6)
        assert torch.allclose(both.snr[i].square().sum().sqrt(), snr[i])


# --- bad input to the synthesis path: a clear ValueError, or a sample that is what its metadata says ---

@pytest.mark.parametrize("name", ["ra", "dec", "polarization", "inclination", "coa_phase", "gps", "merger_offset"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "0.1", None, True])
def test_non_finite_or_non_numeric_angles_refused(name, value):
    """NaN/inf inclination, polarisation or phase made NaN samples; strings and bools are not angles."""
    with pytest.raises(ValueError, match=f"^{name} must be a finite number"):
        SignalParams("BBH", 30, 20, snr=10, **{name: value})


@pytest.mark.parametrize("offset", [4.0, 4.5, 5, 13, 100, -0.01])
def test_merger_offset_outside_window_refused(offset):
    """Beyond the window the sample claimed SNR 10 while the window held no signal (or wrapped garbage)."""
    with pytest.raises(ValueError, match=r"merger_offset must be in \[0, 4\) s .* got " + f"{offset:g}$"):
        SignalParams("BBH", 30, 20, snr=10, merger_offset=offset)


def test_drawn_merger_offset_outside_window_refused():
    """Draws are checked too: a merger span beyond the window is refused, not sampled."""
    with pytest.raises(ValueError, match=r"merger_offset must be in \[0, 4\) s"):
        make_sample("BBH", SimulatedNoise(), seed=0, merger_span=1000.0)


def test_merger_near_window_start_holds_the_claimed_snr():
    """The last allowed offsets keep the merger in the window, and the window holds SNR 10."""
    s = make_sample("BBH", SimulatedNoise(), params=SignalParams("BBH", 30, 20, snr=10, merger_offset=3.9), seed=0)
    psds = [analytic_psd(d, DF_WIN, WINDOW_SAMPLES // 2 + 1) for d in DETECTORS]
    assert pycbc_network_snr(s.signal, psds) == pytest.approx(10, rel=0.02)
    assert 0 < s.meta["merger_index"] < 0.11 * FS


@pytest.mark.parametrize("approximant,message", [("Foo", "unknown approximant 'Foo'"),
                                                 ("SEOBNRv4_optt", "unknown approximant 'SEOBNRv4_optt'"),
                                                 (42, "approximant must be a LAL approximant name"),
                                                 ("TaylorF2", "'TaylorF2' is a frequency-domain model; gwviz injects "
                                                              "time-domain waveforms")])
def test_unknown_approximant(approximant, message):
    with pytest.raises(ValueError, match=message):
        SignalParams("BBH", 30, 20, snr=10, approximant=approximant)


@pytest.mark.parametrize("kw,message", [
    ({"mass1": True, "mass2": True, "kind": "BNS"}, "mass1 must be a positive finite number"),
    ({"mass1": float("inf")}, "mass1 must be a positive finite number"),
    ({"mass2": float("nan")}, "mass2 must be a positive finite number"),
    ({"mass2": -5}, "mass2 must be a positive finite number"),
    ({"mass1": "30"}, "mass1 must be a positive finite number"),
    ({"snr": True}, "network SNR must be a finite number > 0"),
    ({"snr": float("nan")}, "network SNR must be a finite number > 0"),
    ({"snr": 0.0}, "network SNR must be a finite number > 0"),
    ({"snr": -8}, "network SNR must be a finite number > 0"),
    ({"snr": np.float64("inf")}, "network SNR must be a finite number > 0"),
    ({"kind": ["BBH"]}, "unknown class"),
    ({"allow_outside": "yes"}, "allow_outside must be True or False"),
])
def test_bad_masses_snr_and_flags(kw, message):
    args = {"kind": "BBH", "mass1": 30.0, "mass2": 20.0, "snr": 10.0, **kw}
    with pytest.raises(ValueError, match=message):
        SignalParams(**args)


def _segment(strain, rate=FS):
    return NoiseSegment(strain, rate, 1238170000.0, "test", False)


def test_bad_noise_segments_refused():
    """A segment is checked like user strain: a flat V1 made signal-labelled samples with no signal
    and SNR NaN; a short one wrapped the waveform around the circular projection."""
    good = SimulatedNoise().segment(16.0, np.random.default_rng(0)).strain
    flat = good.copy()
    flat[2] = 0.0
    with pytest.raises(ValueError, match=r"detector V1 is flat \(all samples equal 0\)"):
        make_sample("BBH", SimulatedNoise(), segment=_segment(flat), seed=0)
    with pytest.raises(ValueError, match=r"need at least 16 s of strain \(65536 samples\), got 32768"):
        make_sample("BBH", SimulatedNoise(), segment=_segment(good[:, :8 * FS]), seed=0)
    nan = good.copy()
    nan[1, 5] = np.nan
    with pytest.raises(ValueError, match="L1: strain contains 1 NaN and 0 inf samples"):
        make_sample("noise", SimulatedNoise(), segment=_segment(nan), seed=0)
    with pytest.raises(ValueError, match="H1: strain has dtype int64"):
        make_sample("noise", SimulatedNoise(), segment=_segment((good * 1e21).astype(np.int64)), seed=0)
    with pytest.raises(ValueError, match=r"noise segment must be \(3, N\) at 4096 Hz"):
        make_sample("noise", SimulatedNoise(), segment=_segment(good[:2]), seed=0)
    with pytest.raises(ValueError, match="segment must be a gwviz.data.noise.NoiseSegment"):
        make_sample("noise", SimulatedNoise(), segment=good, seed=0)
    with pytest.raises(ValueError, match="params must be a gwviz.data.params.SignalParams"):
        make_sample("BBH", SimulatedNoise(), params={"mass1": 30}, seed=0)
    with pytest.raises(ValueError, match="dtype must be torch.float32 or torch.float64"):
        make_sample("noise", SimulatedNoise(), seed=0, dtype=torch.float16)


def test_make_sample_leaves_params_and_segment_alone(data_dir):
    """make_sample used to write params.gps (real noise) and segment.gps_start (simulated noise) on the
    caller's objects, so a reused SignalParams carried one segment's GPS time into the next sample. The
    result is the one the old in-place update gave: the same as passing the already-updated objects."""
    import copy
    from dataclasses import replace
    i_end = (16 * FS - 2 * FS) / FS  # the window's end, seconds after the segment's start
    # simulated noise: the segment is placed so that the merger lands at params.gps
    p = SignalParams("BBH", 30, 20, snr=12.0, ra=1.0, dec=0.2, gps=1238200000.5, merger_offset=0.04)
    seg = SimulatedNoise().segment(16.0, np.random.default_rng(2))
    p0, seg0 = copy.deepcopy(p), copy.deepcopy(seg)
    s = make_sample("BBH", None, params=p, segment=seg)
    assert p == p0 and seg.gps_start == seg0.gps_start and np.array_equal(seg.strain, seg0.strain)
    placed = replace(seg0, gps_start=p.gps - i_end + p.merger_offset)
    ref = make_sample("BBH", None, params=copy.deepcopy(p), segment=placed)
    assert np.array_equal(s.data, ref.data) and np.array_equal(s.signal, ref.signal) and s.meta == ref.meta
    assert s.meta["gps"] == p.gps and s.meta["gps_window_start"] == pytest.approx(placed.gps_start + 10.0)
    # real noise: the merger takes the segment's own GPS time
    real = StrainFiles(data_dir / "gwpy_format")
    seg = real.segment(16.0, np.random.default_rng(3))
    q = SignalParams("NSBH", 10, 1.4, snr=15.0, ra=2.0)
    q0, seg0 = copy.deepcopy(q), copy.deepcopy(seg)
    s = make_sample("NSBH", real, params=q, segment=seg)
    assert q == q0 and seg.gps_start == seg0.gps_start and np.array_equal(seg.strain, seg0.strain)
    gps = seg0.gps_start + i_end - q.merger_offset
    ref = make_sample("NSBH", real, params=replace(q0, gps=gps), segment=seg0)
    assert np.array_equal(s.data, ref.data) and np.array_equal(s.white_signal, ref.white_signal)
    assert s.meta == ref.meta and s.meta["gps"] == pytest.approx(gps)


def test_signal_that_cannot_reach_its_snr_is_refused(monkeypatch):
    """No sample whose metadata claims an SNR the window does not hold: an SNR that overflows, or a
    waveform with no power in the window (the guard behind the parameter checks)."""
    with pytest.raises(ValueError, match=r"network SNR 1e\+300 is above 1000: the signal would dominate the PSD"):
        make_sample("BBH", SimulatedNoise(), params=SignalParams("BBH", 30, 20, snr=1e300), seed=0)
    with pytest.raises(ValueError, match=r"snr_range \(8, 5000\): network SNR above 1000 is refused"):
        make_sample("BBH", SimulatedNoise(), seed=0, snr_range=(8, 5000))
    import gwviz.data.synth as synth
    zero = synth.polarisations(SignalParams("BBH", 30, 20, snr=10))
    zero.hp[:], zero.hc[:] = 0.0, 0.0
    monkeypatch.setattr(synth, "polarisations", lambda params, fs: zero)
    with pytest.raises(ValueError, match="it has no power above 20 Hz in the 4-s window"):
        make_sample("BBH", SimulatedNoise(), params=SignalParams("BBH", 30, 20, snr=10), seed=0)


def test_a_tiny_snr_keeps_its_value_in_the_metadata():
    """SNR 1e-300 is a valid (silent) injection; its network SNR, the root of the summed squares of
    the per-detector SNRs, used to underflow to 0 while the request said 1e-300."""
    s = make_sample("BBH", SimulatedNoise(), params=SignalParams("BBH", 30, 20, snr=1e-300), seed=0)
    assert s.meta["snr_network"] == pytest.approx(1e-300, rel=1e-9) and s.meta["snr_H1"] > 0
    assert np.isfinite(s.data).all()


def test_synthesize_checks_shapes():
    noise = torch.zeros(2, 3, 16 * FS, dtype=torch.float64)
    hp = torch.zeros(2, 8 * FS, dtype=torch.float64)
    b3 = torch.zeros(2, 3, dtype=torch.float64)
    b1 = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"noise must be a \(B, D, T\) float tensor"):
        synthesize(noise[0])
    with pytest.raises(ValueError, match="shorter than the window plus its end margin"):
        synthesize(noise[..., :5 * FS])
    ok = dict(hp=hp, hc=hp, peak_index=7 * FS, fp=b3, fc=b3, delays=b3, merger_offset=b1, snr=b1)
    for change, msg in (({"hc": hp[:, :-1]}, r"hp and hc must be \(2, L\) tensors of one shape"),
                        ({"peak_index": 8 * FS}, r"peak_index must be an int in \[0, 32768\)"),
                        ({"delays": b1}, r"delays must be a tensor of shape \(2, 3\)"),
                        ({"snr": 10.0}, r"snr must be a tensor of shape \(2,\)")):
        with pytest.raises(ValueError, match=msg):
            synthesize(noise, FS, Injection(**{**ok, **change}))
    with pytest.raises(TypeError):  # keyword-only: positional tensors cannot be swapped silently
        Injection(hp, hp, 7 * FS, b3, b3, b3, b1, b1)
    with pytest.raises(ValueError, match="injection must be a gwviz.data.synth.Injection"):
        synthesize(noise, FS, hp)


def test_psd_jitter_reshapes_each_rows_noise_and_its_snr_reference():
    from gwviz.data.bank import WaveformBank
    from gwviz.data.batch import BatchMaker
    bank = WaveformBank.build(1, seed=0, workers=1, progress=False)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"psd_jitter must be a number in \[0, 2\]"):
        BatchMaker(bank, psd_jitter=-1)
    from gwviz.data.noise import coloured_noise
    with pytest.raises(ValueError, match=r"per-segment PSDs \(2, 3, 5\) for a batch of 3"):
        coloured_noise(torch.ones(2, 3, 5), 8, SAMPLE_RATE, None, 3)
    flat, _ = BatchMaker(bank)._simulated_noise(24, g)
    mk = BatchMaker(bank, psd_jitter=0.5)
    noise, snr_psd = mk._simulated_noise(24, g)
    assert noise.shape == (24, 3, 16 * SAMPLE_RATE) and snr_psd.shape == (24, 3, WINDOW_SAMPLES // 2 + 1)
    f = np.arange(2049.0)  # the 1-s Welch grid [Hz]
    band = (f >= 20) & (f <= 1000)
    # each row's noise has the PSD its SNR is measured against (the 4-s grid at whole Hz: every 4th bin)
    truth = snr_psd[..., ::4].numpy()[..., :2049]
    ratio = np.log(welch_psd(noise, SAMPLE_RATE).numpy()[..., band] / truth[..., band])
    assert np.abs(np.median(ratio, axis=-1)).max() < 0.08, np.median(ratio, axis=-1)
    # ... and rows differ in shape: log PSD(25-40 Hz) - log PSD(400-600 Hz) spreads by ~0.5-1 across
    # rows with σ = 0.5, and only by the Welch estimate's scatter without
    def tilt(x):
        p = welch_psd(x, SAMPLE_RATE).numpy()
        return np.log(p[..., 25:41].mean(-1) / p[..., 400:601].mean(-1))
    spread, scatter = tilt(noise).std(0), tilt(flat).std(0)
    assert spread.min() > 0.4 and scatter.max() < 0.2 and (spread > 3 * scatter).all(), (spread, scatter)
