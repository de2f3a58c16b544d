import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The offline benchmark mirror (EDIT_DATA_MIRROR, else ../shared/data beside the checkout)."""
    from edit.oracle import default_mirror

    path = default_mirror()
    if not (path / "bbh").is_dir():
        pytest.skip(f"benchmark mirror not found at {path} (set EDIT_DATA_MIRROR)")
    return path
