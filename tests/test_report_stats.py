"""Significance: the t distribution, the paired t-test over seeds, the paired bootstrap over items,
compare_methods (and its cache) and the noise verdicts."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edit.report.runs import load_accuracy
from edit.report.spec import DEFAULT_LABELS
from edit.report.stats import (betainc, bootstrap_compare, compare_methods, format_p, noise_sentences, noise_summary,
                               noise_verdict, paired_t_test, significant, t_two_sided_p)
from report_data import TASKS, hand_scores, items_frame, results


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


def test_bootstrap_compare_observed_diff_determinism_and_p():
    items = items_frame()
    r1 = bootstrap_compare(items, "std_cot", "edit", ["IND", "OOD"], n_resamples=2000, seed=3)
    r2 = bootstrap_compare(items, "std_cot", "edit", ["IND", "OOD"], n_resamples=2000, seed=3)
    r3 = bootstrap_compare(items, "std_cot", "edit", ["IND", "OOD"], n_resamples=2000, seed=4)
    assert r1 == r2
    assert (r1["AVG"]["ci_low"], r1["AVG"]["ci_high"]) != (r3["AVG"]["ci_low"], r3["AVG"]["ci_high"])
    for col in ("IND", "OOD", "AVG"):
        hand = np.mean([hand_scores("edit", s)[col] - hand_scores("std_cot", s)[col] for s in (0, 1, 2)])
        assert r1[col]["diff"] == pytest.approx(hand)
        assert r1[col]["ci_low"] < r1[col]["diff"] < r1[col]["ci_high"]
    assert r1["AVG"]["n_items"] == 2 * sum(TASKS.values()) and r1["n_seeds"] == 3
    assert r1["AVG"]["p_value"] < 0.01  # 0.8 against 0.5 on 60 items x 3 seeds
    same = bootstrap_compare(items, "std_cot", "std_cot", ["IND"], n_resamples=300)
    assert same["IND"]["diff"] == 0 and same["IND"]["p_value"] == pytest.approx(1.0)
    micro = bootstrap_compare(items, "std_cot", "edit", ["IND", "OOD"], average="micro", n_resamples=100)
    hand = np.mean([hand_scores("edit", s, "micro")["AVG"] - hand_scores("std_cot", s, "micro")["AVG"]
                    for s in (0, 1, 2)])
    assert micro["AVG"]["diff"] == pytest.approx(hand)
    broken = items[~((items.method == "edit") & (items.seed == 1) & (items.id == "t1/IND/004"))]
    with pytest.raises(ValueError, match="edit-1"):
        bootstrap_compare(broken, "std_cot", "edit", ["IND"], n_resamples=10)
    with pytest.raises(ValueError, match="no seed"):
        bootstrap_compare(items[items.method == "edit"].assign(method="x"), "std_cot", "x", ["IND"])


def test_bootstrap_pools_one_item_tasks():
    """A suite of six one-item tasks (one item per unseen task): EDIT right on t0 only, Std-CoT on
    none, so the difference is 100/6 points. Resampled within each task it would never vary (p =
    1/(B+1)); pooled, the resample redraws the six items, and |d* - d| >= d exactly when item t0 is
    drawn 0 or 2+ times: p = 1 - 6 (1/6) (5/6)^5 = 0.598."""
    import pandas as pd
    rows = [{"method": m, "seed": 0, "suite": "OOD", "task": f"t{i}", "id": f"t{i}/0",
             "correct": bool(m == "edit" and i == 0)} for m in ("std_cot", "edit") for i in range(6)]
    items = pd.DataFrame(rows)
    r = bootstrap_compare(items, "std_cot", "edit", ["OOD"], n_resamples=4000, seed=0)
    assert r["OOD"]["diff"] == pytest.approx(100 / 6) and r["OOD"]["n_items"] == 6
    assert r["OOD"]["p_value"] == pytest.approx(1 - (5 / 6) ** 5, abs=0.03)
    assert r["OOD"]["ci_low"] == 0.0 and r["OOD"]["ci_high"] >= 100 / 3
    # beside a task of 4 items the pooled one-item tasks keep their macro weight: 6 of 7 tasks
    big = [{"method": m, "seed": 0, "suite": "OOD", "task": "big", "id": f"big/{j}", "correct": j < 2}
           for m in ("std_cot", "edit") for j in range(4)]
    mixed = bootstrap_compare(pd.concat([items, pd.DataFrame(big)]), "std_cot", "edit", ["OOD"], n_resamples=500)
    assert mixed["OOD"]["diff"] == pytest.approx(100 / 7) and mixed["OOD"]["n_items"] == 10
    assert mixed["OOD"]["p_value"] > 0.3


def test_noise_verdicts_summary_and_sentences(tmp_path):
    base = {"diff": 5.0, "pooled_std": 2.0, "p_seeds": 0.01, "p_items": 0.001}
    assert noise_verdict(base) == "beyond noise"
    assert noise_verdict({**base, "p_seeds": 0.2}) == "suggestive"
    assert noise_verdict({**base, "diff": 3.9}) == "within noise"  # < 2 x pooled std
    assert noise_verdict({**base, "p_seeds": 0.2, "p_items": 0.3}) == "within noise"
    assert noise_verdict({**base, "pooled_std": math.nan}) == "within noise"
    assert noise_verdict({**base, "p_items": math.nan}) == "beyond noise"  # only the t-test ran
    acc = load_accuracy(results(tmp_path / "r"))
    s = noise_summary(acc, [("std_cot", "edit"), ("std_cot", "mt_cot")], ["IND", "OOD"], items=items_frame(),
                      n_resamples=300)
    assert list(s["column"]) == ["IND", "OOD", "AVG"] and set(s["method"]) == {"edit"}  # mt_cot: no results
    avg = s.set_index("column").loc["AVG"]
    assert avg["diff_over_std"] == pytest.approx(avg["diff"] / avg["pooled_std"])
    assert avg["within_noise"] == (avg["verdict"] == "within noise")
    c = compare_methods(acc, "std_cot", "edit", ["IND", "OOD"], items=items_frame(), n_resamples=300)
    assert avg["p_seeds"] == pytest.approx(c["AVG"]["p_seeds"]) and avg["p_items"] == pytest.approx(c["AVG"]["p_items"])
    lines = noise_sentences(s, DEFAULT_LABELS)
    assert len(lines) == 3 and lines[2].startswith("AVG: EDIT") and "paired t-test over 3 seeds" in lines[2]
    assert "bootstrap over 60 items" in lines[2] and avg["verdict"] in lines[2]


def test_one_threshold_for_marks_and_verdicts():
    """A p-value exactly at the level is not significant, NaN (no test) never is; the verdicts use
    the same rule at any level."""
    assert significant(0.049, 0.05) and not significant(0.05, 0.05) and not significant(math.nan, 0.05)
    r = {"diff": 5.0, "pooled_std": 2.0, "p_seeds": 0.03, "p_items": 0.001}
    assert noise_verdict(r, significance_level=0.05) == "beyond noise"
    assert noise_verdict(r, significance_level=0.03) == "suggestive"  # p_seeds = level: not significant
    assert noise_verdict(r, significance_level=0.001) == "within noise"
    assert [format_p(p) for p in (math.nan, 0.0004, 0.0456)] == ["-", "< 0.001", "0.046"]


def test_compare_methods_cache_computes_once(tmp_path):
    acc = load_accuracy(results(tmp_path / "r"))
    cache: dict = {}
    first = compare_methods(acc, "std_cot", "edit", ["IND", "OOD"], items=items_frame(), n_resamples=100, cache=cache)
    assert len(cache) == 1
    again = compare_methods(acc.iloc[:0], "std_cot", "edit", ["IND", "OOD"], n_resamples=100, cache=cache)
    assert again is first  # served from the cache: the (empty) frame is not read again
    plain = compare_methods(acc, "std_cot", "edit", ["IND", "OOD"], items=items_frame(), n_resamples=100)
    assert plain["AVG"] == first["AVG"]
