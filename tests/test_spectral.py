"""The fast spectral paths of the one synthesis path give the textbook results (2026-12-03 speed-up).

The Welch PSD removes each segment's mean after the FFT and scales the median instead of every
periodogram; on the GPU its median comes from a compiled sorting network; whitening transforms only
the span the filter reaches; projection shifts each waveform on a short buffer. Each is checked here
against the direct computation it replaced, in float64.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gwviz.data.detectors import detector_geometry
from gwviz.data.psd import _middle_values, median_bias, merge_network, sorted_median, welch_psd
from gwviz.data.projection import SHIFT_PAD, fft_length, project
from gwviz.data.whiten import whiten, whiten_span

FS = 4096


def textbook_welch(x: np.ndarray, n_seg: int, step: int) -> np.ndarray:
    """Median Welch of the last axis: mean removed per segment, periodic Hann, median over segments."""
    segs = np.lib.stride_tricks.sliding_window_view(x, n_seg, axis=-1)[..., ::step, :]
    segs = segs - segs.mean(-1, keepdims=True)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_seg) / n_seg)
    per = np.abs(np.fft.rfft(segs * win, axis=-1)) ** 2 * 2.0 / (FS * (win ** 2).sum())
    k = per.shape[-2]
    bias = median_bias(k) if k % 2 else 0.5 * (median_bias(k - 1) + median_bias(k + 1))
    return np.median(per, axis=-2) / bias


@pytest.mark.parametrize("n_seg,n", [(4096, 16 * 4096), (4096, 15 * 4096 + 2048), (3, 40), (4, 41), (8, 64)])
def test_welch_psd_is_the_textbook_median_welch(n_seg, n):
    rng = np.random.default_rng(n_seg + n)
    x = rng.normal(size=(2, 3, n)) * 2.0 + 5.0  # a large mean: the post-FFT mean removal must take it out
    got = welch_psd(torch.as_tensor(x), FS, seg_duration=n_seg / FS).numpy()
    want = textbook_welch(x, n_seg, n_seg // 2)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * want.max())


@pytest.mark.parametrize("n", list(range(1, 41)) + [64, 65])
def test_merge_network_sorts(n):
    rng = np.random.default_rng(n)
    x = torch.as_tensor(rng.integers(-3, 4, size=(20, n, 5)).astype(np.float64))  # ties on purpose
    x[0, 0, 0] = float("inf")
    x[1, -1, 1] = -float("inf")
    v = list(x.unbind(-2))
    for i, j in merge_network(n):
        assert 0 <= i < j < n
        v[i], v[j] = torch.minimum(v[i], v[j]), torch.maximum(v[i], v[j])
    assert torch.equal(torch.stack(v, -2), x.sort(dim=-2).values)


@pytest.mark.parametrize("k", [1, 2, 30, 31])
def test_network_middle_is_the_median(k):
    # what the GPU runs compiled, run eagerly: exactly the middle order statistic(s), never a blend of
    # neighbours (before 2026-12-03 the GPU averaged the 15th and 16th of 31 periodograms: 4 % low)
    per = torch.as_tensor(np.random.default_rng(k).exponential(size=(7, k, 9)))
    lo, hi = _middle_values(per, tuple(merge_network(k)), k)
    srt = per.sort(dim=-2).values
    assert torch.equal(lo, srt[:, (k - 1) // 2]) and torch.equal(hi, srt[:, k // 2])
    np.testing.assert_allclose((0.5 * (lo + hi)).numpy(), np.median(per.numpy(), axis=-2), rtol=1e-15)
    # the sort the GPU falls back to without Triton
    np.testing.assert_allclose(sorted_median(per).numpy(), np.median(per.numpy(), axis=-2), rtol=1e-15)


def test_whiten_span_is_the_window_of_whole_whitening():
    rng = np.random.default_rng(3)
    x = torch.as_tensor(np.cumsum(rng.normal(size=(2, 3, 16 * FS)), -1))  # red noise: a filter that matters
    psd = welch_psd(x, FS)
    full = whiten(x, psd, FS)
    for start, length in [(10 * FS, 4 * FS), (FS, 4 * FS), (0, FS), (12 * FS, 4 * FS), (5 * FS + 17, 1000)]:
        got = whiten_span(x, psd, FS, start, length)
        want = full[..., start:start + length]
        assert got.shape == want.shape
        assert float((got - want).abs().max()) < 1e-9 * float(want.abs().max()), (start, length)
    for start, length in [(-1, 10), (0, 0), (16 * FS - 5, 10)]:
        with pytest.raises(ValueError, match="does not fit"):
            whiten_span(x, psd, FS, start, length)


def whole_buffer_project(hp, hc, fp, fc, shift, n):
    """The circular fractional shift over all n samples (project before 2026-12-03)."""
    f = torch.fft.rfftfreq(n, 1.0 / FS, dtype=hp.dtype)
    h = fp[..., None] * torch.fft.rfft(hp, n=n)[:, None] + fc[..., None] * torch.fft.rfft(hc, n=n)[:, None]
    return torch.fft.irfft(h * torch.exp(-2j * torch.pi * shift[..., None] * f), n=n)


def test_project_on_a_short_buffer_matches_the_whole_buffer():
    b, length, n = 6, 8 * FS, 16 * FS
    t = torch.arange(length, dtype=torch.float64)
    env = torch.clamp(t / FS, 0, 1) * torch.exp(-torch.clamp(t - 7 * FS, min=0) / 200.0)  # taper, peak, decay
    gen = torch.Generator().manual_seed(0)
    hp = torch.sin(0.05 * t + 2e-6 * t ** 2) * env * (1 + torch.rand(b, 1, generator=gen, dtype=torch.float64))
    hc = torch.cos(0.05 * t + 2e-6 * t ** 2) * env * torch.ones(b, 1, dtype=torch.float64)
    fp, fc = torch.randn(b, 3, generator=gen, dtype=torch.float64), torch.randn(b, 3, generator=gen, dtype=torch.float64)
    shift = 7.0 + 0.1 * torch.rand(b, 1, generator=gen, dtype=torch.float64) \
        + 0.021 * (2 * torch.rand(b, 3, generator=gen, dtype=torch.float64) - 1)
    shift[0] = torch.tensor([-0.3, -0.31, -0.29], dtype=torch.float64)  # starts before the buffer: wraps
    shift[1] = torch.tensor([9.5, 9.51, 9.49], dtype=torch.float64)  # runs past the end: wraps
    assert fft_length(length + 2 * SHIFT_PAD) < n  # the short path is the one under test
    got = project(hp, hc, fp, fc, shift, n, FS)
    want = whole_buffer_project(hp, hc, fp, fc, shift, n)
    rel = (got - want).abs().amax((-1, -2)) / want.abs().amax((-1, -2))
    assert float(rel.max()) < 1e-6, rel


def test_fft_length_is_the_next_7_smooth_number():
    def smooth(v):
        for p in (2, 3, 5, 7):
            while v % p == 0:
                v //= p
        return v == 1
    for n in list(range(1, 300)) + [20480, 34816, 65537]:
        assert fft_length(n) == next(v for v in range(n, 2 * n + 1) if smooth(v)), n


def test_detector_geometry_is_cached_and_unchanged():
    a = detector_geometry()
    b = detector_geometry(device="cpu")
    assert a[0] is b[0] and a[1] is b[1]  # no host copy per batch
    c = detector_geometry(dtype=torch.float32)
    assert c[0].dtype == torch.float32 and torch.allclose(c[0].double(), a[0], atol=1e-7)
    assert a[1].norm(dim=-1).min() > 6.3e6  # Earth-fixed positions [m]
