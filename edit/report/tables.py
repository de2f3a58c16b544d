"""One table of the spec (``edit.report.spec``) as numbers and as display strings, the paper's rows
beside ours, and the table files: CSV (cells only), Markdown (caption, pipe table, footnote) and
LaTeX (booktabs). Every file is written deterministically: the same input gives the same bytes.

``build_table`` takes a long accuracy frame of one student (``edit.report.runs``): rows without
results are skipped with a note; every other row gets mean ± std over seeds per suite and AVG and,
against its reference row, the difference of AVG with a paired t-test over seeds and a paired
bootstrap over items (``edit.report.stats``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from edit.report.scores import results_table
from edit.report.spec import table_rows
from edit.report.stats import compare_methods, format_p, significant

#: The paper's result columns (its results CSV; ``reported_rows``).
PAPER_COLUMNS = ["BBH-test", "BB-sub", "AGIEval", "ARC-E", "ARC-C", "AVG"]


# ---------------------------------------------------------------- cells and the paper's rows


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
        out[c] = [_fmt(m, decimals) if (s is None or math.isnan(s) or math.isnan(m))
                  else f"{m:.{decimals}f} ± {s:.{decimals}f}"
                  for m, s in zip(means.astype(float), stds.astype(float))]
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


# ---------------------------------------------------------------- one spec table


def _power_note(n_seeds: int) -> str:
    """The footnote on the t-test's power; ``n_seeds``: the fewest common seeds among the
    comparisons that have a t-test (2+), or 0 when none has."""
    if n_seeds < 2:
        return " No comparison has two or more common seeds: no t-test over seeds ('-')."
    if n_seeds <= 5:
        return (f" With {n_seeds} seeds the t-test has {max(n_seeds - 1, 0)} degree(s) of freedom and low power: "
                "only differences several times the seed-to-seed spread can reach the threshold, and "
                "'not significant' is not evidence of no difference.")
    return ""


def build_table(acc: pd.DataFrame, spec: dict, suites: Sequence[str], *, name: str = "table",
                labels: dict[str, str] | None = None, average: str = "macro", items: pd.DataFrame | None = None,
                significance_level: float = 0.05, n_resamples: int = 10_000, seed: int = 0, decimals: int = 1,
                cache: dict | None = None) -> dict:
    """One table of the spec (see ``DEFAULT_TABLES``) from a long accuracy frame of one student.

    Rows whose method has no results in ``acc`` are skipped (listed in ``notes``); every other row
    gets mean ± std over seeds per suite and AVG (AVG = per seed the mean of the suite columns)
    and, when its reference row has results, the difference of AVG to it with a paired t-test over
    seeds and (if ``items`` covers both) a paired bootstrap over items.

    Returns a dict: ``numeric`` (index method: label, extra columns, ``<col>_mean``/``_std``,
    ``n_seeds``, ``reference``, ``diff_AVG``, ``p_seeds``, ``diff_items``, ``ci_low``, ``ci_high``,
    ``p_items``, ``n_items``), ``pretty`` (strings: method, label, extras, suites, AVG, n_seeds, vs,
    "Δ AVG" with ``*`` when p_seeds and ``†`` when p_items is below ``significance_level``, "p (seeds)",
    "p (items)", source), ``rows`` (methods shown), ``skipped``, ``notes`` and ``footnote``.
    ``cache``: as for ``compare_methods`` (a comparison in several tables is computed once)."""
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
        res = compare_methods(acc, ref, m, suites, average, items, n_resamples, seed, cache=cache)
        notes.extend(f"{name}: {n}" for n in res["notes"])
        c = res["AVG"]
        t_seeds.append(c["n_seeds"])
        sig.loc[m] = [ref, c["diff"], c["p_seeds"], c["diff_items"], c["ci_low"], c["ci_high"], c["p_items"],
                      c["n_items"]]
        mark = (("*" if significant(c["p_seeds"], significance_level) else "")
                + ("†" if significant(c["p_items"], significance_level) else ""))
        vs.append((labels or {}).get(ref, ref))
        delta.append(f"{c['diff']:+.{decimals}f}{(' ' + mark) if mark else ''}")
        ps.append(format_p(c["p_seeds"]))
        pi.append(format_p(c["p_items"]))
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
                 f"*: two-sided paired t-test over seeds on the per-seed AVG differences, "
                 f"p < {significance_level:g}.")
        if have_items:
            foot += (f" †: two-sided paired bootstrap over test items ({n_resamples} resamples within each suite and "
                     "task, a suite's one-item tasks pooled, the same draw for both methods and every seed, "
                     f"seed {seed}), "
                     f"p < {significance_level:g}; it holds the "
                     "trained models fixed, so it measures test-item noise, not seed-to-seed training noise.")
        else:
            foot += " No per-item results were available: no bootstrap over items."
        foot += _power_note(min((n for n in t_seeds if n >= 2), default=0))
    if skipped:
        foot += f" Rows without results (skipped): {', '.join(skipped)}."
    return {"numeric": numeric, "pretty": out, "rows": methods, "skipped": skipped, "notes": notes, "footnote": foot}


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
