"""Evaluation: generate for a suite of questions (:mod:`edit.generation`), score each generation
(:func:`edit.scoring.score`), and aggregate accuracies.

Two outputs per run:

* per-sample records (one dict per question, written as JSONL by :func:`write_results`): prompt
  id, suite, task, prompt, generation, extracted answer, gold, answer type and every diagnostic
  that ``score`` returns; with self-consistency also the voted answer's tally and the samples,
  each with its own diagnostics;
* a long accuracy CSV (:func:`long_accuracy`), columns ``method, student, seed, suite, task, n,
  accuracy`` (percent), with per-task rows and per suite the ``ALL`` (micro) and ``MACRO`` rows
  of :func:`accuracy_frame`.

Self-consistency: ``k`` sampled outputs per question; the vote is over the EXTRACTED answers of
that question's own samples (never over positions of a flattened list); samples without an answer
do not vote; ties go to the answer seen first. The question's record describes the first sample
that gave the voted answer (the first sample when none gave one), so ``correct`` means "the
majority answer is the gold".
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from edit.benchmarks import suites as benchmarks
from edit import tasks as task_world
from edit.formats import student_prompt
from edit.generation import GenConfig, generate_with
from edit.io import read_jsonl, write_jsonl
from edit.scoring import score_full

LONG_COLUMNS = ["method", "student", "seed", "suite", "task", "n", "accuracy"]


def accuracy_frame(records: list[dict]) -> pd.DataFrame:
    """Accuracy from per-sample records (keys suite, task, correct): one row per (suite, task),
    then per suite ``task="ALL"`` (micro: all items pooled) and ``task="MACRO"`` (macro: the
    unweighted mean of the per-task accuracies; its n is the item count and its correct the
    pooled count). Columns suite, task, n, correct, accuracy (percent, 0-100)."""
    cols = ["suite", "task", "n", "correct", "accuracy"]
    if not records:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame([{"suite": r["suite"], "task": r["task"], "correct": bool(r["correct"])} for r in records])
    per = (df.groupby(["suite", "task"], sort=True)["correct"].agg(["size", "sum"])
           .reset_index().rename(columns={"size": "n", "sum": "correct"}))
    per["n"] = per["n"].astype(int)
    per["correct"] = per["correct"].astype(int)
    per["accuracy"] = 100.0 * per["correct"] / per["n"]
    rows = []
    for suite, g in per.groupby("suite", sort=False):
        rows.extend(g.to_dict("records"))
        n, c = int(g["n"].sum()), int(g["correct"].sum())
        rows.append({"suite": suite, "task": "ALL", "n": n, "correct": c, "accuracy": 100.0 * c / n})
        rows.append({"suite": suite, "task": "MACRO", "n": n, "correct": c,
                     "accuracy": float(g["accuracy"].mean())})
    return pd.DataFrame(rows, columns=cols)


def long_accuracy(frame: pd.DataFrame, method: str, student: str, seed: int) -> pd.DataFrame:
    """``frame`` (from :func:`accuracy_frame`, one or more suites concatenated) as the long CSV's
    rows: columns ``method, student, seed, suite, task, n, accuracy`` (percent)."""
    missing = [c for c in ("suite", "task", "n", "accuracy") if c not in frame.columns]
    if missing:
        raise ValueError(f"accuracy frame lacks column(s) {missing}; expected the columns of accuracy_frame")
    out = frame[["suite", "task", "n", "accuracy"]].copy()
    out.insert(0, "seed", int(seed))
    out.insert(0, "student", str(student))
    out.insert(0, "method", str(method))
    out["n"] = out["n"].astype(int)
    out["accuracy"] = out["accuracy"].astype(float)
    return out.reset_index(drop=True)[LONG_COLUMNS]


def majority_vote(answers: Sequence[str | None]) -> tuple[str | None, int]:
    """The most frequent non-None answer and its count; ties go to the answer seen first;
    ``(None, 0)`` when no answer is given."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, 0
    best = max(counts.values())
    for a in answers:
        if a is not None and counts[a] == best:
            return a, best
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- items


def _field(item: Any, name: str, default: Any = ...) -> Any:
    if isinstance(item, Mapping):
        if name in item:
            return item[name]
    elif hasattr(item, name):
        return getattr(item, name)
    if default is ...:
        rid = item.get("id", "?") if isinstance(item, Mapping) else getattr(item, "id", "?")
        raise ValueError(f"evaluation item {rid!r} has no field {name!r}")
    return default


def _golds(item: Any) -> list[str]:
    """The item's gold answer first, then its accepted aliases (``targets``), without repeats."""
    target = _field(item, "target")
    golds = [target]
    for t in _field(item, "targets", None) or ():
        if t not in golds:
            golds.append(t)
    return golds


# ---------------------------------------------------------------- evaluation


def evaluate_suite(model, tokenizer, items: Sequence[Any], suite: str, gen_cfg: GenConfig | Mapping | None = None,
                   answer_type: Callable[[str], str] | None = None,
                   prompt_fn: Callable[[str], str] = student_prompt,
                   show_progress: bool = True,
                   item_prompt: Callable[[Any], str] | None = None) -> tuple[list[dict], pd.DataFrame]:
    """Generate for ``items`` and score them.

    items - objects or mappings with ``id``, ``task``, ``input``, ``target`` and optionally
        ``answer_type`` and ``targets`` (accepted aliases of the gold);
    gen_cfg - a :class:`edit.generation.GenConfig` or a mapping such as the ``eval`` params section
        (``num_samples`` / ``self_consistency.k`` > 1 turns on self-consistency);
    answer_type - ``answer_type(task) -> str``; when None each item's own ``answer_type`` is used;
    prompt_fn - ``prompt_fn(item.input) -> prompt`` (default: the student's training template);
    item_prompt - ``item_prompt(item) -> prompt``; when given it is used instead of ``prompt_fn``
        (for prompts that need more than the input, e.g. few-shot exemplars of the item's task:
        ``item_prompt=lambda q: edit.methods.inference_prompt(method, q, exemplars)``).

    Returns ``(records, frame)``: one record per item, in order, with keys id, suite, task,
    answer_type, prompt, generation, extracted, gold, every key of ``score`` (correct, has_answer,
    ...) and gold_matched; with self-consistency also ``votes`` (the voted answer's count) and
    ``samples`` (k dicts: generation plus every key of ``score``). ``frame`` is
    :func:`accuracy_frame` of the records.
    """
    return evaluate_suites(model, tokenizer, {suite: items}, gen_cfg, answer_type=answer_type, prompt_fn=prompt_fn,
                           show_progress=show_progress, item_prompt=item_prompt)


def evaluate_suites(model, tokenizer, suites: Mapping[str, Sequence[Any]], gen_cfg: GenConfig | Mapping | None = None,
                    answer_type: Callable[[str], str] | None = None,
                    prompt_fn: Callable[[str], str] = student_prompt,
                    show_progress: bool = True,
                    item_prompt: Callable[[Any], str] | None = None) -> tuple[list[dict], pd.DataFrame]:
    """:func:`evaluate_suite` for several suites, ``{suite name: items}``: every prompt of every
    suite is built (and checked) before the first generation, so a suite whose prompts cannot be
    made fails at once, not after the suites before it have been generated.

    Each suite is generated on its own (its own batches, longest prompts first), so a suite's
    generations do not depend on which other suites are evaluated. (One queue for all suites, in
    batches capped by padded tokens, was measured slower on the 2-core CPU: bench/README.md.)

    Returns ``(records, frame)``: the records of the suites in their order (each suite's items in
    order), and the suites' :func:`accuracy_frame` rows, suite after suite.
    """
    cfg = GenConfig.from_params(gen_cfg)
    prepared: dict[str, list[tuple]] = {}
    for suite, items in suites.items():
        prepared[suite] = [_prepare(it, answer_type, prompt_fn, item_prompt) for it in items]
    per_suite = {suite: _generate_checked(model, tokenizer, [p[3] for p in rows], cfg, show_progress)
                 for suite, rows in prepared.items()}
    records, frames = [], []
    for suite, rows in prepared.items():
        recs = [_record(suite, row, gens, cfg.num_samples) for row, gens in zip(rows, per_suite[suite])]
        records += recs
        frames.append(accuracy_frame(recs))
    frame = pd.concat(frames, ignore_index=True) if frames else accuracy_frame([])
    return records, frame


def _prepare(it: Any, answer_type: Callable[[str], str] | None, prompt_fn: Callable[[str], str],
             item_prompt: Callable[[Any], str] | None) -> tuple:
    """(id, task, answer type, prompt, golds, labels) of one item."""
    task = _field(it, "task")
    atype = answer_type(task) if answer_type is not None else _field(it, "answer_type")
    prompt = item_prompt(it) if item_prompt is not None else prompt_fn(_field(it, "input"))
    if not isinstance(prompt, str):
        raise TypeError(f"evaluation item {_field(it, 'id')!r}: the prompt function returned "
                        f"{type(prompt).__name__}, not str")
    return (str(_field(it, "id")), task, atype, prompt, _golds(it), tuple(_field(it, "labels", None) or ()))


def _generate_checked(model, tokenizer, prompts: list[str], cfg: GenConfig, show_progress: bool) -> list:
    outputs = generate_with(model, tokenizer, prompts, cfg, show_progress=show_progress)
    if len(outputs) != len(prompts):
        raise RuntimeError(f"generation returned {len(outputs)} outputs for {len(prompts)} prompts")
    return outputs


def _record(suite: str, row: tuple, gens: Sequence[str], num_samples: int) -> dict:
    """One item's record: the chosen generation (the first with the voted answer under
    self-consistency), its score, and with several samples the vote and every sample."""
    rid, task, atype, prompt, golds, labels = row
    scored = [score_full(g, golds, atype, labels) for g in gens]
    rec = {"id": rid, "suite": suite, "task": task, "answer_type": atype, "prompt": prompt}
    if num_samples == 1:
        pick = 0
    else:
        voted, count = majority_vote([s["extracted"] for s in scored])
        pick = next((j for j, s in enumerate(scored) if voted is not None and s["extracted"] == voted), 0)
    rec["generation"] = gens[pick]
    rec["extracted"] = scored[pick]["extracted"]
    rec["gold"] = golds[0]
    rec.update({k: v for k, v in scored[pick].items() if k not in rec})
    if num_samples > 1:
        rec["votes"] = count
        rec["samples"] = [{"generation": g, **s} for g, s in zip(gens, scored)]
    return rec


def load_suite(spec: str | Mapping, data_dir: str | Path = "data", name: str = "<suite>") -> list[dict]:
    """The items of one evaluation suite (an entry of ``eval.suites`` in params.yaml), as dicts with
    id, task, input, target, answer_type and, for benchmarks, targets (aliases) and labels.

    spec - a string names a split of the embedded task world, ``<data_dir>/questions/<spec>.jsonl``
        (answer types from :func:`edit.tasks.answer_type`); a mapping selects items of a real
        benchmark written by the benchmarks stage to ``<data_dir>/benchmarks``
        (:func:`edit.benchmarks.suites.select_suite`: benchmark, part, tasks, max_per_task).
    """
    data_dir = Path(data_dir)
    if isinstance(spec, str):
        path = data_dir / "questions" / f"{spec}.jsonl"
        return [{**r, "answer_type": task_world.answer_type(r["task"])}
                for r in read_jsonl(path, required=("id", "task", "input", "target"))]
    bench_dir = data_dir / "benchmarks"
    items = benchmarks.select_suite(spec, lambda part: benchmarks.read_bbh_part(bench_dir, part),
                                    lambda suite: benchmarks.read_suite(bench_dir / f"{suite}.jsonl"), name)
    return [it.to_dict() for it in items]


def write_results(out_dir: str | Path, records: list[dict], long_frame: pd.DataFrame,
                  samples_name: str = "samples.jsonl", accuracy_name: str = "accuracy.csv") -> dict[str, Path]:
    """Write the per-sample records (JSONL, atomically) and the long accuracy frame (CSV, 4
    decimals) under ``out_dir``; returns their paths."""
    missing = [c for c in LONG_COLUMNS if c not in long_frame.columns]
    if missing:
        raise ValueError(f"long accuracy frame lacks column(s) {missing}; build it with long_accuracy()")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples, acc = out / samples_name, out / accuracy_name
    write_jsonl(samples, records)
    tmp = acc.with_name(acc.name + ".tmp")
    long_frame.to_csv(tmp, index=False, float_format="%.4f")
    tmp.replace(acc)
    return {"samples": samples, "accuracy": acc}
