"""DVC metrics and plots files from the pipeline's own outputs (pure functions + small writers).

What DVC reads (declared in ``dvc.yaml``; ``dvc metrics show``, ``dvc plots show``, ``dvc exp show``):

* ``results/<run>/metrics.json``: a run's summary accuracies, ``{"accuracy": {<suite>: macro, ...,
  "AVG": mean of the suites}}``, from the evaluation's ``accuracy.csv`` (rows with task ``MACRO``);
* ``<report>/plots/loss.csv``: the training loss of every run, one row per logged optimizer step:
  ``run, train_step, step, loss``. ``train_step`` names the method's step (``1:sft``, ``2:krsl``,
  ``2:dpo``); ``step`` counts optimizer steps over the whole run (step 2's steps continue after
  step 1's last one), so each run is one line;
* ``<report>/plots/val_accuracy.csv``: validation accuracy per epoch (``run, train_step, epoch,
  val_accuracy``) of the steps that select their checkpoint on it (``select: best_val_accuracy``);
  only the header when none does;
* ``<report>/metrics.json``: the report's tables, ``{<table>: {<method>: {<suite>: mean}}}`` (the
  means of ``<table>_numeric.csv``).

Everything is derived from files the stages already write, with a fixed float format and sorted
keys, so the same inputs give the same bytes (no timestamps).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

LOSS_COLUMNS = ("run", "train_step", "step", "loss")
VAL_COLUMNS = ("run", "train_step", "epoch", "val_accuracy")


def _num(x: float, digits: int = 6) -> float:
    return round(float(x), digits)


def run_metrics(acc: pd.DataFrame) -> dict:
    """The summary accuracies of one run from its long accuracy frame (columns method, student,
    seed, suite, task, n, accuracy): the MACRO row of each suite, in the frame's suite order, and
    AVG, the mean of the suite values (as the report's AVG column)."""
    macro = acc[acc["task"] == "MACRO"]
    if macro.empty:
        raise ValueError("run_metrics: no MACRO rows in the accuracy frame")
    out = {str(r.suite): _num(r.accuracy, 4) for r in macro.itertuples(index=False)}
    out["AVG"] = _num(sum(out.values()) / len(out), 4)
    return {"accuracy": out}


def train_step_name(step: dict) -> str:
    return f"{step['step']}:{step['loss']}"


def loss_rows(summary: dict, run: str) -> list[dict]:
    """One row per logged optimizer step of every training step of ``summary`` (a ``train.json``),
    with ``step`` continued across the run's training steps."""
    rows, offset = [], 0
    for s in summary.get("steps", []):
        logs = [h for h in s.get("log", []) if "loss" in h and "step" in h]
        for h in logs:
            rows.append({"run": run, "train_step": train_step_name(s), "step": offset + int(h["step"]),
                         "loss": _num(h["loss"])})
        last = [int(h["step"]) for h in s.get("log", []) if "step" in h]
        offset += max(last, default=0)
    return rows


def val_rows(summary: dict, run: str) -> list[dict]:
    """Validation accuracy per epoch of the steps that were selected on it (``selection.per_epoch``)."""
    rows = []
    for s in summary.get("steps", []):
        for e in (s.get("selection") or {}).get("per_epoch", []):
            rows.append({"run": run, "train_step": train_step_name(s), "epoch": e["epoch"],
                         "val_accuracy": _num(e["val_accuracy"], 4)})
    return rows


def table_metrics(tables: dict[str, pd.DataFrame]) -> dict:
    """``{table: {method: {suite: mean}}}`` from the numeric tables (columns method, <suite>_mean)."""
    out = {}
    for name, frame in sorted(tables.items()):
        cols = [c for c in frame.columns if c.endswith("_mean")]
        out[name] = {str(r["method"]): {c[: -len("_mean")]: _num(r[c], 4) for c in cols if pd.notna(r[c])}
                     for _, r in frame.iterrows()}
    return out


def csv_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def json_text(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def _write(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_run_metrics(run_dir: str | Path) -> Path:
    """``<run_dir>/metrics.json`` from ``<run_dir>/accuracy.csv``; call it after the evaluation."""
    run_dir = Path(run_dir)
    return _write(run_dir / "metrics.json", json_text(run_metrics(pd.read_csv(run_dir / "accuracy.csv"))))


def run_labels(runs: list[str]) -> dict[str, str]:
    """A label per run folder: its name (``edit-0``), or the whole path where two names collide."""
    names = [Path(r).name for r in runs]
    return {r: (Path(r).name if names.count(Path(r).name) == 1 else str(r)) for r in runs}


def write_report_tracking(root: str | Path, runs: list[str], tables_dir: str | Path,
                          out_dir: str | Path) -> dict[str, Path]:
    """The report stage's DVC files: ``<out_dir>/metrics.json`` (every ``*_numeric.csv`` table of
    ``tables_dir``) and ``<out_dir>/plots/{loss,val_accuracy}.csv`` over ``runs`` (run folders
    relative to ``root``; those without ``train.json`` are skipped)."""
    root, out_dir = Path(root), Path(out_dir)
    loss, val = [], []
    for run, label in run_labels(list(runs)).items():
        path = root / run / "train.json"
        if path.is_file():
            summary = json.loads(path.read_text())
            loss += loss_rows(summary, label)
            val += val_rows(summary, label)
    tables = {p.name[: -len("_numeric.csv")]: pd.read_csv(p) for p in sorted(Path(tables_dir).glob("*_numeric.csv"))}
    return {
        "metrics": _write(out_dir / "metrics.json", json_text(table_metrics(tables))),
        "loss": _write(out_dir / "plots" / "loss.csv", csv_text(loss, LOSS_COLUMNS)),
        "val_accuracy": _write(out_dir / "plots" / "val_accuracy.csv", csv_text(val, VAL_COLUMNS)),
    }
