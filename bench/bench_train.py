"""Training and inference throughput of GWNet with on-the-fly data: the old layout and the new one, one run.

    python bench/bench_train.py --device cuda --batch-size 1024 --compile --bf16 --out bench/results/train_h200.json
    python bench/bench_train.py --device cpu --batch-size 8 --steps 3 --width 4 --out /tmp/train_cpu.json

Variants (same model weights, data and batch size):
  old : ResNet as Conv1d on (B, C, T), Adam per tensor, data made before each step (the layout up to
        2026-11: cuDNN converts NCHW <-> NHWC around every thin convolution);
  new : the same weights as (1 x 3) Conv2d on channels-last (B, C, 1, T), fused Adam, the next batch
        made on a side CUDA stream while the model trains (gwviz.training.Prefetcher);
  tuned : new, compiled with ``compile: autotune`` (Triton convolution kernels timed against cuDNN per
        shape, gwviz.training.parts.compile_model; minutes of compilation on a fresh machine), only with
        --compile and when asked for (--variants old new tuned).
Per variant and batch size, samples/s of
  data   : BatchMaker alone (noise + projection + SNR rescaling + whitening, the one synthesis path),
  model  : one Adam step on a fixed batch (forward + backward + update),
  train  : both, as train.py runs them (fresh data every step),
  infer  : forward only, eval mode, no grad.
Timed with the device synchronised, after ``--warmup`` untimed steps (compilation happens there).
The waveform bank is small (``--bank-per-class``): its size does not change the per-batch cost.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from gwviz.data.bank import WaveformBank

from gwviz.data.batch import BatchMaker
from gwviz.model.network import GWNet
from gwviz.paths import write_text_atomic
from gwviz.training import Prefetcher, autocast_for, compile_model, data_seed, train_step

VARIANTS = {"old": {"layout": "1d", "fused": False, "overlap": False, "autotune": False},
            "new": {"layout": "2d", "fused": True, "overlap": True, "autotune": False},
            "tuned": {"layout": "2d", "fused": True, "overlap": True, "autotune": True}}


def timed(fn, steps: int, warmup: int, device: torch.device) -> float:
    """Mean seconds per call of ``fn`` over ``steps`` calls after ``warmup`` calls."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - t) / steps


def bench_batch(n: int, a: argparse.Namespace, bank: WaveformBank, device: torch.device, variant: str) -> dict:
    v = VARIANTS[variant]
    on_cuda = device.type == "cuda"
    maker = BatchMaker(bank, device)
    gen = torch.Generator(device=device)

    def data(s: int):
        return maker(n, gen.manual_seed(data_seed(0, s, 0)), snr_range=(8.0, 24.0))

    torch.manual_seed(0)
    raw = GWNet(width=a.width, hidden=a.hidden).to(device)
    raw.resnet.layout = v["layout"] if on_cuda else "auto"
    model = compile_model(raw, ("autotune" if v["autotune"] else True) if a.compile else False, device)
    opt = torch.optim.Adam(raw.parameters(), lr=1e-3, fused=v["fused"] and on_cuda)
    autocast = autocast_for(device, a.bf16)
    x, y, _ = data(0)
    counter = iter(range(1, 10**9))

    def model_step():
        train_step(model, opt, x, y, autocast)

    prefetch = Prefetcher(data, device) if v["overlap"] else None
    if prefetch is not None:
        prefetch.launch(next(counter))

    def full_step():
        if prefetch is None:
            xb, yb, _ = data(next(counter))
        else:
            xb, yb, _ = prefetch.take()
        train_step(model, opt, xb, yb, autocast)
        if prefetch is not None:
            prefetch.launch(next(counter))

    def infer():
        with torch.no_grad(), autocast():
            model(x)

    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    raw.train()
    res = {"variant": variant, "batch": n, **v}
    res["data"] = n / timed(lambda: data(next(counter)), a.steps, a.warmup, device)
    res["model"] = n / timed(model_step, a.steps, a.warmup, device)
    res["train"] = n / timed(full_step, a.steps, a.warmup, device)
    raw.eval()
    res["infer"] = n / timed(infer, a.steps, a.warmup, device)
    if on_cuda:
        res["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-size", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, cuDNN autotuning)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA only)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--bank-per-class", type=int, default=32)
    ap.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["old", "new"])
    ap.add_argument("--out", type=Path, default=None, help="JSON results file")
    a = ap.parse_args(argv)
    if "tuned" in a.variants and not a.compile:
        ap.error("the tuned variant is a compile mode: give --compile")
    device = torch.device(a.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    t = time.perf_counter()
    bank = WaveformBank.build(a.bank_per_class, seed=0, workers=os.cpu_count(), progress=False).to(device)
    bank_s = time.perf_counter() - t
    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "cpu_cores": os.cpu_count(), "compile": a.compile and device.type == "cuda",
            "bf16": a.bf16 and device.type == "cuda", "width": a.width, "hidden": a.hidden, "steps": a.steps,
            "warmup": a.warmup, "bank_per_class": a.bank_per_class, "bank_build_s": bank_s,
            "waveforms_per_s": 3 * a.bank_per_class / bank_s}
    rows = []
    for n in a.batch_size:
        for variant in a.variants:
            rows.append(bench_batch(n, a, bank, device, variant))
            torch._dynamo.reset()  # a fresh compile per variant and batch size, as in a real run
    print(f"{info['device']}, torch {info['torch']}, compile={info['compile']}, bf16={info['bf16']}, "
          f"width={a.width}; bank: {info['waveforms_per_s']:.0f} waveforms/s on {os.cpu_count()} cores")
    print(f"{'variant':>8} {'batch':>6} {'data/s':>10} {'model/s':>10} {'train/s':>10} {'infer/s':>10} {'peak GiB':>9}")
    for r in rows:
        print(f"{r['variant']:>8} {r['batch']:>6} {r['data']:>10.0f} {r['model']:>10.0f} {r['train']:>10.0f} "
              f"{r['infer']:>10.0f} {r.get('peak_gib', float('nan')):>9.1f}")
    for n in a.batch_size:
        by = {r["variant"]: r for r in rows if r["batch"] == n}
        for new, old in (("new", "old"), ("tuned", "new")):
            if {old, new} <= set(by):
                print(f"{new} / {old} at batch {n}: train {by[new]['train'] / by[old]['train']:.2f}x, "
                      f"model {by[new]['model'] / by[old]['model']:.2f}x, infer {by[new]['infer'] / by[old]['infer']:.2f}x")
    best = max(rows, key=lambda r: r["train"])
    print(f"one paper epoch (96k samples), {best['variant']} at batch {best['batch']}: {96000 / best['train']:.0f} s")
    result = {**info, "samples_per_s": rows}
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(a.out, json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
