"""Suite scores from the long accuracy frame (``edit.report.runs``): per (method, seed) the score of
each suite and their plain mean AVG, then mean and sample std over seeds per method.

A suite's score is its ``MACRO`` row (``average="macro"``, the paper's BBH average; else the mean
over its tasks) or its ``ALL`` row (``average="micro"``, items pooled; else the n-weighted mean).
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from edit.report.runs import ACC_COLUMNS, SUMMARY_TASKS


def check_columns(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    """ValueError naming ``what`` and the columns of ``cols`` that ``df`` lacks."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}")


def _check_acc(acc: pd.DataFrame) -> None:
    missing = [c for c in ACC_COLUMNS if c not in acc.columns]
    if missing:
        raise ValueError(f"accuracy frame lacks column(s) {missing}; expected {ACC_COLUMNS}")
    key = (["student"] if "student" in acc.columns else []) + ["method", "seed", "suite", "task"]
    dup = acc.duplicated(key, keep=False)
    if dup.any():
        first = acc.loc[dup, key].iloc[0].to_dict()
        raise ValueError(f"duplicate accuracy rows for {first}: a run was gathered twice")


def _suite_score(g: pd.DataFrame, average: str) -> float:
    """One (method, seed, suite) group -> the suite's score in percent."""
    tasks = g[~g["task"].isin(SUMMARY_TASKS)]
    if average == "macro":
        row = g[g["task"] == "MACRO"]
        if len(row):
            return float(row["accuracy"].iloc[0])
        return float(tasks["accuracy"].mean()) if len(tasks) else math.nan
    row = g[g["task"] == "ALL"]
    if len(row):
        return float(row["accuracy"].iloc[0])
    if not len(tasks) or tasks["n"].sum() == 0:
        return math.nan
    return float((tasks["accuracy"] * tasks["n"]).sum() / tasks["n"].sum())


def per_seed_scores(acc: pd.DataFrame, suites: Sequence[str], average: str = "macro") -> pd.DataFrame:
    """Wide frame, one row per (method, seed): columns method, seed, <suite>..., AVG (percent).
    A suite's score is its MACRO row (``average="macro"``; else the mean over its tasks) or its ALL
    row (``average="micro"``; else the n-weighted mean over tasks); AVG is the plain mean over
    ``suites`` and NaN when a suite is missing for that seed."""
    if average not in ("macro", "micro"):
        raise ValueError("average must be 'macro' or 'micro'")
    _check_acc(acc)
    if "student" in acc.columns and acc["student"].nunique() > 1:
        raise ValueError(f"accuracy frame mixes students {sorted(acc['student'].astype(str).unique())}: "
                         "select one student (acc[acc.student == name]) before building a table")
    suites = list(suites)
    rows = []
    keys = acc[["method", "seed"]].drop_duplicates()
    for method, seed in keys.itertuples(index=False):
        sub = acc[(acc["method"] == method) & (acc["seed"] == seed)]
        row = {"method": method, "seed": seed}
        for s in suites:
            g = sub[sub["suite"] == s]
            row[s] = _suite_score(g, average) if len(g) else math.nan
        vals = [row[s] for s in suites]
        row["AVG"] = float(np.mean(vals)) if vals and not any(math.isnan(v) for v in vals) else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "seed", *suites, "AVG"])


def results_table(acc: pd.DataFrame, suites: list[str], average="macro",
                  order: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each method's suite scores.

    acc: long frame, columns method, seed, suite, task, n, accuracy (percent); a duplicated
        (method, seed, suite, task) raises ValueError.
    suites: the suites to show, in order.
    average: "macro" (default; per suite the MACRO row, else the mean over tasks) or "micro"
        (the ALL row, else the n-weighted mean over tasks).
    order: the methods' row order (others follow in order of first appearance); default: order of
        first appearance in ``acc``.

    Returns a frame indexed by ``method`` with numeric columns ``<suite>_mean``, ``<suite>_std``
    for each suite and for ``AVG`` (AVG = per seed the mean over suites, then mean/std over seeds),
    and ``n_seeds``. std is the sample standard deviation (ddof=1; NaN for one seed).
    ``table.attrs["average"]`` records the average used.
    """
    wide = per_seed_scores(acc, suites, average)
    cols = [*suites, "AVG"]
    methods = list(dict.fromkeys(wide["method"]))
    if order is not None:
        methods = [m for m in order if m in methods] + [m for m in methods if m not in order]
    out = []
    for m in methods:
        g = wide[wide["method"] == m]
        row: dict = {"method": m}
        for c in cols:
            v = g[c].to_numpy(dtype=float)
            row[f"{c}_mean"] = float(np.mean(v)) if len(v) else math.nan
            row[f"{c}_std"] = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
        row["n_seeds"] = int(g["seed"].nunique())
        out.append(row)
    columns = ["method"] + [f"{c}_{k}" for c in cols for k in ("mean", "std")] + ["n_seeds"]
    table = pd.DataFrame(out, columns=columns).set_index("method")
    table.attrs["average"] = average
    return table
