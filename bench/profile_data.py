"""Where the trainer's on-the-fly data time goes: BatchMaker stage by stage on one device.

    python bench/profile_data.py --device cuda --batch 1024 --real runs/h200/real.npz --out bench/results/data_stages_h200.json

Each stage of one batch (the same calls BatchMaker makes, in order) is timed alone with the device
synchronised, over ``--steps`` batches after one warm-up; the whole BatchMaker call is timed the same
way for reference. Real noise as in training (``p_real`` 0.2) when ``--real`` names load_real's .npz;
then the old mix (row flags: every row made real and simulated noise and a PSD estimate, before
2026-12-02) is timed in the same run, and the line prints old vs new. The Welch PSD and the whitening
as they were before 2026-12-03 (mean removed before the FFT, periodogram scaled before the median; all
16 s whitened and the window cut after) are timed next to today's on the same data.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time

import torch

from gwviz.data.bank import WaveformBank

from gwviz.data.batch import BatchMaker, load_real
from gwviz.constants import SAMPLE_RATE, WINDOW_SAMPLES
from gwviz.data.detectors import antenna_patterns, time_delays, uniform_gmst
from gwviz.data.noise import coloured_noise
from gwviz.data.psd import interpolate_psd, welch_psd
from gwviz.constants import window_start_index
from gwviz.data.projection import project
from gwviz.data.synth import snr_scale
from gwviz.data.psd import median_bias
from gwviz.data.whiten import whiten, whiten_span


def project_before(hp, hc, fp, fc, shift, n, sample_rate):
    """gwviz.data.synth.project before 2026-12-03: every transform over the whole n-sample buffer."""
    hpf = torch.fft.rfft(hp, n=n, dim=-1)[:, None]
    hcf = torch.fft.rfft(hc, n=n, dim=-1)[:, None]
    f = torch.fft.rfftfreq(n, 1.0 / sample_rate, device=hp.device, dtype=hp.dtype)
    phase = torch.polar(torch.ones_like(shift[..., None] * f), -2 * torch.pi * shift[..., None] * f)
    return torch.fft.irfft((fp[..., None] * hpf + fc[..., None] * hcf) * phase, n=n, dim=-1)


def welch_before(x: torch.Tensor, sample_rate: float) -> torch.Tensor:
    """gwviz.data.psd.welch_psd before 2026-12-03 (1-s segments, half overlap), for the old/new line."""
    n_seg = int(sample_rate)
    segs = x.unfold(-1, n_seg, n_seg // 2)
    segs = segs - segs.mean(-1, keepdim=True)
    win = torch.hann_window(n_seg, periodic=True, dtype=x.dtype, device=x.device)
    spec = torch.fft.rfft(segs * win, dim=-1)
    per = spec.real ** 2 + spec.imag ** 2
    per = per * (2.0 / (sample_rate * (win ** 2).sum()))
    k = per.shape[-2]
    if k % 2 and not per.is_cuda:
        med = per.median(dim=-2).values
    else:
        srt = per.sort(dim=-2).values
        med = 0.5 * (srt[..., k // 2 - 1, :] + srt[..., k // 2, :])
    return med / median_bias(k) if k % 2 else med / (0.5 * (median_bias(k - 1) + median_bias(k + 1)))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--real", default=None, help="load_real .npz (real noise in 20 %% of rows, as in training)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    bank = WaveformBank.build(8, seed=0, progress=False).to(dev)
    kw = {}
    if a.real:
        strain, tr, _ = load_real(a.real)
        kw = dict(real_strain=strain, real_range=tr, p_real=0.2)
    mk = BatchMaker(bank, dev, **kw)
    n, g = a.batch, torch.Generator(device=dev).manual_seed(0)
    times: dict[str, list[float]] = {}

    def stage(name, fn):
        sync(); t = time.perf_counter(); out = fn(); sync()
        times.setdefault(name, []).append(time.perf_counter() - t)
        return out

    for step in range(a.steps + 1):
        if step == 1:
            times.clear()  # the first pass warms up cuFFT plans and the allocator
        stage("whole BatchMaker call", lambda: mk(n, g))
        if a.real:  # the mix before 2026-12-02, row flags drawn per sample: every row made both kinds of noise
            flags = torch.rand(n, generator=g, device=dev) < mk.p_real
            stage("whole BatchMaker call, old mix", lambda: mk(n, g, real=flags))
        n_real = round(mk.p_real * n)  # as BatchMaker: the first n_real rows real, the rest simulated
        noise = stage("coloured noise (rfft, irfft)",
                      lambda: coloured_noise(mk.noise_psd, mk.n_seg, SAMPLE_RATE, g, n - n_real))
        if n_real:
            real = stage("real noise gather", lambda: mk._real_noise(n_real, g))
            stage("Welch PSD of the real rows (SNR reference)",
                  lambda: interpolate_psd(welch_psd(real, SAMPLE_RATE), WINDOW_SAMPLES // 2 + 1))
            noise = torch.cat([real, noise])
        k = torch.randint(0, mk._hp.shape[1], (n,), generator=g, device=dev)
        cls = torch.randint(0, 3, (n,), generator=g, device=dev)
        hp, hc = mk._hp[cls, k], mk._hc[cls, k]
        u = lambda: torch.rand(n, generator=g, device=dev, dtype=torch.float64)  # noqa: E731
        ra, dec, psi, gm = 2 * math.pi * u(), torch.asin(2 * u() - 1), math.pi * u(), uniform_gmst(n, g, dev)
        fp, fc = stage("antenna patterns + delays", lambda: antenna_patterns(ra, dec, psi, gm))
        delays = time_delays(ra, dec, gm).float()
        t = mk.n_seg
        i0 = window_start_index(t, SAMPLE_RATE)
        h = stage("project (2 rfft, 3 irfft on 8.5 s, phase, place)",
                  lambda: project(hp, hc, fp.float(), fc.float(), delays + 6.0, t, SAMPLE_RATE))
        stage("  the same on all 16 s, before 2026-12-03 (not in the call)",
              lambda: project_before(hp, hc, fp.float(), fc.float(), delays + 6.0, t, SAMPLE_RATE))
        stage("SNR rescale (window rfft)", lambda: snr_scale(h[..., i0:i0 + WINDOW_SAMPLES], mk.snr_psd,
                                                              torch.full((n,), 10.0, device=dev), SAMPLE_RATE))
        x = noise + h
        psd = stage("Welch PSD of the data (31 x 1-s segments, median)", lambda: welch_psd(x, SAMPLE_RATE))
        stage("  the same before 2026-12-03 (not in the call)", lambda: welch_before(x, SAMPLE_RATE))
        stage("whiten the window's 5-s span (filter rfft, rfft, irfft)",
              lambda: whiten_span(x, psd, SAMPLE_RATE, i0, WINDOW_SAMPLES).contiguous())
        stage("  whiten all 16 s + crop, before 2026-12-03 (not in the call)",
              lambda: whiten(x, psd, SAMPLE_RATE)[..., i0:i0 + WINDOW_SAMPLES].contiguous())
    # the same numbers, faster: today's Welch and whitening against the ones they replaced
    p_old = welch_before(x, SAMPLE_RATE)
    diff = {"welch_max_rel": float(((psd - p_old).abs() / p_old.clamp_min(1e-30)).max()),
            "white_max_abs": float((whiten_span(x, psd, SAMPLE_RATE, i0, WINDOW_SAMPLES)
                                    - whiten(x, p_old, SAMPLE_RATE)[..., i0:i0 + WINDOW_SAMPLES]).abs().max())}
    res = {name: {"ms": 1e3 * sum(v) / len(v)} for name, v in times.items()}
    whole = res.pop("whole BatchMaker call")["ms"]
    old = res.pop("whole BatchMaker call, old mix", {}).get("ms")
    device = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()
    print(f"{device}, batch {n}, real noise {'yes' if a.real else 'no'}: BatchMaker {whole:.1f} ms "
          f"({n / whole * 1e3:,.0f} samples/s)" + (f"; old mix {old:.1f} ms ({n / old * 1e3:,.0f} samples/s, "
                                                     f"new/old speed {old / whole:.2f})" if old else ""))
    # On the CPU both are float32 rounding (~1e-5). On the GPU the Welch median before 2026-12-03 was
    # wrong (the mean of the 15th and 16th of 31 periodograms), so there they differ by up to tens of
    # per cent in single bins; the whitened difference is in the window's units (its unscaled signal
    # is far louder than the unit-variance noise).
    print(f"  new vs before: Welch PSD max relative difference {diff['welch_max_rel']:.1e}, whitened window "
          f"max |difference| {diff['white_max_abs']:.1e}")
    for name, r in res.items():  # in call order, each "before" line under the stage it replaced
        print(f"  {r['ms']:8.1f} ms  {100 * r['ms'] / whole:5.1f} %  {name}")
    out = {"device": device, "batch": n, "real": bool(a.real), "batchmaker_ms": whole, "old_mix_ms": old, "stages": res,
           "new_vs_before": diff, "torch": torch.__version__}
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
