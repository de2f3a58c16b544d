"""Synthetic results for the report tests: a long accuracy frame by hand, and run folders
(``<method>-<seed>/accuracy.csv`` + ``samples.jsonl``) of deterministic per-item records, with the
suite scores computed by hand from those records."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from conftest import ROOT
from edit.evaluate import accuracy_frame
from edit.params import load_params

#: The EDIT paper's result rows (the shared mirror beside the checkout, as in CI).
PAPER_CSV = ROOT.parent / "shared" / "paper" / "edit_acl2025_results.csv"


def repo_methods() -> dict:
    """``method_defs`` and ``train`` of the repository's params.yaml (where table 4's KRSL weights
    come from)."""
    p = load_params(ROOT / "params.yaml", profile="default")
    return {"method_defs": p["method_defs"], "train": p["train"]}


def hand_acc() -> pd.DataFrame:
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


#: Hit rate per method of the synthetic runs (per seed a small shift), tasks of unequal size.
_P = {"std_cot": 0.5, "edit": 0.8, "edit_a0_b0": 0.55, "edit_a1_b0": 0.6}
TASKS = {"t1": 20, "t2": 10}


def records(method: str, seed: int, p: float | None = None) -> list[dict]:
    """Per-item records (id, suite, task, correct) of one synthetic run: deterministic."""
    rng = np.random.default_rng([sorted(_P).index(method) if method in _P else 99, seed])
    p = _P.get(method, 0.5) if p is None else p
    recs = []
    for suite in ("IND", "OOD"):
        for task, n in TASKS.items():
            hit = rng.random(n) < (p if suite == "IND" else p - 0.1) + 0.05 * (seed - 1)
            recs += [{"id": f"{task}/{suite}/{i:03d}", "suite": suite, "task": task, "correct": bool(h)}
                     for i, h in enumerate(hit)]
    return recs


def write_run(root: Path, method: str, seed: int, with_keys: bool = True, samples: bool = True) -> list[dict]:
    recs = records(method, seed)
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


def results(root: Path, methods=("std_cot", "edit"), seeds=(0, 1, 2)) -> Path:
    for k, m in enumerate(methods):
        for s in seeds:
            write_run(root, m, s, with_keys=(k + s) % 2 == 0)
    return root


def hand_scores(method: str, seed: int, average: str = "macro") -> dict:
    """Suite scores and AVG of a synthetic run, computed by hand from its records."""
    recs = records(method, seed)
    out = {}
    for suite in ("IND", "OOD"):
        per = {t: [r["correct"] for r in recs if r["suite"] == suite and r["task"] == t] for t in TASKS}
        if average == "macro":
            out[suite] = 100 * np.mean([np.mean(v) for v in per.values()])
        else:
            out[suite] = 100 * np.mean(sum(per.values(), []))
    out["AVG"] = (out["IND"] + out["OOD"]) / 2
    return out


def items_frame(methods=("std_cot", "edit"), seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = [{"method": m, "seed": s, **r} for m in methods for s in seeds for r in records(m, s)]
    return pd.DataFrame(rows)
