"""Optional LLM judge: the type of mistake each wrong CoT makes (logical / knowledge / calculation /
other), for the by-mistake-type analyses of LLM teachers (the oracle knows its own types).

The prompt (``templates/judge.txt``, one user message) shows the question, the gold answer, the
wrong reasoning and, when the record has one, a correct reasoning of the same question (the
pair's ``chosen``), and asks for a line "Mistake type: <label>". :func:`parse_label` reads the
reply robustly; a label it cannot read is ``"other"``; a failed call gives None (counted).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from edit.llm.base import ChatBackend, ChatRequest
from edit.llm.prompts import load_template, render

LABELS = ("logical", "knowledge", "calculation", "other")
#: words (lower case) read as each label
SYNONYMS = {
    "logical": ("logical", "logic", "inference", "deduction"),
    "knowledge": ("knowledge", "factual", "misread", "misreading"),
    "calculation": ("calculation", "calculations", "calculating", "arithmetic", "arithmetical", "computation",
                    "computational", "counting", "numerical"),
    "other": ("other", "none", "unknown"),
}
_WORD_TO_LABEL = {w: lab for lab, words in SYNONYMS.items() for w in words}
_LINE_RE = re.compile(r"mistake[\s_-]*type\s*[:=\-]\s*[*_`\"'\[(<]*\s*([a-z]+)", re.IGNORECASE)
DEFAULT_SAMPLING = {"temperature": 0.0, "max_tokens": 64}


def parse_label(reply: str | None) -> str:
    """The mistake type named in a judge's reply.

    1. a "Mistake type: X" line (markdown, quotes, brackets tolerated) whose X is a label or a
       synonym (``SYNONYMS``);
    2. else the reply's first word, when it is one;
    3. else the one label the reply names (synonyms included), when it names exactly one;
    4. else ``"other"`` (also for an empty reply).
    """
    if not reply:
        return "other"
    for m in _LINE_RE.finditer(reply):
        lab = _WORD_TO_LABEL.get(m.group(1).lower())
        if lab:
            return lab
    words = re.findall(r"[a-z]+", reply.lower())
    if words and words[0] in _WORD_TO_LABEL:
        return _WORD_TO_LABEL[words[0]]
    named = {_WORD_TO_LABEL[w] for w in words if w in _WORD_TO_LABEL and w not in SYNONYMS["other"]}
    return named.pop() if len(named) == 1 else "other"


def judge_prompt(record: dict) -> str:
    """The judge's prompt for one wrong-CoT record: a pair record (``rejected`` = the wrong CoT,
    ``chosen`` = the correct one) or a wrong-CoT record (``response``)."""
    wrong = record.get("rejected", record.get("response"))
    if not wrong:
        raise ValueError(f"judge: record {record.get('id')!r} has no wrong CoT (`rejected` or `response`)")
    right = record.get("chosen")
    reference = render(load_template("judge_reference"), "judge_reference", right=right) if right else ""
    return render(load_template("judge"), "judge", question=record["question"], gold=record["gold"],
                  reference=reference, wrong=wrong)


@dataclass
class JudgeResult:
    """labels: record id -> label (None when the call failed); counts: per label, ``failed`` for
    failed calls, ``unparsed`` for replies read as "other" without saying so."""

    labels: dict[str, str | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def record_key(record: dict) -> str:
    """The id a label is stored under: ``id``, plus ``#pair_type`` / ``#source`` when present (a
    question has one wrong CoT per pair type)."""
    tag = record.get("pair_type") or record.get("source")
    return f"{record['id']}#{tag}" if tag else str(record["id"])


def judge_mistakes(records: list[dict], backend: ChatBackend, sampling: dict | None = None,
                   system_prompt: str | None = None, progress: bool = True) -> JudgeResult:
    """Classify the wrong CoT of every record (see :func:`judge_prompt`) in one batch of calls.
    Returns labels per :func:`record_key`; a duplicate key is a ValueError naming it."""
    keys = [record_key(r) for r in records]
    dup = [k for k, n in Counter(keys).items() if n > 1]
    if dup:
        raise ValueError(f"judge: duplicate record id(s) {dup[:5]}")
    samp = {**DEFAULT_SAMPLING, **(sampling or {})}
    sys = [{"role": "system", "content": system_prompt}] if system_prompt else []
    reqs = [ChatRequest.make(sys + [{"role": "user", "content": judge_prompt(r)}], samp, 0, tag="judge")
            for r in records]
    results = backend.complete(reqs, progress=progress) if reqs else []
    out = JudgeResult()
    counts: Counter = Counter()
    for k, res in zip(keys, results):
        if not res.ok:
            out.labels[k] = None
            counts["failed"] += 1
            continue
        lab = parse_label(res.text)
        if lab == "other" and not re.search(r"\bother\b", res.text or "", re.IGNORECASE):
            counts["unparsed"] += 1
        out.labels[k] = lab
        counts[lab] += 1
    out.counts = {k: counts.get(k, 0) for k in (*LABELS, "failed", "unparsed")}
    return out


def apply_labels(records: list[dict], labels: dict[str, str | None], overwrite: bool = False) -> list[dict]:
    """Copies of ``records`` whose ``mistake_type`` is the judge's label (kept when the record
    already has one and ``overwrite`` is false, or when the judge gave None)."""
    out = []
    for r in records:
        lab = labels.get(record_key(r))
        r = dict(r)
        if lab is not None and (overwrite or not r.get("mistake_type")):
            r["mistake_type"] = lab
        out.append(r)
    return out
