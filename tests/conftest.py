"""Shared fixtures. Real O3 strain is read through $GWVIZ_DATA_DIR (default: ../shared/data/o3
beside the repository), never copied into the project."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parent.parent


def o3_dir() -> Path:
    path = Path(os.environ.get("GWVIZ_DATA_DIR", REPO.parent / "shared" / "data" / "o3"))
    assert path.is_dir(), f"real O3 data directory {path} not found: set GWVIZ_DATA_DIR"
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return o3_dir()


@pytest.fixture(scope="session")
def gw190521_files(data_dir) -> list[Path]:
    files = sorted((data_dir / "gwpy_format" / "GW190521_data").glob("*_data_32s.hdf5"))
    assert len(files) == 3, files
    return files
