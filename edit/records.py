"""Plain records passed between stages. Every JSONL file of the pipeline is a list of these as dicts."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edit.io import DataError, read_jsonl

#: The sentence every teacher CoT and every student response ends with.
ANSWER_PHRASE = "Therefore, the answer is"

#: Dual-CoT record schemas (written by :mod:`edit.dual`, read by every later stage).
PAIR_TYPES = ("D+dual", "D-dual")
#: the sources of the CoT records in cots/sft.jsonl (correct CoTs) and cots/wrong.jsonl (wrong CoTs);
#: the same as :data:`edit.formats.CORRECT_SOURCES` and :data:`edit.formats.WRONG_SOURCES`
SFT_SOURCES = ("D+", "D-+")
WRONG_SOURCES = ("D-", "D+-")
#: field -> type of the CoT records (cots/sft.jsonl, cots/wrong.jsonl) and of the dual pairs
#: (cots/pairs.jsonl): :func:`edit.io.read_jsonl` checks both presence and type.
SFT_FIELDS = {"id": str, "task": str, "question": str, "gold": str, "response": str, "source": str}
PAIR_FIELDS = {"id": str, "task": str, "question": str, "gold": str, "pair_type": str, "chosen": str, "rejected": str}


def stable_seed(*parts) -> int:
    """A 63-bit seed from any printable parts, the same on every machine and Python run."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class Question:
    """One benchmark item in the BBH format.

    id:     stable identifier, e.g. ``"boolean_expressions/train/00017"``
    task:   BBH task name, e.g. ``"boolean_expressions"``
    input:  the question text exactly as in BBH's ``input`` field
    target: the gold answer exactly as in BBH's ``target`` field (``"(B)"``, ``"True"``, ``"24"``, ``"No"``)
    """

    id: str
    task: str
    input: str
    target: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TeacherCoT:
    """A teacher's chain of thought for one question.

    text:         the response after "A: Let's think step by step.\\n", ending
                  "Therefore, the answer is X." (X in the BBH target format)
    answer:       the answer extracted from ``text`` (None when the phrase is missing)
    mistake_type: None for a CoT the teacher meant to be correct; else "logical",
                  "calculation" or "knowledge" (oracle) or a judge's label (LLM teachers)
    key_spans:    ground-truth character spans ``[start, end)`` in ``text`` of the key reasoning
                  steps that make this CoT differ from its dual partner (oracle only; [] otherwise)
    harmless:     a mistake was made but the final answer stayed correct
    meta:         free-form details (the mistake's step, the teacher's name, usage, ...)
    """

    text: str
    answer: str | None
    mistake_type: str | None = None
    key_spans: list[tuple[int, int]] = field(default_factory=list)
    harmless: bool = False
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["key_spans"] = [list(s) for s in self.key_spans]
        return d


def blank(text) -> bool:
    """``text`` is no CoT to learn from: not a string, empty, or only whitespace."""
    return not isinstance(text, str) or not text.strip()


def pair_defect(pair: dict) -> str | None:
    """Why a dual pair record cannot be trained on or marked (its chosen or rejected CoT is
    :func:`blank`: aligned against nothing, every token of the other side would be a key step),
    or None when it can."""
    for side in ("chosen", "rejected"):
        if blank(pair.get(side)):
            return f"its {side} CoT is empty or only whitespace"
    return None


def read_pairs(path: str | Path) -> list[dict]:
    """The dual pairs of a ``cots/pairs.jsonl`` file, for key-step marking and training: every
    record must have :data:`PAIR_FIELDS` (with their types), and a record with a :func:`pair_defect`
    is a DataError naming the file, the record's number and its id (:func:`edit.dual.build_dual_cots`
    never writes one; such a file was edited or made elsewhere, and dropping the pair silently
    would change the training data)."""
    out = []
    for n, rec in enumerate(read_jsonl(path, required=PAIR_FIELDS), 1):
        why = pair_defect(rec)
        if why:
            raise DataError(f"{path}: record {n} (id {rec['id']}, {rec['pair_type']}): {why}; "
                            "this pair cannot be aligned (remake the data stage's pairs)")
        out.append(rec)
    return out


def read_cots(path: str | Path, sources: tuple[str, ...]) -> list[dict]:
    """The CoT records of ``cots/sft.jsonl`` (``sources`` :data:`SFT_SOURCES`) or ``cots/wrong.jsonl``
    (:data:`WRONG_SOURCES`): every record must have :data:`SFT_FIELDS` (with their types), a source
    of ``sources`` and a response that is not :func:`blank`; anything else is a DataError naming the
    file, the record's number and its id. The data stage never writes such a record; a step that
    picks its records by source would drop one with an unknown source without a word."""
    out = []
    for n, rec in enumerate(read_jsonl(path, required=SFT_FIELDS), 1):
        if rec["source"] not in sources:
            raise DataError(f"{path}: record {n} (id {rec['id']}): unknown source {rec['source']!r}; this file "
                            f"holds sources {', '.join(sources)} (remake the data stage's CoTs)")
        if blank(rec["response"]):
            raise DataError(f"{path}: record {n} (id {rec['id']}, {rec['source']}): its response is empty or only "
                            "whitespace (remake the data stage's CoTs)")
        out.append(rec)
    return out
