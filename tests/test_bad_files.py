"""Bad files get a clear ValueError and load nothing they should not: weights, checkpoints, caches,
real-noise .npz, and no loader that can run pickle code."""
from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gwviz.data.batch import load_real
from gwviz.model.checkpoint import load_weights
from gwviz.classifier import load_classifier
from gwviz.model.network import GWNet
from gwviz.data.strain import read_strain
from test_bad_input import Evil


# --- weights files: every check runs before a model is built ---

def _tiny_state():
    torch.manual_seed(0)
    return GWNet(width=2, hidden=16).state_dict()


def _write(path, state, meta):
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=meta)
    return path


OK_META = {"format": "gwviz-gwnet-v1", "config": '{"width": 2, "hidden": 16}'}


@pytest.mark.parametrize("name,value", [("head.3.weight", float("nan")), ("resnet.blocks.4.bn1.running_mean", float("inf")),
                                        ("dain.mean_layer.weight", -float("inf"))])
def test_non_finite_weights_refused(tmp_path, name, value):
    """NaN weights came back as label 'noise'; now the file is refused, naming the tensor."""
    state = _tiny_state()
    state[name] = state[name].clone()
    state[name].view(-1)[0] = value
    path = _write(tmp_path / "w.safetensors", state, OK_META)
    with pytest.raises(ValueError, match=rf"w.safetensors: tensor {name} has 1 NaN/inf values of \d+: the weights are corrupt"):
        load_classifier(path)
    ckpt = tmp_path / "w.pt"  # the training-checkpoint path runs the same checks
    torch.save({"format": "gwviz-gwnet-v1", "model": state, "model_config": {"width": 2, "hidden": 16}}, ckpt)
    with pytest.raises(ValueError, match=rf"w.pt: tensor {name} has 1 NaN/inf values"):
        load_weights(ckpt)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_refused(tmp_path, dtype):
    """A float16/bfloat16 copy of float32 weights is lossy (outputs move past the calibrated thresholds):
    refused with the dtype named, in both file kinds; float64 (lossless) still loads."""
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in _tiny_state().items()}
    path = _write(tmp_path / "half.safetensors", state, OK_META)
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(ValueError, match=rf"half.safetensors: \d+ tensors stored below float32 precision, e.g. .*\({name}\)"):
        load_classifier(path)
    ckpt = tmp_path / "half.pt"
    torch.save({"format": "gwviz-gwnet-v1", "model": state, "model_config": {"width": 2, "hidden": 16}}, ckpt)
    with pytest.raises(ValueError, match=r"half.pt: .* below float32 precision"):
        load_weights(ckpt)
    wide = {k: v.double() if v.is_floating_point() else v for k, v in _tiny_state().items()}
    loaded, _, _ = load_weights(_write(tmp_path / "f64.safetensors", wide, OK_META))
    assert torch.equal(loaded["head.3.weight"], wide["head.3.weight"])


def test_negative_batchnorm_variance_refused(tmp_path):
    state = _tiny_state()
    state["resnet.blocks.0.bn1.running_var"] = -state["resnet.blocks.0.bn1.running_var"]
    with pytest.raises(ValueError, match="tensor resnet.blocks.0.bn1.running_var has negative variances"):
        load_classifier(_write(tmp_path / "v.safetensors", state, OK_META))


@pytest.mark.parametrize("meta,message", [
    ({"format": "gwviz-gwnet-v1"}, "safetensors metadata lacks 'config'; not gwviz weights"),
    ({"config": '{"width": 2, "hidden": 16}'}, "not gwviz weights \\(format None"),
    ({**OK_META, "config": "{width: 2"}, "metadata 'config' is not JSON"),
    ({**OK_META, "config": "[2, 16]"}, "model config must be a JSON object like .*, got list"),
    ({**OK_META, "config": "2"}, "model config must be a JSON object like .*, got int"),
    ({**OK_META, "info": "not json"}, "metadata 'info' is not JSON"),
    ({**OK_META, "info": "[1]"}, "info must be a JSON object, got list"),
    ({**OK_META, "config": '{"width": "2", "hidden": 16}'}, "model config width must be an integer, got '2' \\(str\\)"),
    ({**OK_META, "config": '{"width": 2.0, "hidden": 16}'}, "model config width must be an integer, got 2.0 \\(float\\)"),
    ({**OK_META, "config": '{"width": true, "hidden": 16}'}, "model config width must be an integer, got True \\(bool\\)"),
    ({**OK_META, "config": '{"width": null, "hidden": 16}'}, "model config width must be an integer, got None"),
    ({**OK_META, "config": '{"width": 2, "hidden": [16]}'}, "model config hidden must be an integer, got \\[16\\]"),
    ({**OK_META, "config": '{"width": -1, "hidden": 16}'}, "model config width = -1 is outside \\[1, 128\\]"),
    ({**OK_META, "config": '{"width": 0, "hidden": 16}'}, "model config width = 0 is outside \\[1, 128\\]"),
    ({**OK_META, "config": '{"width": 1024, "hidden": 16}'}, "model config width = 1024 is outside \\[1, 128\\]"),
    ({**OK_META, "config": '{"width": 2, "hidden": 1000000000}'}, "model config hidden = 1000000000 is outside"),
    ({**OK_META, "config": '{"width": 4, "hidden": 16}'}, "tensors do not fit GWNet\\({'width': 4, 'hidden': 16}\\)"),
])
def test_hand_made_or_corrupt_metadata(tmp_path, meta, message):
    """KeyError/TypeError/JSONDecodeError/RuntimeError before; now one ValueError naming the file."""
    path = _write(tmp_path / "m.safetensors", _tiny_state(), meta)
    with pytest.raises(ValueError, match="m.safetensors: " + message):
        load_classifier(path)


def test_extra_missing_misshapen_and_mistyped_tensors(tmp_path):
    state = _tiny_state()
    cases = {
        "extra": ({**state, "extra.weight": torch.zeros(3)}, "1 unexpected: extra.weight"),
        "missing": ({k: v for k, v in state.items() if k != "head.3.bias"}, "1 missing: head.3.bias"),
        "misshapen": ({**state, "head.3.bias": torch.zeros(5)}, r"1 misshapen: head.3.bias \(5,\) \(expected \(4,\)\)"),
        "int": ({**state, "head.3.bias": torch.zeros(4, dtype=torch.int32)},
                r"1 wrong dtype: head.3.bias \(integer, expected float\)"),
        "empty": ({}, r"\d+ missing: "),
    }
    for name, (st, message) in cases.items():
        path = _write(tmp_path / f"{name}.safetensors", st, OK_META) if st else tmp_path / "empty.safetensors"
        if not st:
            from safetensors.torch import save_file
            save_file({}, str(path), metadata=OK_META)
        with pytest.raises(ValueError, match=rf"{name}.safetensors: tensors do not fit GWNet\(.*\): {message}"):
            load_classifier(path)
        assert path.exists()  # nothing deleted


def test_weights_are_checked_before_any_model_is_allocated(tmp_path, monkeypatch):
    """A small file whose config asks for a big model fails before allocation: GWNet is only ever
    built on the 'meta' device (no storage) until every check passed. Width 100 is within bounds
    and would allocate 1.9 GB here."""
    import gwviz.model.network
    built = []
    real_init = gwviz.model.network.GWNet.__init__

    def spy(self, *a, **k):
        built.append(torch.empty(0).device.type)  # the default device while this GWNet is built
        real_init(self, *a, **k)

    path = _write(tmp_path / "big.safetensors", _tiny_state(), {**OK_META, "config": '{"width": 100, "hidden": 4096}'})
    good = _write(tmp_path / "good.safetensors", _tiny_state(), OK_META)
    monkeypatch.setattr(gwviz.model.network.GWNet, "__init__", spy)
    with pytest.raises(ValueError, match=r"tensors do not fit GWNet\({'width': 100, 'hidden': 4096}\)"):
        load_classifier(path)
    assert built == ["meta"]
    assert load_classifier(good).model.config.width == 2 and built == ["meta", "meta", "cpu"]


def test_training_checkpoint_contents_checked(tmp_path):
    state = _tiny_state()
    for name, ckpt, message in [
        ("cfg", {"format": "gwviz-gwnet-v1", "model": state, "model_config": {"width": "2"}},
         "model config width must be an integer"),
        ("notdict", {"format": "gwviz-gwnet-v1", "model": [1, 2]}, "'model' must be a state dict of named tensors"),
        ("info", {"format": "gwviz-gwnet-v1", "model": state, "model_config": {"width": 2, "hidden": 16}, "info": "x"},
         "info must be a JSON object, got str"),
    ]:
        torch.save(ckpt, tmp_path / f"{name}.pt")
        with pytest.raises(ValueError, match=rf"{name}.pt: {message}"):
            load_weights(tmp_path / f"{name}.pt")
    # an old checkpoint without model_config: the config is read from the tensors, then checked
    torch.save({"format": "gwviz-gwnet-v1", "model": state}, tmp_path / "old.pt")
    assert load_weights(tmp_path / "old.pt")[1] == {"width": 2, "hidden": 16, "detector_mask": 0, "dilate": 0}


# --- the waveform bank cache (gwviz.training.parts.get_bank, gwviz.evaluation.evaluate --bank) ---

def test_corrupt_bank_cache_is_named_or_rebuilt(tmp_path, monkeypatch):
    from gwviz.data.bank import WaveformBank
    from gwviz.data.bank import get_bank
    monkeypatch.chdir(tmp_path)
    bank = tmp_path / "bank.pt"
    bank.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match=r"bank.pt: corrupt or foreign waveform bank cache \(.*\); delete it and it "
                                         "is rebuilt"):
        WaveformBank.load(bank)
    torch.save({"hp": {}, "hc": {}, "params": {}, "peak_index": 0}, bank)
    with pytest.raises(ValueError, match=r"corrupt or foreign waveform bank cache \(ValueError: hp must map each of"):
        WaveformBank.load(bank)
    torch.save({"format": "x", "payload": Evil()}, bank)
    with pytest.raises(ValueError, match="corrupt or foreign waveform bank cache"):
        WaveformBank.load(bank)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(ValueError, match="no such waveform bank file"):
        WaveformBank.load(tmp_path / "none.pt")
    # train.py records how it built the bank beside it: a corrupt cache is then rebuilt, with a warning
    bank.write_bytes(b"PK\x03\x04 truncated zip")
    (tmp_path / "bank.pt.json").write_text('{"n_per_class": 1, "seed": 0}')
    with pytest.warns(RuntimeWarning, match=r"bank.pt: corrupt waveform bank cache .* rebuilding it"):
        rebuilt = get_bank(bank, 1, 0, 1)
    again = WaveformBank.load(bank)  # the rewritten cache loads cleanly and holds the same bank
    assert rebuilt.hp["BNS"].shape[0] == 1 and torch.equal(again.hp["BNS"], rebuilt.hp["BNS"])
    nan = WaveformBank({k: v.clone() for k, v in again.hp.items()}, again.hc, again.params, again.peak_index)
    nan.hp["BBH"][0, 5] = float("nan")
    nan.save(tmp_path / "nan.pt")
    with pytest.raises(ValueError, match=r"nan.pt: corrupt or foreign waveform bank cache \(ValueError: BBH: NaN/inf"):
        WaveformBank.load(tmp_path / "nan.pt")


def test_no_loader_can_run_pickle_code():
    """Every torch.load in the code passes weights_only=True and no np.load allows pickles (a static
    check over gwviz/, app/, train.py and bench/, so a new loader cannot slip in)."""
    import ast
    from pathlib import Path
    repo = Path(__file__).resolve().parent.parent
    files = [repo / "train.py", *(p for d in ("gwviz", "app", "bench") for p in (repo / d).rglob("*.py"))]
    calls = 0
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
                owner = getattr(node.func.value, "id", None)
                kw = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
                if owner == "torch":
                    calls += 1
                    assert kw.get("weights_only") is True, f"{path}:{node.lineno}: torch.load without weights_only=True"
                if owner == "np":
                    assert kw.get("allow_pickle", False) is False, f"{path}:{node.lineno}: np.load(allow_pickle=True)"
    assert calls >= 3  # checkpoint, bank, the trainer's --resume


# --- real strain files and the trainer's real-noise .npz ---

class _Marker:
    """Unpickling this writes a marker file: proof that pickle code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


@pytest.mark.parametrize("where", ["dataset", "nested"])
def test_read_strain_never_unpickles_a_channel(tmp_path, where):
    """gwpy's HDF5 reader unpickles a non-text 'channel' attribute; read_strain refuses the file first
    (every CLI and noise source reads real strain through it)."""
    marker, path = tmp_path / "marker", tmp_path / "H1_evil.hdf5"
    with h5py.File(path, "w") as f:
        group = f.create_group("g") if where == "nested" else f
        d = group.create_dataset("H1", data=np.random.default_rng(0).normal(size=20 * 4096) * 1e-21)
        d.attrs["channel"] = np.void(pickle.dumps(_Marker(str(marker))))
    with pytest.raises(ValueError, match=r"H1_evil.hdf5: attribute 'channel' of '(g/)?H1' is not text \(gwpy would "
                                         r"unpickle it\); refused"):
        read_strain(path)
    assert not marker.exists()


def _real_npz(path, strain, **extra):
    np.savez(path, strain=strain, **extra)
    return path


def test_real_noise_npz_checked_per_detector(tmp_path):
    """The trainer's real noise (train.py real_data=) gets the same checks as any input strain."""
    rng = np.random.default_rng(1)
    good = rng.normal(size=(3, 80 * 4096)) * 1e-21
    strain, tr, va = load_real(_real_npz(tmp_path / "ok.npz", good))
    assert strain.shape == good.shape and tr[0] == 0 and va[1] == 80 * 4096 - 16 * 4096
    cases = {"zeros_v1": (2, lambda x: 0.0, r"detector .*V1 is flat"),
             "nan_h1": (0, lambda x: np.where(np.arange(x.size) == 5, np.nan, x), r"H1: strain contains 1 NaN"),
             "padded_l1": (1, lambda x: np.where(np.arange(x.size) < 4096, 0.0, x), r"L1: 1\.000 s of identical")}
    for name, (row, edit, message) in cases.items():
        bad = good.copy()
        bad[row] = edit(bad[row])
        with pytest.raises(ValueError, match=message):
            load_real(_real_npz(tmp_path / f"{name}.npz", bad))
    with pytest.raises(ValueError, match=r"strain must have shape \(3, N\)"):
        load_real(_real_npz(tmp_path / "two.npz", good[:2]))
    with pytest.raises(ValueError, match="strain must be at 4096 Hz, got 2048"):
        load_real(_real_npz(tmp_path / "rate.npz", good, sample_rate=2048))
    with pytest.raises(ValueError, match=r"train_range \(0, 99999999\) does not fit"):
        load_real(_real_npz(tmp_path / "range.npz", good, train_range=[0, 99999999]))


def test_real_noise_npz_that_is_not_one(tmp_path):
    """A missing or directory path was a FileNotFoundError/IsADirectoryError traceback through
    train.py and evaluate --real-npz; integer strain was cast to float silently (all zeros)."""
    good = np.random.default_rng(2).normal(size=(3, 80 * 4096)) * 1e-21
    cases = [(tmp_path / "missing.npz", r"missing.npz: no such .npz file"),
             (tmp_path, r": a directory, not an .npz file")]
    (tmp_path / "text.npz").write_text("not an archive")
    cases.append((tmp_path / "text.npz", r"text.npz: not a readable .npz archive \("))
    np.save(tmp_path / "one.npy", good)
    cases.append((tmp_path / "one.npy", r"one.npy: a single .npy array, not an .npz archive"))
    for dtype in (np.int64, np.float16):
        cases.append((_real_npz(tmp_path / f"{np.dtype(dtype).name}.npz", (good * 1e21).astype(dtype)),
                      rf"'strain' has dtype {np.dtype(dtype).name}; real noise must be float32 or float64"))
    for path, message in cases:
        with pytest.raises(ValueError, match=message):
            load_real(path)
    assert load_real(_real_npz(tmp_path / "f32.npz", good.astype(np.float32)))[0].dtype == np.float64
