"""Model training step of GWNet under torch.compile modes, each in a fresh process, one run.

    python bench/bench_compile.py --modes default autotune --out bench/results/compile_h200.json
    python bench/bench_compile.py --modes default autotune --profile   # + top CUDA kernels of each

Modes (the values of the config key ``compile``, gwviz.training.parts.compile_model, plus two more):
  eager           : no compilation;
  default         : ``compile: true``, cuDNN for every convolution;
  autotune        : ``compile: autotune``, Triton convolution/matmul templates timed against cuDNN per shape;
  reduce-overhead : torch.compile's CUDA graphs (not a config value: measured at +1 % on the H200).
Each mode runs in its own Python process (a clean compile cache in memory, Inductor's on-disk cache as
the environment sets it: TORCHINDUCTOR_CACHE_DIR) with a time limit, so a slow compile cannot stop
the others. The step is one Adam step (fused) on a fixed random batch, width 8, bf16, channels-last
(B, C, 1, T): the model part of bench/bench_train.py, without the data. Prints ms per step,
samples/s and the compile (warm-up) time per mode, and each mode's ratio to the first.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from gwviz.paths import write_text_atomic

MODES = ("eager", "default", "autotune", "reduce-overhead")


def one(mode: str, batch: int, steps: int, warmup: int, profile: bool) -> dict:
    """Time ``steps`` training steps after ``warmup`` (compilation happens there) in this process."""
    from gwviz.model.network import GWNet
    from gwviz.training import autocast_for, compile_model, train_step

    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    dev = torch.device("cuda")
    torch.manual_seed(0)
    raw = GWNet(width=8, hidden=64).to(dev)
    raw.resnet.layout = "2d"
    raw.train()
    if mode == "reduce-overhead":
        model = torch.compile(raw, mode="reduce-overhead")
    else:
        model = compile_model(raw, {"eager": False, "default": True, "autotune": "autotune"}[mode], dev)
    opt = torch.optim.Adam(raw.parameters(), lr=1e-3, fused=True)
    autocast = autocast_for(dev, True)
    x = torch.randn(batch, 3, 16384, device=dev)
    y = torch.randint(0, 4, (batch,), device=dev)
    t0 = time.perf_counter()
    for _ in range(warmup):
        train_step(model, opt, x, y, autocast)
    torch.cuda.synchronize()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, opt, x, y, autocast)
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    res = {"mode": mode, "batch": batch, "ms_per_step": 1e3 * dt, "samples_per_s": batch / dt, "warmup_s": warm}
    if profile:
        from torch.profiler import ProfilerActivity, profile as prof
        with prof(activities=[ProfilerActivity.CUDA]) as p:
            for _ in range(5):
                train_step(model, opt, x, y, autocast)
            torch.cuda.synchronize()
        print(p.key_averages().table(sort_by="cuda_time_total", row_limit=20, max_name_column_width=70), file=sys.stderr)
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", nargs="+", choices=MODES, default=["default", "autotune"])
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=6, help="untimed steps first (compilation, autotuning)")
    ap.add_argument("--timeout", type=float, default=400.0, help="seconds allowed per mode, compile included")
    ap.add_argument("--profile", action="store_true", help="also print each mode's top CUDA kernels")
    ap.add_argument("--out", type=Path, default=None, help="JSON results file")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one mode, print its JSON
    a = ap.parse_args(argv)
    for k in ("batch_size", "steps", "warmup"):
        if getattr(a, k) < 1:
            ap.error(f"--{k.replace('_', '-')} must be a positive integer, got {getattr(a, k)}")
    if not torch.cuda.is_available():
        ap.error("needs a CUDA device (compilation for the GPU is what it measures)")
    if a.one:
        print(json.dumps(one(a.one, a.batch_size, a.steps, a.warmup, a.profile)))
        return {}
    rows = []
    for mode in a.modes:
        cmd = [sys.executable, __file__, "--one", mode, "--batch-size", str(a.batch_size), "--steps", str(a.steps),
               "--warmup", str(a.warmup)] + (["--profile"] if a.profile else [])
        try:
            r = subprocess.run(cmd, timeout=a.timeout, stdout=subprocess.PIPE, text=True)
            line = (r.stdout.strip().splitlines() or ["{}"])[-1]
            rows.append(json.loads(line) if r.returncode == 0 else {"mode": mode, "error": f"exit {r.returncode}"})
        except subprocess.TimeoutExpired:
            rows.append({"mode": mode, "error": f"over {a.timeout:.0f} s"})
    info = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "batch": a.batch_size,
            "steps": a.steps, "warmup": a.warmup, "width": 8, "bf16": True, "layout": "2d channels-last"}
    print(f"{info['device']}, torch {info['torch']}, batch {a.batch_size}, width 8, bf16, one Adam step on a fixed batch")
    print(f"{'mode':>16} {'ms/step':>9} {'samples/s':>10} {'compile s':>10} {'vs first':>9}")
    base = next((r for r in rows if "error" not in r), None)
    for r in rows:
        if "error" in r:
            print(f"{r['mode']:>16} {r['error']}")
            continue
        print(f"{r['mode']:>16} {r['ms_per_step']:>9.1f} {r['samples_per_s']:>10.0f} {r['warmup_s']:>10.1f} "
              f"{r['samples_per_s'] / base['samples_per_s']:>8.2f}x")
    result = {**info, "modes": rows}
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(a.out, json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
