"""Result tables: scores over seeds, display strings, the paper's rows beside ours, the table files,
one spec table (rows, labels, extras, its t-test), and the spec itself (report_config, KRSL weights)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from edit.report.runs import load_accuracy
from edit.report.scores import per_seed_scores, results_table
from edit.config_schema import defaults
from edit.report.spec import DEFAULT_LABELS, DEFAULT_TABLES, krsl_weights, report_config, table_rows
from edit.report.tables import build_table, format_table, reported_rows, side_by_side, tex_escape, write_table
from report_data import PAPER_CSV, hand_acc, hand_scores, repo_methods, results, write_run


def test_results_table_mean_std_over_seeds():
    t = results_table(hand_acc(), ["bbh", "arc"])
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
    t = results_table(hand_acc(), ["bbh", "arc"], average="micro", order=["Std-CoT"])
    assert list(t.index) == ["Std-CoT", "EDIT"]
    assert t.loc["EDIT", "bbh_mean"] == pytest.approx(99.0)  # the ALL row
    # arc micro without ALL row: n-weighted (30 * 40 + 10 * 60) / 40 = 45 for seed 0
    wide = per_seed_scores(hand_acc(), ["arc"], average="micro").set_index(["method", "seed"])
    assert wide.loc[("EDIT", 0), "arc"] == pytest.approx(45.0)
    acc = hand_acc()
    with pytest.raises(ValueError, match="duplicate"):
        results_table(pd.concat([acc, acc.iloc[:1]]), ["bbh"])


def test_format_table_strings():
    f = format_table(results_table(hand_acc(), ["bbh", "arc"]))
    assert f.loc["EDIT", "bbh"] == "62.0 ± 2.0"
    assert f.loc["EDIT", "AVG"] == f"{np.mean([55, 56, 52]):.1f} ± {np.std([55, 56, 52], ddof=1):.1f}"
    assert f.loc["EDIT", "n_seeds"] == "3"
    assert set(f["source"]) == {"ours"}
    one = hand_acc()
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
    both = side_by_side(format_table(results_table(hand_acc(), ["bbh", "arc"])), r,
                        rename={"bbh": "BBH-test", "arc": "ARC-C"})
    assert list(both["source"]) == ["reported"] * 15 + ["ours"] * 2
    assert both.iloc[-2]["BBH-test"] == "62.0 ± 2.0" and both.iloc[14]["BBH-test"] == "60.9"


def test_write_table_files_and_determinism(tmp_path):
    f = format_table(results_table(hand_acc(), ["bbh", "arc"]))
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


def test_write_table_footnote_and_string_cells(tmp_path):
    df = pd.DataFrame({"method": ["a"], "p (seeds)": ["0.095"], "Δ AVG": ["+3.1 †"], "x": [1.234]})
    df = df.set_index("method")
    p = write_table(df, tmp_path, "t", caption="cap", footnote="p < 0.05: *")
    md = p["md"].read_text()
    assert "0.095" in md and "1.2" in md and md.rstrip().endswith("p < 0.05: *")
    tex = p["tex"].read_text()
    assert r"$\Delta$ AVG" in tex and r"$^\dagger$" in tex and r"p \textless{} 0.05" in tex
    assert "p < 0.05" not in p["csv"].read_text()  # the CSV holds cells only


def test_build_table_rows_labels_extras_and_skipped(tmp_path):
    acc = load_accuracy(results(tmp_path / "r"))
    spec = {"reference": "std_cot",
            "rows": ["untuned_zero_shot", "std_cot", {"method": "edit", "pairs": "both", "label": "EDIT!"}],
            "controls": ["edit_random_tokens"]}
    res = build_table(acc, spec, ["IND", "OOD"], name="t", labels=DEFAULT_LABELS, n_resamples=200)
    assert res["rows"] == ["std_cot", "edit"]
    assert res["skipped"] == ["untuned_zero_shot", "edit_random_tokens"]
    assert any("untuned_zero_shot" in n and "skipped" in n for n in res["notes"])
    pretty = res["pretty"]
    assert list(pretty.index) == ["std_cot", "edit"]
    assert list(pretty.columns[:6]) == ["label", "pairs", "IND", "OOD", "AVG", "n_seeds"]
    assert pretty.loc["std_cot", "label"] == "Std-CoT" and pretty.loc["edit", "label"] == "EDIT!"
    assert pretty.loc["edit", "pairs"] == "both" and pretty.loc["std_cot", "pairs"] == ""
    for m in ("std_cot", "edit"):
        for col in ("IND", "OOD", "AVG"):
            v = [hand_scores(m, s)[col] for s in (0, 1, 2)]
            assert pretty.loc[m, col] == f"{np.mean(v):.1f} ± {np.std(v, ddof=1):.1f}"
        assert pretty.loc[m, "n_seeds"] == "3"
    num = res["numeric"]
    assert num.loc["edit", "AVG_mean"] == pytest.approx((num.loc["edit", "IND_mean"] + num.loc["edit", "OOD_mean"]) / 2)
    assert pretty.loc["std_cot", "vs"] == "" and pretty.loc["edit", "vs"] == "Std-CoT"
    assert "t-test" in res["footnote"] and "p < 0.05" in res["footnote"] and "low power" in res["footnote"]
    assert "macro average over tasks" in res["footnote"]
    assert "No per-item results" in res["footnote"]  # no items were given
    # an untuned row of one seed beside 3-seed rows: the power note speaks of the t-tests that ran
    write_run(tmp_path / "r", "untuned_zero_shot", 0)
    mixed = build_table(load_accuracy(tmp_path / "r"), spec, ["IND", "OOD"], name="t", n_resamples=50)
    assert mixed["rows"] == ["untuned_zero_shot", "std_cot", "edit"]
    assert "With 3 seeds the t-test has 2 degree(s)" in mixed["footnote"]
    lone = build_table(load_accuracy(tmp_path / "r"), {"reference": "std_cot", "rows": ["untuned_zero_shot", "std_cot"]},
                       ["IND", "OOD"], name="t", n_resamples=50)
    assert "no t-test over seeds" in lone["footnote"] and "degree(s)" not in lone["footnote"]
    # nothing of the table has results: empty, with a note, no error
    none = build_table(acc, {"rows": ["mt_cot", "scott"]}, ["IND", "OOD"], name="t7")
    assert none["rows"] == [] and none["pretty"].empty and none["skipped"] == ["mt_cot", "scott"]


def test_build_table_t_test_against_hand_computation(tmp_path):
    acc = load_accuracy(results(tmp_path / "r"))
    res = build_table(acc, {"reference": "std_cot", "rows": ["std_cot", "edit"]}, ["IND", "OOD"], n_resamples=200)
    d = np.array([hand_scores("edit", s)["AVG"] - hand_scores("std_cot", s)["AVG"] for s in (0, 1, 2)])
    t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    p = 1 - abs(t) / math.sqrt(2 + t * t)  # Student's t with 2 df: closed form of the two-sided tail
    num = res["numeric"]
    assert num.loc["edit", "diff_AVG"] == pytest.approx(d.mean())
    assert num.loc["edit", "p_seeds"] == pytest.approx(p, rel=1e-9)
    assert math.isnan(num.loc["std_cot", "p_seeds"])
    mark = "*" if p < 0.05 else ""
    assert res["pretty"].loc["edit", "Δ AVG"] == f"{d.mean():+.1f}" + (f" {mark}" if mark else "")
    assert res["pretty"].loc["edit", "p (seeds)"] == (f"{p:.3f}" if p >= 0.001 else "< 0.001")


def test_report_config_from_params():
    cfg = report_config(defaults(report={"labels": {"edit": "EDIT (ours)"}, "significance_level": 0.01, "tables": {
        "table9": None, "table5": {"rows": ["std_cot", "edit_renamed"]}}}))
    assert cfg["labels"]["edit"] == "EDIT (ours)" and cfg["labels"]["std_cot"] == "Std-CoT"
    assert cfg["significance_level"] == 0.01 and cfg["n_bootstrap"] == defaults()["report"]["n_bootstrap"] == 10000
    assert "table9" not in cfg["tables"] and cfg["tables"]["table5"]["reference"] == "std_cot"
    assert [r["method"] for r in table_rows(cfg["tables"]["table5"])] == ["std_cot", "edit_renamed"]
    # the report's settings are the schema's (unknown keys are refused when params are loaded)
    assert {k: v for k, v in report_config(defaults()).items() if k not in ("labels", "tables")} == \
        {k: v for k, v in defaults()["report"].items() if k not in ("labels", "tables")}
    with pytest.raises(ValueError, match="tabels"):
        defaults(report={"tabels": {}})
    with pytest.raises(ValueError, match="report.alpha"):
        defaults(report={"alpha": 0.05})
    with pytest.raises(ValueError, match="table1.*rows\\[0\\]"):
        report_config(defaults(report={"tables": {"table1": {"rows": [{"alpha": 1}]}}}))
    with pytest.raises(ValueError, match="twice"):
        report_config(defaults(report={"tables": {"table5": {"rows": ["edit", "edit"]}}}))
    # the spec is plain data: it survives a trip through YAML (so it can live in params.yaml)
    assert yaml.safe_load(yaml.safe_dump(DEFAULT_TABLES)) == DEFAULT_TABLES
    names = {r["method"] for spec in DEFAULT_TABLES.values() for r in table_rows(spec)}
    brief = ["std_cot", "answer_sft", "mt_cot", "sbs", "scott", "std_cot_repeat", "std_cot_dual", "edit", "edit_dpo",
             "edit_no_rwc", "edit_dplus_only", "edit_dminus_only", "edit_a0_b0", "edit_a0_b0025", "edit_a1_b0",
             "edit_a1_b005", "edit_logical", "edit_calculation", "edit_knowledge", "edit_random_tokens",
             "edit_all_diff_uniform", "untuned_zero_shot", "untuned_zero_shot_cot", "untuned_few_shot",
             "untuned_few_shot_cot"]
    assert not set(brief) - names and set(DEFAULT_LABELS) >= names
    table4 = report_config(defaults(**repo_methods()))["tables"]["table4"]
    grid = {(r["extra"]["alpha"], r["extra"]["beta"]) for r in table_rows(table4)}
    assert grid == {(0, 0), (0, 0.025), (1, 0), (1, 0.025), (1, 0.05)}
    t1 = table_rows(DEFAULT_TABLES["table1"])
    assert [r["method"] for r in t1 if r["control"]] == ["edit_random_tokens", "edit_all_diff_uniform"]


def test_krsl_weights_come_from_method_defs_and_train():
    """Table 4's alpha/beta are each method's KRSL step hp over train.krsl, whole numbers as ints
    (the table shows 1, not 1.0); a method without a KRSL step, or unknown, has none."""
    p = repo_methods()
    assert krsl_weights(p, "edit") == {"alpha": 1, "beta": 0.025}  # train.krsl's own
    assert krsl_weights(p, "edit_a0_b0") == {"alpha": 0, "beta": 0}
    assert krsl_weights(p, "edit_a1_b005") == {"alpha": 1, "beta": 0.05}
    assert isinstance(krsl_weights(p, "edit_a0_b0")["alpha"], int)
    assert krsl_weights(p, "std_cot") is None and krsl_weights(p, "nope") is None
    changed = {**p, "train": {**p["train"], "krsl": {**p["train"]["krsl"], "beta": 0.5}}}
    assert krsl_weights(changed, "edit")["beta"] == 0.5 and krsl_weights(changed, "edit_a1_b0")["beta"] == 0
    two = {**p, "method_defs": {"x": [{"loss": "krsl", "pairs": ["D+dual"]}, {"loss": "krsl", "pairs": ["D-dual"]}]}}
    with pytest.raises(ValueError, match="2 KRSL steps"):
        krsl_weights(two, "x")
    rows = table_rows(report_config(defaults(**p, report={"tables": {"table4": {
        "rows": ["edit", {"method": "edit_a0_b0", "beta": 9}, "std_cot"]}}}))["tables"]["table4"])
    assert [r["extra"] for r in rows] == [{"alpha": 1, "beta": 0.025}, {"alpha": 0, "beta": 9}, {}]
    assert all("alpha" not in r["extra"] for r in table_rows(report_config(defaults())["tables"]["table4"]))  # no method_defs
