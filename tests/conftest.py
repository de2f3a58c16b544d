import json
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


def pytest_configure(config):
    config.addinivalue_line("markers", "bad_input(category): a bad input of the issue 'Nothing silent' (file, stage, "
                                       "mirror, setting or teacher); tests/test_bad_inputs.py counts them")


def pytest_collection_modifyitems(config, items):
    """With EDIT_BAD_INPUT_COUNTS set: write ``{category: collected cases}`` of the ``bad_input``
    tests to that file (tests/test_bad_inputs.py collects the suite in a subprocess to count them)."""
    out = os.environ.get("EDIT_BAD_INPUT_COUNTS")
    if not out:
        return
    counts: dict[str, int] = {}
    for item in items:
        mark = item.get_closest_marker("bad_input")
        if mark is not None:
            category = mark.args[0] if mark.args else "?"
            counts[category] = counts.get(category, 0) + 1
    Path(out).write_text(json.dumps(dict(sorted(counts.items()))))
