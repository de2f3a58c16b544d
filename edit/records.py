"""Plain records passed between stages. Every JSONL file of the pipeline is a list of these as dicts."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

#: The sentence every teacher CoT and every student response ends with.
ANSWER_PHRASE = "Therefore, the answer is"

#: Dual-CoT record schemas (written by :mod:`edit.dual`, read by every later stage).
PAIR_TYPES = ("D+dual", "D-dual")
SFT_SOURCES = ("D+", "D-+")
SFT_FIELDS = ("id", "task", "question", "gold", "response", "source")
PAIR_FIELDS = ("id", "task", "question", "gold", "pair_type", "chosen", "rejected")


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
