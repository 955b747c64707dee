"""Injections into long real strain (gwviz.evaluation.injections): the same signal, SNR and whitened window as the
one synthesis path (make_sample) gives for the same 16 s, and a scan finds them."""
from __future__ import annotations

import numpy as np
import pytest

from gwviz.network_input import whiten_window
from gwviz.constants import DETECTORS, SAMPLE_RATE
from gwviz.data.strain import read_real_strain
from gwviz.evaluation.injections import inject, main, summarise
from gwviz.data.noise import NoiseSegment
from gwviz.data.params import SignalParams
from gwviz.paths import BUNDLED_DATA
from gwviz.data.synth import make_sample


@pytest.fixture(scope="module")
def real():
    return read_real_strain(BUNDLED_DATA / "gwpy_format" / "GW190521_data")


@pytest.mark.parametrize("kind, m1, m2", [("BBH", 30.0, 20.0), ("BNS", 1.5, 1.3)])
def test_injection_matches_the_synthesis_path(real, kind, m1, m2):
    merger = 22.3  # s after the data start, in the held-out stretch
    p = SignalParams(kind, m1, m2, snr=12.0, ra=1.0, dec=0.3, polarization=0.4, inclination=0.7,
                     gps=real.t0 + merger, merger_offset=0.04)
    end = int(round((merger + p.merger_offset) * SAMPLE_RATE))
    y, rho = inject(real.strain, p, end)
    assert np.sqrt((rho ** 2).sum()) == pytest.approx(12.0, rel=1e-9)
    seg = slice(end + 2 * SAMPLE_RATE - 16 * SAMPLE_RATE, end + 2 * SAMPLE_RATE)
    mine, _ = whiten_window(dict(zip(DETECTORS, y[:, seg])))
    gps0 = real.t0 + seg.start / SAMPLE_RATE
    same = SignalParams(kind, m1, m2, snr=12.0, ra=1.0, dec=0.3, polarization=0.4, inclination=0.7, merger_offset=0.04)
    sample = make_sample(kind, None, params=same,
                         segment=NoiseSegment(real.strain[:, seg].copy(), SAMPLE_RATE, gps0, "GW190521", False))
    assert sample.meta["snr_network"] == pytest.approx(12.0, rel=1e-6)
    assert np.allclose([sample.meta[f"snr_{d}"] for d in DETECTORS], rho, rtol=1e-4)  # 16-s vs 32-s projection buffers
    assert np.abs(mine - sample.data).max() < 1e-4 * np.abs(sample.data).max()
    with pytest.raises(ValueError, match="no 16-s segment"):
        inject(real.strain, p, 31 * SAMPLE_RATE)


def test_cli_finds_loud_injections_and_summarises(tmp_path):
    rep = main(["--out", str(tmp_path), "--n", "1", "--snr", "30", "--no-progress"])
    assert [r["class"] for r in rep["injections"]] == ["BBH", "NSBH", "BNS"]
    assert all(r["found"] for r in rep["injections"]) and rep["per_class"]["BBH"]["right_class"] == 1.0
    assert (tmp_path / "injections.json").exists()
    s = summarise([{"class": c, "found": True, "label": c} for c in ("BBH", "NSBH", "BNS")])
    assert all(v["right_class"] == 1.0 and v["n"] == 1 for v in s.values())
    for bad in (["--n", "0"], ["--snr", "-1"], ["--seed", "-2"]):
        with pytest.raises(SystemExit):
            main(["--out", str(tmp_path / "b"), *bad])
