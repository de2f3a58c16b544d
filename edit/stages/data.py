"""The data stage (``notebooks/01_data.ipynb``): the question splits, the teacher's dual CoTs, the
optional mistake-type judge, the LLM call ledger, and the files the later stages read.

Writes, under ``out_dir``: ``questions/<split>.jsonl`` (every split of
:func:`edit.dual.question_splits`), ``cots/sft.jsonl``, ``cots/wrong.jsonl``, ``cots/pairs.jsonl``
(schemas in :mod:`edit.dual`); the summary of :func:`edit.dual.build_dual_cots` (plus the judge's
counts when it ran) to ``summary_path``; and, for an LLM teacher whose calls go through the call
cache, the ledger of calls, tokens and dollars to ``teacher.ledger``.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from edit import dual
from edit.benchmarks.suites import read_bbh_part
from edit.io import DataError, require, write_json, write_jsonl
from edit.llm.judge import apply_labels, judge_mistakes
from edit.params import data_mirror, load_params
from edit.runtime import setup_runtime
from edit.teachers import make_teacher


def judge_runs(teacher: dict) -> bool:
    """Whether the LLM judge labels the mistake types of the dual pairs: only when
    ``teacher.judge.enabled`` is true AND the backend is not the oracle (the oracle knows the
    types of the mistakes it makes; its labels are never overwritten)."""
    return bool(teacher["judge"]["enabled"]) and teacher["backend"] != "oracle"


def split_counts(splits: dict) -> dict[str, dict[str, int]]:
    """``{split: {task: number of questions}}`` (tasks sorted), for the stage's table."""
    return {name: dict(sorted(Counter(q.task for q in qs).items())) for name, qs in splits.items()}


def run(params: dict | str | Path, out_dir: str | Path = "data",
        summary_path: str | Path = "reports/data_summary.json", progress: bool = True) -> dict:
    """Run the data stage with ``params`` (the effective configuration, or a params file to load).

    The BBH-train items are read from ``<out_dir>/benchmarks`` (the benchmarks stage's output)
    when ``data.source`` is ``bbh``; the teacher's prompt files from :func:`edit.params.data_mirror`.
    Returns what the notebook shows: ``profile``, ``source``, ``backend``, ``questions`` (see
    :func:`split_counts`), ``summary`` (as written to ``summary_path``) and ``example_pair`` (the
    first dual pair, None without pairs)."""
    P = load_params(params) if isinstance(params, (str, Path)) else params
    setup_runtime(P)
    D, T = P["data"], P["teacher"]
    out = Path(out_dir)

    bbh_train = None
    if D["source"] == "bbh":
        require(out / "benchmarks" / "bbh_split.json", "the benchmarks stage (dvc repro benchmarks)")
        bbh_train = read_bbh_part(out / "benchmarks", "train")
    splits = dual.question_splits(D, bbh_train)
    for name, qs in splits.items():
        write_jsonl(out / "questions" / f"{name}.jsonl", (q.to_dict() for q in qs))

    mirror = data_mirror(P)
    if mirror is None and T["backend"] != "oracle":
        raise DataError("the LLM teacher reads its prompt files (BBH CoT exemplars, EDIT's prompt files) from the "
                        "data mirror, and runtime.data_mirror is null: set it (or EDIT_DATA_MIRROR) to the mirror folder")
    teacher = make_teacher(T, mirror=mirror)
    data = dual.build_dual_cots(splits["train"], teacher, progress=progress)
    if judge_runs(T):
        labels = judge_mistakes(data.pairs, teacher.backend, sampling=T["judge"]["sampling"])
        data.pairs = apply_labels(data.pairs, labels.labels)
        data.summary["judge"] = labels.counts
    if hasattr(getattr(teacher, "backend", None), "write_ledger"):  # LLM calls through the call cache
        teacher.backend.write_ledger(T["ledger"])
    write_jsonl(out / "cots" / "sft.jsonl", data.sft)
    write_jsonl(out / "cots" / "wrong.jsonl", data.wrong)
    write_jsonl(out / "cots" / "pairs.jsonl", data.pairs)
    write_json(summary_path, data.summary)
    return {
        "profile": P["profile"],
        "source": D["source"],
        "backend": T["backend"],
        "questions": split_counts(splits),
        "summary": data.summary,
        "example_pair": data.pairs[0] if data.pairs else None,
    }
