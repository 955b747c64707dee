"""Shared fixtures. Real O3 strain is read through $GWVIZ_DATA_DIR (default: ../shared/data/o3 beside
the repository, else the GWOSC copies bundled in gwviz/data/o3, so a fresh clone tests on its own)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parent.parent


#: Where the real O3 files are looked for when $GWVIZ_DATA_DIR is not set: beside the checkout
#: (our workplace layout), then the workplace's shared folder (CI clones elsewhere).
DATA_CANDIDATES = (REPO.parent / "shared" / "data" / "o3", Path("/work/shared/data/o3"))


def o3_dir() -> Path:
    env = os.environ.get("GWVIZ_DATA_DIR")
    candidates = [Path(env)] if env else list(DATA_CANDIDATES)
    for path in candidates:
        if path.is_dir():
            return path
    if env:
        raise AssertionError(f"GWVIZ_DATA_DIR={env} is not a directory")
    return REPO / "gwviz" / "data" / "o3"  # the bundled GW190521 (H1, L1, V1) and GW190425 (L1, 4096 Hz)


#: How far [s] a scan trigger's GPS may lie from a catalogue time: the catalogue's one decimal (±0.05), the
#: merger placed anywhere in the window's last 0.1 s (the trigger says window end − 0.05: ±0.05), the 0.1-s
#: stride (the loudest window of a cluster: ±0.05) and the arrival delay between detectors (≤ 0.027).
TRIGGER_TIME_TOL: float = 0.05 + 0.05 + 0.05 + 0.027


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: on a CPU shared with busy processes, 2 threads ran these tests ~10x slower
    (threads wait on each other); restored afterwards so other modules keep their setting.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    """A narrow (width 2) random GWNet: same code path as the shipped model, 5x faster on a CPU."""
    from gwviz.model.checkpoint import save_weights
    from gwviz.model.network import GWNet, ModelConfig
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    cfg = ModelConfig(width=2, hidden=16)
    save_weights(GWNet.from_config(cfg), path, cfg.to_dict(), {"note": "random, for tests"})
    return str(path)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return o3_dir()


@pytest.fixture(scope="session")
def gw190521_files(data_dir) -> list[Path]:
    files = sorted((data_dir / "gwpy_format" / "GW190521_data").glob("*_data_32s.hdf5"))
    assert len(files) == 3, files
    return files
