"""The whole pipeline through papermill and DVC, on the smoke profile, in a copy of the checkout."""
import csv
import json

import pytest
import yaml

from conftest import run_cmd as _run

pytestmark = pytest.mark.slow


def test_smoke_pipeline_produces_table_and_figures(smoke_repo):
    work, _, _ = smoke_repo
    params = yaml.safe_load((work / "params.yaml").read_text())
    with open(work / "reports" / "tables" / "table1.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r[next(iter(r))] for r in rows] == params["methods"]
    for suite in params["eval"]["suites"]:
        assert all("±" in r[suite] for r in rows)
    for fig in ("key_share.png", "localisation.png", "accuracy.png"):
        assert (work / "reports" / "figures" / fig).stat().st_size > 1000
    for ext in ("md", "tex"):
        assert (work / "reports" / "tables" / f"table1.{ext}").read_text().strip()
    summary = json.loads((work / "reports" / "data_summary.json").read_text())
    assert summary["total"]["questions"] == params["profiles"]["smoke"]["data"]["n_train_per_task"] * len(params["data"]["ind"])
    executed = work / "reports" / "notebooks" / "explore_cot_diffs.ipynb"
    assert "background:#b7f0b1" in executed.read_text()


def test_second_repro_is_a_no_op(smoke_repo):
    work, env, _ = smoke_repo
    out = _run(["dvc", "status", "dvc.yaml"], work, env)
    assert "up to date" in out, out
    out = _run(["dvc", "repro"], work, env)
    assert "didn't change" in out or "up to date" in out
    assert "Running stage" not in out, out


def test_same_seed_gives_identical_bytes(smoke_repo):
    """Forcing stages to run again reproduces their outputs byte for byte, executed notebooks
    included: DVC then finds every stage downstream of them up to date, and dvc.lock is unchanged."""
    work, env, _ = smoke_repo
    before = (work / "dvc.lock").read_text()
    _run(["dvc", "repro", "-f", "-s", "data"], work, env)
    _run(["dvc", "repro", "-f", "-s", "keysteps"], work, env)
    _run(["dvc", "repro", "-f", "-s", "train@edit-0"], work, env)
    _run(["dvc", "repro", "-f", "-s", "evaluate@edit-0"], work, env)
    out = _run(["dvc", "status", "dvc.yaml"], work, env)
    assert "up to date" in out, out
    after = (work / "dvc.lock").read_text()
    assert _out_hashes(before) == _out_hashes(after)
    assert before == after


def _out_hashes(lock_text: str) -> dict:
    """path -> md5 of every stage output, the executed notebooks included (edit.run_notebook drops
    their timestamps, so a rerun that computes the same results writes the same bytes)."""
    lock = yaml.safe_load(lock_text)
    return {o["path"]: o["md5"] for stage in lock["stages"].values() for o in stage.get("outs", [])}


def test_grid_target_runs_and_reports(smoke_repo):
    """`dvc repro grid/dvc.yaml` trains and evaluates the grid's methods (here two of them, one
    reusing EDIT's step 1) and a student of another size, and writes the grid report with the
    accuracy-by-student figure; a plain `dvc repro` stays a no-op."""
    work, env, _ = smoke_repo
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["grid_methods"] = ["edit_a1_b0", "sbs"]
    params["grid_seeds"] = [0]
    params["grid_students"] = ["small"]
    params["grid_student_methods"] = ["std_cot"]
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run(["dvc", "repro"], work, env)
    assert "Running stage" not in out, out
    _run(["dvc", "repro", "grid/dvc.yaml"], work, env)
    train = json.loads((work / "grid" / "results" / "edit_a1_b0-0" / "train.json").read_text())
    assert train["steps"][0]["reused_from"].endswith("models/edit-0/step1")
    with open(work / "reports" / "grid" / "tables" / "table4.csv") as f:
        assert {r["method"] for r in csv.DictReader(f)} >= {"edit", "edit_a1_b0"}
    small = params["profiles"]["smoke"]["student_variants"]["small"]
    config = json.loads((work / "models" / "students" / "small" / "std_cot-0" / "step1" / "config.json").read_text())
    assert config["hidden_size"] == small["hidden_size"] != params["profiles"]["smoke"]["student"]["hidden_size"]
    with open(work / "grid" / "students" / "small" / "std_cot-0" / "accuracy.csv") as f:
        assert {r["student"] for r in csv.DictReader(f)} == {"small"}
    with open(work / "reports" / "grid" / "tables" / "table1_small.csv") as f:
        assert [r["method"] for r in csv.DictReader(f)] == ["std_cot"]
    notes = (work / "reports" / "grid" / "tables" / "notes.md").read_text()
    assert "accuracy_by_student.png" not in notes  # a real figure, not the one-student placeholder
    out = _run(["dvc", "status", "grid/dvc.yaml"], work, env)
    assert "up to date" in out, out
