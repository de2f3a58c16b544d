"""Predicted wall time of a profile's run, from measured throughput (``plan.throughput`` in the
params; the figures of bench/smollm2_speed.py), for :mod:`edit.plan`.

``plan.throughput`` maps a student name (the report's primary student: ``report.student``, else
the profile) to rates per precision, ``float32`` and ``bfloat16`` (training rates at ``runtime.autocast``, evaluation rates at
``runtime.eval_autocast``, each else ``student.dtype``)::

    plan:
      throughput:
        SmolLM2-135M:
          bfloat16: {train_tokens_per_s: 237, prefill_tokens_per_s: 1500, new_tokens_per_s: 90}

* **train** stage, per (method, seed): the tokens of its steps (:func:`edit.plan_costs.training_plan`'s
  ``train_tokens``) over ``train_tokens_per_s``, less the leading steps it takes from a method of
  ``plan.reuse_from`` (the same format and step definitions: the pipeline's ``reuse_from``, which
  copies them instead of training them again);
* **evaluate** stage, per (method, seed): per item the prompt (``plan.eval_prompt_tokens``, plus
  ``shots`` x the estimated row length for few-shot formats) at ``prefill_tokens_per_s`` and the new
  tokens at ``new_tokens_per_s``: ``eval.max_new_tokens_direct`` for a method that answers
  directly, else ``eval.max_new_tokens`` x ``plan.generation_fill`` (1.0, the default, is the worst
  case: a batch decodes until its longest row stops, so one rambling row makes the whole batch run
  the full budget);
* every stage adds ``plan.stage_overhead_s`` (default 0): starting the notebook, loading the model;
* untuned methods (no training) are evaluated for the ``untuned_seeds`` (default: every seed),
  trained ones for every seed.

Stages over ``plan.max_stage_hours`` (default 1) are flagged: a DVC stage should fit a working session.
"""
from __future__ import annotations

from edit.methods import answers_directly, get_method

DTYPES = ("float32", "bfloat16")
RATE_KEYS = ("train_tokens_per_s", "prefill_tokens_per_s", "new_tokens_per_s")


def precision(params: dict, key: str = "autocast") -> str:
    """The precision of training (``key`` autocast) or evaluation (``eval_autocast``):
    ``runtime.<key>``, else ``student.dtype`` (float32)."""
    autocast = (params.get("runtime") or {}).get(key)
    return autocast or (params.get("student") or {}).get("dtype", "float32")


def student_name(params: dict) -> str:
    return (params.get("report") or {}).get("student") or str(params.get("profile"))


def rates_for(params: dict) -> dict | None:
    """The measured rates of this run's student and precision, or None when ``plan.throughput``
    has none (an error when the student is listed but not at this precision)."""
    table = (params.get("plan") or {}).get("throughput") or {}
    name = student_name(params)
    if name not in table:
        return None
    out = {}
    for key, wanted in (("autocast", RATE_KEYS[:1]), ("eval_autocast", RATE_KEYS[1:])):
        dtype = precision(params, key)
        if dtype not in table[name]:
            raise ValueError(f"plan.throughput.{name} has no {dtype} rates (has {sorted(table[name])})")
        out.update({k: float(table[name][dtype][k]) for k in wanted})
    return out


def reused_steps(params: dict, method: str, reuse_from: list[str]) -> int:
    """How many leading steps ``method`` copies from one of ``reuse_from`` (same format, same step
    definitions including their ``hp``; the most shared wins); 0 for a method of that list."""
    if method in reuse_from:
        return 0
    mine = get_method(params, method)
    best = 0
    for other_name in reuse_from:
        other = get_method(params, other_name)
        if other.format != mine.format:
            continue
        k = 0
        for a, b in zip(mine.steps, other.steps):
            if a != b:
                break
            k += 1
        best = max(best, k)
    return best


def predict_times(params: dict, plan: dict) -> dict | None:
    """Predicted seconds per stage (train / evaluate per method and seed) and hours per stage kind
    and in total, for the plan ``plan`` of :func:`edit.plan.build_plan`; None without rates."""
    rates = rates_for(params)
    if rates is None:
        return None
    assume = plan["assumptions"]
    reuse = list(assume.get("reuse_from") or [])
    seeds = list(plan["seeds"])
    untuned_seeds = list(params.get("untuned_seeds") or seeds)
    fill = float(assume.get("generation_fill", 1.0))
    overhead = float(assume.get("stage_overhead_s", 0.0))
    ev = params.get("eval") or {}
    items = sum(plan["evaluation"]["suites"].values()) * int(plan["evaluation"]["samples_per_item"])
    row = float(plan.get("row_tokens") or 0.0)
    stages = []
    for name in plan["methods"]:
        method = get_method(params, name)
        n_seeds = len(untuned_seeds) if not method.steps else len(seeds)
        skip = reused_steps(params, name, reuse)
        tokens = sum(r["train_tokens"] for r in plan["training"] if r["method"] == name and r["step"] > skip)
        if method.steps:
            stages.append({"kind": "train", "method": name, "runs": n_seeds, "reused_steps": skip,
                           "train_tokens": tokens, "seconds": overhead + tokens / rates["train_tokens_per_s"]})
        new = (min(int(ev.get("max_new_tokens_direct", 32)), int(ev.get("max_new_tokens", 400)))
               if answers_directly(method) else int(ev.get("max_new_tokens", 400)) * fill)
        prompt = float(assume.get("eval_prompt_tokens", 200)) + method.shots * row
        seconds = overhead + items * (prompt / rates["prefill_tokens_per_s"] + new / rates["new_tokens_per_s"])
        stages.append({"kind": "evaluate", "method": name, "runs": n_seeds, "items": items,
                       "prompt_tokens": round(prompt), "new_tokens": round(new), "seconds": seconds})
    limit = float(assume.get("max_stage_hours", 1.0))
    kinds: dict[str, float] = {}
    for s in stages:
        s["hours"] = s["seconds"] / 3600
        s["over_limit"] = s["hours"] > limit
        kinds[s["kind"]] = kinds.get(s["kind"], 0.0) + s["hours"] * s["runs"]
    return {"student": student_name(params), "precision": f"training {precision(params)}, evaluation "
                                                          f"{precision(params, 'eval_autocast')}", "rates": rates,
            "stages": stages, "hours_by_kind": kinds, "total_hours": sum(kinds.values()),
            "max_stage_hours": limit, "generation_fill": fill, "stage_overhead_s": overhead, "reuse_from": reuse, "untuned_seeds": untuned_seeds}


def format_times(t: dict | None) -> list[str]:
    """The prediction as text lines (none without rates)."""
    if t is None:
        return []
    r = t["rates"]
    out = ["", f"Predicted wall time ({t['student']}, {t['precision']}: {r['train_tokens_per_s']:g} training tokens/s, "
               f"{r['prefill_tokens_per_s']:g} prefill tokens/s, {r['new_tokens_per_s']:g} new tokens/s; generation "
               f"fill {t['generation_fill']}; {t['stage_overhead_s']:g} s per stage to start; reuse from {t['reuse_from'] or 'none'}; untuned seeds {t['untuned_seeds']}):"]
    if not t["stages"]:
        return out + ["  no runs: the params name no methods and seeds (a resolved profile file has none; "
                      "pass params.yaml with --profile)"]
    w = max(len(s["method"]) for s in t["stages"])
    for s in t["stages"]:
        detail = (f"{s['train_tokens']:,} tokens, {s['reused_steps']} step(s) reused" if s["kind"] == "train" else
                  f"{s['items']:,} items x ({s['prompt_tokens']} prompt + {s['new_tokens']} new tokens)")
        flag = f"  OVER {t['max_stage_hours']:g} h" if s["over_limit"] else ""
        out.append(f"  {s['kind']:<8} {s['method']:<{w}}  {s['hours']:6.2f} h per run x {s['runs']}  ({detail}){flag}")
    out.append("  by stage kind: " + ", ".join(f"{k} {h:.2f} h" for k, h in t["hours_by_kind"].items())
               + f"; total {t['total_hours']:.2f} h")
    return out
