"""Run folders -> frames: the long accuracy frame and the per-item correctness of many runs, and which
run folders of which student the report reads (only the listed ones).

A run folder is ``<method>-<seed>`` holding ``accuracy.csv`` (rows of
``edit.evaluate.accuracy_frame``: per task, plus per-suite summary rows ``"ALL"`` and ``"MACRO"``)
and, when it is not only in the DVC cache, ``samples.jsonl`` (one record per test item).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from edit.io import read_jsonl
from edit.params import deep_merge, primary_student, with_student_variant
from edit.plan_costs import student_plan

#: The columns of the long accuracy frame (accuracy in percent, 0-100; a ``student`` column leads).
ACC_COLUMNS = ["method", "seed", "suite", "task", "n", "accuracy"]
#: The per-suite summary rows among the tasks: items pooled, and the mean of per-task accuracies.
SUMMARY_TASKS = ("ALL", "MACRO")
ITEM_COLUMNS = ["student", "method", "seed", "suite", "task", "id", "correct"]


def split_run(name: str) -> tuple[str, int]:
    """``"<method>-<seed>"`` -> (method, seed); the seed is after the last dash."""
    method, sep, seed = str(name).rpartition("-")
    if not sep or not method or not seed.lstrip("-").isdigit():
        raise ValueError(f"run folder {name!r} is not named <method>-<seed>")
    return method, int(seed)


def _run_dirs(results_dir, runs: Sequence[str] | None, filename: str) -> list[Path]:
    root = Path(results_dir)
    if runs is None:
        return sorted(p.parent for p in root.glob(f"*/{filename}"))
    return [root / r for r in runs]


def load_accuracy(results_dir, runs: Sequence[str] | None = None, student: str = "student") -> pd.DataFrame:
    """The long accuracy frame of many runs: columns student, method, seed, suite, task, n,
    accuracy (plus any other columns of the files, e.g. ``correct``).

    results_dir: folder holding one ``<method>-<seed>/accuracy.csv`` per run.
    runs: run folder names (relative to ``results_dir``); a listed run without ``accuracy.csv``
        raises FileNotFoundError naming the file. Default: every folder that has one, sorted.
    student: the student's name, used where a file has no ``student`` column.

    Files may or may not have ``method`` / ``seed`` columns: missing ones come from the folder
    name ``<method>-<seed>``; present ones must agree with it (ValueError naming the file)."""
    frames = []
    for run_dir in _run_dirs(results_dir, runs, "accuracy.csv"):
        path = run_dir / "accuracy.csv"
        method, seed = split_run(run_dir.name)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no accuracy file for run {run_dir.name!r}")
        df = pd.read_csv(path)
        need = [c for c in ("suite", "task", "n", "accuracy") if c not in df.columns]
        if need:
            raise ValueError(f"{path}: missing column(s) {need}")
        for col, value in (("method", method), ("seed", seed)):
            if col in df.columns:
                bad = df[df[col].astype(str) != str(value)]
                if len(bad):
                    raise ValueError(f"{path}: column {col} holds {bad[col].iloc[0]!r} but the folder says {value!r}")
            df[col] = value
        if "student" not in df.columns:
            df["student"] = student
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["student", *ACC_COLUMNS])
    acc = pd.concat(frames, ignore_index=True)
    acc["seed"] = acc["seed"].astype(int)
    lead = ["student", *ACC_COLUMNS]
    return acc[lead + [c for c in acc.columns if c not in lead]]


def load_item_correctness(results_dir, runs: Sequence[str] | None = None,
                          student: str = "student") -> tuple[pd.DataFrame, list[str]]:
    """Per-item correctness of many runs from their ``samples.jsonl`` (fields id, suite, task,
    correct). Returns ``(items, missing)``: items has columns student, method, seed, suite, task,
    id, correct (bool); missing lists the runs without a samples file (they are in the DVC cache,
    not in git, so they may be absent: the bootstrap is then skipped for them)."""
    rows, missing = [], []
    for run_dir in _run_dirs(results_dir, runs, "samples.jsonl"):
        path = run_dir / "samples.jsonl"
        if not path.exists():
            missing.append(run_dir.name)
            continue
        method, seed = split_run(run_dir.name)
        for rec in read_jsonl(path, required=("id", "suite", "task", "correct")):
            rows.append((rec.get("student", student), method, seed, rec["suite"], rec["task"], str(rec["id"]),
                         bool(rec["correct"])))
    return pd.DataFrame(rows, columns=ITEM_COLUMNS), missing


def gather_runs(results_dir, runs: Sequence[str], primary: str,
                other_students: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The accuracy and item frames of the primary student's ``runs`` (under ``results_dir``) and of
    every other student: ``other_students`` maps a name to its results folder (every run folder in
    it) or to ``{"dir": folder, "runs": [<method>-<seed>, ...]}`` (exactly those run folders, so a
    folder left from another configuration is never read; a listed run without results raises).

    Returns ``(acc, items, notes)``; notes say which runs lack ``samples.jsonl`` and which other
    student's folder is missing (that student is left out)."""
    acc = [load_accuracy(results_dir, runs, student=primary)]
    items, missing = load_item_correctness(results_dir, runs, student=primary)
    items = [items]
    notes = [f"no samples.jsonl for run(s) {', '.join(missing)}: no item bootstrap for them"] if missing else []
    for name, spec in (other_students or {}).items():
        folder, only = (spec.get("dir"), spec.get("runs")) if isinstance(spec, dict) else (spec, None)
        if not folder or not Path(folder).is_dir():
            notes.append(f"other student {name}: results folder {folder} not found: left out")
            continue
        acc.append(load_accuracy(folder, only, student=str(name)))
        more, miss = load_item_correctness(folder, only, student=str(name))
        items.append(more)
        if miss:
            notes.append(f"other student {name}: no samples.jsonl for {', '.join(miss)}")
    return pd.concat(acc, ignore_index=True), pd.concat(items, ignore_index=True), notes


def with_grid_students(params: dict, students_dir) -> dict:
    """``params`` with the grid's student variants (``grid_students``; their runs, ``grid_student_methods``
    x ``grid_seeds``, under ``students_dir/<name>``) added to ``report.other_students``, so a folder
    left from another configuration is never read, and ``report.student_sizes`` filled
    with the parameter count of the primary student and of each variant where it is not given and
    the student is code-built (``edit.plan_costs.student_plan``'s count, from the ``student`` section)."""
    names = list(params["grid_students"])
    cfg = params["report"]
    primary = primary_student(params)
    if primary in names:
        raise ValueError(f"grid_students: {primary!r} is also the primary student's name (report.student or the "
                         f"profile): the tables could not tell their results apart; rename the variant")
    others = dict(cfg["other_students"])
    runs = [f"{m}-{s}" for m in params["grid_student_methods"] for s in params["grid_seeds"]]
    others.update({name: {"dir": str(Path(students_dir) / name), "runs": runs} for name in names})
    sizes = dict(cfg["student_sizes"])
    students = {primary: params["student"], **{n: with_student_variant(params, n)["student"] for n in names}}
    for name, student in students.items():
        if name not in sizes and student["kind"] == "tiny_llama":
            sizes[name] = int(student_plan(student)["n_params"])
    return deep_merge(params, {"report": {"other_students": others, "student_sizes": sizes}})
