"""The paper's result tables and figures from long accuracy frames, with seeds and significance.

Input: a long accuracy frame gathered from many runs, columns
``method, seed, suite, task, n, accuracy`` (accuracy in percent, 0-100; optional ``student``), where
``task`` holds the per-task rows of ``edit.evaluate.accuracy_frame`` and its per-suite summary rows
``"ALL"`` (micro: items pooled) and ``"MACRO"`` (mean of per-task accuracies). ``load_accuracy``
gathers it from ``results/<method>-<seed>/accuracy.csv`` (method and seed are taken from the folder
name when the file lacks them). Every table says which average it shows
(``results_table(..., average=...)``); the default is macro, as the paper's BBH numbers are.

Which tables exist, their rows, labels and reference rows are data (``DEFAULT_REPORT``, overridable
by the ``report:`` section of ``params.yaml``; see ``report_config``): tables 1 (methods), 2 (pair
subsets), 4 (alpha/beta grid), 5 (data-matched baselines), 7 (mistake types) and 9 (KRSL vs DPO).
``build_table`` assembles one (rows without results are skipped with a note), with a paired t-test
over seeds and a paired bootstrap over test items of each row against its reference row;
``make_report`` writes every table, the figures and the noise summary.

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
from tqdm.auto import tqdm

from edit.io import read_jsonl
from edit.params import deep_merge, primary_student

#: The paper's result columns (``/work/shared/paper/edit_acl2025_results.csv``).
PAPER_COLUMNS = ["BBH-test", "BB-sub", "AGIEval", "ARC-E", "ARC-C", "AVG"]
SUMMARY_TASKS = ("ALL", "MACRO")
ACC_COLUMNS = ["method", "seed", "suite", "task", "n", "accuracy"]


# ---------------------------------------------------------------- tables


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
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"\textless{}", ">": r"\textgreater{}"}


_TEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "†": r"$^\dagger$", "α": r"$\alpha$", "β": r"$\beta$",
                "−": "-", "≥": r"$\geq$", "≤": r"$\leq$", "×": r"$\times$"}


def tex_escape(text) -> str:
    """LaTeX-escape a cell; "±" becomes ``$\\pm$`` (also Δ, †, α, β, ≥, ≤, ×)."""
    s = "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))
    for ch, tex in _TEX_SYMBOLS.items():
        s = s.replace(ch, tex)
    return s


def _cell(v) -> str:
    if isinstance(v, (float, np.floating)):
        return _fmt(float(v), 1)
    return str(v)


def to_latex(df: pd.DataFrame, caption: str, label: str | None = None, footnote: str | None = None) -> str:
    """A booktabs ``table`` environment for ``df`` (index not included; reset it first); a
    ``footnote`` goes below the tabular in small print."""
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    align = "".join("r" if n else "l" for n in numeric)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{tex_escape(caption)}}}"]
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule",
              " & ".join(tex_escape(c) for c in df.columns) + r" \\", r"\midrule"]
    for row in df.itertuples(index=False):
        lines.append(" & ".join(tex_escape(_cell(v)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if footnote:
        lines += [r"\par\smallskip", r"{\footnotesize " + tex_escape(footnote) + "}"]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, out_dir, name: str, caption: str, footnote: str | None = None) -> dict[str, Path]:
    """Write ``<name>.csv``, ``<name>.md`` (caption line, then a pipe table, then the footnote if
    any) and ``<name>.tex`` (booktabs, escaped, with the caption and footnote) under ``out_dir``; a
    named index becomes the first column. The CSV holds the cells only. Same input, same bytes.
    Returns ``{"csv": path, "md": path, "tex": path}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    flat = df.reset_index() if (df.index.name is not None or any(df.index.names[1:])) else df.reset_index(drop=True)
    paths = {k: out_dir / f"{name}.{k}" for k in ("csv", "md", "tex")}
    csv_text = flat.to_csv(index=False, lineterminator="\n")
    text_cols = [k for k, c in enumerate(flat.columns) if not pd.api.types.is_numeric_dtype(flat[c])]
    # string cells stay as written ("0.095" must not become "0.1"); numeric columns get 1 decimal
    md_body = flat.to_markdown(index=False, tablefmt="pipe", floatfmt=".1f", missingval="-",
                               disable_numparse=text_cols or False)
    md_text = f"Table: {caption}\n\n{md_body}\n" + (f"\n{footnote}\n" if footnote else "")
    tex_text = to_latex(flat, caption, label=f"tab:{name}", footnote=footnote)
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
    return _save(fig, path)


# ---------------------------------------------------------------- significance


def paired_test(records_a, records_b, n_resamples: int = 10_000, seed: int = 0) -> dict:
    """Paired comparison of two methods on the same items.

    records_a, records_b: per-sample records (lists of dicts or frames) with columns ``id`` and
    ``correct`` (as ``evaluate_suite`` returns; ``suite`` is used in the key when present).
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


# ---------------------------------------------------------------- loading runs


def _split_run(name: str) -> tuple[str, int]:
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
        method, seed = _split_run(run_dir.name)
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
        method, seed = _split_run(run_dir.name)
        for rec in read_jsonl(path, required=("id", "suite", "task", "correct")):
            rows.append((rec.get("student", student), method, seed, rec["suite"], rec["task"], str(rec["id"]),
                         bool(rec["correct"])))
    cols = ["student", "method", "seed", "suite", "task", "id", "correct"]
    return pd.DataFrame(rows, columns=cols), missing


# ---------------------------------------------------------------- the tables as data

#: Display label of each method (``report.labels`` in params overrides single entries).
DEFAULT_LABELS: dict[str, str] = {
    "untuned_zero_shot": "Student Zero-shot",
    "untuned_few_shot": "Student Few-shot",
    "untuned_zero_shot_cot": "Student Zero-shot-CoT",
    "untuned_few_shot_cot": "Student Few-shot-CoT",
    "answer_sft": "Answer-only SFT",
    "mt_cot": "MT-CoT",
    "scott": "SCOTT",
    "std_cot": "Std-CoT",
    "sbs": "SBS (distilling step-by-step)",
    "std_cot_repeat": "Std-CoT w/ Repeat Sampling",
    "std_cot_dual": "Std-CoT w/ Dual CoTs",
    "edit": "EDIT (w/ RWC + KRSL on Ddual)",
    "edit_no_rwc_dplus": "w/o RWC + KRSL on D+dual",
    "edit_no_rwc_dminus": "w/o RWC + KRSL on D-dual",
    "edit_no_rwc": "w/o RWC + KRSL on Ddual",
    "edit_a0_b0": "w/ RWC + w/o KRSL (α=0, β=0)",
    "edit_dplus_only": "KRSL on D+dual",
    "edit_dminus_only": "KRSL on D-dual",
    "edit_a0_b0025": "α=0, β=0.025",
    "edit_a1_b0": "α=1, β=0",
    "edit_a1_b005": "α=1, β=0.05",
    "edit_logical": "KRSL on logical-error duals",
    "edit_calculation": "KRSL on calculation-error duals",
    "edit_knowledge": "KRSL on knowledge-error duals",
    "edit_dpo": "EDIT with DPO instead of KRSL",
    "edit_random_tokens": "control: KRSL on random tokens (same count)",
    "edit_all_diff_uniform": "control: KRSL on every response token",
}

_CONTROLS = ["edit_random_tokens", "edit_all_diff_uniform"]

#: Report settings and the table specification. Each table: ``title``, ``paper_table`` (the
#: paper's table number for the side-by-side file, or null), ``reference`` (the row every other
#: row is tested against), ``min_rows`` (write the table only with at least this many rows that
#: have results), ``rows`` and ``controls`` (extra rows after a table's own). A row is a method
#: name, or a mapping with ``method`` and optional ``label``, ``reference`` and any further keys,
#: which become columns (e.g. ``alpha``/``beta`` of table 4, the heat map's axes).
DEFAULT_REPORT: dict = {
    "student": None,          # the run's student name in tables and the size figure (default: the profile)
    "average": "macro",       # suite score: macro (mean over tasks) or micro (items pooled)
    "significance_level": 0.05,  # significance threshold (two-sided)
    "n_bootstrap": 10000,     # paired bootstrap resamples over test items
    "bootstrap_seed": 0,
    "noise_factor": 2.0,      # |diff| below noise_factor x pooled seed std counts as within noise
    "decimals": 1,
    "paper_columns": {},      # our suite -> the paper's column, e.g. {bbh_test: BBH-test}
    "student_sizes": {},      # student name -> parameter count (x axis of the size figure)
    "other_students": {},     # student name -> results folder of another student's runs (all of its run
                              # folders), or {dir: folder, runs: [<method>-<seed>, ...]} (those only)
    "labels": {},             # method -> display label (over DEFAULT_LABELS)
    "tables": {
        "table1": {
            "title": "Methods: untuned student, baselines, EDIT and its ablations (paper Table 1)",
            "paper_table": 1, "reference": "std_cot", "min_rows": 1,
            "rows": ["untuned_zero_shot", "untuned_few_shot", "untuned_zero_shot_cot", "untuned_few_shot_cot",
                     "answer_sft", "mt_cot", "scott", "std_cot", "sbs", "edit_no_rwc_dplus", "edit_no_rwc",
                     "edit_a0_b0", "edit"],
            "controls": list(_CONTROLS),
        },
        "table2": {
            "title": "KRSL on subsets of the dual pairs, with and without rectified CoTs (paper Table 2)",
            "paper_table": 2, "reference": "edit", "min_rows": 2,
            "rows": [{"method": "edit_dplus_only", "pairs": "D+dual", "RWC": "yes"},
                     {"method": "edit_dminus_only", "pairs": "D-dual", "RWC": "yes"},
                     {"method": "edit", "pairs": "both", "RWC": "yes"},
                     {"method": "edit_no_rwc_dplus", "pairs": "D+dual", "RWC": "no"},
                     {"method": "edit_no_rwc_dminus", "pairs": "D-dual", "RWC": "no"},
                     {"method": "edit_no_rwc", "pairs": "both", "RWC": "no"}],
            "controls": [{"method": m, "pairs": "both", "RWC": "yes"} for m in _CONTROLS],
        },
        "table4": {
            "title": "KRSL weights: alpha on the correct CoT's key tokens, beta on the wrong CoT's (paper Table 4)",
            "paper_table": 4, "reference": "edit_a0_b0", "min_rows": 2,
            "rows": [{"method": "edit_a0_b0", "alpha": 0, "beta": 0},
                     {"method": "edit_a0_b0025", "alpha": 0, "beta": 0.025},
                     {"method": "edit_a1_b0", "alpha": 1, "beta": 0},
                     {"method": "edit", "alpha": 1, "beta": 0.025},
                     {"method": "edit_a1_b005", "alpha": 1, "beta": 0.05}],
            "controls": [],
        },
        "table5": {
            "title": "Data-matched baselines: the same number of training CoTs (paper Table 5)",
            "paper_table": 5, "reference": "std_cot", "min_rows": 2,
            "rows": ["std_cot", "std_cot_repeat", "std_cot_dual", "edit"], "controls": [],
        },
        "table7": {
            "title": "KRSL on dual pairs of one mistake type, equal numbers (paper Table 7)",
            "paper_table": 7, "reference": "edit_a0_b0", "min_rows": 2,
            "rows": ["edit_a0_b0",
                     {"method": "edit_logical", "mistake": "logical"},
                     {"method": "edit_calculation", "mistake": "calculation"},
                     {"method": "edit_knowledge", "mistake": "knowledge"}],
            "controls": [],
        },
        "table9": {
            "title": "Step 2 with DPO instead of KRSL (paper Table 9)",
            "paper_table": 9, "reference": "edit", "min_rows": 2,
            "rows": ["edit_dpo", "edit"], "controls": [],
        },
    },
}

_ROW_KEYS = ("method", "label", "reference")


def report_config(params: dict | None = None) -> dict:
    """``DEFAULT_REPORT`` with the ``report:`` section of ``params`` merged over it (mappings merge
    key by key, so one table, one label or one setting can be changed alone; lists replace).
    Labels: ``DEFAULT_LABELS`` then ``report.labels``. A table set to null is dropped."""
    section = (params or {}).get("report") or {}
    if not isinstance(section, dict):
        raise ValueError(f"params 'report' must be a mapping, got {type(section).__name__}")
    unknown = [k for k in section if k not in DEFAULT_REPORT]
    if unknown:
        raise ValueError(f"params 'report': unknown key(s) {unknown}; known: {sorted(DEFAULT_REPORT)}")
    cfg = deep_merge(DEFAULT_REPORT, section)
    cfg["labels"] = {**DEFAULT_LABELS, **(cfg.get("labels") or {})}
    cfg["tables"] = {k: v for k, v in cfg["tables"].items() if v is not None}
    for name, spec in cfg["tables"].items():
        if not isinstance(spec, dict) or not isinstance(spec.get("rows"), list):
            raise ValueError(f"params 'report.tables.{name}': needs a 'rows' list")
        table_rows(spec, cfg["labels"], name=name)  # validates the rows
    if cfg["average"] not in ("macro", "micro"):
        raise ValueError(f"params 'report.average' must be macro or micro, got {cfg['average']!r}")
    return cfg


def table_rows(spec: dict, labels: dict[str, str] | None = None, name: str = "table") -> list[dict]:
    """A table spec's rows then controls, each normalised to a dict with ``method``, ``label``,
    ``reference``, ``control`` (bool) and its extra columns under ``extra`` (a dict)."""
    labels = labels or {}
    out, seen = [], set()
    for control, entries in ((False, spec.get("rows") or []), (True, spec.get("controls") or [])):
        for k, entry in enumerate(entries):
            row = {"method": entry} if isinstance(entry, str) else dict(entry or {})
            method = row.get("method")
            if not isinstance(method, str) or not method:
                where = "controls" if control else "rows"
                raise ValueError(f"report table {name!r}, {where}[{k}]: needs a method name, got {entry!r}")
            if method in seen:
                raise ValueError(f"report table {name!r}: method {method!r} listed twice")
            seen.add(method)
            out.append({"method": method, "label": row.get("label") or labels.get(method, method),
                        "reference": row.get("reference", spec.get("reference")), "control": control,
                        "extra": {k2: v for k2, v in row.items() if k2 not in _ROW_KEYS}})
    return out


# ---------------------------------------------------------------- significance: t distribution


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if a <= 0 or b <= 0:
        raise ValueError(f"betainc: a and b must be positive, got {a}, {b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc: x must lie in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_bt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_bt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_bt) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value P(|T| >= |t|) of Student's t with ``df`` degrees of freedom
    (= I_{df/(df+t^2)}(df/2, 1/2)); scipy.stats.t.sf is used when scipy is installed."""
    if df <= 0 or math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    try:
        from scipy import stats  # optional
        return float(2.0 * stats.t.sf(abs(t), df))
    except ImportError:
        return betainc(df / 2.0, 0.5, df / (df + t * t))


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> dict:
    """Paired t-test of ``b - a`` (same length, matched by position, e.g. by seed).

    Returns ``{"n", "mean_diff", "sd_diff", "t", "df", "p_value"}``: mean and sample standard
    deviation of the differences, t = mean / (sd / sqrt(n)), df = n - 1, two-sided p. With fewer
    than 2 pairs t, df and p are NaN; with all differences equal, t is +-inf and p = 0 (or t = 0,
    p = 1 when they are all zero)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_t_test: {len(a)} values against {len(b)}: they must be paired")
    d = b - a
    n = len(d)
    if n == 0:
        raise ValueError("paired_t_test: no pairs")
    mean = float(d.mean())
    if n < 2:
        return {"n": n, "mean_diff": mean, "sd_diff": math.nan, "t": math.nan, "df": math.nan, "p_value": math.nan}
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        t = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
    else:
        t = mean / (sd / math.sqrt(n))
    p = 1.0 if t == 0.0 else t_two_sided_p(t, n - 1)
    return {"n": n, "mean_diff": mean, "sd_diff": sd, "t": float(t), "df": n - 1, "p_value": float(p)}


# ---------------------------------------------------------------- significance: bootstrap over items


def _item_cube(items: pd.DataFrame, methods: Sequence[str], seeds: Sequence[int], suite: str,
               task: str) -> np.ndarray:
    """Correctness array (len(methods), len(seeds), n_items) of one (suite, task); every
    (method, seed) must cover the same item ids (ValueError naming the run otherwise)."""
    g = items[(items["suite"] == suite) & (items["task"] == task)]
    ids = None
    cube = []
    for m in methods:
        per_seed = []
        for s in seeds:
            r = g[(g["method"] == m) & (g["seed"] == s)]
            if r["id"].duplicated().any():
                raise ValueError(f"samples of run {m}-{s}: item {r.loc[r['id'].duplicated(), 'id'].iloc[0]!r} "
                                 f"appears twice in suite {suite}")
            r = r.set_index("id")["correct"]
            if ids is None:
                ids = sorted(r.index)
            elif set(r.index) != set(ids):
                raise ValueError(f"samples of run {m}-{s} cover other items of {suite}/{task} than run "
                                 f"{methods[0]}-{seeds[0]} ({len(r)} vs {len(ids)} items): cannot pair them")
            per_seed.append(r.reindex(ids).to_numpy(dtype=float))
        cube.append(per_seed)
    return np.asarray(cube, dtype=float)


def bootstrap_compare(items: pd.DataFrame, ref: str, method: str, suites: Sequence[str],
                      average: str = "macro", n_resamples: int = 10_000, seed: int = 0,
                      seeds: Sequence[int] | None = None) -> dict:
    """Paired bootstrap over test items of ``method`` against ``ref``.

    items: per-item correctness, columns method, seed, suite, task, id, correct (one student).
    ``seeds``: the training seeds to use (each must have items of both methods, else ValueError);
    default: the seeds both methods have. One resample draws, within each (suite, task), as many
    items as it has, with replacement, and applies the same draw to both methods and every seed
    (so it pairs items and keeps each task's size). For each resample the suite score (macro: mean
    over tasks; micro: pooled), the AVG (mean over ``suites``) and then the mean over seeds are
    computed; the statistic is method minus ref, in points.

    Returns ``{column: {"diff", "ci_low", "ci_high", "p_value", "n_items"}}`` for every suite and
    ``"AVG"``, plus ``"n_seeds"`` and ``"seeds"``: the observed difference, a 95% percentile
    interval and a two-sided p-value (1 + #{|d* - d| >= |d|}) / (B + 1) (the bootstrap
    distribution shifted to the null). Seeded: deterministic. ValueError when there are no common
    seeds or a suite has no items."""
    if average not in ("macro", "micro"):
        raise ValueError("average must be 'macro' or 'micro'")
    _check_cols(items, ["method", "seed", "suite", "task", "id", "correct"], "bootstrap_compare items")
    both = set(items.loc[items["method"] == ref, "seed"]) & set(items.loc[items["method"] == method, "seed"])
    if seeds is not None:
        lacking = sorted(set(seeds) - both)
        if lacking:
            raise ValueError(f"bootstrap_compare: seed(s) {lacking} lack per-item results of {ref!r} or {method!r}")
        both = set(seeds)
    seeds = sorted(both)
    if not seeds:
        raise ValueError(f"bootstrap_compare: no seed has per-item results for both {ref!r} and {method!r}")
    rng = np.random.default_rng(seed)
    obs, boot, n_items = {}, {}, {}
    for suite in suites:
        tasks = sorted(items.loc[(items["suite"] == suite) & items["method"].isin([ref, method]), "task"].unique())
        if not tasks:
            raise ValueError(f"bootstrap_compare: no items of suite {suite!r} for {ref!r} / {method!r}")
        task_obs, task_boot, sizes = [], [], []
        for task in tasks:
            cube = _item_cube(items, [ref, method], seeds, suite, task)  # (2, S, n)
            n = cube.shape[-1]
            sizes.append(n)
            task_obs.append(cube.mean(axis=-1))  # (2, S)
            chunk = max(1, 4_000_000 // max(1, cube[..., :1].size * n))
            parts = []
            for start in range(0, n_resamples, chunk):
                idx = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
                parts.append(cube[:, :, idx].mean(axis=-1))  # (2, S, k)
            task_boot.append(np.concatenate(parts, axis=-1))
        w = np.asarray(sizes, dtype=float) / sum(sizes) if average == "micro" else np.full(len(sizes), 1 / len(sizes))
        obs[suite] = 100 * np.tensordot(w, np.stack(task_obs), axes=1)    # (2, S)
        boot[suite] = 100 * np.tensordot(w, np.stack(task_boot), axes=1)  # (2, S, B)
        n_items[suite] = int(sum(sizes))
    obs["AVG"] = np.mean([obs[s] for s in suites], axis=0)
    boot["AVG"] = np.mean([boot[s] for s in suites], axis=0)
    n_items["AVG"] = int(sum(n_items[s] for s in suites))
    out: dict = {"n_seeds": len(seeds), "seeds": seeds}
    for col in [*suites, "AVG"]:
        d = float((obs[col][1] - obs[col][0]).mean())
        dist = (boot[col][1] - boot[col][0]).mean(axis=0)  # (B,)
        p = (1 + np.sum(np.abs(dist - d) >= abs(d) - 1e-9)) / (n_resamples + 1)
        out[col] = {"diff": d, "ci_low": float(np.quantile(dist, 0.025)), "ci_high": float(np.quantile(dist, 0.975)),
                    "p_value": float(min(1.0, p)), "n_items": n_items[col]}
    return out


def compare_methods(acc: pd.DataFrame, ref: str, method: str, suites: Sequence[str], average: str = "macro",
                    items: pd.DataFrame | None = None, n_resamples: int = 10_000, seed: int = 0) -> dict:
    """``method`` against ``ref``, per suite and AVG: seed means and stds, the difference, the
    pooled seed std, a paired t-test over the seeds both have (per-seed differences) and, when
    ``items`` (per-item correctness) covers both methods on all those seeds, the paired bootstrap
    over items (the same runs as the t-test; otherwise no bootstrap, with a note).

    Returns ``{column: {"mean_ref", "mean", "std_ref", "std", "diff", "pooled_std", "n_seeds",
    "t", "df", "p_seeds", "diff_items", "ci_low", "ci_high", "p_items", "n_items"}}`` (NaN
    where a test cannot be run) plus ``"notes"`` (why a test was not run)."""
    wide = per_seed_scores(acc[acc["method"].isin([ref, method])], suites, average)
    cols = [*suites, "AVG"]
    a = wide[wide["method"] == ref].set_index("seed")
    b = wide[wide["method"] == method].set_index("seed")
    common = sorted(set(a.index) & set(b.index))
    notes = []
    boot = None
    if items is not None and len(items) and common:
        have = items[items["method"].isin([ref, method])]
        if set(have["method"]) == {ref, method}:
            try:  # the same runs as the t-test: every common seed needs its items
                boot = bootstrap_compare(have, ref, method, suites, average, n_resamples, seed, seeds=common)
            except ValueError as e:
                notes.append(f"{method} vs {ref}: no item bootstrap ({e})")
        else:
            notes.append(f"{method} vs {ref}: no per-item results (samples.jsonl) for "
                         f"{sorted({ref, method} - set(have['method']))}: no item bootstrap")
    out: dict = {"notes": notes}
    for c in cols:
        va, vb = a[c].to_numpy(dtype=float), b[c].to_numpy(dtype=float)
        sa = float(np.std(va, ddof=1)) if len(va) > 1 else math.nan
        sb = float(np.std(vb, ddof=1)) if len(vb) > 1 else math.nan
        r = {"mean_ref": float(np.mean(va)) if len(va) else math.nan,
             "mean": float(np.mean(vb)) if len(vb) else math.nan,
             "std_ref": sa, "std": sb, "pooled_std": math.sqrt((sa ** 2 + sb ** 2) / 2),
             "n_seeds": len(common),
             "t": math.nan, "df": math.nan, "p_seeds": math.nan,
             "diff_items": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_items": math.nan, "n_items": 0}
        r["diff"] = r["mean"] - r["mean_ref"]
        if common:
            tt = paired_t_test(a.loc[common, c].to_numpy(dtype=float), b.loc[common, c].to_numpy(dtype=float))
            r.update(t=tt["t"], df=tt["df"], p_seeds=tt["p_value"])
        if boot is not None:
            r.update(diff_items=boot[c]["diff"], ci_low=boot[c]["ci_low"], ci_high=boot[c]["ci_high"],
                     p_items=boot[c]["p_value"], n_items=boot[c]["n_items"])
        out[c] = r
    if len(common) < 2:
        notes.append(f"{method} vs {ref}: {len(common)} common seed(s): no t-test over seeds")
    return out


def _compare_cached(cache: dict | None, acc, ref, method, suites, average, items, n_resamples, seed) -> dict:
    if cache is None:
        return compare_methods(acc, ref, method, suites, average, items, n_resamples, seed)
    key = (ref, method, tuple(suites), average, n_resamples, seed)
    if key not in cache:
        cache[key] = compare_methods(acc, ref, method, suites, average, items, n_resamples, seed)
    return cache[key]


def noise_verdict(r: dict, alpha: float = 0.05, factor: float = 2.0) -> str:
    """The verdict on one comparison (an entry of ``compare_methods``):

    - ``"beyond noise"``: |diff| >= ``factor`` x the pooled seed std, and every available test
      (t over seeds, bootstrap over items) has p < ``alpha``;
    - ``"suggestive"``: |diff| >= ``factor`` x the pooled std and some, not all, tests have p < alpha
      (typically: the items bootstrap is, the t-test over 3 seeds is not);
    - ``"within noise"``: otherwise (a NaN std, i.e. one seed, never clears the size bar)."""
    ps = [p for p in (r["p_seeds"], r["p_items"]) if not math.isnan(p)]
    big = not math.isnan(r["pooled_std"]) and abs(r["diff"]) >= factor * r["pooled_std"]
    sig = [p < alpha for p in ps]
    if big and sig and all(sig):
        return "beyond noise"
    if big and any(sig):
        return "suggestive"
    return "within noise"


def noise_summary(acc: pd.DataFrame, comparisons: Sequence[tuple[str, str]], suites: Sequence[str],
                  average: str = "macro", items: pd.DataFrame | None = None, alpha: float = 0.05,
                  factor: float = 2.0, n_resamples: int = 10_000, seed: int = 0,
                  cache: dict | None = None) -> pd.DataFrame:
    """Which differences are within noise: one row per (reference, method) pair and column
    (suites and AVG) with the means, diff, pooled seed std, diff / pooled std, both tests' p,
    ``verdict`` (see ``noise_verdict``) and ``within_noise`` (verdict == "within noise"). Pairs with
    a method missing from ``acc`` are left out. ``cache``: as for ``build_table``."""
    have = set(acc["method"])
    rows = []
    for ref, method in comparisons:
        if ref not in have or method not in have or ref == method:
            continue
        res = _compare_cached(cache, acc, ref, method, suites, average, items, n_resamples, seed)
        for c in [*suites, "AVG"]:
            r = res[c]
            rows.append({"reference": ref, "method": method, "column": c, "mean_ref": r["mean_ref"], "mean": r["mean"],
                         "diff": r["diff"], "pooled_std": r["pooled_std"],
                         "diff_over_std": r["diff"] / r["pooled_std"] if r["pooled_std"] else math.nan,
                         "n_seeds": r["n_seeds"], "p_seeds": r["p_seeds"], "n_items": r["n_items"],
                         "p_items": r["p_items"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                         "verdict": noise_verdict(r, alpha, factor)})
            rows[-1]["within_noise"] = rows[-1]["verdict"] == "within noise"
    cols = ["reference", "method", "column", "mean_ref", "mean", "diff", "pooled_std", "diff_over_std", "n_seeds",
            "p_seeds", "n_items", "p_items", "ci_low", "ci_high", "verdict", "within_noise"]
    return pd.DataFrame(rows, columns=cols)


def _p(p: float) -> str:
    """A p-value cell: "-" (no test), "< 0.001" or three decimals."""
    if math.isnan(p):
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p_eq(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def noise_sentences(summary: pd.DataFrame, labels: dict[str, str] | None = None, factor: float = 2.0,
                    alpha: float = 0.05) -> list[str]:
    """One plain sentence per row of ``noise_summary`` for the README, e.g. "IND: EDIT - Std-CoT =
    +6.8 points (64.9 vs 58.1), 2.9 x the pooled seed std 2.4; paired t-test over 3 seeds p = 0.115;
    paired bootstrap over 240 items p < 0.001: suggestive, not established (...)." """
    labels = labels or {}
    out = []
    for r in summary.itertuples(index=False):
        ratio = ("" if math.isnan(r.diff_over_std)
                 else f", {abs(r.diff_over_std):.1f} x the pooled seed std {r.pooled_std:.1f}")
        tests = [f"paired t-test over {r.n_seeds} seeds {_p_eq(r.p_seeds)}"
                 if not math.isnan(r.p_seeds) else f"no t-test ({r.n_seeds} common seed(s))"]
        if not math.isnan(r.p_items):
            tests.append(f"paired bootstrap over {r.n_items} items {_p_eq(r.p_items)}")
        verdict = {"within noise": f"within noise (|diff| < {factor:g} x pooled std, or no test at p < {alpha:g})",
                   "suggestive": f"suggestive, not established (|diff| >= {factor:g} x pooled std, but not every "
                                 f"test at p < {alpha:g})",
                   "beyond noise": f"beyond noise (|diff| >= {factor:g} x pooled std and every test at p < {alpha:g})",
                   }[r.verdict]
        out.append(f"{r.column}: {labels.get(r.method, r.method)} - {labels.get(r.reference, r.reference)} = "
                   f"{r.diff:+.1f} points ({r.mean:.1f} vs {r.mean_ref:.1f}){ratio}; {'; '.join(tests)}: {verdict}.")
    return out


# ---------------------------------------------------------------- assembling a spec table


def _power_note(n_seeds: int) -> str:
    if n_seeds <= 5:
        return (f" With {n_seeds} seeds the t-test has {max(n_seeds - 1, 0)} degree(s) of freedom and low power: "
                "only differences several times the seed-to-seed spread can reach the threshold, and "
                "'not significant' is not evidence of no difference.")
    return ""


def build_table(acc: pd.DataFrame, spec: dict, suites: Sequence[str], *, name: str = "table",
                labels: dict[str, str] | None = None, average: str = "macro", items: pd.DataFrame | None = None,
                alpha: float = 0.05, n_resamples: int = 10_000, seed: int = 0, decimals: int = 1,
                cache: dict | None = None) -> dict:
    """One table of the spec (see ``DEFAULT_REPORT``) from a long accuracy frame of one student.

    Rows whose method has no results in ``acc`` are skipped (listed in ``notes``); every other row
    gets mean ± std over seeds per suite and AVG (AVG = per seed the mean of the suite columns)
    and, when its reference row has results, the difference of AVG to it with a paired t-test over
    seeds and (if ``items`` covers both) a paired bootstrap over items.

    Returns a dict: ``numeric`` (index method: label, extra columns, ``<col>_mean``/``_std``,
    ``n_seeds``, ``reference``, ``diff_AVG``, ``p_seeds``, ``diff_items``, ``ci_low``, ``ci_high``,
    ``p_items``, ``n_items``), ``pretty`` (strings: method, label, extras, suites, AVG, n_seeds, vs,
    "Δ AVG" with ``*`` when p_seeds < alpha and ``†`` when p_items < alpha, "p (seeds)",
    "p (items)", source), ``rows`` (methods shown), ``skipped``, ``notes`` and ``footnote``.
    ``cache``: a dict shared between calls on the same data, so that a comparison that appears in
    several tables is computed once (``(ref, method)`` -> ``compare_methods`` result)."""
    rows = table_rows(spec, labels, name=name)
    have = set(acc["method"])
    shown = [r for r in rows if r["method"] in have]
    skipped = [r["method"] for r in rows if r["method"] not in have]
    notes = []
    if skipped:
        notes.append(f"{name}: no results for {', '.join(skipped)}: row(s) skipped")
    empty = {"numeric": pd.DataFrame(), "pretty": pd.DataFrame(), "rows": [], "skipped": skipped, "notes": notes,
             "footnote": ""}
    if not shown:
        return empty
    methods = [r["method"] for r in shown]
    sub = acc[acc["method"].isin(methods)]
    table = results_table(sub, list(suites), average=average, order=methods)
    extras = list(dict.fromkeys(k for r in shown for k in r["extra"]))
    pretty = format_table(table, decimals)
    sig_cols = ["reference", "diff_AVG", "p_seeds", "diff_items", "ci_low", "ci_high", "p_items", "n_items"]
    sig = pd.DataFrame(index=table.index, columns=sig_cols, dtype=object)
    vs, delta, ps, pi = [], [], [], []
    t_seeds = []
    for r in shown:
        m, ref = r["method"], r["reference"]
        if not ref or ref == m or ref not in have:
            if ref and ref != m and ref not in have:
                notes.append(f"{name}: reference {ref} of {m} has no results: no comparison")
            sig.loc[m] = [ref if ref != m else None, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, 0]
            vs.append(""), delta.append(""), ps.append(""), pi.append("")
            continue
        res = _compare_cached(cache, acc, ref, m, suites, average, items, n_resamples, seed)
        notes.extend(f"{name}: {n}" for n in res["notes"])
        c = res["AVG"]
        t_seeds.append(c["n_seeds"])
        sig.loc[m] = [ref, c["diff"], c["p_seeds"], c["diff_items"], c["ci_low"], c["ci_high"], c["p_items"],
                      c["n_items"]]
        mark = ("*" if c["p_seeds"] < alpha else "") + ("†" if c["p_items"] < alpha else "")
        vs.append((labels or {}).get(ref, ref))
        delta.append(f"{c['diff']:+.{decimals}f}{(' ' + mark) if mark else ''}")
        ps.append(_p(c["p_seeds"]))
        pi.append(_p(c["p_items"]))
    numeric = table.copy()
    numeric.insert(0, "label", [r["label"] for r in shown])
    for k, col in enumerate(extras):
        numeric.insert(1 + k, col, [r["extra"].get(col) for r in shown])
    numeric = numeric.join(sig)
    for col in sig_cols[1:]:
        numeric[col] = numeric[col].astype(float)
    numeric["n_items"] = numeric["n_items"].astype(int)
    cols = [*suites, "AVG"]
    out = pd.DataFrame(index=table.index)
    out["label"] = [r["label"] for r in shown]
    for col in extras:
        out[col] = ["" if r["extra"].get(col) is None else str(r["extra"][col]) for r in shown]
    for col in cols:
        out[col] = pretty[col]
    out["n_seeds"] = pretty["n_seeds"]
    if any(vs):
        out["vs"], out["Δ AVG"], out["p (seeds)"], out["p (items)"] = vs, delta, ps, pi
        if not any(p not in ("", "-") for p in pi):  # no item bootstrap ran: no column for it
            out = out.drop(columns=["p (items)"])
    out["source"] = "ours"
    n_seeds = sorted(set(int(n) for n in table["n_seeds"]))
    seeds_text = f"{n_seeds[0]}" if len(n_seeds) == 1 else f"{n_seeds[0]}-{n_seeds[-1]} (column n_seeds)"
    avg_text = "the macro average over tasks" if average == "macro" else "the micro average (items pooled)"
    foot = (f"Cells: accuracy (%), mean ± sample std (ddof=1) over {seeds_text} seeds of {avg_text} per suite; "
            f"AVG = per seed the mean of the suite columns ({', '.join(suites)}), then mean ± std over seeds.")
    if any(vs):
        have_items = any(p not in ("", "-") for p in pi)
        foot += (f" Δ AVG = row minus its reference (column vs), mean over the seeds both have. "
                 f"*: two-sided paired t-test over seeds on the per-seed AVG differences, p < {alpha:g}.")
        if have_items:
            foot += (f" †: two-sided paired bootstrap over test items ({n_resamples} resamples within each suite and "
                     f"task, the same draw for both methods and every seed, seed {seed}), p < {alpha:g}; it holds the "
                     "trained models fixed, so it measures test-item noise, not seed-to-seed training noise.")
        else:
            foot += " No per-item results were available: no bootstrap over items."
        foot += _power_note(min(t_seeds) if t_seeds else 0)
    if skipped:
        foot += f" Rows without results (skipped): {', '.join(skipped)}."
    return {"numeric": numeric, "pretty": out, "rows": methods, "skipped": skipped, "notes": notes, "footnote": foot}


# ---------------------------------------------------------------- more figures


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
    from matplotlib import colormaps
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
    return _save(fig, path)


def plot_by_student(acc: pd.DataFrame, path, suites: Sequence[str], methods: Sequence[str] | None = None,
                    sizes: dict[str, float] | None = None, column: str = "AVG", average: str = "macro",
                    labels: dict[str, str] | None = None) -> Path | None:
    """Lines of ``column`` (mean over seeds, std as error bars) against the student, one line per
    method (``methods``: which and in what order; default all), x ordered by parameter count when
    ``sizes`` (student -> count) knows every student, else by first appearance.

    acc: long frame with a ``student`` column. Returns ``path``, or None (nothing drawn) when
    there are fewer than two students."""
    _check_cols(acc, ["student"], "plot_by_student")
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
    return _save(fig, path)


def plot_placeholder(path, text: str) -> Path:
    """A small figure that only says ``text``: written where a figure has nothing to show, so that
    the pipeline's declared outputs always exist. Returns ``path``."""
    fig = Figure(figsize=(5.0, 1.6))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True)
    return _save(fig, path)


# ---------------------------------------------------------------- students of several sizes


def with_grid_students(params: dict, students_dir) -> dict:
    """``params`` with the grid's student variants (``grid_students``; their runs, ``grid_student_methods``
    x ``grid_seeds``, under ``students_dir/<name>``) added to ``report.other_students``, so a folder
    left from another configuration is never read, and ``report.student_sizes`` filled
    with the parameter count of the primary student and of each variant where it is not given and
    the student is code-built (``edit.plan.student_plan``'s count, from the ``student`` section)."""
    from edit.params import with_student_variant
    from edit.plan import student_plan

    names = list(params.get("grid_students") or [])
    cfg = dict(params.get("report") or {})
    primary = primary_student(params)
    if primary in names:
        raise ValueError(f"grid_students: {primary!r} is also the primary student's name (report.student or the "
                         f"profile): the tables could not tell their results apart; rename the variant")
    others = dict(cfg.get("other_students") or {})
    runs = [f"{m}-{s}" for m in params.get("grid_student_methods") or [] for s in params.get("grid_seeds") or []]
    others.update({name: {"dir": str(Path(students_dir) / name), "runs": runs} for name in names})
    sizes = dict(cfg.get("student_sizes") or {})
    students = {primary: params["student"], **{n: with_student_variant(params, n)["student"] for n in names}}
    for name, student in students.items():
        if name not in sizes and student.get("kind", "tiny_llama") == "tiny_llama":
            sizes[name] = int(student_plan(student)["n_params"])
    return deep_merge(params, {"report": {"other_students": others, "student_sizes": sizes}})


# ---------------------------------------------------------------- the whole report


def make_report(params: dict, results_dir="results", tables_dir="reports/tables", figures_dir="reports/figures",
                paper_csv=None, runs: Sequence[str] | None = None) -> dict:
    """Every table of the spec whose rows exist, beside the paper's where it has the table, the
    figures and the noise summary, for the run of ``params`` (methods x seeds under
    ``results_dir``) and any ``report.other_students`` runs.

    Writes under ``tables_dir``: ``<table>.{csv,md,tex}`` (the primary student; other students get
    ``<table>_<student>``), ``<table>_numeric.csv``, ``<table>_with_reported.{csv,md,tex}`` when
    ``paper_csv`` exists, ``significance.csv`` (``noise_summary`` of every row against its
    reference), ``notes.md`` (skipped rows and tables, the noise sentences); under ``figures_dir``:
    ``accuracy.png``, ``alpha_beta.png`` (needs two grid cells run) and ``accuracy_by_student.png``
    (needs two students); a figure with nothing to show is a small placeholder that says so, so
    the three files always exist (DVC outputs). Returns ``{"tables": {file name:
    build_table result}, "figures": [paths], "notes": [str], "noise": DataFrame, "sentences": [str]}``."""
    cfg = report_config(params)
    suites = [name for name, spec in params["eval"]["suites"].items() if spec is not None]  # null: switched off
    labels = cfg["labels"]
    primary = primary_student(params)
    runs = list(runs) if runs is not None else [f"{m}-{s}" for m in params["methods"] for s in params["seeds"]]
    acc = [load_accuracy(results_dir, runs, student=primary)]
    items, missing = load_item_correctness(results_dir, runs, student=primary)
    items = [items]
    notes = [f"no samples.jsonl for run(s) {', '.join(missing)}: no item bootstrap for them"] if missing else []
    for name, spec in (cfg["other_students"] or {}).items():
        folder, only = (spec.get("dir"), spec.get("runs")) if isinstance(spec, dict) else (spec, None)
        if not folder or not Path(folder).is_dir():
            notes.append(f"other student {name}: results folder {folder} not found: left out")
            continue
        acc.append(load_accuracy(folder, only, student=str(name)))
        more, miss = load_item_correctness(folder, only, student=str(name))
        items.append(more)
        if miss:
            notes.append(f"other student {name}: no samples.jsonl for {', '.join(miss)}")
    acc = pd.concat(acc, ignore_index=True)
    items = pd.concat(items, ignore_index=True)
    tables_dir, figures_dir = Path(tables_dir), Path(figures_dir)
    kw = dict(labels=labels, average=cfg["average"], alpha=cfg["significance_level"], n_resamples=cfg["n_bootstrap"],
              seed=cfg["bootstrap_seed"], decimals=cfg["decimals"])
    listed = {r["method"] for spec in cfg["tables"].values() for r in table_rows(spec, labels)}
    unlisted = [m for m in dict.fromkeys(acc["method"]) if m not in listed]
    out: dict = {"tables": {}, "figures": [], "notes": notes}
    comparisons = []
    caches: dict[str, dict] = {}
    for student in dict.fromkeys(acc["student"].astype(str)):
        cache = caches.setdefault(student, {})
        a = acc[acc["student"].astype(str) == student]
        it = items[items["student"].astype(str) == student]
        suffix = "" if student == primary else f"_{student}"
        for tname, spec in tqdm(list(cfg["tables"].items()), desc=f"report tables ({student})", leave=False):
            if tname == "table1" and unlisted:  # no method is silently dropped
                spec = {**spec, "rows": list(spec["rows"]) + unlisted}
                notes.append(f"table1: method(s) {', '.join(unlisted)} are in no table of the spec: added to table1")
            res = build_table(a, spec, suites, name=tname + suffix, items=it, cache=cache, **kw)
            notes.extend(res["notes"])
            if len(res["rows"]) < int(spec.get("min_rows", 1)):
                notes.append(f"{tname}{suffix}: {len(res['rows'])} row(s) with results, fewer than min_rows "
                             f"{spec.get('min_rows', 1)}: not written")
                continue
            fname = tname + suffix
            caption = f"{spec.get('title', tname)}. Student {student}, profile {params.get('profile', 'default')}."
            write_table(res["pretty"], tables_dir, fname, caption=caption, footnote=res["footnote"])
            res["numeric"].to_csv(tables_dir / f"{fname}_numeric.csv", float_format="%.4f", lineterminator="\n")
            if paper_csv is not None and Path(paper_csv).exists() and spec.get("paper_table"):
                try:
                    rep = reported_rows(paper_csv, table=int(spec["paper_table"]))
                except ValueError as e:
                    notes.append(f"{fname}: no reported rows ({e})")
                else:
                    both = side_by_side(res["pretty"], rep, rename=cfg["paper_columns"] or None,
                                        decimals=cfg["decimals"])
                    write_table(both, tables_dir, f"{fname}_with_reported",
                                caption=f"Ours ({student}; columns {', '.join(suites)}) beside the EDIT paper's Table "
                                        f"{spec['paper_table']} (source = reported: LLaMA2-7B student on BBH-test, "
                                        "BB-sub, AGIEval, ARC-E, ARC-C). Unless our suites are the paper's benchmarks "
                                        "the columns measure different things and are not comparable.",
                                footnote=res["footnote"])
            out["tables"][fname] = res
            for r in table_rows(spec, labels):
                if r["reference"] and r["reference"] != r["method"] and r["method"] in res["rows"]:
                    comparisons.append((r["reference"], r["method"]))
    comparisons = list(dict.fromkeys(comparisons))
    prim = acc[acc["student"].astype(str) == primary]
    noise = noise_summary(prim, comparisons, suites, cfg["average"], items[items["student"].astype(str) == primary],
                          cfg["significance_level"], cfg["noise_factor"], cfg["n_bootstrap"], cfg["bootstrap_seed"],
                          cache=caches.get(primary))
    tables_dir.mkdir(parents=True, exist_ok=True)
    noise.to_csv(tables_dir / "significance.csv", index=False, float_format="%.4f", lineterminator="\n")
    sentences = noise_sentences(noise, labels, cfg["noise_factor"], cfg["significance_level"])
    out["noise"], out["sentences"] = noise, sentences
    # figures
    t1 = [r["method"] for r in table_rows(cfg["tables"].get("table1", {"rows": []}), labels)] + unlisted
    order = [m for m in t1 if m in set(prim["method"])] + [m for m in dict.fromkeys(prim["method"]) if m not in t1]
    out["figures"].append(plot_accuracy(prim, figures_dir / "accuracy.png", suites, cfg["average"], order=order,
                                        labels=labels))
    grid = [{"method": r["method"], **r["extra"]} for r in table_rows(cfg["tables"].get("table4", {"rows": []}), labels)
            if "alpha" in r["extra"] and "beta" in r["extra"]]
    if sum(g["method"] in set(prim["method"]) for g in grid) >= 2:
        out["figures"].append(plot_alpha_beta(prim, grid, figures_dir / "alpha_beta.png", suites,
                                              average=cfg["average"]))
    else:
        notes.append("alpha_beta.png: fewer than two alpha/beta cells have results: placeholder only")
        out["figures"].append(plot_placeholder(figures_dir / "alpha_beta.png",
                                               "No alpha/beta grid: fewer than two of table 4's runs have results."))
    # the size figure: only methods run with more than one student (a lone point is no line)
    by_students = acc.groupby("method")["student"].nunique()
    size_order = [m for m in dict.fromkeys(order + list(acc["method"])) if by_students.get(m, 0) > 1]
    p = plot_by_student(acc, figures_dir / "accuracy_by_student.png", suites, methods=size_order or order,
                        sizes=cfg["student_sizes"], average=cfg["average"], labels=labels)
    if p is None:
        notes.append("accuracy_by_student.png: results of one student only: placeholder only")
        p = plot_placeholder(figures_dir / "accuracy_by_student.png",
                             f"Results of one student only ({primary}): no accuracy-by-student figure.")
    out["figures"].append(p)
    notes_md = ["# Report notes", "", *[f"- {n}" for n in dict.fromkeys(notes)], "", "## Within noise?", "",
                *[f"- {s}" for s in sentences], ""]
    (tables_dir / "notes.md").write_text("\n".join(notes_md), encoding="utf-8", newline="\n")
    out["notes"] = list(dict.fromkeys(notes))
    return out
