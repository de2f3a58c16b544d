"""Shared helpers of the task families: the segment builder a CoT is written with, stable hashing,
and small text utilities.

A CoT is a list of segments ``(kind, ident, text)``:

* ``("t", "", text)``       fixed template text;
* ``("p", occ_id, key)``    a rewordable template phrase: ``key`` indexes the family's ``PHRASES``
                            table (variant 0 is the canonical wording), ``occ_id`` names this occurrence;
* ``("v", slot_id, text)``  a value slot with a stable id (same id on every path of one question).
"""
from __future__ import annotations

import hashlib
import json

from edit.records import ANSWER_PHRASE


def stable_unit(*parts) -> float:
    """A number in [0, 1) that depends only on ``parts`` (sha256 of their JSON form)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") / 2.0**64


class CoTBuilder:
    """Accumulates segments; see the module docstring."""

    def __init__(self) -> None:
        self.segs: list[tuple[str, str, str]] = []
        self._slots: set[str] = set()
        self._occ: dict[str, int] = {}

    def t(self, text: str) -> "CoTBuilder":
        if text:
            self.segs.append(("t", "", text))
        return self

    def p(self, key: str) -> "CoTBuilder":
        n = self._occ.get(key, 0)
        self._occ[key] = n + 1
        self.segs.append(("p", f"{key}#{n}", key))
        return self

    def v(self, slot: str, text) -> "CoTBuilder":
        if slot in self._slots:
            raise AssertionError(f"duplicate slot id {slot!r}")
        self._slots.add(slot)
        self.segs.append(("v", slot, str(text)))
        return self

    def answer(self, ans: str) -> "CoTBuilder":
        self.t(ANSWER_PHRASE + " ")
        self.v("answer", ans)
        self.t(".")
        return self


def assemble(segs, phrases: dict, wording: dict | None = None):
    """Text of a segment list and the spans of its value slots: ``(text, {slot: (start, end, value)})``."""
    wording = wording or {}
    out: list[str] = []
    pos = 0
    slots: dict[str, tuple[int, int, str]] = {}
    for kind, ident, text in segs:
        if kind == "p":
            variants = phrases[text]
            text = variants[wording.get(ident, 0) % len(variants)]
        elif kind == "v":
            slots[ident] = (pos, pos + len(text), text)
        out.append(text)
        pos += len(text)
    return "".join(out), slots


def join_names(names) -> str:
    """'A', 'A and B', 'A, B, and C' (the BBH list style, Oxford comma)."""
    names = list(names)
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return ", ".join(names[:-1]) + ", and " + names[-1]


def check_knobs(task: str, defaults: dict, given: dict) -> dict:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown difficulty knob(s) {', '.join(unknown)} for task {task!r}; "
            f"known: {', '.join(sorted(defaults)) or '(none)'}"
        )
    out = dict(defaults)
    out.update(given)
    return out


def option_letter(i: int) -> str:
    return chr(ord("A") + i)
