"""Every command line refuses an unwritable --out before doing any work, and ends a bad run with
``prog: error: …`` and exit status 1 instead of a traceback."""
from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gwviz.paths import run_cli, writable_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def blocked(tmp_path) -> Path:
    """A folder path that cannot be created (its parent is a file), for root too."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    return blocker / "out"


@pytest.mark.parametrize("module, extra", [
    ("evaluation.evaluate", []), ("evaluation.calibration", ["models/gwviz-resnet54.safetensors"]), ("explain.camstats", []),
    ("explain.gallery", []), ("baseline", []),
])  # gwviz.data.dataset reports it through argparse (exit status 2): tests/test_dataset.py
def test_unwritable_out_fails_before_any_work(blocked, module, extra, monkeypatch):
    monkeypatch.chdir(REPO)
    main = importlib.import_module(f"gwviz.{module}").main
    with pytest.raises(ValueError, match="^--out " + re.escape(f"{blocked}: cannot write there (Not a directory)")):
        main([*extra, "--out", str(blocked)])
    assert not blocked.exists()


@pytest.mark.parametrize("module, extra, result", [
    ("evaluation.evaluate", [], "metrics.json"), ("evaluation.calibration", ["models/gwviz-resnet54.safetensors"], "calibration.json"),
    ("explain.camstats", [], "camstats.json"), ("explain.gallery", [], "gallery.h5"), ("baseline", [], "metrics.json"),
    ("evaluation.injections", [], "injections.json"), ("scan", ["--simulated", "64"], "scan.json"),
])
def test_an_earlier_runs_results_are_not_replaced_without_overwrite(tmp_path, module, extra, result, monkeypatch):
    """A second run into the same --out used to replace the first one's results silently (an hour of
    evaluation lost to a re-typed command): now it stops before any work and the file is untouched."""
    monkeypatch.chdir(REPO)
    (tmp_path / result).write_text("earlier results")
    main = importlib.import_module(f"gwviz.{module}").main
    with pytest.raises(ValueError, match=f"^--out {re.escape(str(tmp_path))} already holds {result} from an earlier "
                                         "run; choose another folder, or add --overwrite to replace them"):
        main([*extra, "--out", str(tmp_path)])
    assert (tmp_path / result).read_text() == "earlier results"
    assert sorted(p.name for p in tmp_path.iterdir()) == [result]


def test_overwrite_lets_a_run_replace_its_own_results(tmp_path):
    (tmp_path / "scan.json").write_text("old")
    with pytest.raises(ValueError, match="already holds scan.json"):
        writable_dir(tmp_path, results=("scan.json", "other.json"))
    assert writable_dir(tmp_path, results=("scan.json",), overwrite=True) == tmp_path
    assert writable_dir(tmp_path, results=("other.json",)) == tmp_path  # another command's files do not count


def test_writable_dir_creates_and_leaves_no_probe(tmp_path):
    out = writable_dir(tmp_path / "a" / "b")
    assert out.is_dir() and list(out.iterdir()) == []


def test_run_cli_turns_errors_into_messages(capsys):
    def bad():
        raise ValueError("--n must be > 0")

    with pytest.raises(SystemExit) as stop:
        run_cli(bad, "python -m gwviz.x")
    assert stop.value.code == "python -m gwviz.x: error: --n must be > 0"  # printed to stderr, status 1

    def crash():
        raise KeyError("a bug, not a bad input")

    with pytest.raises(KeyError):  # a bug still shows its traceback
        run_cli(crash, "x")


def test_command_line_exit_status_and_message(blocked):
    run = subprocess.run([sys.executable, "-m", "gwviz.evaluation.evaluate", "--out", str(blocked)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip() == f"python -m gwviz.evaluation.evaluate: error: --out {blocked}: cannot write there " \
                                 "(Not a directory); choose a writable folder"


@pytest.mark.parametrize("module, args, message", [
    ("evaluation.evaluate", ["--roc-snr", "-3"], r"ROC SNRs must be finite and > 0, got \[-3.0\]"),
    ("evaluation.evaluate", ["--roc-snr", "nan"], r"ROC SNRs must be finite and > 0, got \[nan\]"),
    ("evaluation.evaluate", ["--batch", "0"], r"batch must be >= 1"),
    ("evaluation.evaluate", ["--n", "2"], r"n must be >= 4 \(balanced classes\), got 2"),
    ("evaluation.evaluate", ["--n-roc", "-1"], r"n_roc, n_roc_noise >= 0"),
    ("baseline", ["--n", "-1"], r"--n must be >= 1 and --n-noise >= 0, got -1 and None"),
])
def test_wrong_values_are_refused_before_the_work(tmp_path, monkeypatch, module, args, message):
    """Values that cannot give a result stop the command at once (the baseline used to build its
    template bank for minutes first), with the value named."""
    monkeypatch.chdir(REPO)
    main = importlib.import_module(f"gwviz.{module}").main
    with pytest.raises(ValueError, match=message):
        main([*args, "--out", str(tmp_path / "o")])


@pytest.mark.parametrize("module, args, message", [
    ("explain.camstats", ["--n", "0"], "--n must be >= 1 and --n-random >= 0, got 0 and 8"),
    ("explain.camstats", ["--n-random", "-1"], "got 1000 and -1"),
    ("explain.camstats", ["--snr", "inf"], "argument --snr: must be a finite number > 0, got inf"),
    ("explain.gallery", ["--snr", "-2"], "argument --snr: must be a finite number > 0, got -2.0"),
    ("explain.gallery", ["--snr", "nan"], "argument --snr: must be a finite number > 0, got nan"),
    ("explain.gallery", ["--snr", "5000"], "argument --snr: 5000 is above 1000: the signal would dominate the PSD"),
    ("explain.gallery", ["--n", "-1"], "--n and --display-step must be >= 1, got -1 and 2"),
    ("explain.gallery", ["--display-step", "0"], "got 4 and 0"),
    ("evaluation.injections", ["--snr", "0"], "argument --snr: must be a finite number > 0, got 0.0"),
    ("baseline", ["--snr", "12", "0"], "argument --snr: must be a finite number > 0, got 0.0"),
    ("baseline", ["--snr", "12", "x"], "argument --snr: invalid network SNR value: 'x'"),
])
def test_gallery_and_camstats_values_are_argparse_errors_before_the_folder(tmp_path, capsys, module, args, message):
    """Refused before the output folder, the model or any sample (they failed after all three)."""
    main = importlib.import_module(f"gwviz.{module}").main
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "o")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, message", [
    (["--real-npz", "x.npz"], r"^--real-npz goes with --noise files; with simulated noise it would be ignored"),
    (["--gps-range", "1", "2"], r"^--gps-range goes with --noise files"),
    (["--data-dir", "d", "--gps-range", "1", "2"], r"^--data-dir and --gps-range go with --noise files"),
    (["--noise", "files", "--gps-range", "nan", "3"], r"^--gps-range must be two finite GPS times LO < HI \[s\], got nan 3"),
    (["--noise", "files", "--gps-range", "5", "3"], r"^--gps-range must be two finite GPS times LO < HI"),
    (["--noise", "files", "--real-npz", "missing.npz"], r"^--real-npz missing.npz: no such .npz file"),
    (["--noise", "files", "--real-npz", "."], r"^--real-npz .: a directory, not an .npz file"),
    (["--noise", "files", "--real-npz", "x.npz", "--data-dir", "d"], r"^--real-npz replaces --data-dir and --gps-range"),
    (["--bank", "."], r"^--bank .: a directory, not a bank file"),
])
def test_evaluate_refuses_options_it_would_ignore_or_choke_on(tmp_path, monkeypatch, args, message):
    """With simulated noise --data-dir/--gps-range/--real-npz were ignored; a NaN range ended as "cannot
    convert float NaN to integer" and a missing --real-npz as a FileNotFoundError traceback, after the
    classifier and the bank. Now a message, before the output folder is made."""
    from gwviz.evaluation.evaluate import main
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        main([*args, "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, message", [
    (["--threads", "-3"], "argument --threads: must be >= 1, got -3"),  # was a RuntimeError traceback
    (["--threads", "0"], "argument --threads: must be >= 1, got 0"),  # was ignored
    (["--seed", "-1"], "argument --seed: must be >= 0, got -1"),  # was numpy's "expected non-negative integer"
    (["--bank-seed", "-1"], "argument --bank-seed: must be >= 0, got -1"),
    (["--bank-per-class", "0"], "argument --bank-per-class: must be >= 1, got 0"),  # "need at least one array to stack"
    (["--bank-per-class", "-5"], "argument --bank-per-class: must be >= 1, got -5"),  # "negative dimensions ..."
    (["--workers", "-2"], "argument --workers: must be >= 1, got -2"),  # "max_workers must be greater than 0"
])
def test_evaluate_counts_are_argparse_errors(tmp_path, capsys, args, message):
    from gwviz.evaluation.evaluate import main
    with pytest.raises(SystemExit) as stop:
        main([*args, "--out", str(tmp_path / "o")])
    assert stop.value.code == 2 and f"python -m gwviz.evaluation.evaluate: error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_calibration_sizes_are_argparse_errors(tmp_path, capsys):
    from gwviz.evaluation.calibration import main
    with pytest.raises(SystemExit) as stop:
        main([str(REPO / "models" / "gwviz-resnet54.safetensors"), "--n", "10", "--out", str(tmp_path / "o")])
    assert stop.value.code == 2
    assert "error: --n must be >= 1000 (an FPR of 1e-3 needs at least 1000 noise windows)" in capsys.readouterr().err


def test_scan_checks_stride_and_rate_before_reading(tmp_path):
    from gwviz.scan import main
    missing = [str(tmp_path / f"{d}.hdf5") for d in ("H1", "L1", "V1")]  # never opened
    with pytest.raises(ValueError, match="--stride must be a number of seconds"):
        main([*missing, "--stride", "-1", "--out", str(tmp_path / "o"), "--device", "cpu"])
    with pytest.raises(ValueError, match=r"no threshold for FPR 0\.5"):
        main([*missing, "--rate", "0.5", "--out", str(tmp_path / "o"), "--device", "cpu"])
