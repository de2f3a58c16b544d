import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


def run_cmd(cmd, cwd, env):
    """Run ``cmd`` and return its stdout; a non-zero exit fails the test with the output's tail."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory, mirror):
    """A copy of the checkout (without its outputs) on the smoke profile after one ``dvc repro``:
    ``(folder, env, repro output)``. Made once per session; a test that changes it works on a copy
    (``copy_repo``)."""
    work = tmp_path_factory.mktemp("pipeline") / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        src = ROOT / f
        outputs = f.startswith(("reports/", "results/", "dvc.lock", "grid/results/", "grid/dvc.lock")) or (
            f.startswith("grid/students/") and f.count("/") > 2)  # the student sizes' runs, not the README
        if src.is_file() and not outputs:
            (work / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, work / f)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["profile"] = "smoke"
    params["runtime"]["data_mirror"] = str(mirror)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    run_cmd(["git", "init", "-q"], work, env)
    out = run_cmd(["dvc", "repro"], work, env)
    return work, env, out


def copy_repo(repo: Path, dest: Path) -> Path:
    """A full copy of a smoke repository (workspace, git and DVC cache) at ``dest``."""
    shutil.copytree(repo, dest, symlinks=True)
    return dest


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
