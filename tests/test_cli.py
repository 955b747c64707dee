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
    ("evaluate", []), ("calibration", ["models/gwviz-resnet54.safetensors"]), ("camstats", []),
    ("gallery", []), ("baseline", []),
])  # gwviz.dataset reports it through argparse (exit status 2): tests/test_dataset.py
def test_unwritable_out_fails_before_any_work(blocked, module, extra, monkeypatch):
    monkeypatch.chdir(REPO)
    main = importlib.import_module(f"gwviz.{module}").main
    with pytest.raises(ValueError, match="^--out " + re.escape(f"{blocked}: cannot write there (Not a directory)")):
        main([*extra, "--out", str(blocked)])
    assert not blocked.exists()


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
    run = subprocess.run([sys.executable, "-m", "gwviz.evaluate", "--out", str(blocked)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip() == f"python -m gwviz.evaluate: error: --out {blocked}: cannot write there " \
                                 "(Not a directory); choose a writable folder"
