"""Evaluation: generate for a suite of questions, score each generation (:mod:`edit.scoring`) and
aggregate accuracies."""
from __future__ import annotations

from typing import Callable

import pandas as pd

from edit.formats import student_prompt
from edit.generation import generate
from edit.records import Question
from edit.scoring import score


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


def evaluate_questions(model, tokenizer, questions: list[Question], answer_type_of: Callable[[str], str],
                       suite: str, max_new_tokens: int, batch_size: int) -> tuple[list[dict], pd.DataFrame]:
    """Generate greedily for ``questions`` (prompt: ``student_prompt(q.input)``) and score them.

    ``answer_type_of(task)`` gives the answer type of a task (see ``ANSWER_TYPES``).

    Returns ``(records, acc)``:
    records - one dict per question, in order: id, suite, task, gold, generation, extracted,
        correct, has_answer, contains_gold, complete;
    acc - columns suite, task, n, correct, accuracy (percent 0-100): one row per (suite, task),
        plus per suite ``task="ALL"`` = the MICRO average (all items pooled, so large tasks weigh
        more) and ``task="MACRO"`` = the MACRO average (mean of the per-task accuracies; the
        paper's BBH numbers are per-task averages, so tables should use MACRO and say so).
    """
    prompts = [student_prompt(q.input) for q in questions]
    gens = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    records = []
    for q, g in zip(questions, gens):
        s = score(g, q.target, answer_type_of(q.task))
        records.append({"id": q.id, "suite": suite, "task": q.task, "gold": q.target, "generation": g,
                        "extracted": s["extracted"], "correct": s["correct"], "has_answer": s["has_answer"],
                        "contains_gold": s["contains_gold"], "complete": s["complete"]})
    return records, accuracy_frame(records)
