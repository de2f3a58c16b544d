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


# ================================================================ spec tables, significance, figures, driver

import json
import math

import yaml

from edit.evaluate import accuracy_frame
from edit.report import (DEFAULT_LABELS, DEFAULT_REPORT, betainc, bootstrap_compare, build_table, compare_methods,
                         load_accuracy, load_item_correctness, make_report, noise_sentences, noise_summary,
                         noise_verdict, paired_t_test, plot_alpha_beta, plot_by_student, report_config,
                         t_two_sided_p, table_rows)

#: Hit rate per method of the synthetic runs (per seed a small shift), tasks of unequal size.
_P = {"std_cot": 0.5, "edit": 0.8, "edit_a0_b0": 0.55, "edit_a1_b0": 0.6}
_TASKS = {"t1": 20, "t2": 10}


def _records(method: str, seed: int, p: float | None = None) -> list[dict]:
    """Per-item records (id, suite, task, correct) of one synthetic run: deterministic."""
    rng = np.random.default_rng([sorted(_P).index(method) if method in _P else 99, seed])
    p = _P.get(method, 0.5) if p is None else p
    recs = []
    for suite in ("IND", "OOD"):
        for task, n in _TASKS.items():
            hit = rng.random(n) < (p if suite == "IND" else p - 0.1) + 0.05 * (seed - 1)
            recs += [{"id": f"{task}/{suite}/{i:03d}", "suite": suite, "task": task, "correct": bool(h)}
                     for i, h in enumerate(hit)]
    return recs


def _write_run(root: Path, method: str, seed: int, with_keys: bool = True, samples: bool = True) -> list[dict]:
    recs = _records(method, seed)
    run = root / f"{method}-{seed}"
    run.mkdir(parents=True, exist_ok=True)
    acc = accuracy_frame(recs)
    if with_keys:  # the current files carry method and seed; older ones only the folder name
        acc.insert(0, "seed", seed)
        acc.insert(0, "method", method)
    acc.to_csv(run / "accuracy.csv", index=False)
    if samples:
        (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return recs


def _results(root: Path, methods=("std_cot", "edit"), seeds=(0, 1, 2)) -> Path:
    for k, m in enumerate(methods):
        for s in seeds:
            _write_run(root, m, s, with_keys=(k + s) % 2 == 0)
    return root


def _hand_scores(method: str, seed: int, average: str = "macro") -> dict:
    """Suite scores and AVG of a synthetic run, computed by hand from its records."""
    recs = _records(method, seed)
    out = {}
    for suite in ("IND", "OOD"):
        per = {t: [r["correct"] for r in recs if r["suite"] == suite and r["task"] == t] for t in _TASKS}
        if average == "macro":
            out[suite] = 100 * np.mean([np.mean(v) for v in per.values()])
        else:
            out[suite] = 100 * np.mean(sum(per.values(), []))
    out["AVG"] = (out["IND"] + out["OOD"]) / 2
    return out


def test_load_accuracy_with_and_without_method_seed_columns(tmp_path):
    root = _results(tmp_path / "results")
    acc = load_accuracy(root, ["std_cot-0", "std_cot-1", "edit-1"], student="tiny")
    assert list(acc.columns[:7]) == ["student", "method", "seed", "suite", "task", "n", "accuracy"]
    assert set(acc["student"]) == {"tiny"}
    assert sorted(set(zip(acc["method"], acc["seed"]))) == [("edit", 1), ("std_cot", 0), ("std_cot", 1)]
    got = acc[(acc.method == "std_cot") & (acc.seed == 1) & (acc.suite == "IND") & (acc.task == "MACRO")]
    assert got["accuracy"].iloc[0] == pytest.approx(_hand_scores("std_cot", 1)["IND"])
    assert len(load_accuracy(root)) == 6 * 2 * (len(_TASKS) + 2)  # discovery: every run folder
    bad = root / "edit-7"
    bad.mkdir()
    pd.read_csv(root / "edit-1" / "accuracy.csv").to_csv(bad / "accuracy.csv", index=False)  # says seed 1
    with pytest.raises(ValueError, match=r"edit-7.*seed"):
        load_accuracy(root, ["edit-7"])
    with pytest.raises(FileNotFoundError, match="edit-9"):
        load_accuracy(root, ["edit-9"])
    with pytest.raises(ValueError, match="<method>-<seed>"):
        load_accuracy(root, ["nodash"])
    items, missing = load_item_correctness(root, ["edit-0", "edit-7"])
    assert missing == ["edit-7"] and len(items) == 2 * sum(_TASKS.values())
    assert items["correct"].dtype == bool


def test_build_table_rows_labels_extras_and_skipped(tmp_path):
    acc = load_accuracy(_results(tmp_path / "r"))
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
            v = [_hand_scores(m, s)[col] for s in (0, 1, 2)]
            assert pretty.loc[m, col] == f"{np.mean(v):.1f} ± {np.std(v, ddof=1):.1f}"
        assert pretty.loc[m, "n_seeds"] == "3"
    num = res["numeric"]
    assert num.loc["edit", "AVG_mean"] == pytest.approx((num.loc["edit", "IND_mean"] + num.loc["edit", "OOD_mean"]) / 2)
    assert pretty.loc["std_cot", "vs"] == "" and pretty.loc["edit", "vs"] == "Std-CoT"
    assert "t-test" in res["footnote"] and "p < 0.05" in res["footnote"] and "low power" in res["footnote"]
    assert "macro average over tasks" in res["footnote"]
    assert "No per-item results" in res["footnote"]  # no items were given
    # nothing of the table has results: empty, with a note, no error
    none = build_table(acc, {"rows": ["mt_cot", "scott"]}, ["IND", "OOD"], name="t7")
    assert none["rows"] == [] and none["pretty"].empty and none["skipped"] == ["mt_cot", "scott"]


def test_build_table_t_test_against_hand_computation(tmp_path):
    acc = load_accuracy(_results(tmp_path / "r"))
    res = build_table(acc, {"reference": "std_cot", "rows": ["std_cot", "edit"]}, ["IND", "OOD"], n_resamples=200)
    d = np.array([_hand_scores("edit", s)["AVG"] - _hand_scores("std_cot", s)["AVG"] for s in (0, 1, 2)])
    t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    p = 1 - abs(t) / math.sqrt(2 + t * t)  # Student's t with 2 df: closed form of the two-sided tail
    num = res["numeric"]
    assert num.loc["edit", "diff_AVG"] == pytest.approx(d.mean())
    assert num.loc["edit", "p_seeds"] == pytest.approx(p, rel=1e-9)
    assert math.isnan(num.loc["std_cot", "p_seeds"])
    mark = "*" if p < 0.05 else ""
    assert res["pretty"].loc["edit", "Δ AVG"] == f"{d.mean():+.1f}" + (f" {mark}" if mark else "")
    assert res["pretty"].loc["edit", "p (seeds)"] == (f"{p:.3f}" if p >= 0.001 else "< 0.001")


def test_t_distribution_closed_forms():
    for t in (0.3, 1.0, 2.5, 7.0):
        assert t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-10)
        assert t_two_sided_p(-t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10)
        # df = 4: P(|T| > t) = 1 - (3/2 s - 1/2 s^3) with s = t / sqrt(4 + t^2)
        s = t / math.sqrt(4 + t * t)
        assert t_two_sided_p(t, 4) == pytest.approx(1 - (1.5 * s - 0.5 * s ** 3), rel=1e-9)
    assert t_two_sided_p(2.776445105, 4) == pytest.approx(0.05, abs=1e-7)   # tables' critical value
    assert t_two_sided_p(1.959963985, 1e7) == pytest.approx(0.05, abs=1e-6)  # normal limit
    assert t_two_sided_p(0.0, 3) == pytest.approx(1.0)
    assert betainc(2.0, 3.0, 0.4) == pytest.approx(0.5248, abs=1e-12)  # = 1 - sum_{j<2} C(4,j) .4^j .6^(4-j)
    with pytest.raises(ValueError):
        betainc(1.0, 1.0, 1.5)
    scipy_stats = pytest.importorskip("scipy.stats")
    assert t_two_sided_p(1.7, 6.5) == pytest.approx(2 * scipy_stats.t.sf(1.7, 6.5), rel=1e-9)


def test_paired_t_test_by_hand():
    r = paired_t_test([50, 50, 50], [53, 51, 55])  # differences 3, 1, 5: mean 3, sd 2
    t = 3 / (2 / math.sqrt(3))
    assert r["mean_diff"] == pytest.approx(3) and r["sd_diff"] == pytest.approx(2)
    assert r["t"] == pytest.approx(t) and r["df"] == 2
    assert r["p_value"] == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert paired_t_test([1, 2], [1, 2])["p_value"] == 1.0
    same_shift = paired_t_test([1, 2, 3], [2, 3, 4])
    assert same_shift["t"] == math.inf and same_shift["p_value"] == 0.0
    assert math.isnan(paired_t_test([1.0], [2.0])["p_value"])
    with pytest.raises(ValueError, match="paired"):
        paired_t_test([1, 2], [1, 2, 3])


def _items(methods=("std_cot", "edit"), seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = [{"method": m, "seed": s, **r} for m in methods for s in seeds for r in _records(m, s)]
    return pd.DataFrame(rows)


def test_bootstrap_compare_observed_diff_determinism_and_p():
    items = _items()
    r1 = bootstrap_compare(items, "std_cot", "edit", ["IND", "OOD"], n_resamples=2000, seed=3)
    r2 = bootstrap_compare(items, "std_cot", "edit", ["IND", "OOD"], n_resamples=2000, seed=3)
    r3 = bootstrap_compare(items, "std_cot", "edit", ["IND", "OOD"], n_resamples=2000, seed=4)
    assert r1 == r2
    assert (r1["AVG"]["ci_low"], r1["AVG"]["ci_high"]) != (r3["AVG"]["ci_low"], r3["AVG"]["ci_high"])
    for col in ("IND", "OOD", "AVG"):
        hand = np.mean([_hand_scores("edit", s)[col] - _hand_scores("std_cot", s)[col] for s in (0, 1, 2)])
        assert r1[col]["diff"] == pytest.approx(hand)
        assert r1[col]["ci_low"] < r1[col]["diff"] < r1[col]["ci_high"]
    assert r1["AVG"]["n_items"] == 2 * sum(_TASKS.values()) and r1["n_seeds"] == 3
    assert r1["AVG"]["p_value"] < 0.01  # 0.8 against 0.5 on 60 items x 3 seeds
    same = bootstrap_compare(items, "std_cot", "std_cot", ["IND"], n_resamples=300)
    assert same["IND"]["diff"] == 0 and same["IND"]["p_value"] == pytest.approx(1.0)
    micro = bootstrap_compare(items, "std_cot", "edit", ["IND", "OOD"], average="micro", n_resamples=100)
    hand = np.mean([_hand_scores("edit", s, "micro")["AVG"] - _hand_scores("std_cot", s, "micro")["AVG"]
                    for s in (0, 1, 2)])
    assert micro["AVG"]["diff"] == pytest.approx(hand)
    broken = items[~((items.method == "edit") & (items.seed == 1) & (items.id == "t1/IND/004"))]
    with pytest.raises(ValueError, match="edit-1"):
        bootstrap_compare(broken, "std_cot", "edit", ["IND"], n_resamples=10)
    with pytest.raises(ValueError, match="no seed"):
        bootstrap_compare(items[items.method == "edit"].assign(method="x"), "std_cot", "x", ["IND"])


def test_noise_verdicts_summary_and_sentences(tmp_path):
    base = {"diff": 5.0, "pooled_std": 2.0, "p_seeds": 0.01, "p_items": 0.001}
    assert noise_verdict(base) == "beyond noise"
    assert noise_verdict({**base, "p_seeds": 0.2}) == "suggestive"
    assert noise_verdict({**base, "diff": 3.9}) == "within noise"  # < 2 x pooled std
    assert noise_verdict({**base, "p_seeds": 0.2, "p_items": 0.3}) == "within noise"
    assert noise_verdict({**base, "pooled_std": math.nan}) == "within noise"
    assert noise_verdict({**base, "p_items": math.nan}) == "beyond noise"  # only the t-test ran
    acc = load_accuracy(_results(tmp_path / "r"))
    s = noise_summary(acc, [("std_cot", "edit"), ("std_cot", "mt_cot")], ["IND", "OOD"], items=_items(),
                      n_resamples=300)
    assert list(s["column"]) == ["IND", "OOD", "AVG"] and set(s["method"]) == {"edit"}  # mt_cot: no results
    avg = s.set_index("column").loc["AVG"]
    assert avg["diff_over_std"] == pytest.approx(avg["diff"] / avg["pooled_std"])
    assert avg["within_noise"] == (avg["verdict"] == "within noise")
    c = compare_methods(acc, "std_cot", "edit", ["IND", "OOD"], items=_items(), n_resamples=300)
    assert avg["p_seeds"] == pytest.approx(c["AVG"]["p_seeds"]) and avg["p_items"] == pytest.approx(c["AVG"]["p_items"])
    lines = noise_sentences(s, DEFAULT_LABELS)
    assert len(lines) == 3 and lines[2].startswith("AVG: EDIT") and "paired t-test over 3 seeds" in lines[2]
    assert "bootstrap over 60 items" in lines[2] and avg["verdict"] in lines[2]


def test_report_config_from_params():
    cfg = report_config({"report": {"labels": {"edit": "EDIT (ours)"}, "significance_level": 0.01,
                                    "tables": {"table9": None, "table5": {"rows": ["std_cot", "edit_renamed"]}}}})
    assert cfg["labels"]["edit"] == "EDIT (ours)" and cfg["labels"]["std_cot"] == "Std-CoT"
    assert cfg["significance_level"] == 0.01 and cfg["n_bootstrap"] == DEFAULT_REPORT["n_bootstrap"]
    assert "table9" not in cfg["tables"] and cfg["tables"]["table5"]["reference"] == "std_cot"
    assert [r["method"] for r in table_rows(cfg["tables"]["table5"])] == ["std_cot", "edit_renamed"]
    assert report_config({}) == report_config(None)
    with pytest.raises(ValueError, match="unknown key"):
        report_config({"report": {"tabels": {}}})
    with pytest.raises(ValueError, match="table1.*rows\\[0\\]"):
        report_config({"report": {"tables": {"table1": {"rows": [{"alpha": 1}]}}}})
    with pytest.raises(ValueError, match="twice"):
        report_config({"report": {"tables": {"table5": {"rows": ["edit", "edit"]}}}})
    # the spec is plain data: it survives a trip through YAML (so it can live in params.yaml)
    assert yaml.safe_load(yaml.safe_dump(DEFAULT_REPORT)) == DEFAULT_REPORT
    names = {r["method"] for spec in DEFAULT_REPORT["tables"].values() for r in table_rows(spec)}
    brief = ["std_cot", "answer_sft", "mt_cot", "sbs", "scott", "std_cot_repeat", "std_cot_dual", "edit", "edit_dpo",
             "edit_no_rwc", "edit_dplus_only", "edit_dminus_only", "edit_a0_b0", "edit_a0_b0025", "edit_a1_b0",
             "edit_a1_b005", "edit_logical", "edit_calculation", "edit_knowledge", "edit_random_tokens",
             "edit_all_diff_uniform", "untuned_zero_shot", "untuned_zero_shot_cot", "untuned_few_shot",
             "untuned_few_shot_cot"]
    assert not set(brief) - names and set(DEFAULT_LABELS) >= names
    grid = {(r["extra"]["alpha"], r["extra"]["beta"]) for r in table_rows(DEFAULT_REPORT["tables"]["table4"])}
    assert grid == {(0, 0), (0, 0.025), (1, 0), (1, 0.025), (1, 0.05)}
    t1 = table_rows(DEFAULT_REPORT["tables"]["table1"])
    assert [r["method"] for r in t1 if r["control"]] == ["edit_random_tokens", "edit_all_diff_uniform"]


def test_alpha_beta_heatmap_and_student_figure(tmp_path):
    acc = load_accuracy(_results(tmp_path / "r", methods=("edit_a0_b0", "edit_a1_b0", "edit")))
    grid = [{"method": "edit_a0_b0", "alpha": 0, "beta": 0}, {"method": "edit_a0_b0025", "alpha": 0, "beta": 0.025},
            {"method": "edit_a1_b0", "alpha": 1, "beta": 0}, {"method": "edit", "alpha": 1, "beta": 0.025}]
    p1 = plot_alpha_beta(acc, grid, tmp_path / "ab1.png", ["IND", "OOD"])
    p2 = plot_alpha_beta(acc, grid, tmp_path / "ab2.png", ["IND", "OOD"])
    assert p1.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p1.stat().st_size > 1000
    assert p1.read_bytes() == p2.read_bytes()
    assert plot_alpha_beta(acc, [{"method": "nope", "alpha": 0, "beta": 0}], tmp_path / "x.png", ["IND"]) is None
    assert not (tmp_path / "x.png").exists()
    assert plot_by_student(acc, tmp_path / "s.png", ["IND", "OOD"]) is None  # one student
    two = pd.concat([acc, acc.assign(student="big", accuracy=acc["accuracy"] * 0.9)], ignore_index=True)
    p = plot_by_student(two, tmp_path / "s.png", ["IND", "OOD"], sizes={"student": 4e5, "big": 1.1e9},
                        labels=DEFAULT_LABELS)
    assert p is not None and p.stat().st_size > 1000
    with pytest.raises(ValueError, match="mixes students"):
        results_table(two, ["IND"])


def test_write_table_footnote_and_string_cells(tmp_path):
    df = pd.DataFrame({"method": ["a"], "p (seeds)": ["0.095"], "Δ AVG": ["+3.1 †"], "x": [1.234]})
    df = df.set_index("method")
    p = write_table(df, tmp_path, "t", caption="cap", footnote="p < 0.05: *")
    md = p["md"].read_text()
    assert "0.095" in md and "1.2" in md and md.rstrip().endswith("p < 0.05: *")
    tex = p["tex"].read_text()
    assert r"$\Delta$ AVG" in tex and r"$^\dagger$" in tex and r"p \textless{} 0.05" in tex
    assert "p < 0.05" not in p["csv"].read_text()  # the CSV holds cells only


def test_make_report_end_to_end(tmp_path):
    root = _results(tmp_path / "results", methods=("std_cot", "edit", "edit_a0_b0", "edit_a1_b0"))
    (root / "edit_a1_b0-2" / "samples.jsonl").unlink()  # samples are in the DVC cache: may be absent
    other = _results(tmp_path / "other", methods=("std_cot", "edit"))
    params = {"profile": "default", "methods": ["std_cot", "edit", "edit_a0_b0", "edit_a1_b0"], "seeds": [0, 1, 2],
              "eval": {"suites": {"IND": "ind_test", "OOD": "ood_test"}},
              "report": {"n_bootstrap": 300, "other_students": {"bigger": str(other)},
                         "student_sizes": {"default": 4e5, "bigger": 1e6}}}
    out = make_report(params, root, tmp_path / "tables", tmp_path / "figures", paper_csv=PAPER_CSV)
    tables = tmp_path / "tables"
    rows = pd.read_csv(tables / "table1.csv")
    assert list(rows["method"]) == ["std_cot", "edit_a0_b0", "edit"]  # spec order, missing rows skipped
    assert all("±" in v for v in rows["IND"]) and all("±" in v for v in rows["AVG"])
    assert (tables / "table1_with_reported.md").read_text().count("| reported |") == 15
    assert set(out["tables"]) >= {"table1", "table4", "table5", "table1_bigger"}
    for t in ("table2", "table7", "table9"):  # one row with results: not written
        assert t not in out["tables"] and not (tables / f"{t}.csv").exists()
    t4 = pd.read_csv(tables / "table4.csv")
    assert list(t4["method"]) == ["edit_a0_b0", "edit_a1_b0", "edit"] and list(t4["alpha"]) == [0, 1, 1]
    assert set(t4["vs"].dropna()) == {DEFAULT_LABELS["edit_a0_b0"]}
    for f in ("table1.md", "table1.tex", "table1_numeric.csv", "significance.csv", "notes.md"):
        assert (tables / f).read_text().strip()
    notes = (tables / "notes.md").read_text()
    assert "edit_a1_b0-2" in notes and "table9" in notes and "Within noise" in notes
    sig = pd.read_csv(tables / "significance.csv")
    pairs = set(zip(sig.reference, sig.method))
    assert {("std_cot", "edit"), ("edit_a0_b0", "edit_a1_b0"), ("edit_a0_b0", "edit")} <= pairs
    assert sig.loc[(sig.method == "edit_a1_b0") & (sig.column == "AVG"), "p_items"].isna().all()  # a seed lacks items
    for fig in ("accuracy.png", "alpha_beta.png", "accuracy_by_student.png"):
        assert (tmp_path / "figures" / fig).stat().st_size > 1000
    make_report(params, root, tmp_path / "tables2", tmp_path / "figures2", paper_csv=PAPER_CSV)
    params1 = {**params, "methods": ["std_cot", "edit"], "report": {"n_bootstrap": 300}}  # one student, no grid
    make_report(params1, _results(tmp_path / "r1"), tmp_path / "t1", tmp_path / "f1")
    for fig in ("alpha_beta.png", "accuracy_by_student.png"):
        assert 0 < (tmp_path / "f1" / fig).stat().st_size < (tmp_path / "figures" / fig).stat().st_size
    assert not (tmp_path / "t1" / "table1_with_reported.csv").exists()  # no paper CSV given
    for f in sorted(tables.iterdir()):
        assert f.read_bytes() == (tmp_path / "tables2" / f.name).read_bytes(), f.name
    for f in sorted((tmp_path / "figures").iterdir()):
        assert f.read_bytes() == (tmp_path / "figures2" / f.name).read_bytes(), f.name


def test_switched_off_suites_are_not_columns(tmp_path):
    """A profile switches a base suite off with null (the bbh and paper profiles drop IND and OOD):
    the tables have no column for it, and AVG is over the suites that ran."""
    root = _results(tmp_path / "results", methods=("std_cot", "edit"))
    params = {"profile": "p", "methods": ["std_cot", "edit"], "seeds": [0, 1, 2],
              "eval": {"suites": {"IND": "ind_test", "OOD": "ood_test", "GONE": None}}}
    out = make_report(params, root, tmp_path / "t", tmp_path / "f")
    table = pd.read_csv(tmp_path / "t" / "table1.csv")
    assert "GONE" not in table.columns and {"IND", "OOD", "AVG"} <= set(table.columns)
    assert table["AVG"].notna().all() and "table1" in out["tables"]


def test_student_sizes_and_grid_students(tmp_path):
    """The code-built student's parameter count (edit.plan.student_plan, the number the size figure
    shows) equals that of the model it builds (tied embeddings once), and with_grid_students adds
    every grid student's runs and size to the report section."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from edit.params import load_params
    from edit.plan import student_plan
    from edit.report import with_grid_students
    from conftest import ROOT

    for h, i, layers, tied in ((16, 32, 2, True), (48, 144, 2, True), (96, 288, 3, True), (16, 32, 2, False)):
        student = {"kind": "tiny_llama", "vocab_size": 120, "hidden_size": h, "intermediate_size": i,
                   "num_layers": layers, "num_heads": 2, "max_length": 64, "tie_embeddings": tied}
        model = LlamaForCausalLM(LlamaConfig(vocab_size=120, hidden_size=h, intermediate_size=i,
                                             num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                                             max_position_embeddings=64, tie_word_embeddings=tied))
        assert student_plan(student)["n_params"] == sum(p.numel() for p in model.parameters())

    p = load_params(ROOT / "params.yaml", profile="default")
    p["report"] = {**p["report"], "student_sizes": {"large": 123}}
    out = with_grid_students(p, tmp_path / "students")
    runs = [f"{m}-{s}" for m in p["grid_student_methods"] for s in p["grid_seeds"]]
    assert out["report"]["other_students"] == {s: {"dir": str(tmp_path / "students" / s), "runs": runs}
                                               for s in p["grid_students"]}
    sizes = out["report"]["student_sizes"]
    assert sizes["large"] == 123  # a given size is kept
    assert sizes["small"] < sizes["default"]
    assert with_grid_students({**p, "grid_students": []}, tmp_path)["report"]["other_students"] == {}
    with pytest.raises(ValueError, match="'default' is also the primary student's name"):
        with_grid_students({**p, "grid_students": ["default"], "student_variants": {"default": {}}}, tmp_path)


def test_other_student_reads_only_its_listed_runs(tmp_path):
    """An other student given as {dir, runs} is read from exactly those run folders: a folder left
    from another configuration (here mt_cot-0) stays out, and a listed run without results is an error."""
    root = _results(tmp_path / "results")
    other = _results(tmp_path / "other")
    _write_run(other, "mt_cot", 0)
    runs = [f"{m}-{s}" for m in ("std_cot", "edit") for s in (0, 1, 2)]
    params = {"profile": "default", "methods": ["std_cot", "edit"], "seeds": [0, 1, 2],
              "eval": {"suites": {"IND": "ind_test", "OOD": "ood_test"}},
              "report": {"n_bootstrap": 100, "other_students": {"bigger": {"dir": str(other), "runs": runs}}}}
    make_report(params, root, tmp_path / "t", tmp_path / "f")
    assert list(pd.read_csv(tmp_path / "t" / "table1_bigger.csv")["method"]) == ["std_cot", "edit"]
    params["report"]["other_students"]["bigger"] = str(other)  # a plain folder: every run in it
    make_report(params, root, tmp_path / "t2", tmp_path / "f2")
    assert "mt_cot" in set(pd.read_csv(tmp_path / "t2" / "table1_bigger.csv")["method"])
    params["report"]["other_students"]["bigger"] = {"dir": str(other), "runs": runs + ["sbs-0"]}
    with pytest.raises(FileNotFoundError, match="sbs-0"):
        make_report(params, root, tmp_path / "t3", tmp_path / "f3")
