"""Result tables, table files, the paper's rows, figures and the paired test."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edit.report import (format_table, paired_test, per_seed_scores, plot_accuracy, plot_key_share,
                         plot_localisation, reported_rows, results_table, side_by_side, tex_escape,
                         write_table)

PAPER_CSV = Path("/work/shared/paper/edit_acl2025_results.csv")


def _acc() -> pd.DataFrame:
    """Two methods x 3 seeds x 2 suites; suite "bbh" has tasks + a MACRO row, "arc" tasks only."""
    rows = []
    bbh_macro = {("EDIT", 0): 60.0, ("EDIT", 1): 62.0, ("EDIT", 2): 64.0,
                 ("Std-CoT", 0): 50.0, ("Std-CoT", 1): 50.0, ("Std-CoT", 2): 53.0}
    arc_tasks = {("EDIT", 0): (40.0, 60.0), ("EDIT", 1): (50.0, 50.0), ("EDIT", 2): (30.0, 50.0),
                 ("Std-CoT", 0): (20.0, 40.0), ("Std-CoT", 1): (30.0, 30.0), ("Std-CoT", 2): (35.0, 45.0)}
    for (m, s), v in bbh_macro.items():
        # per-task rows deliberately disagree with MACRO: the MACRO row must be used
        rows += [{"method": m, "seed": s, "suite": "bbh", "task": "t1", "n": 10, "accuracy": 0.0},
                 {"method": m, "seed": s, "suite": "bbh", "task": "MACRO", "n": 10, "accuracy": v},
                 {"method": m, "seed": s, "suite": "bbh", "task": "ALL", "n": 10, "accuracy": 99.0}]
    for (m, s), (e, c) in arc_tasks.items():
        rows += [{"method": m, "seed": s, "suite": "arc", "task": "easy", "n": 30, "accuracy": e},
                 {"method": m, "seed": s, "suite": "arc", "task": "challenge", "n": 10, "accuracy": c}]
    return pd.DataFrame(rows)


def test_results_table_mean_std_over_seeds():
    t = results_table(_acc(), ["bbh", "arc"])
    assert list(t.index) == ["EDIT", "Std-CoT"]
    assert list(t.columns) == ["bbh_mean", "bbh_std", "arc_mean", "arc_std", "AVG_mean", "AVG_std", "n_seeds"]
    assert t.attrs["average"] == "macro"
    assert t.loc["EDIT", "bbh_mean"] == pytest.approx(62.0)
    assert t.loc["EDIT", "bbh_std"] == pytest.approx(2.0)  # sample std of 60, 62, 64
    assert t.loc["Std-CoT", "bbh_mean"] == pytest.approx(51.0)
    assert t.loc["Std-CoT", "bbh_std"] == pytest.approx(np.std([50, 50, 53], ddof=1))
    # arc has no MACRO row: mean over tasks per seed -> 50, 50, 40
    assert t.loc["EDIT", "arc_mean"] == pytest.approx(np.mean([50, 50, 40]))
    assert t.loc["EDIT", "arc_std"] == pytest.approx(np.std([50, 50, 40], ddof=1))
    # AVG: per seed the mean of suites (55, 56, 52), then mean/std over seeds
    avg = [(60 + 50) / 2, (62 + 50) / 2, (64 + 40) / 2]
    assert t.loc["EDIT", "AVG_mean"] == pytest.approx(np.mean(avg))
    assert t.loc["EDIT", "AVG_std"] == pytest.approx(np.std(avg, ddof=1))
    assert t.loc["EDIT", "AVG_mean"] == pytest.approx((t.loc["EDIT", "bbh_mean"] + t.loc["EDIT", "arc_mean"]) / 2)
    assert t.loc["EDIT", "n_seeds"] == 3


def test_results_table_micro_order_and_duplicates():
    t = results_table(_acc(), ["bbh", "arc"], average="micro", order=["Std-CoT"])
    assert list(t.index) == ["Std-CoT", "EDIT"]
    assert t.loc["EDIT", "bbh_mean"] == pytest.approx(99.0)  # the ALL row
    # arc micro without ALL row: n-weighted (30 * 40 + 10 * 60) / 40 = 45 for seed 0
    wide = per_seed_scores(_acc(), ["arc"], average="micro").set_index(["method", "seed"])
    assert wide.loc[("EDIT", 0), "arc"] == pytest.approx(45.0)
    acc = _acc()
    with pytest.raises(ValueError, match="duplicate"):
        results_table(pd.concat([acc, acc.iloc[:1]]), ["bbh"])


def test_format_table_strings():
    f = format_table(results_table(_acc(), ["bbh", "arc"]))
    assert f.loc["EDIT", "bbh"] == "62.0 ± 2.0"
    assert f.loc["EDIT", "AVG"] == f"{np.mean([55, 56, 52]):.1f} ± {np.std([55, 56, 52], ddof=1):.1f}"
    assert f.loc["EDIT", "n_seeds"] == "3"
    assert set(f["source"]) == {"ours"}
    one = _acc()
    one = one[one.seed == 0]
    assert format_table(results_table(one, ["bbh"])).loc["EDIT", "bbh"] == "60.0"  # one seed: no ± part


def test_reported_rows_table1():
    r = reported_rows(PAPER_CSV, table=1)
    assert len(r) == 15
    assert list(r.columns) == ["method", "student", "BBH-test", "BB-sub", "AGIEval", "ARC-E", "ARC-C", "AVG",
                               "source"]
    assert set(r["source"]) == {"reported"}
    edit = r[r["method"].str.startswith("EDIT")].iloc[0]
    assert edit["BBH-test"] == pytest.approx(60.9) and edit["AVG"] == pytest.approx(46.5)
    assert r["BB-sub"].isna().sum() == 1  # few-shot teacher has BBH only
    assert len(reported_rows(PAPER_CSV, table=4)) == 5
    both = side_by_side(format_table(results_table(_acc(), ["bbh", "arc"])), r,
                        rename={"bbh": "BBH-test", "arc": "ARC-C"})
    assert list(both["source"]) == ["reported"] * 15 + ["ours"] * 2
    assert both.iloc[-2]["BBH-test"] == "62.0 ± 2.0" and both.iloc[14]["BBH-test"] == "60.9"


def test_write_table_files_and_determinism(tmp_path):
    f = format_table(results_table(_acc(), ["bbh", "arc"]))
    f.index = ["EDIT (w/ RWC & KRSL_on D)", "Std-CoT 100%"]
    f.index.name = "method"
    p1 = write_table(f, tmp_path / "a", "table1", "Accuracy (%), macro average over tasks; mean ± std")
    p2 = write_table(f.copy(), tmp_path / "b", "table1", "Accuracy (%), macro average over tasks; mean ± std")
    for k in ("csv", "md", "tex"):
        assert p1[k].exists() and p1[k].stat().st_size > 0
        assert p1[k].read_bytes() == p2[k].read_bytes()
    md = p1["md"].read_text()
    assert "| method" in md and "62.0 ± 2.0" in md
    tex = p1["tex"].read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"RWC \& KRSL\_on D" in tex and r"100\%" in tex and r"62.0 $\pm$ 2.0" in tex
    assert pd.read_csv(p1["csv"])["method"].tolist() == list(f.index)
    assert tex_escape("a_b{c}$") == r"a\_b\{c\}\$"


def test_figures_written_and_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    ks = pd.DataFrame({"task": rng.choice(["date_understanding", "navigate", "object_counting"], 60),
                       "pair_type": rng.choice(["D+-", "D-+"], 60), "key_share": rng.uniform(0, 0.4, 60)})
    loc = pd.DataFrame({"mistake_type": rng.choice(["logical", "calculation", "knowledge"], 30),
                        "precision": rng.uniform(0.3, 1, 30), "recall": rng.uniform(0.3, 1, 30)})
    paths = [plot_key_share(ks, tmp_path / "key_share.png"),
             plot_localisation(loc, tmp_path / "loc.png"),
             plot_accuracy(_acc(), tmp_path / "acc.png", suites=["bbh", "arc"])]
    for p in paths:
        assert p.exists() and 1000 < p.stat().st_size < 300_000
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = plot_key_share(ks, tmp_path / "key_share2.png")
    assert again.read_bytes() == paths[0].read_bytes()


def test_paired_test():
    a = [{"id": str(i), "correct": i % 2 == 0} for i in range(200)]
    b = [{"id": str(i), "correct": True} for i in range(200)]
    r = paired_test(a, b, n_resamples=2000)
    assert r["n"] == 200 and r["diff"] == pytest.approx(50.0)
    assert r["p_value"] < 0.01 and r["ci_low"] > 0
    same = paired_test(a, a, n_resamples=500)
    assert same["diff"] == 0 and same["p_value"] == pytest.approx(1.0)
    assert paired_test(a, b, n_resamples=500) == paired_test(a, b, n_resamples=500)
    with pytest.raises(ValueError):
        paired_test(a, b[:-1])
