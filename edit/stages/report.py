"""The report stage (notebooks/05_report.ipynb; with ``include_grid`` also the grid's report of
grid/dvc.yaml): which run folders it reads, every table and figure of ``edit.report.make``, and the
per-task accuracy table ``per_task.csv``, the DVC metrics and plots files
(:func:`edit.tracking.write_report_tracking`: ``metrics.json`` and ``plots/`` beside ``tables_dir``),
and ``learning_curves.png`` (training loss per run) under ``figures_dir``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from edit.figure_files import plot_placeholder
from edit.io import require
from edit.methods import get_method
from edit.report.figures import plot_learning_curves
from edit.report.make import make_report
from edit.report.runs import SUMMARY_TASKS, load_accuracy, with_grid_students
from edit.report.spec import report_config
from edit.tracking import write_report_tracking


def report_runs(params: dict, results_dir="results", include_grid: bool = False,
                grid_results_dir="grid/results") -> list[str]:
    """The run folders of the report, as paths: ``results_dir/<method>-<seed>`` for the default
    ``methods`` x ``seeds``, then, with ``include_grid``, ``grid_results_dir/<method>-<seed>`` for
    ``grid_methods`` x ``grid_seeds``. Nothing else is read (a folder left over from another
    configuration stays out). An untuned method (no training steps) has the runs of
    ``untuned_seeds`` when the params set them (a profile evaluating prompting-only rows once)."""
    untuned = params.get("untuned_seeds")
    runs = [f"{results_dir}/{m}-{s}" for m in params["methods"]
            for s in (untuned if untuned is not None and not get_method(params, m).steps else params["seeds"])]
    if include_grid:
        runs += [f"{grid_results_dir}/{m}-{s}" for m in params["grid_methods"] for s in params["grid_seeds"]]
    return runs


def per_task_table(acc: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std over seeds of each (method, suite, task)'s accuracy (the per-suite
    summary rows ALL and MACRO left out), rounded to one decimal; index method, suite, task."""
    tasks = acc[~acc["task"].isin(SUMMARY_TASKS)]
    return tasks.groupby(["method", "suite", "task"])["accuracy"].agg(["mean", "std"]).round(1)


def run(params: dict, results_dir="results", tables_dir="reports/tables", figures_dir="reports/figures",
        paper_csv=None, include_grid: bool = False, grid_results_dir="grid/results",
        students_dir="grid/students") -> dict:
    """``make_report`` over ``report_runs`` (with ``include_grid``, also the grid's students of other
    sizes under ``students_dir/<student>``, see ``with_grid_students``), then ``per_task.csv`` of the
    primary student's runs under ``tables_dir``, the DVC metrics and plots files, and the learning
    curves (``figures_dir/learning_curves.png``; a placeholder when no run logged a loss).

    A run folder without ``accuracy.csv`` (never evaluated) is a DataError naming it and the stage
    to run. Returns ``make_report``'s dict plus ``"runs"`` (the run folders read) and ``"per_task"``."""
    runs = report_runs(params, results_dir, include_grid, grid_results_dir)
    n_default = len(params["methods"]) * len(params["seeds"])
    for i, run_dir in enumerate(runs):  # a run never evaluated: name it and the stage to run, before any table
        name = Path(run_dir).name
        stage = f"evaluate@{name}" if i < n_default else f"grid/dvc.yaml:evaluate@{name}"
        require(Path(run_dir) / "accuracy.csv", f"the evaluate stage of {name} (dvc repro {stage})")
    if include_grid:
        params = with_grid_students(params, students_dir)
    out = make_report(params, ".", tables_dir, figures_dir, paper_csv=paper_csv, runs=runs)
    per_task = per_task_table(load_accuracy(".", runs))
    per_task.to_csv(Path(tables_dir) / "per_task.csv", lineterminator="\n")
    # DVC's view: the tables as metrics, training curves as plots, beside tables_dir
    tracking = write_report_tracking(".", runs, tables_dir, Path(tables_dir).parent)
    curves = Path(figures_dir) / "learning_curves.png"
    drawn = plot_learning_curves(pd.read_csv(tracking["loss"]), curves, labels=report_config(params)["labels"])
    out["figures"].append(drawn or plot_placeholder(curves, "No run has a logged training loss: no learning curves."))
    return {**out, "runs": runs, "per_task": per_task, "tracking": tracking}
