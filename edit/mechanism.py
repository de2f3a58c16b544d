"""The mechanism measure of KRSL: on held-out dual pairs, the student's mean log-probability margin
on key tokens, per task.

For one pair, with the pair's prompt and teacher forcing, the margin is

    mean over the chosen CoT's key tokens of log p(token)  -  mean over the rejected CoT's key tokens of log p(token)

(key tokens: the minimum-edit-distance marks of :mod:`edit.keysteps`, the tokens KRSL weights). KRSL
raises the likelihood of the chosen key tokens and lowers that of the rejected ones, so if it works
as the paper claims the margin grows from the model after step 1 to the model after KRSL. A pair
with no key token on one side has no margin and is left out (counted).

* :func:`key_margin` - the pure arithmetic on given per-token log-probabilities and key masks;
* :func:`pair_margins` - the student's margins on marked pairs (one record per pair);
* :func:`margins_by_task` - mean, std and count per task (and ALL);
* :func:`margin_figure` - after step 1 against after KRSL, per task.

The stage that needs it (not in the default pipeline): inputs the models of ``edit`` after step 1
and after step 2 (``models/edit-<seed>/step1``, ``step2``), held-out dual pairs with their marks
(dual pairs of validation questions, marked with the student's tokenizer); output a per-pair JSONL,
the per-task table and the figure.
"""
from __future__ import annotations

import math

import pandas as pd
import torch
from matplotlib.figure import Figure

from edit.runtime import autocast_context
from edit.training.rows import IGNORE, krsl_dataset


def key_margin(chosen_logprobs, chosen_key, rejected_logprobs, rejected_key) -> dict:
    """The key-token log-probability margin of one pair from its per-token log-probabilities and
    key masks (sequences of equal lengths per side). ``margin`` is None when a side has no key token."""
    c = [float(lp) for lp, k in zip(chosen_logprobs, chosen_key, strict=True) if k]
    r = [float(lp) for lp, k in zip(rejected_logprobs, rejected_key, strict=True) if k]
    c_mean = sum(c) / len(c) if c else None
    r_mean = sum(r) / len(r) if r else None
    margin = c_mean - r_mean if c and r else None
    return {"chosen_key_logprob": c_mean, "rejected_key_logprob": r_mean, "margin": margin,
            "n_chosen_key": len(c), "n_rejected_key": len(r)}


@torch.no_grad()
def token_logprobs(model, row: dict) -> tuple[list[float], list[bool]]:
    """Per response token (labels != -100) of one training row: log p(label | prefix) under
    ``model``, and whether the token is a key token (non-zero KRSL weight)."""
    ids = torch.tensor([row["input_ids"]], device=model.device)
    logits = model(input_ids=ids).logits[0, :-1].float()
    labels = torch.tensor(row["labels"][1:], device=model.device)
    keep = labels != IGNORE
    logp = torch.log_softmax(logits[keep], dim=-1).gather(1, labels[keep].unsqueeze(1)).squeeze(1)
    weights = [w for w, lab in zip(row["weights"][1:], row["labels"][1:]) if lab != IGNORE]
    return logp.tolist(), [w != 0 for w in weights]


def pair_margins(model, tokenizer, marked: list[dict], pairs_by_id: dict, max_length: int, fmt: str = "cot",
                 autocast: str | None = None) -> list[dict]:
    """The margin of every marked pair (:func:`key_margin`), one record per pair with its id, task
    and pair type, in the order of ``marked``; pairs over ``max_length`` tokens are skipped (as in
    training). The rows are KRSL's own (:func:`edit.training.rows.krsl_dataset`, prompts of format
    ``fmt``), so the key tokens are exactly those KRSL weights."""
    model.eval()
    out = []
    for m in marked:
        rows, _ = krsl_dataset([m], pairs_by_id, tokenizer, max_length, 1.0, 1.0, fmt)
        if not rows:
            continue
        with autocast_context(autocast, model.device.type):
            c_lp, c_key = token_logprobs(model, rows[0]["chosen"])
            r_lp, r_key = token_logprobs(model, rows[0]["rejected"])
        out.append({"id": m["id"], "task": m["task"], "pair_type": m["pair_type"],
                    **key_margin(c_lp, c_key, r_lp, r_key)})
    return out


def margins_by_task(records: list[dict]) -> pd.DataFrame:
    """Per task (and ``ALL``): pairs with a margin, their mean and std (sample, ddof 1) margin, and
    the pairs left out for lack of key tokens on one side."""
    rows = []
    frame = pd.DataFrame(records, columns=["task", "margin"])
    groups = [(t, g) for t, g in frame.groupby("task", sort=True)] + [("ALL", frame)]
    for task, g in groups:
        vals = g["margin"].dropna().astype(float)
        rows.append({"task": task, "n": int(len(vals)), "mean_margin": float(vals.mean()) if len(vals) else math.nan,
                     "std_margin": float(vals.std(ddof=1)) if len(vals) > 1 else math.nan,
                     "no_margin": int(g["margin"].isna().sum())})
    return pd.DataFrame(rows, columns=["task", "n", "mean_margin", "std_margin", "no_margin"])


def margin_figure(before: pd.DataFrame, after: pd.DataFrame, labels=("after step 1", "after KRSL")) -> Figure:
    """Bars of the mean key-token margin per task (rows of :func:`margins_by_task`), the model after
    step 1 beside the model after KRSL, with one-std error bars."""
    tasks = list(before["task"])
    b = before.set_index("task").reindex(tasks)
    a = after.set_index("task").reindex(tasks)
    fig = Figure(figsize=(max(4.0, 1.1 * len(tasks) + 1), 3.6))
    ax = fig.subplots()
    x = range(len(tasks))
    ax.bar([i - 0.2 for i in x], b["mean_margin"], 0.4, yerr=b["std_margin"].fillna(0), label=labels[0], capsize=2)
    ax.bar([i + 0.2 for i in x], a["mean_margin"], 0.4, yerr=a["std_margin"].fillna(0), label=labels[1], capsize=2)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(list(x), [t.replace("_", " ") for t in tasks], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("key-token log-prob margin\n(chosen - rejected, nats)")
    ax.legend(fontsize=8)
    return fig
