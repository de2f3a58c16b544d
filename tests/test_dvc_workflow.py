"""The DVC workflow a user follows, on the smoke profile in a copy of the checkout: metrics and
plots, an experiment from the command line, a queued sweep, and push / clone / pull without
rerunning anything."""
import json
import subprocess
import time

import pytest

from conftest import copy_repo
from conftest import run_cmd as _run

pytestmark = pytest.mark.slow

GIT_ID = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
          "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}


@pytest.fixture(scope="module")
def repo(smoke_repo, tmp_path_factory):
    """A copy of the session's smoke run (the pipeline tests keep the original), committed."""
    work = copy_repo(smoke_repo[0], tmp_path_factory.mktemp("workflow") / "repo")
    env = smoke_repo[1]
    env = dict(env, **GIT_ID)
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "smoke run"], work, env)
    return work, env


def test_metrics_and_plots(repo):
    work, env = repo
    cfg = (work / ".dvc" / "config").read_text()
    assert "analytics = false" in cfg and "check_update = false" in cfg
    shown = json.loads(_run(["dvc", "metrics", "show", "--json"], work, env))
    files = next(iter(shown.values()))["data"]  # keyed by "" (the workspace)
    run = files["results/edit-0/metrics.json"]["data"]["accuracy"]
    assert {"BBH-test", "AVG"} <= set(run) and 0 <= run["AVG"] <= 100
    assert "edit" in files["reports/metrics.json"]["data"]["table1"]
    text = _run(["dvc", "metrics", "show"], work, env)
    assert "accuracy.AVG" in text and "results/edit-0/metrics.json" in text
    plots = json.loads(_run(["dvc", "plots", "show", "--json"], work, env))
    loss = plots["data"]["loss"][0]["content"]["data"]["values"]
    assert {v["run"] for v in loss} == {"std_cot-0", "std_cot-1", "std_cot-2", "edit-0", "edit-1", "edit-2"}
    assert {v["train_step"] for v in loss if v["run"] == "edit-0"} == {"1:sft", "2:krsl"}
    _run(["dvc", "plots", "show", "-o", "dvc_plots"], work, env)
    assert "training loss" in (work / "dvc_plots" / "index.html").read_text()


def test_experiment_and_queued_sweep(repo):
    work, env = repo
    # each experiment runs one seed's KRSL run and its evaluation (the stages the changed lr reaches for
    # that target), not the whole pipeline again: the mechanism is the same, at a third of the time
    target = "evaluate@edit-0"
    _run(["dvc", "exp", "run", "-n", "lr-low", "-S", "train.krsl.lr=0.00005", target], work, env)
    shown = _run(["dvc", "exp", "show", "--no-pager", "--csv"], work, env)
    assert "lr-low" in shown and "0.00005" in shown.replace("5e-05", "0.00005"), shown
    _run(["dvc", "exp", "run", "--queue", "-n", "lr-high", "-S", "train.krsl.lr=0.0003", target], work, env)
    _run(["dvc", "queue", "start"], work, env)
    deadline = time.time() + 1800
    while time.time() < deadline:
        status = _run(["dvc", "queue", "status"], work, env)
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(10)
    assert "Success" in status and "Failed" not in status, status
    shown = _run(["dvc", "exp", "show", "--no-pager", "--csv"], work, env)
    assert "lr-low" in shown and "lr-high" in shown, shown
    subprocess.run(["dvc", "queue", "stop"], cwd=work, env=env, capture_output=True)


def test_push_clone_pull_is_up_to_date(repo, tmp_path):
    work, env = repo
    _run(["git", "reset", "-q", "--hard"], work, env)  # back from the last experiment to the committed run
    _run(["dvc", "checkout", "--force", "dvc.yaml"], work, env)  # the default pipeline (not grid/dvc.yaml)
    assert "up to date" in _run(["dvc", "status", "dvc.yaml"], work, env)
    _run(["dvc", "remote", "add", "-d", "local", str(tmp_path / "remote")], work, env)
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "remote", "--allow-empty"], work, env)
    _run(["dvc", "push", "dvc.yaml"], work, env)
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(work), str(clone)], tmp_path, env)
    _run(["dvc", "pull", "dvc.yaml"], clone, env)
    out = _run(["dvc", "status", "dvc.yaml"], clone, env)
    assert "up to date" in out, out
    assert (clone / "models" / "edit-0").is_dir()
