"""The whole report of one configuration: every table of the spec whose rows have results (beside
the paper's where it has the table), the significance summary, the notes and the figures.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from edit.params import primary_student
from edit.figure_files import plot_placeholder
from edit.report.figures import plot_accuracy, plot_alpha_beta, plot_by_student
from edit.report.runs import gather_runs
from edit.report.spec import report_config, table_rows
from edit.report.stats import noise_sentences, noise_summary
from edit.report.tables import build_table, reported_rows, side_by_side, write_table


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
    acc, items, notes = gather_runs(results_dir, runs, primary, cfg["other_students"])
    tables_dir, figures_dir = Path(tables_dir), Path(figures_dir)
    kw = dict(labels=labels, average=cfg["average"], significance_level=cfg["significance_level"],
              n_resamples=cfg["n_bootstrap"], seed=cfg["bootstrap_seed"], decimals=cfg["decimals"])
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
            caption = f"{spec.get('title', tname)}. Student {student}, profile {params['profile']}."
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
