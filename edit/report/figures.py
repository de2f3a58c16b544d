"""The report's figures: accuracy per method and suite, the KRSL alpha/beta heat map, accuracy against
the student's size, the training-loss curves, and a placeholder where a figure has nothing to show
(so that every declared output exists). Saved with ``edit.figure_files.save_figure``: the same input
gives the same bytes.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from edit.figure_files import save_figure
from edit.report.runs import split_run
from edit.report.scores import check_columns, results_table


def plot_accuracy(acc_long: pd.DataFrame, path, suites: Sequence[str] | None = None,
                  average: str = "macro", order: Sequence[str] | None = None,
                  labels: dict[str, str] | None = None) -> Path:
    """Bars of accuracy per method (colour) and suite (group), mean over seeds with the standard
    deviation over seeds as error bars; the last group is AVG.

    acc_long: columns method, seed, suite, task, n, accuracy (percent), as for ``results_table``;
    suites: default all suites in order of first appearance; order: the methods' order (as in
    ``results_table``); labels: legend label per method (default: the method name).
    Returns ``path``."""
    if suites is None:
        suites = list(dict.fromkeys(acc_long["suite"]))
    table = results_table(acc_long, list(suites), average=average, order=order)
    labels = labels or {}
    cols = [*suites, "AVG"]
    methods = list(table.index)
    x = np.arange(len(cols))
    w = 0.8 / max(1, len(methods))
    fig = Figure(figsize=(max(5.0, 1.1 * len(cols) + 2), 3.6))
    ax = fig.subplots()
    for k, m in enumerate(methods):
        means = table.loc[m, [f"{c}_mean" for c in cols]].to_numpy(dtype=float)
        stds = np.nan_to_num(table.loc[m, [f"{c}_std" for c in cols]].to_numpy(dtype=float))
        ax.bar(x - 0.4 + w * (k + 0.5), means, w, yerr=stds, capsize=2, label=str(labels.get(m, m)), color=f"C{k % 10}")
    ax.set_xticks(x, cols)
    ax.set_ylabel(f"accuracy (%, {average} average)")
    ax.set_ylim(0, 100)
    ax.legend(frameon=False, fontsize=7, ncols=2)
    return save_figure(fig, path)


def plot_alpha_beta(acc: pd.DataFrame, grid: Sequence[dict], path, suites: Sequence[str], column: str = "AVG",
                    average: str = "macro") -> Path | None:
    """Heat map of ``column`` (a suite or AVG; mean over seeds, ± std written in the cell) over
    KRSL's alpha (rows) and beta (columns).

    grid: entries with ``method``, ``alpha`` and ``beta`` (e.g. table 4's rows); cells whose
    method has no results are grey, marked "no run". Returns ``path``, or None (nothing drawn)
    when no cell has results."""
    cells = [(g["method"], float(g["alpha"]), float(g["beta"])) for g in grid]
    have = [c for c in cells if c[0] in set(acc["method"])]
    if not have:
        return None
    table = results_table(acc[acc["method"].isin([c[0] for c in have])], list(suites), average=average)
    alphas = sorted({c[1] for c in cells})
    betas = sorted({c[2] for c in cells})
    mean = np.full((len(alphas), len(betas)), np.nan)
    text = [["no run"] * len(betas) for _ in alphas]
    for m, a, b in have:
        i, j = alphas.index(a), betas.index(b)
        mu, sd = table.loc[m, f"{column}_mean"], table.loc[m, f"{column}_std"]
        mean[i, j] = mu
        n = int(table.loc[m, "n_seeds"])
        text[i][j] = f"{mu:.1f}" + ("" if math.isnan(sd) else f"\n± {sd:.1f}") + f"\n(n={n})"
    fig = Figure(figsize=(1.3 * len(betas) + 2.2, 1.0 * len(alphas) + 1.4))
    ax = fig.subplots()
    cmap = colormaps["viridis"].with_extremes(bad="#d9d9d9")
    finite = mean[np.isfinite(mean)]
    im = ax.imshow(np.ma.masked_invalid(mean), cmap=cmap, vmin=float(finite.min()) - 1e-9,
                   vmax=float(finite.max()) + 1e-9, aspect="auto")
    mid = (float(finite.min()) + float(finite.max())) / 2
    for i in range(len(alphas)):
        for j in range(len(betas)):
            dark = np.isfinite(mean[i, j]) and mean[i, j] < mid
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.set_xticks(range(len(betas)), [f"{b:g}" for b in betas])
    ax.set_yticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_xlabel("beta (weight pushed down on the wrong CoT's key tokens)")
    ax.set_ylabel("alpha (correct CoT)")
    fig.colorbar(im, ax=ax, label=f"{column} accuracy (%)")
    ax.set_title(f"KRSL weights: {column}, {average} average, mean over seeds", fontsize=9)
    return save_figure(fig, path)


def plot_by_student(acc: pd.DataFrame, path, suites: Sequence[str], methods: Sequence[str] | None = None,
                    sizes: dict[str, float] | None = None, column: str = "AVG", average: str = "macro",
                    labels: dict[str, str] | None = None) -> Path | None:
    """Lines of ``column`` (mean over seeds, std as error bars) against the student, one line per
    method (``methods``: which and in what order; default all), x ordered by parameter count when
    ``sizes`` (student -> count) knows every student, else by first appearance.

    acc: long frame with a ``student`` column. Returns ``path``, or None (nothing drawn) when
    there are fewer than two students."""
    check_columns(acc, ["student"], "plot_by_student")
    students = list(dict.fromkeys(acc["student"].astype(str)))
    if len(students) < 2:
        return None
    sizes = {str(k): float(v) for k, v in (sizes or {}).items()}
    if all(s in sizes for s in students):
        students.sort(key=lambda s: sizes[s])
    methods = list(methods) if methods is not None else list(dict.fromkeys(acc["method"]))
    labels = labels or {}
    x = np.arange(len(students))
    fig = Figure(figsize=(max(4.5, 1.4 * len(students) + 2), 3.6))
    ax = fig.subplots()
    for k, m in enumerate(methods):
        mu, sd = [], []
        for s in students:
            sub = acc[(acc["student"].astype(str) == s) & (acc["method"] == m)]
            if len(sub):
                t = results_table(sub, list(suites), average=average)
                mu.append(float(t[f"{column}_mean"].iloc[0]))
                sd.append(float(np.nan_to_num(t[f"{column}_std"].iloc[0])))
            else:
                mu.append(np.nan), sd.append(0.0)
        if not np.isfinite(mu).any():
            continue
        ax.errorbar(x, mu, yerr=sd, marker="o", capsize=3, label=str(labels.get(m, m)), color=f"C{k % 10}")
    ticks = [f"{s}\n({sizes[s] / 1e6:.1f}M)" if s in sizes and sizes[s] < 1e9 else
             (f"{s}\n({sizes[s] / 1e9:.1f}B)" if s in sizes else s) for s in students]
    ax.set_xticks(x, ticks, fontsize=8)
    ax.set_xlabel("student" + (" (parameters)" if sizes else ""))
    ax.set_ylabel(f"{column} accuracy (%, {average})")
    ax.set_ylim(0, 100)
    ax.legend(frameon=False, fontsize=7)
    return save_figure(fig, path)


def plot_learning_curves(loss: pd.DataFrame, path, labels: dict[str, str] | None = None) -> Path | None:
    """Training loss against the optimizer step, one panel per training step (``1:sft``,
    ``2:krsl``, ...: their losses are on different scales), one colour per run group (the run label
    without its ``-<seed>``, :func:`edit.report.runs.split_run`), one line per run.

    loss: the rows of ``edit.tracking.loss_rows`` (columns run, train_step, step, loss; ``step``
    counts on across a run's training steps). labels: legend label per group (default the group).
    Returns ``path``, or None (nothing drawn) when there are no rows."""
    check_columns(loss, ["run", "train_step", "step", "loss"], "plot_learning_curves")
    if loss.empty:
        return None
    labels = labels or {}
    kinds = list(dict.fromkeys(loss["train_step"].astype(str)))
    groups = list(dict.fromkeys(split_run(r)[0] for r in loss["run"]))
    fig = Figure(figsize=(4.2 * len(kinds) + 0.6, 3.4))
    axes = np.atleast_1d(fig.subplots(1, len(kinds), squeeze=False)[0])
    for ax, kind in zip(axes, kinds):
        sub = loss[loss["train_step"].astype(str) == kind]
        drawn = set()
        for run, r in sub.groupby("run", sort=False):
            g = split_run(run)[0]
            k = groups.index(g)
            ax.plot(r["step"], r["loss"], color=f"C{k % 10}", lw=0.9, alpha=0.8,
                    label=None if g in drawn else str(labels.get(g, g)))
            drawn.add(g)
        ax.set_title(f"training step {kind}", fontsize=9)
        ax.set_xlabel("optimizer step (counted across the run's steps)", fontsize=8)
        ax.set_ylabel("training loss (logged)", fontsize=8)
        ax.legend(frameon=False, fontsize=6)
    return save_figure(fig, path)
