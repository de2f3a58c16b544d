"""Significance of a difference between two methods, the report's one code path for it.

* over seeds: a paired t-test on the per-seed scores (``paired_t_test``; the t distribution's tail
  from the regularised incomplete beta function, or scipy when installed);
* over test items: a paired bootstrap that redraws the items of every task and applies the same
  draw to both methods and every seed (``bootstrap_compare``);
* ``compare_methods`` runs both for one (reference, method) pair, per suite and AVG; ``significant``
  is the threshold test every table mark and verdict uses; ``noise_verdict`` / ``noise_summary`` /
  ``noise_sentences`` say whether a difference stands out of the seed-to-seed noise.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from edit.report.scores import check_columns, per_seed_scores


def significant(p: float, level: float) -> bool:
    """A two-sided test's p-value below the significance level (NaN: no test, never significant)."""
    return p < level


def format_p(p: float) -> str:
    """A p-value cell: "-" (no test), "< 0.001" or three decimals."""
    if math.isnan(p):
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p_eq(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


# ---------------------------------------------------------------- over seeds: the t distribution


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


# ---------------------------------------------------------------- over items: paired bootstrap


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
    (so it pairs items and keeps each task's size). The tasks of a suite that have one item each
    (e.g. one item per unseen task) are pooled into one stratum and resampled together, keeping
    their weight in the suite score: resampled alone they would never vary, and a suite of such
    tasks would get p = 1 / (B + 1) for any difference. For each resample the suite score (macro:
    mean over tasks; micro: pooled), the AVG (mean over ``suites``) and then the mean over seeds are
    computed; the statistic is method minus ref, in points.

    Returns ``{column: {"diff", "ci_low", "ci_high", "p_value", "n_items"}}`` for every suite and
    ``"AVG"``, plus ``"n_seeds"`` and ``"seeds"``: the observed difference, a 95% percentile
    interval and a two-sided p-value (1 + #{|d* - d| >= |d|}) / (B + 1) (the bootstrap
    distribution shifted to the null). Seeded: deterministic. ValueError when there are no common
    seeds or a suite has no items."""
    if average not in ("macro", "micro"):
        raise ValueError("average must be 'macro' or 'micro'")
    check_columns(items, ["method", "seed", "suite", "task", "id", "correct"], "bootstrap_compare items")
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
        cubes = [_item_cube(items, [ref, method], seeds, suite, task) for task in tasks]  # each (2, S, n)
        # strata: every task of 2+ items, then the one-item tasks pooled (resampling one item within
        # its own task would give it no variance at all); weight = the stratum's share of the suite
        # score: its tasks / all tasks (macro) or its items / all items (micro)
        singles = [c for c in cubes if c.shape[-1] == 1]
        strata = [(c, 1) for c in cubes if c.shape[-1] > 1]
        if singles:
            strata.append((np.concatenate(singles, axis=-1), len(singles)))
        n_total = sum(c.shape[-1] for c in cubes)
        stratum_obs, stratum_boot, w = [], [], []
        for cube, n_tasks in strata:
            n = cube.shape[-1]
            w.append(n / n_total if average == "micro" else n_tasks / len(cubes))
            stratum_obs.append(cube.mean(axis=-1))  # (2, S)
            chunk = max(1, 4_000_000 // max(1, cube[..., :1].size * n))
            parts = []
            for start in range(0, n_resamples, chunk):
                idx = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
                parts.append(cube[:, :, idx].mean(axis=-1))  # (2, S, k)
            stratum_boot.append(np.concatenate(parts, axis=-1))
        w = np.asarray(w, dtype=float)
        obs[suite] = 100 * np.tensordot(w, np.stack(stratum_obs), axes=1)    # (2, S)
        boot[suite] = 100 * np.tensordot(w, np.stack(stratum_boot), axes=1)  # (2, S, B)
        n_items[suite] = int(n_total)
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
                    items: pd.DataFrame | None = None, n_resamples: int = 10_000, seed: int = 0,
                    cache: dict | None = None) -> dict:
    """``method`` against ``ref``, per suite and AVG: seed means and stds, the difference, the
    pooled seed std, a paired t-test over the seeds both have (per-seed differences) and, when
    ``items`` (per-item correctness) covers both methods on all those seeds, the paired bootstrap
    over items (the same runs as the t-test; otherwise no bootstrap, with a note).

    Returns ``{column: {"mean_ref", "mean", "std_ref", "std", "diff", "pooled_std", "n_seeds",
    "t", "df", "p_seeds", "diff_items", "ci_low", "ci_high", "p_items", "n_items"}}`` (NaN
    where a test cannot be run) plus ``"notes"`` (why a test was not run).

    ``cache``: a dict shared between calls on the same data (one student's), so that a comparison
    asked for by several tables and the noise summary is computed once."""
    key = (ref, method, tuple(suites), average, n_resamples, seed)
    if cache is not None and key in cache:
        return cache[key]
    out = _compare(acc, ref, method, suites, average, items, n_resamples, seed)
    if cache is not None:
        cache[key] = out
    return out


def _compare(acc, ref, method, suites, average, items, n_resamples, seed) -> dict:
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


def noise_verdict(r: dict, significance_level: float = 0.05, factor: float = 2.0) -> str:
    """The verdict on one comparison (an entry of ``compare_methods``):

    - ``"beyond noise"``: |diff| >= ``factor`` x the pooled seed std, and every available test
      (t over seeds, bootstrap over items) has p < ``significance_level``;
    - ``"suggestive"``: |diff| >= ``factor`` x the pooled std and some, not all, tests are significant
      (typically: the items bootstrap is, the t-test over 3 seeds is not);
    - ``"within noise"``: otherwise (a NaN std, i.e. one seed, never clears the size bar)."""
    ps = [p for p in (r["p_seeds"], r["p_items"]) if not math.isnan(p)]
    big = not math.isnan(r["pooled_std"]) and abs(r["diff"]) >= factor * r["pooled_std"]
    sig = [significant(p, significance_level) for p in ps]
    if big and sig and all(sig):
        return "beyond noise"
    if big and any(sig):
        return "suggestive"
    return "within noise"


def noise_summary(acc: pd.DataFrame, comparisons: Sequence[tuple[str, str]], suites: Sequence[str],
                  average: str = "macro", items: pd.DataFrame | None = None, significance_level: float = 0.05,
                  factor: float = 2.0, n_resamples: int = 10_000, seed: int = 0,
                  cache: dict | None = None) -> pd.DataFrame:
    """Which differences are within noise: one row per (reference, method) pair and column
    (suites and AVG) with the means, diff, pooled seed std, diff / pooled std, both tests' p,
    ``verdict`` (see ``noise_verdict``) and ``within_noise`` (verdict == "within noise"). Pairs with
    a method missing from ``acc`` are left out. ``cache``: as for ``compare_methods``."""
    have = set(acc["method"])
    rows = []
    for ref, method in comparisons:
        if ref not in have or method not in have or ref == method:
            continue
        res = compare_methods(acc, ref, method, suites, average, items, n_resamples, seed, cache=cache)
        for c in [*suites, "AVG"]:
            r = res[c]
            rows.append({"reference": ref, "method": method, "column": c, "mean_ref": r["mean_ref"], "mean": r["mean"],
                         "diff": r["diff"], "pooled_std": r["pooled_std"],
                         "diff_over_std": r["diff"] / r["pooled_std"] if r["pooled_std"] else math.nan,
                         "n_seeds": r["n_seeds"], "p_seeds": r["p_seeds"], "n_items": r["n_items"],
                         "p_items": r["p_items"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                         "verdict": noise_verdict(r, significance_level, factor)})
            rows[-1]["within_noise"] = rows[-1]["verdict"] == "within noise"
    cols = ["reference", "method", "column", "mean_ref", "mean", "diff", "pooled_std", "diff_over_std", "n_seeds",
            "p_seeds", "n_items", "p_items", "ci_low", "ci_high", "verdict", "within_noise"]
    return pd.DataFrame(rows, columns=cols)


def noise_sentences(summary: pd.DataFrame, labels: dict[str, str] | None = None, factor: float = 2.0,
                    significance_level: float = 0.05) -> list[str]:
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
        level = f"p < {significance_level:g}"
        verdict = {"within noise": f"within noise (|diff| < {factor:g} x pooled std, or no test at {level})",
                   "suggestive": f"suggestive, not established (|diff| >= {factor:g} x pooled std, but not every "
                                 f"test at {level})",
                   "beyond noise": f"beyond noise (|diff| >= {factor:g} x pooled std and every test at {level})",
                   }[r.verdict]
        out.append(f"{r.column}: {labels.get(r.method, r.method)} - {labels.get(r.reference, r.reference)} = "
                   f"{r.diff:+.1f} points ({r.mean:.1f} vs {r.mean_ref:.1f}){ratio}; {'; '.join(tests)}: {verdict}.")
    return out
