"""The trainer (train.py) on the CPU: it learns, resumes bit-for-bit, survives a kill mid-checkpoint
and trains in step under DDP (gloo, two processes). Tiny models and batches: the synthesis itself
is fixed at 16-s segments, so the step counts are kept small."""
from __future__ import annotations

import csv
import math
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from gwviz.model.checkpoint import FORMAT, load_weights
from gwviz.classifier import load_classifier

from gwviz import training as train
from gwviz.model.network import GWNet
from gwviz.training import loop

REPO = Path(__file__).resolve().parent.parent

SMOKE = str(REPO / "configs" / "smoke.yaml")
# 4 steps per epoch of 4 samples (2 per rank under DDP), 2 epochs; evaluation (4 samples) every 2 steps, each
# after re-estimating the BatchNorm statistics over 2 batches (so resume and DDP tests cover gwviz.training.bnstats too)
TINY = ["model.width=4", "model.hidden=16", "batch_size=4", "samples_per_epoch=16", "epochs=2", "val_samples=4",
        "val_batch=4", "bank_per_class=2", "val_bank_per_class=2", "workers=1", "log_every=1",
        "eval_every_steps=2", "bn_batches=2"]


def rows(out: Path) -> list[dict]:
    with open(out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def run(out: Path, *extra: str, resume: bool = False) -> dict:
    argv = ["--out", str(out), "--device", "cpu", *extra]
    argv = ["--resume", *argv] if resume else ["--config", SMOKE, *argv, *TINY]
    return train.main(argv)


def test_smoke_config_reduces_loss_and_writes_usable_weights(tmp_path, capsys):
    out = tmp_path / "smoke"
    res = train.main(["--config", SMOKE, "--out", str(out), "--device", "cpu"])
    printed = capsys.readouterr().out
    assert "parameters" in printed and "140,294" in printed  # width 4, hidden 16
    cfg = train.load_config(SMOKE)
    n_steps = cfg["epochs"] * cfg["samples_per_epoch"] // cfg["batch_size"]
    assert res["step"] == n_steps and res["stopped"] is None
    losses = [float(r["train_loss"]) for r in rows(out)]
    assert len(losses) == n_steps  # log_every 1
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    # learning, not just calibrating: below chance (ln 4, a constant uniform guess) by a clear margin
    assert last < first - 0.05 and last < math.log(4) - 0.05, (first, last)
    evals = [r for r in rows(out) if r["val_acc"]]
    assert [int(r["step"]) for r in evals] == [6, 12, 18]  # every epoch
    assert float(evals[-1]["snr_low"]) == cfg["curriculum"][-1]["snr_low"]
    # outputs: TensorBoard events, a weights-only checkpoint, safetensors the classifier loads
    assert list((out / "tb").glob("events.out.tfevents.*"))
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["format"] == FORMAT and ckpt["step"] == n_steps and ckpt["model_config"] == {"width": 4, "hidden": 16, "detector_mask": 0, "dilate": 0}
    for name in ("best.safetensors", "last.safetensors"):
        state, config, info = load_weights(out / name)
        assert config["width"] == 4 and info["steps"] > 0 and 0 <= info["val_acc"] <= 1
        assert info["samples_seen"] == info["steps"] * cfg["batch_size"] and info["device"] == "cpu"
    clf = load_classifier(out / "best.safetensors")
    assert clf.trained and clf.predict_windows(torch.randn(2, 3, 16384)).shape == (2, 4)
    with pytest.raises(ValueError, match="all zeros"):
        clf.predict_windows(torch.zeros(2, 3, 16384))


def test_resume_is_bit_exact_and_survives_a_kill_mid_checkpoint(tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    run(straight, "--max-steps", "4")

    split = tmp_path / "split"
    run(split, "--max-steps", "2")
    assert torch.load(split / "ckpt.pt", weights_only=True)["step"] == 2

    # Resume, but die inside the final checkpoint write (as a SIGKILL would): half a file, then gone.
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        import io
        buf = io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        run(split, "--max-steps", "4", resume=True)
    monkeypatch.setattr(torch, "save", real_save)
    assert (split / "ckpt.pt.tmp").exists()  # the torn write
    ckpt = torch.load(split / "ckpt.pt", weights_only=True)  # the previous checkpoint is intact
    assert ckpt["step"] == 2
    with pytest.raises(Exception):
        torch.load(split / "ckpt.pt.tmp", weights_only=True)

    res = run(split, "--max-steps", "4", resume=True)
    assert res["step"] == 4
    a = torch.load(straight / "ckpt.pt", weights_only=True)
    b = torch.load(split / "ckpt.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert a["last_eval"] == b["last_eval"]
    # metrics: every step exactly once (rows of the killed attempt past step 2 were dropped)
    assert [int(r["step"]) for r in rows(split)] == [1, 2, 3, 4]
    assert [r["train_loss"] for r in rows(split)] == [r["train_loss"] for r in rows(straight)]


def test_refuses_to_overwrite_and_rejects_bad_config(tmp_path):
    out = tmp_path / "run"
    run(out, "--max-steps", "1")
    with pytest.raises(ValueError, match="--resume"):
        run(out, "--max-steps", "1")
    with pytest.raises(ValueError, match="unknown config keys"):
        train.load_config(SMOKE, ["learning_rate=1e-3"])
    with pytest.raises(ValueError, match="until_epoch must increase"):
        train.load_config(SMOKE, ["curriculum=[{until_epoch: 2, snr_low: 8, snr_high: 24}, "
                                  "{until_epoch: 1, snr_low: 8, snr_high: 24}]"])
    with pytest.raises(ValueError, match="p_real > 0 needs real_data"):
        train.load_config(SMOKE, ["p_real=0.5"])
    assert train.load_config(SMOKE, ["model.dilate=1"])["model"]["dilate"] == 1
    for bad in ("2", "true"):
        with pytest.raises(ValueError, match="model.dilate must be 0 or 1"):
            train.load_config(SMOKE, [f"model.dilate={bad}"])
    cur = train.load_config(str(REPO / "configs" / "paper.yaml"))["curriculum"]
    assert train.snr_range_at(cur, 0) == (20, 40) and train.snr_range_at(cur, 299.9) == (8, 24)


def test_missing_real_noise_fails_before_the_banks_are_built(tmp_path):
    """real_data is read and checked before the waveform banks (minutes at the real configs' sizes):
    a missing file is a clear error at once, with no bank written."""
    out = tmp_path / "noreal"
    with pytest.raises(ValueError, match="missing.npz: no such .npz file"):
        run(out, "p_real=0.2", f"real_data={tmp_path / 'missing.npz'}")
    assert not (out / "bank.pt").exists() and not (out / "val_bank.pt").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, tmp: str) -> None:
    import os
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    res = train.main(["--config", SMOKE, "--out", f"{tmp}/ddp", "--device", "cpu", "--max-steps", "2", *TINY])
    torch.save(res["state_dict"], f"{tmp}/rank{rank}.pt")  # the test's own dump, to compare the ranks


def test_ddp_gloo_two_ranks_stay_in_step(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    s0, s1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    torch.manual_seed(0)  # the trainer's initial weights (seed 0)
    init = GWNet.from_config({"width": 4, "hidden": 16}).state_dict()
    for k in s0:
        assert torch.equal(s0[k], s1[k]), k  # parameters and (synced) BatchNorm statistics
    assert any(not torch.equal(s0[k], init[k]) for k in s0)  # and they did train
    ckpt = torch.load(tmp_path / "ddp" / "ckpt.pt", weights_only=True)
    assert ckpt["step"] == 2 and ckpt["info"]["world_size"] == 2 and ckpt["config"]["batch_size"] == 4
    assert all(torch.equal(ckpt["model"][k], s0[k]) for k in s0)


def test_resume_without_checkpoint_and_unwritable_out_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="--resume: no checkpoint at .*check --out"):
        train.main(["--resume", "--out", str(tmp_path / "typo"), "--device", "cpu"])
    assert not (tmp_path / "typo").exists()  # nothing created, nothing trained
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="cannot write there"):
        run(blocker / "run", "--max-steps", "1")
    with pytest.raises(ValueError, match="lr_schedule must be"):
        train.load_config(SMOKE, ["lr_schedule=linear"])
    with pytest.raises(ValueError, match="lr_min must be"):
        train.load_config(SMOKE, ["lr_schedule=cosine", "lr_min=1.0"])


def test_cosine_schedule_runs_from_lr_to_lr_min():
    cfg = train.load_config(SMOKE, ["lr=1e-3", "lr_schedule=cosine", "lr_min=1e-5", "decay_from=100"])
    assert train.lr_at(cfg, 50, 300) == 1e-3  # before the decay starts
    assert train.lr_at(cfg, 100, 300) == pytest.approx(1e-3)
    assert train.lr_at(cfg, 200, 300) == pytest.approx(1e-5 + (1e-3 - 1e-5) / 2)
    assert train.lr_at(cfg, 300, 300) == pytest.approx(1e-5)
    lrs = [train.lr_at(cfg, s, 300) for s in range(100, 301)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_diverged_run_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    run(out, "--max-steps", "2")
    good = {k: v.clone() for k, v in torch.load(out / "ckpt.pt", weights_only=True)["model"].items()}
    good_last = (out / "last.safetensors").read_bytes()
    real_step = train.train_step

    def poisoned(model, opt, x, y, autocast):  # a NaN loss, as a too-high learning rate gives
        loss = real_step(model, opt, x, y, autocast)
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
        return loss * float("nan")

    monkeypatch.setattr(loop, "train_step", poisoned)  # the name the loop calls
    with pytest.raises(FloatingPointError, match="diverged by step 3 .*nothing was written"):
        run(out, "--max-steps", "4", resume=True)
    after = torch.load(out / "ckpt.pt", weights_only=True)
    assert after["step"] == 2 and all(torch.equal(good[k], v) for k, v in after["model"].items())
    assert (out / "last.safetensors").read_bytes() == good_last


def test_every_batch_mixes_real_and_simulated_noise(tmp_path):
    """Real and simulated noise are mixed within every batch (row by row, or a fixed fraction p_real), so
    BatchNorm never sees an all-real or all-simulated batch."""
    import numpy as np
    from gwviz.data.bank import WaveformBank
    from gwviz.data.batch import BatchMaker
    bank = WaveformBank.build(2, seed=0, workers=1, progress=False)
    rng = np.random.default_rng(0)
    strain = rng.standard_normal((3, 20 * 4096)) * 1e-21
    maker = BatchMaker(bank, real_strain=strain, real_range=(0, 4 * 4096), p_real=0.5)
    g = torch.Generator().manual_seed(1)
    labels = torch.zeros(64, dtype=torch.long)
    flags = torch.rand(64, generator=torch.Generator().manual_seed(2)) < 0.5
    x, _, _ = maker(64, g, labels=labels, real=flags)
    x_sim, _, _ = maker(64, torch.Generator().manual_seed(1), labels=labels, real=False)
    same = (x == x_sim).flatten(1).all(1)
    assert torch.equal(~same, flags)  # exactly the flagged rows changed to real noise
    mixed = maker(256, torch.Generator().manual_seed(3))[0]
    assert mixed.shape == (256, 3, 16384)
    with pytest.raises(ValueError, match="without real_strain"):
        BatchMaker(bank)(4, torch.Generator(), real=True)


def test_the_trainers_mix_makes_only_the_noise_each_row_uses(monkeypatch):
    """real=None (the trainer): exactly round(p_real * n) rows in real noise, made first, and only they
    get real segments and a PSD estimate; the rest get simulated noise; signals still reach their SNR."""
    import numpy as np
    from gwviz.data import batch as batch_mod
    from gwviz.data.bank import WaveformBank
    from gwviz.data.batch import BatchMaker
    bank = WaveformBank.build(2, seed=0, workers=1, progress=False)
    strain = np.random.default_rng(0).standard_normal((3, 20 * 4096)) * 1e-21
    maker = BatchMaker(bank, real_strain=strain, real_range=(0, 4 * 4096), p_real=0.3)
    calls = {"real": [], "sim": [], "welch": []}
    real_noise, coloured, welch = maker._real_noise, batch_mod.coloured_noise, batch_mod.welch_psd
    monkeypatch.setattr(maker, "_real_noise", lambda n, g: calls["real"].append(n) or real_noise(n, g))
    monkeypatch.setattr(batch_mod, "coloured_noise",
                        lambda psd, n_seg, fs, g, n: calls["sim"].append(n) or coloured(psd, n_seg, fs, g, n))
    monkeypatch.setattr(batch_mod, "welch_psd", lambda x, fs: calls["welch"].append(x.shape[0]) or welch(x, fs))
    x, y, snr, meta = maker(10, torch.Generator().manual_seed(4), labels=torch.full((10,), 1), meta=True)
    assert calls == {"real": [3], "sim": [7], "welch": [3]}
    assert x.shape == (10, 3, 16384) and torch.isfinite(x).all()
    np.testing.assert_allclose(meta["snr_network"], snr.double().numpy(), rtol=1e-4)
    calls.update(real=[], sim=[], welch=[])
    maker(4, torch.Generator().manual_seed(5), real=False)  # the explicit forms keep their random stream
    assert calls["sim"] == [4] and calls["real"] == [4]


def test_a_paper_checkpoint_learns_the_detector_mask_on_resume(tmp_path):
    """Resuming a paper network with model.detector_mask=1 detector_dropout=... widens its first block
    (zero weights: the same outputs on full-network windows) and its Adam moments, then trains on
    windows where detectors are missing; the weights file says so and loads."""
    out = tmp_path / "run"
    run(out, "--max-steps", "2")
    before = torch.load(out / "ckpt.pt", weights_only=True)["model"]
    with pytest.raises(ValueError, match="detector_mask"):
        run(out, "--max-steps", "3", "detector_dropout=0.3", resume=True)
    res = run(out, "--max-steps", "4", "model.detector_mask=1", "detector_dropout=0.5", resume=True)
    assert res["step"] == 4
    after = torch.load(out / "ckpt.pt", weights_only=True)
    w = after["model"]["resnet.blocks.0.conv1.weight"]
    assert w.shape[1] == 6 and before["resnet.blocks.0.conv1.weight"].shape[1] == 3
    assert after["config"]["model"]["detector_mask"] == 1 and after["config"]["detector_dropout"] == 0.5
    assert w[:, 3:].abs().sum() > 0  # the absent-detector weights moved off zero: dropped samples were seen
    exp_avg = after["optimizer"]["state"]
    assert any(v["exp_avg"].ndim == 3 and v["exp_avg"].shape[1] == 6 for v in exp_avg.values())
    state, config, _ = load_weights(out / "last.safetensors")
    assert config["detector_mask"] == 1


def test_a_checkpoint_from_before_a_model_key_resumes_with_its_default(tmp_path):
    """A checkpoint written before a model key existed (here: dilate, added with run 2) resumes with that key
    at its default, and an override of it on resume reaches the model and the weights file."""
    out = tmp_path / "run"
    run(out, "--max-steps", "2")
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    for cfg in (ckpt["config"]["model"], ckpt["model_config"]):
        del cfg["dilate"]
    torch.save(ckpt, out / "ckpt.pt")
    assert run(out, "--max-steps", "3", resume=True)["step"] == 3
    assert torch.load(out / "ckpt.pt", weights_only=True)["config"]["model"]["dilate"] == 0
    assert run(out, "--max-steps", "4", "model.dilate=1", resume=True)["step"] == 4
    assert torch.load(out / "ckpt.pt", weights_only=True)["config"]["model"]["dilate"] == 1
    assert load_weights(out / "last.safetensors")[1]["dilate"] == 1


def makers_of_one_step(out: Path, monkeypatch, *overrides: str) -> list:
    """The BatchMakers (training, validation) a one-step run with ``overrides`` builds."""
    made = []
    real = loop.BatchMaker

    def spy(*args, **kwargs):
        maker = real(*args, **kwargs)
        made.append(maker)
        return maker

    monkeypatch.setattr(loop, "BatchMaker", spy)
    run(out, "--max-steps", "1", *overrides)
    return made


def test_class_weights_reach_the_training_batches_only(tmp_path, monkeypatch):
    """class_weights: four positive numbers (noise, BBH, NSBH, BNS) for the training batches; validation
    stays uniform so that runs with and without weights are compared on the same set."""
    for bad in ("[1, 1, 1]", "[0, 1, 1, 1]", "[1, 1, 1, .nan]", "[true, 1, 1, 1]", "'BNS'", "[-1, 1, 1, 1]"):
        with pytest.raises(ValueError, match="class_weights must be null or 4 positive numbers"):
            train.load_config(SMOKE, [f"class_weights={bad}"])
    assert train.load_config(SMOKE, ["class_weights=[1, 1, 2, 4]"])["class_weights"] == [1, 1, 2, 4]
    train_maker, val_maker = makers_of_one_step(tmp_path / "w", monkeypatch, "class_weights=[1, 1, 2, 4]")
    assert torch.allclose(train_maker.class_p.cpu(), torch.tensor([1.0, 1.0, 2.0, 4.0]))
    assert torch.allclose(val_maker.class_p.cpu(), torch.ones(4))
    g = torch.Generator().manual_seed(0)
    _, y, _ = train_maker(400, g)
    assert (y == 3).sum() > 2.5 * (y == 0).sum()  # BNS drawn ~4x as often as noise


def test_psd_jitter_reaches_the_training_batches_only(tmp_path, monkeypatch):
    """psd_jitter: σ of the simulated noise's PSD reshapes in training; validation stays on the O3 fits."""
    for bad in ("-0.1", "3", ".nan", "true", "'wide'"):
        with pytest.raises(ValueError, match=r"psd_jitter must be a number in \[0, 2\]"):
            train.load_config(SMOKE, [f"psd_jitter={bad}"])
    assert train.load_config(SMOKE, ["psd_jitter=0.5"])["psd_jitter"] == 0.5
    train_maker, val_maker = makers_of_one_step(tmp_path / "j", monkeypatch, "psd_jitter=0.5")
    assert train_maker.psd_jitter == 0.5 and val_maker.psd_jitter == 0.0


def test_compile_takes_false_true_or_autotune_and_is_a_no_op_on_the_cpu(monkeypatch):
    """compile: false, true or autotune (Triton kernels timed against cuDNN); anything else is refused
    before any work, and on the CPU the model is used as it is (torch.compile is never called)."""
    for bad in ("2", "'max'", "'yes please'", "null", "[true]"):
        with pytest.raises(ValueError, match="compile must be true, false or autotune"):
            train.load_config(SMOKE, [f"compile={bad}"])
    with pytest.raises(ValueError, match="bf16 must be true or false"):
        train.load_config(SMOKE, ["bf16=1"])
    assert train.load_config(SMOKE, ["compile=autotune"])["compile"] == "autotune"
    for stage in ("{until_epoch: 2, snr_low: 8, snr_high: 5000}", "{until_epoch: 2, snr_low: '8', snr_high: 24}"):
        with pytest.raises(ValueError, match="need numbers 0 < snr_low < snr_high <= 1000"):
            train.load_config(SMOKE, [f"curriculum=[{stage}]"])
    calls = []
    monkeypatch.setattr(torch, "compile", lambda m, **kw: calls.append(kw) or m)
    net = GWNet(width=4, hidden=8)
    for how in (False, True, "autotune"):
        assert train.compile_model(net, how, torch.device("cpu")) is net
    assert calls == []
    with pytest.raises(ValueError, match="compile must be"):
        train.compile_model(net, "fast", torch.device("cpu"))
    # on CUDA the two modes differ only by Inductor's max_autotune_gemm (checked without a GPU: torch.compile
    # is replaced, the device is only read for its type)
    cuda = torch.device("cuda")
    train.compile_model(net, True, cuda), train.compile_model(net, "autotune", cuda)
    train.compile_model(net, False, cuda)
    assert calls == [{"options": None}, {"options": {"max_autotune_gemm": True}}]


@pytest.mark.parametrize("args,msg", [
    (["--max-minutes", "-3"], "--max-minutes must be a number > 0"),
    (["--max-minutes", "nan"], "--max-minutes must be a number > 0"),
    (["--max-steps", "-1"], "--max-steps must be >= 0"),
])
def test_bad_command_line_values_stop_before_any_work(tmp_path, capsys, args, msg):
    with pytest.raises(SystemExit):
        train.main(["--config", SMOKE, "--out", str(tmp_path / "r"), *args])
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    with pytest.raises(SystemExit):
        train.main(["--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "r")])
    assert "missing.yaml: no such file" in capsys.readouterr().err


def test_resuming_a_corrupt_checkpoint_is_a_clear_error_that_keeps_the_file(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "ckpt.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="not a readable training checkpoint"):
        train.main(["--resume", "--out", str(out)])
    assert (out / "ckpt.pt").read_bytes() == b"PK\x03\x04 not really a zip"
    torch.save({"format": FORMAT, "optimizer": {}, "model": {}, "config": "epochs=3"}, out / "ckpt.pt")
    with pytest.raises(ValueError, match="config is not a mapping with a model section"):
        train.main(["--resume", "--out", str(out)])


def test_every_shipped_config_loads_and_dilated_yaml_is_the_checkpoints_recipe():
    """configs/*.yaml all validate; configs/dilated.yaml is what models/dilated-ckpt.pt was trained with
    (so `train.py --config configs/dilated.yaml` reproduces run 2 from scratch)."""
    for path in sorted((REPO / "configs").glob("*.yaml")):
        assert train.load_config(str(path))["epochs"] >= 1, path
    cfg = train.load_config(str(REPO / "configs" / "dilated.yaml"))
    ckpt = torch.load(REPO / "models" / "dilated-ckpt.pt", weights_only=True, map_location="cpu")["config"]
    differ = {k: (cfg[k], ckpt.get(k)) for k in cfg if k not in ("max_steps",) and cfg[k] != ckpt.get(k)}
    assert not differ, differ
