"""The key-step stage's figures: the per-pair key-token share and, where the teacher gave ground-truth
key spans, the precision and recall of the edit-distance marks against them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from edit.figure_files import save_figure


def _require(df: pd.DataFrame, cols, what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}")


def plot_key_share(df_key_share: pd.DataFrame, path) -> Path:
    """Box plots of the per-pair key-token share, by task (left) and by pair type (right).

    df_key_share: one row per dual pair, columns ``task`` (str), ``pair_type`` (str, e.g. "D+-",
    "D-+") and ``key_share`` (the fraction, 0-1, of the pair's response tokens marked key).
    Returns ``path``."""
    _require(df_key_share, ["task", "pair_type", "key_share"], "plot_key_share")
    fig = Figure(figsize=(9, 3.6))
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
    for ax, col in ((ax1, "task"), (ax2, "pair_type")):
        cats = sorted(df_key_share[col].astype(str).unique())
        data = [df_key_share.loc[df_key_share[col].astype(str) == c, "key_share"].astype(float).dropna().to_numpy()
                for c in cats]
        if cats:
            ax.boxplot(data, tick_labels=cats, showfliers=False)
        ax.set_xlabel(col.replace("_", " "))
        if col == "task":
            ax.tick_params(axis="x", labelrotation=45, labelsize=7)
            for lbl in ax.get_xticklabels():
                lbl.set_horizontalalignment("right")
        else:
            ax.tick_params(axis="x", labelsize=8)
    top = float(df_key_share["key_share"].max()) if len(df_key_share) else 1.0
    for ax in (ax1, ax2):  # the share is small: scale to the data, not to 0-1
        ax.set_ylim(0, min(1.0, 1.1 * top) or 1.0)
    ax1.set_ylabel("key-token share per pair")
    fig.suptitle(f"Key-token share (n = {len(df_key_share)} pairs)")
    return save_figure(fig, path)


def plot_localisation(df_loc: pd.DataFrame, path, by: str | None = None) -> Path:
    """Grouped bars of key-step localisation precision and recall.

    df_loc: columns ``precision`` and ``recall`` (0-1) and a group column ``by`` (default:
    ``"mistake_type"`` if present, else ``"task"``); several rows per group (pairs or seeds) are
    averaged, with their standard deviation as error bars. Returns ``path``."""
    if by is None:
        by = "mistake_type" if "mistake_type" in df_loc.columns else "task"
    _require(df_loc, [by, "precision", "recall"], "plot_localisation")
    g = df_loc.assign(**{by: df_loc[by].astype(str)}).groupby(by, sort=True)[["precision", "recall"]]
    mean, std = g.mean(), g.std(ddof=1).fillna(0.0)
    x = np.arange(len(mean))
    fig = Figure(figsize=(max(4.0, 0.6 * len(mean) + 2), 3.4))
    ax = fig.subplots()
    w = 0.38
    for k, (col, off) in enumerate((("precision", -w / 2), ("recall", w / 2))):
        ax.bar(x + off, mean[col].to_numpy(), w, yerr=std[col].to_numpy(), capsize=2, label=col,
               color=f"C{k}")
    ax.set_xticks(x, list(mean.index), rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_xlabel(by.replace("_", " "))
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("Key-step localisation")
    return save_figure(fig, path)
