"""The report as a whole: loading run folders, the figures, make_report end to end (files, notes,
other students, determinism), the grid's students, and the report stage (its runs list, per_task.csv)."""
from __future__ import annotations

import pandas as pd
import pytest
from transformers import LlamaConfig, LlamaForCausalLM

from conftest import ROOT
from edit.config_schema import defaults, section_defaults
from edit.params import load_params
from edit.plan_costs import student_plan
from edit.report.figures import plot_accuracy, plot_alpha_beta, plot_by_student, plot_learning_curves
from edit.report.make import make_report
from edit.report.runs import load_accuracy, load_item_correctness, with_grid_students
from edit.report.scores import results_table
from edit.report.spec import DEFAULT_LABELS
from edit.stages import report as report_stage
from report_data import PAPER_CSV, TASKS, hand_acc, hand_scores, repo_methods, results, write_run


def test_load_accuracy_with_and_without_method_seed_columns(tmp_path):
    root = results(tmp_path / "results")
    acc = load_accuracy(root, ["std_cot-0", "std_cot-1", "edit-1"], student="tiny")
    assert list(acc.columns[:7]) == ["student", "method", "seed", "suite", "task", "n", "accuracy"]
    assert set(acc["student"]) == {"tiny"}
    assert sorted(set(zip(acc["method"], acc["seed"]))) == [("edit", 1), ("std_cot", 0), ("std_cot", 1)]
    got = acc[(acc.method == "std_cot") & (acc.seed == 1) & (acc.suite == "IND") & (acc.task == "MACRO")]
    assert got["accuracy"].iloc[0] == pytest.approx(hand_scores("std_cot", 1)["IND"])
    assert len(load_accuracy(root)) == 6 * 2 * (len(TASKS) + 2)  # discovery: every run folder
    bad = root / "edit-7"
    bad.mkdir()
    pd.read_csv(root / "edit-1" / "accuracy.csv").to_csv(bad / "accuracy.csv", index=False)  # says seed 1
    with pytest.raises(ValueError, match=r"edit-7.*seed"):
        load_accuracy(root, ["edit-7"])
    with pytest.raises(FileNotFoundError, match="edit-9"):
        load_accuracy(root, ["edit-9"])
    with pytest.raises(ValueError, match="<method>-<seed>"):
        load_accuracy(root, ["nodash"])
    items, missing = load_item_correctness(root, ["edit-0", "edit-7"])
    assert missing == ["edit-7"] and len(items) == 2 * sum(TASKS.values())
    assert items["correct"].dtype == bool


def test_accuracy_figure_written_and_deterministic(tmp_path):
    p = plot_accuracy(hand_acc(), tmp_path / "acc.png", suites=["bbh", "arc"])
    assert p.exists() and 1000 < p.stat().st_size < 300_000
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_accuracy(hand_acc(), tmp_path / "acc2.png", suites=["bbh", "arc"]).read_bytes() == p.read_bytes()


def test_learning_curves_figure(tmp_path):
    """One panel per training step kind, one colour per method (seeds share it); deterministic
    bytes; nothing to draw gives None and no file."""
    rows = [{"run": f"{m}-{s}", "train_step": kind, "step": k + off, "loss": 2.0 / (k + 1) + 0.1 * s}
            for m in ("std_cot", "edit") for s in (0, 1)
            for kind, off, n in (("1:sft", 0, 20), ("2:krsl", 20, 5)) if kind == "1:sft" or m == "edit"
            for k in range(n)]
    loss = pd.DataFrame(rows)
    p1 = plot_learning_curves(loss, tmp_path / "lc1.png", labels=DEFAULT_LABELS)
    p2 = plot_learning_curves(loss, tmp_path / "lc2.png", labels=DEFAULT_LABELS)
    assert p1.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p1.read_bytes() == p2.read_bytes()
    one = plot_learning_curves(loss[loss["train_step"] == "1:sft"], tmp_path / "lc3.png")
    assert one.stat().st_size < p1.stat().st_size  # one panel, not two
    assert plot_learning_curves(loss.iloc[:0], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
    with pytest.raises(ValueError, match="loss"):
        plot_learning_curves(loss.drop(columns=["loss"]), tmp_path / "x.png")


def test_alpha_beta_heatmap_and_student_figure(tmp_path):
    acc = load_accuracy(results(tmp_path / "r", methods=("edit_a0_b0", "edit_a1_b0", "edit")))
    grid = [{"method": "edit_a0_b0", "alpha": 0, "beta": 0}, {"method": "edit_a0_b0025", "alpha": 0, "beta": 0.025},
            {"method": "edit_a1_b0", "alpha": 1, "beta": 0}, {"method": "edit", "alpha": 1, "beta": 0.025}]
    p1 = plot_alpha_beta(acc, grid, tmp_path / "ab1.png", ["IND", "OOD"])
    p2 = plot_alpha_beta(acc, grid, tmp_path / "ab2.png", ["IND", "OOD"])
    assert p1.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p1.stat().st_size > 1000
    assert p1.read_bytes() == p2.read_bytes()
    assert plot_alpha_beta(acc, [{"method": "nope", "alpha": 0, "beta": 0}], tmp_path / "x.png", ["IND"]) is None
    assert not (tmp_path / "x.png").exists()
    assert plot_by_student(acc, tmp_path / "s.png", ["IND", "OOD"]) is None  # one student
    two = pd.concat([acc, acc.assign(student="big", accuracy=acc["accuracy"] * 0.9)], ignore_index=True)
    p = plot_by_student(two, tmp_path / "s.png", ["IND", "OOD"], sizes={"student": 4e5, "big": 1.1e9},
                        labels=DEFAULT_LABELS)
    assert p is not None and p.stat().st_size > 1000
    with pytest.raises(ValueError, match="mixes students"):
        results_table(two, ["IND"])


def test_make_report_end_to_end(tmp_path):
    root = results(tmp_path / "results", methods=("std_cot", "edit", "edit_a0_b0", "edit_a1_b0"))
    (root / "edit_a1_b0-2" / "samples.jsonl").unlink()  # samples are in the DVC cache: may be absent
    other = results(tmp_path / "other", methods=("std_cot", "edit"))
    params = defaults(profile="default", methods=["std_cot", "edit", "edit_a0_b0", "edit_a1_b0"], seeds=[0, 1, 2],
                      eval={"suites": {"IND": "ind_test", "OOD": "ood_test"}}, **repo_methods(),
                      report={"n_bootstrap": 300, "other_students": {"bigger": str(other)},
                              "student_sizes": {"default": 4e5, "bigger": 1e6}})
    out = make_report(params, root, tmp_path / "tables", tmp_path / "figures", paper_csv=PAPER_CSV)
    tables = tmp_path / "tables"
    rows = pd.read_csv(tables / "table1.csv")
    assert list(rows["method"]) == ["std_cot", "edit_a0_b0", "edit"]  # spec order, missing rows skipped
    assert all("±" in v for v in rows["IND"]) and all("±" in v for v in rows["AVG"])
    assert (tables / "table1_with_reported.md").read_text().count("| reported |") == 15
    assert set(out["tables"]) >= {"table1", "table4", "table5", "table1_bigger"}
    for t in ("table2", "table7", "table9"):  # one row with results: not written
        assert t not in out["tables"] and not (tables / f"{t}.csv").exists()
    t4 = pd.read_csv(tables / "table4.csv")
    assert list(t4["method"]) == ["edit_a0_b0", "edit_a1_b0", "edit"] and list(t4["alpha"]) == [0, 1, 1]
    assert set(t4["vs"].dropna()) == {DEFAULT_LABELS["edit_a0_b0"]}
    for f in ("table1.md", "table1.tex", "table1_numeric.csv", "significance.csv", "notes.md"):
        assert (tables / f).read_text().strip()
    notes = (tables / "notes.md").read_text()
    assert "edit_a1_b0-2" in notes and "table9" in notes and "Within noise" in notes
    sig = pd.read_csv(tables / "significance.csv")
    pairs = set(zip(sig.reference, sig.method))
    assert {("std_cot", "edit"), ("edit_a0_b0", "edit_a1_b0"), ("edit_a0_b0", "edit")} <= pairs
    assert sig.loc[(sig.method == "edit_a1_b0") & (sig.column == "AVG"), "p_items"].isna().all()  # a seed lacks items
    for fig in ("accuracy.png", "alpha_beta.png", "accuracy_by_student.png"):
        assert (tmp_path / "figures" / fig).stat().st_size > 1000
    make_report(params, root, tmp_path / "tables2", tmp_path / "figures2", paper_csv=PAPER_CSV)
    params1 = defaults(**{**params, "methods": ["std_cot", "edit"], "report": {"n_bootstrap": 300}})  # one student, no grid
    make_report(params1, results(tmp_path / "r1"), tmp_path / "t1", tmp_path / "f1")
    for fig in ("alpha_beta.png", "accuracy_by_student.png"):
        assert 0 < (tmp_path / "f1" / fig).stat().st_size < (tmp_path / "figures" / fig).stat().st_size
    assert not (tmp_path / "t1" / "table1_with_reported.csv").exists()  # no paper CSV given
    for f in sorted(tables.iterdir()):
        assert f.read_bytes() == (tmp_path / "tables2" / f.name).read_bytes(), f.name
    for f in sorted((tmp_path / "figures").iterdir()):
        assert f.read_bytes() == (tmp_path / "figures2" / f.name).read_bytes(), f.name


def test_switched_off_suites_are_not_columns(tmp_path):
    """A profile switches a base suite off with null (the bbh and paper profiles drop IND and OOD):
    the tables have no column for it, and AVG is over the suites that ran."""
    root = results(tmp_path / "results", methods=("std_cot", "edit"))
    params = defaults(profile="p", methods=["std_cot", "edit"], seeds=[0, 1, 2],
                      eval={"suites": {"IND": "ind_test", "OOD": "ood_test", "GONE": None}})
    out = make_report(params, root, tmp_path / "t", tmp_path / "f")
    table = pd.read_csv(tmp_path / "t" / "table1.csv")
    assert "GONE" not in table.columns and {"IND", "OOD", "AVG"} <= set(table.columns)
    assert table["AVG"].notna().all() and "table1" in out["tables"]


def test_student_sizes_and_grid_students(tmp_path):
    """The code-built student's parameter count (edit.plan_costs.student_plan, the number the size figure
    shows) equals that of the model it builds (tied embeddings once), and with_grid_students adds
    every grid student's runs and size to the report section."""
    for h, i, layers, tied in ((16, 32, 2, True), (48, 144, 2, True), (96, 288, 3, True), (16, 32, 2, False)):
        student = section_defaults("student", vocab_size=120, hidden_size=h, intermediate_size=i, num_layers=layers,
                                   num_heads=2, max_length=64, tie_embeddings=tied)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=120, hidden_size=h, intermediate_size=i,
                                             num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                                             max_position_embeddings=64, tie_word_embeddings=tied))
        assert student_plan(student)["n_params"] == sum(p.numel() for p in model.parameters())

    p = load_params(ROOT / "params.yaml", profile="default")
    p["report"] = {**p["report"], "student_sizes": {"large": 123}}
    out = with_grid_students(p, tmp_path / "students")
    runs = [f"{m}-{s}" for m in p["grid_student_methods"] for s in p["grid_seeds"]]
    assert out["report"]["other_students"] == {s: {"dir": str(tmp_path / "students" / s), "runs": runs}
                                               for s in p["grid_students"]}
    sizes = out["report"]["student_sizes"]
    assert sizes["large"] == 123  # a given size is kept
    assert sizes["small"] < sizes["default"]
    assert with_grid_students({**p, "grid_students": []}, tmp_path)["report"]["other_students"] == {}
    with pytest.raises(ValueError, match="'default' is also the primary student's name"):
        with_grid_students({**p, "grid_students": ["default"], "student_variants": {"default": {}}}, tmp_path)


def test_other_student_reads_only_its_listed_runs(tmp_path):
    """An other student given as {dir, runs} is read from exactly those run folders: a folder left
    from another configuration (here mt_cot-0) stays out, and a listed run without results is an error."""
    root = results(tmp_path / "results")
    other = results(tmp_path / "other")
    write_run(other, "mt_cot", 0)
    runs = [f"{m}-{s}" for m in ("std_cot", "edit") for s in (0, 1, 2)]
    params = defaults(profile="default", methods=["std_cot", "edit"], seeds=[0, 1, 2],
                      eval={"suites": {"IND": "ind_test", "OOD": "ood_test"}},
                      report={"n_bootstrap": 100, "other_students": {"bigger": {"dir": str(other), "runs": runs}}})
    make_report(params, root, tmp_path / "t", tmp_path / "f")
    assert list(pd.read_csv(tmp_path / "t" / "table1_bigger.csv")["method"]) == ["std_cot", "edit"]
    params["report"]["other_students"]["bigger"] = str(other)  # a plain folder: every run in it
    make_report(params, root, tmp_path / "t2", tmp_path / "f2")
    assert "mt_cot" in set(pd.read_csv(tmp_path / "t2" / "table1_bigger.csv")["method"])
    params["report"]["other_students"]["bigger"] = {"dir": str(other), "runs": runs + ["sbs-0"]}
    with pytest.raises(FileNotFoundError, match="sbs-0"):
        make_report(params, root, tmp_path / "t3", tmp_path / "f3")


# ---------------------------------------------------------------- the report stage


def test_report_runs_lists_default_then_grid_runs():
    p = {"methods": ["std_cot", "edit"], "seeds": [0, 1], "grid_methods": ["sbs"], "grid_seeds": [2]}
    assert report_stage.report_runs(p, "res") == ["res/std_cot-0", "res/std_cot-1", "res/edit-0", "res/edit-1"]
    assert report_stage.report_runs(p, "res", include_grid=True, grid_results_dir="g") == [
        "res/std_cot-0", "res/std_cot-1", "res/edit-0", "res/edit-1", "g/sbs-2"]
    assert report_stage.report_runs({**p, "grid_methods": []}, "res", include_grid=True)[-1] == "res/edit-1"


def test_per_task_table_by_hand():
    t = report_stage.per_task_table(hand_acc())
    assert list(t.index.names) == ["method", "suite", "task"] and list(t.columns) == ["mean", "std"]
    assert ("EDIT", "bbh", "MACRO") not in t.index and ("EDIT", "bbh", "ALL") not in t.index
    assert t.loc[("EDIT", "arc", "easy"), "mean"] == 40.0 and t.loc[("EDIT", "arc", "easy"), "std"] == 10.0
    assert t.loc[("Std-CoT", "arc", "challenge"), "std"] == round(pd.Series([40.0, 30.0, 45.0]).std(), 1)


def test_report_stage_run_with_grid(tmp_path, monkeypatch):
    """The stage reads exactly its runs (default + grid methods, the grid's students), writes every
    make_report file and per_task.csv; a leftover run folder stays out."""
    monkeypatch.chdir(tmp_path)
    results(tmp_path / "results", methods=("std_cot", "edit"))
    results(tmp_path / "grid" / "results", methods=("edit_a0_b0", "edit_a1_b0"))
    write_run(tmp_path / "results", "mt_cot", 0)  # left over from another configuration
    for student in ("small", "large"):
        results(tmp_path / "grid" / "students" / student, methods=("std_cot", "edit"))
    p = load_params(ROOT / "params.yaml", profile="default")
    p.update(methods=["std_cot", "edit"], seeds=[0, 1, 2], grid_methods=["edit_a0_b0", "edit_a1_b0"],
             grid_seeds=[0, 1, 2], grid_student_methods=["std_cot", "edit"], eval={"suites": {"IND": 1, "OOD": 1}})
    p["report"] = {**p["report"], "n_bootstrap": 50}
    out = report_stage.run(p, "results", "t", "f", paper_csv=PAPER_CSV, include_grid=True,
                           grid_results_dir="grid/results", students_dir="grid/students")
    assert out["runs"] == report_stage.report_runs(p, "results", True, "grid/results")
    assert {"table1", "table4", "table1_small", "table1_large"} <= set(out["tables"])
    per_task = pd.read_csv(tmp_path / "t" / "per_task.csv")
    assert set(per_task["method"]) == {"std_cot", "edit", "edit_a0_b0", "edit_a1_b0"}  # no mt_cot
    assert len(per_task) == 4 * 2 * len(TASKS)
    for fig in ("accuracy.png", "alpha_beta.png", "accuracy_by_student.png"):
        assert (tmp_path / "f" / fig).stat().st_size > 1000
    assert (tmp_path / "f" / "learning_curves.png").is_file()  # no run has a train.json: the placeholder
    t4 = pd.read_csv(tmp_path / "t" / "table4.csv")
    assert list(t4["method"]) == ["edit_a0_b0", "edit_a1_b0", "edit"] and list(t4["alpha"]) == [0, 1, 1]

