"""DVC metrics and plots files (edit.tracking): values, shapes and byte stability."""
import json

import pandas as pd

from conftest import ROOT
from edit import tracking


def _summary():
    return {"steps": [
        {"step": 1, "loss": "sft", "selection": {"criterion": "best_val_accuracy", "epoch": 2, "val_accuracy": 50.0,
                                                 "per_epoch": [{"epoch": 1, "val_accuracy": 25.0},
                                                               {"epoch": 2, "val_accuracy": 50.0}]},
         "log": [{"epoch": 0.5, "loss": 3.0, "step": 2}, {"epoch": 1.0, "loss": 2.0, "step": 4},
                 {"epoch": 1.0, "step": 4, "train_loss": 2.5}]},
        {"step": 2, "loss": "krsl", "selection": {"criterion": "last", "epoch": 1},
         "log": [{"epoch": 1.0, "loss": 0.125, "step": 3}, {"epoch": 1.0, "step": 3, "train_loss": 0.125}]},
    ]}


def test_run_metrics_macro_per_suite_and_avg():
    acc = pd.DataFrame([
        ("edit", "default", 0, "IND", "a", 10, 40.0), ("edit", "default", 0, "IND", "MACRO", 20, 50.0),
        ("edit", "default", 0, "IND", "ALL", 20, 51.0), ("edit", "default", 0, "OOD", "MACRO", 20, 30.0),
    ], columns=["method", "student", "seed", "suite", "task", "n", "accuracy"])
    assert tracking.run_metrics(acc) == {"accuracy": {"IND": 50.0, "OOD": 30.0, "AVG": 40.0}}


def test_run_metrics_of_a_committed_run_agree_with_the_accuracy_csv(tmp_path):
    run = tmp_path / "edit-0"
    run.mkdir()
    (run / "accuracy.csv").write_text((ROOT / "results" / "edit-0" / "accuracy.csv").read_text())
    m = json.loads(tracking.write_run_metrics(run).read_text())["accuracy"]
    acc = pd.read_csv(run / "accuracy.csv")
    macro = acc[acc.task == "MACRO"].set_index("suite").accuracy
    assert list(m) == list(macro.index) + ["AVG"]
    assert abs(m["AVG"] - macro.mean()) < 1e-3


def test_loss_rows_continue_the_step_count_across_training_steps():
    rows = tracking.loss_rows(_summary(), "edit-0")
    assert [(r["train_step"], r["step"], r["loss"]) for r in rows] == [
        ("1:sft", 2, 3.0), ("1:sft", 4, 2.0), ("2:krsl", 7, 0.125)]
    assert {r["run"] for r in rows} == {"edit-0"}


def test_val_rows_only_for_steps_selected_on_validation():
    rows = tracking.val_rows(_summary(), "edit-0")
    assert rows == [{"run": "edit-0", "train_step": "1:sft", "epoch": 1, "val_accuracy": 25.0},
                    {"run": "edit-0", "train_step": "1:sft", "epoch": 2, "val_accuracy": 50.0}]


def test_run_labels_fall_back_to_the_path_on_collisions():
    assert tracking.run_labels(["results/edit-0", "grid/results/a-0"]) == {"results/edit-0": "edit-0",
                                                                          "grid/results/a-0": "a-0"}
    assert tracking.run_labels(["results/a-0", "grid/results/a-0"]) == {"results/a-0": "results/a-0",
                                                                       "grid/results/a-0": "grid/results/a-0"}


def test_report_tracking_on_the_committed_results_is_byte_stable(tmp_path):
    runs = [f"results/{m}-{s}" for m in ("std_cot", "edit") for s in (0, 1, 2)]
    first = tracking.write_report_tracking(ROOT, runs, ROOT / "reports" / "tables", tmp_path / "a")
    second = tracking.write_report_tracking(ROOT, runs, ROOT / "reports" / "tables", tmp_path / "b")
    for key in first:
        assert first[key].read_bytes() == second[key].read_bytes()
    loss = pd.read_csv(first["loss"])
    assert list(loss.columns) == list(tracking.LOSS_COLUMNS)
    assert set(loss.run) == {r.split("/")[1] for r in runs}
    assert set(loss[loss.run == "edit-0"].train_step) == {"1:sft", "2:krsl"}
    assert loss.groupby("run").step.apply(lambda s: s.is_monotonic_increasing).all()
    metrics = json.loads(first["metrics"].read_text())
    table1 = pd.read_csv(ROOT / "reports" / "tables" / "table1_numeric.csv").set_index("method")
    assert metrics["table1"]["edit"]["AVG"] == round(table1.loc["edit", "AVG_mean"], 4)
    assert pd.read_csv(first["val_accuracy"]).empty  # the default profile selects the last epoch
