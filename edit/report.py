"""Table-1-style result tables (ours next to the paper's), their CSV / Markdown / LaTeX files, the
figures, and a paired significance test.

The input of the tables is a long accuracy frame gathered from many runs, columns
``method, seed, suite, task, n, accuracy`` (accuracy in percent, 0-100), where ``task`` holds the
per-task rows of ``edit.evaluate.accuracy_frame`` and its per-suite summary rows ``"ALL"`` (micro:
items pooled) and ``"MACRO"`` (mean of per-task accuracies). Every table says which average it
shows (``results_table(..., average=...)``); the default is macro, as the paper's BBH numbers are.

All files are written deterministically: the same input gives the same bytes.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure

#: The paper's result columns (``/work/shared/paper/edit_acl2025_results.csv``).
PAPER_COLUMNS = ["BBH-test", "BB-sub", "AGIEval", "ARC-E", "ARC-C", "AVG"]
SUMMARY_TASKS = ("ALL", "MACRO")
ACC_COLUMNS = ["method", "seed", "suite", "task", "n", "accuracy"]


# ---------------------------------------------------------------- tables


def _check_acc(acc: pd.DataFrame) -> None:
    missing = [c for c in ACC_COLUMNS if c not in acc.columns]
    if missing:
        raise ValueError(f"accuracy frame lacks column(s) {missing}; expected {ACC_COLUMNS}")
    dup = acc.duplicated(["method", "seed", "suite", "task"], keep=False)
    if dup.any():
        first = acc.loc[dup, ["method", "seed", "suite", "task"]].iloc[0].to_dict()
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


def _fmt(x: float, decimals: int) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{decimals}f}"


def format_table(table: pd.DataFrame, decimals: int = 1) -> pd.DataFrame:
    """Strings ``"mean ± std"`` (``decimals`` places; just ``"mean"`` when std is NaN, i.e. one
    seed; ``"-"`` when there is no value) for every ``<col>_mean``/``<col>_std`` pair of
    ``results_table``'s output, plus ``n_seeds`` and ``source = "ours"``. Index: method."""
    cols = [c[: -len("_mean")] for c in table.columns if c.endswith("_mean")]
    out = pd.DataFrame(index=table.index)
    for c in cols:
        means, stds = table[f"{c}_mean"], table.get(f"{c}_std", pd.Series(math.nan, index=table.index))
        out[c] = [
            _fmt(m, decimals) if (s is None or math.isnan(s) or math.isnan(m)) else f"{m:.{decimals}f} ± {s:.{decimals}f}"
            for m, s in zip(means.astype(float), stds.astype(float))
        ]
    if "n_seeds" in table.columns:
        out["n_seeds"] = [str(int(n)) for n in table["n_seeds"]]
    out["source"] = "ours"
    return out


def reported_rows(paper_csv, table: int = 1) -> pd.DataFrame:
    """The paper's rows of ``table`` from its results CSV (columns table, row, student, BBH-test,
    BB-sub, AGIEval, ARC-E, ARC-C, AVG). Returns columns method (the paper's row label), student,
    BBH-test, BB-sub, AGIEval, ARC-E, ARC-C, AVG (floats, NaN where the paper has none) and
    ``source = "reported"``, in the paper's order."""
    df = pd.read_csv(paper_csv)
    missing = [c for c in ["table", "row", "student", *PAPER_COLUMNS] if c not in df.columns]
    if missing:
        raise ValueError(f"{paper_csv}: missing column(s) {missing}")
    df = df[df["table"] == table]
    if df.empty:
        raise ValueError(f"{paper_csv}: no rows for table {table}")
    out = df.rename(columns={"row": "method"})[["method", "student", *PAPER_COLUMNS]].reset_index(drop=True)
    for c in PAPER_COLUMNS:
        out[c] = out[c].astype(float)
    out["source"] = "reported"
    return out


def side_by_side(ours_formatted: pd.DataFrame, reported: pd.DataFrame,
                 rename: dict[str, str] | None = None, decimals: int = 1) -> pd.DataFrame:
    """The paper's rows then ours, as strings, in one frame: columns method, source, then the
    paper's result columns (our suites renamed onto them with ``rename``, e.g.
    ``{"bbh_test": "BBH-test"}``), then any other columns of ours."""
    ours = ours_formatted.reset_index() if ours_formatted.index.name else ours_formatted.copy()
    if rename:
        ours = ours.rename(columns=rename)
    rep = reported.copy()
    for c in PAPER_COLUMNS:
        if c in rep.columns:
            rep[c] = [_fmt(v, decimals) for v in rep[c].astype(float)]
    cols = ["method", "source"] + [c for c in PAPER_COLUMNS if c in ours.columns or c in rep.columns]
    extra = [c for c in ours.columns if c not in cols and c not in ("student",)]
    rep = rep.reindex(columns=cols + extra).astype(object)
    rep = rep.where(rep.notna(), "")
    ours = ours.reindex(columns=cols + extra).astype(object)
    ours = ours.where(ours.notna(), "")
    return pd.concat([rep, ours], ignore_index=True)


# ---------------------------------------------------------------- files


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text) -> str:
    """LaTeX-escape a cell; "±" becomes ``$\\pm$``."""
    s = "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))
    return s.replace("±", r"$\pm$")


def _cell(v) -> str:
    if isinstance(v, (float, np.floating)):
        return _fmt(float(v), 1)
    return str(v)


def to_latex(df: pd.DataFrame, caption: str, label: str | None = None) -> str:
    """A booktabs ``table`` environment for ``df`` (index not included; reset it first)."""
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    align = "".join("r" if n else "l" for n in numeric)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{tex_escape(caption)}}}"]
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule",
              " & ".join(tex_escape(c) for c in df.columns) + r" \\", r"\midrule"]
    for row in df.itertuples(index=False):
        lines.append(" & ".join(tex_escape(_cell(v)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, out_dir, name: str, caption: str) -> dict[str, Path]:
    """Write ``<name>.csv``, ``<name>.md`` (caption line, then a pipe table) and ``<name>.tex``
    (booktabs, escaped, with the caption) under ``out_dir``; a named index becomes the first
    column. Same input, same bytes. Returns ``{"csv": path, "md": path, "tex": path}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    flat = df.reset_index() if (df.index.name is not None or any(df.index.names[1:])) else df.reset_index(drop=True)
    paths = {k: out_dir / f"{name}.{k}" for k in ("csv", "md", "tex")}
    csv_text = flat.to_csv(index=False, lineterminator="\n")
    md_body = flat.to_markdown(index=False, tablefmt="pipe", floatfmt=".1f", missingval="-")
    md_text = f"Table: {caption}\n\n{md_body}\n"
    tex_text = to_latex(flat, caption, label=f"tab:{name}")
    for k, text in (("csv", csv_text), ("md", md_text), ("tex", tex_text)):
        tmp = paths[k].with_name(paths[k].name + ".tmp")
        tmp.write_text(text, encoding="utf-8", newline="\n")
        tmp.replace(paths[k])
    return paths


# ---------------------------------------------------------------- figures


def _save(fig: Figure, path) -> Path:
    """Save with no timestamps or version strings, so the bytes depend only on the content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower().lstrip(".") or "png"
    metadata = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
                "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}}.get(ext)
    with rc_context({"svg.hashsalt": "edit", "svg.fonttype": "none", "pdf.compression": 6}):
        fig.savefig(path, format=ext, dpi=100, metadata=metadata, bbox_inches="tight")
    return path


def _check_cols(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}")


def plot_key_share(df_key_share: pd.DataFrame, path) -> Path:
    """Box plots of the per-pair key-token share, by task (left) and by pair type (right).

    df_key_share: one row per dual pair, columns ``task`` (str), ``pair_type`` (str, e.g. "D+-",
    "D-+") and ``key_share`` (the fraction, 0-1, of the pair's response tokens marked key).
    Returns ``path``."""
    _check_cols(df_key_share, ["task", "pair_type", "key_share"], "plot_key_share")
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
    return _save(fig, path)


def plot_localisation(df_loc: pd.DataFrame, path, by: str | None = None) -> Path:
    """Grouped bars of key-step localisation precision and recall.

    df_loc: columns ``precision`` and ``recall`` (0-1) and a group column ``by`` (default:
    ``"mistake_type"`` if present, else ``"task"``); several rows per group (pairs or seeds) are
    averaged, with their standard deviation as error bars. Returns ``path``."""
    if by is None:
        by = "mistake_type" if "mistake_type" in df_loc.columns else "task"
    _check_cols(df_loc, [by, "precision", "recall"], "plot_localisation")
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
    return _save(fig, path)


def plot_accuracy(acc_long: pd.DataFrame, path, suites: Sequence[str] | None = None,
                  average: str = "macro") -> Path:
    """Bars of accuracy per method (colour) and suite (group), mean over seeds with the standard
    deviation over seeds as error bars; the last group is AVG.

    acc_long: columns method, seed, suite, task, n, accuracy (percent), as for ``results_table``;
    suites: default all suites in order of first appearance. Returns ``path``."""
    if suites is None:
        suites = list(dict.fromkeys(acc_long["suite"]))
    table = results_table(acc_long, list(suites), average=average)
    cols = [*suites, "AVG"]
    methods = list(table.index)
    x = np.arange(len(cols))
    w = 0.8 / max(1, len(methods))
    fig = Figure(figsize=(max(5.0, 1.1 * len(cols) + 2), 3.6))
    ax = fig.subplots()
    for k, m in enumerate(methods):
        means = table.loc[m, [f"{c}_mean" for c in cols]].to_numpy(dtype=float)
        stds = np.nan_to_num(table.loc[m, [f"{c}_std" for c in cols]].to_numpy(dtype=float))
        ax.bar(x - 0.4 + w * (k + 0.5), means, w, yerr=stds, capsize=2, label=str(m), color=f"C{k % 10}")
    ax.set_xticks(x, cols)
    ax.set_ylabel(f"accuracy (%, {average} average)")
    ax.set_ylim(0, 100)
    ax.legend(frameon=False, fontsize=7, ncols=2)
    return _save(fig, path)


# ---------------------------------------------------------------- significance


def paired_test(records_a, records_b, n_resamples: int = 10_000, seed: int = 0) -> dict:
    """Paired comparison of two methods on the same items.

    records_a, records_b: per-sample records (lists of dicts or frames) with columns ``id`` and
    ``correct`` (as ``evaluate_questions`` returns; ``suite`` is used in the key when present).
    The two must cover the same items (ValueError otherwise).

    Returns ``{"n", "acc_a", "acc_b", "diff", "ci_low", "ci_high", "p_value"}``: accuracies and
    diff = acc_b - acc_a in percentage points, a 95% paired-bootstrap interval of diff, and a
    two-sided paired sign-flip permutation p-value (with the +1 correction). Seeded: deterministic.
    """
    a, b = pd.DataFrame(records_a), pd.DataFrame(records_b)
    key = ["suite", "id"] if "suite" in a.columns and "suite" in b.columns else ["id"]
    for name, d in (("a", a), ("b", b)):
        _check_cols(d, [*key, "correct"], f"paired_test records_{name}")
        if d.duplicated(key).any():
            raise ValueError(f"paired_test: records_{name} has duplicated ids")
    m = a[[*key, "correct"]].merge(b[[*key, "correct"]], on=key, how="outer", suffixes=("_a", "_b"),
                                   indicator=True)
    if (m["_merge"] != "both").any():
        raise ValueError("paired_test: the two record sets do not cover the same items")
    ca = m["correct_a"].astype(float).to_numpy()
    cb = m["correct_b"].astype(float).to_numpy()
    n = len(ca)
    if n == 0:
        raise ValueError("paired_test: no items")
    d = cb - ca
    obs = d.mean()
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // n)  # bounded memory for large item sets
    boot, perm = [], []
    for start in range(0, n_resamples, chunk):
        k = min(chunk, n_resamples - start)
        boot.append(d[rng.integers(0, n, size=(k, n))].mean(axis=1))
        perm.append((rng.choice(np.array([-1.0, 1.0]), size=(k, n)) * d).mean(axis=1))
    boot, perm = np.concatenate(boot), np.concatenate(perm)
    p = (1 + np.sum(np.abs(perm) >= abs(obs) - 1e-12)) / (n_resamples + 1)
    return {"n": int(n), "acc_a": 100 * ca.mean(), "acc_b": 100 * cb.mean(), "diff": 100 * obs,
            "ci_low": 100 * float(np.quantile(boot, 0.025)), "ci_high": 100 * float(np.quantile(boot, 0.975)),
            "p_value": float(p)}
