"""The oracle teacher: solves BBH-format questions of the embedded task world from their text,
writes CoTs in the style of BBH's own exemplars, and makes typed, traceable mistakes.

Every CoT is built from segments (template text, rewordable phrases, value slots with stable ids;
see ``edit.tasks._common``). A mistake is a site ``{"type", "step", ...}`` applied while solving;
later steps are recomputed from the mistaken value. Key spans of a pair of CoTs on the same path
are the spans of the value slots whose text differs between the two.

All choices are seeded by sha256 of (seed, question id, ...): the output depends only on the
teacher's settings and the question, never on call order or global random state.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from edit.records import Question, TeacherCoT
from edit.tasks import TASKS, family
from edit.tasks._common import assemble, stable_unit
from edit.teacher import Teacher

ALL_MISTAKE_TYPES = ("logical", "calculation", "knowledge")


def _differing_part(a: str, b: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """The part of two differing slot texts that differs: their common prefix and suffix are left
    out ("(0, 21)" vs "(0, 22)" -> "1" vs "2"; "True" vs "False" -> "Tru" vs "Fals", which still
    covers the whole word's token). If one side would be left empty (pure insertion), both slots
    count whole."""
    p = 0
    while p < min(len(a), len(b)) and a[p] == b[p]:
        p += 1
    q = 0
    while q < min(len(a), len(b)) - p and a[-1 - q] == b[-1 - q]:
        q += 1
    if p + q >= len(a) or p + q >= len(b):
        return (0, len(a)), (0, len(b))
    return (p, len(a) - q), (p, len(b) - q)


def _spans(a_slots: dict, b_slots: dict):
    """Key spans on each side: within slots present on both sides whose text differs, the differing
    part (see _differing_part); slots present on one side only count whole."""
    ids = [s for s in a_slots if s not in b_slots or a_slots[s][2] != b_slots[s][2]]
    ids_b = [s for s in b_slots if s not in a_slots or a_slots[s][2] != b_slots[s][2]]

    def key(mine: dict, other: dict, s: str, side: int):
        start, end, text = mine[s]
        if s not in other:
            return (start, end)
        rel = _differing_part(*((text, other[s][2]) if side == 0 else (other[s][2], text)))[side]
        return (start + rel[0], start + rel[1])

    return ([key(a_slots, b_slots, s, 0) for s in ids], [key(b_slots, a_slots, s, 1) for s in ids_b], ids)


class OracleTeacher(Teacher):
    name = "oracle"

    def __init__(self, error_rate: float = 0.3, mistake_types=ALL_MISTAKE_TYPES,
                 rewrite_noise: float = 0.0, seed: int = 0):
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
        if not 0.0 <= rewrite_noise <= 1.0:
            raise ValueError(f"rewrite_noise must be in [0, 1], got {rewrite_noise}")
        bad = [t for t in mistake_types if t not in ALL_MISTAKE_TYPES]
        if bad:
            raise ValueError(f"unknown mistake type(s) {bad}; known: {ALL_MISTAKE_TYPES}")
        self.error_rate = float(error_rate)
        self.mistake_types = tuple(mistake_types)
        self.rewrite_noise = float(rewrite_noise)
        self.seed = seed

    # ------------------------------------------------------------------------------------------
    # internals
    def _problem(self, q: Question):
        fam = family(q.task)  # ValueError naming the task
        try:
            prob = fam.parse(q.task, q.input)
        except ValueError as e:
            raise ValueError(f"cannot parse question {q.id} ({q.task}): {e}") from None
        return fam, prob

    def _render(self, q, fam, prob, mistake=None, wording=None):
        segs, answer, steps = fam.render(q.task, prob, mistake)
        text, slots = assemble(segs, fam.PHRASES, wording)
        return {"segs": segs, "answer": answer, "steps": steps, "text": text, "slots": slots}

    def _reword(self, q, fam, segs, wording_in: dict, tag: str) -> dict:
        out = {k: v for k, v in (wording_in or {}).items()}
        if self.rewrite_noise > 0:
            for kind, occ, key in segs:
                n = len(fam.PHRASES[key]) if kind == "p" else 0
                if n < 2 or stable_unit(self.seed, q.id, tag, "reword", occ) >= self.rewrite_noise:
                    continue
                cur = out.get(occ, 0) % n
                shift = 1 + int(stable_unit(self.seed, q.id, tag, "variant", occ) * (n - 1))
                out[occ] = (cur + shift) % n
        return {k: v for k, v in sorted(out.items()) if v}

    def _inject(self, q, fam, prob, correct, tag: str, wording=None):
        """First site (seeded order) whose mistake changes the answer; else a harmless one.
        Returns (site, rendered wrong CoT, harmless) or None when no site exists."""
        allowed = set(self.mistake_types) & set(fam.MISTAKE_TYPES)
        cands = [s for s in fam.sites(q.task, prob, correct["steps"]) if s["type"] in allowed]
        # a seeded preference order over the mistake types, then a seeded order of the sites
        rank = {t: stable_unit(self.seed, q.id, tag, "type", t) for t in allowed}
        cands.sort(key=lambda s: (bool(s.get("last_resort")), rank[s["type"]],
                                  stable_unit(self.seed, q.id, tag, json.dumps(s, sort_keys=True))))
        fallback = None
        for site in cands:
            wrong = self._render(q, fam, prob, site, wording)
            if wrong["answer"] != correct["answer"]:
                return site, wrong, False
            if fallback is None and wrong["text"] != correct["text"]:
                fallback = (site, wrong, True)
        if fallback is None and cands:
            fallback = (cands[0], self._render(q, fam, prob, cands[0], wording), True)
        return fallback

    @staticmethod
    def _describe(site: dict, wrong: dict, correct: dict) -> dict:
        m = dict(site)
        changed = [s for s in wrong["slots"] if wrong["slots"][s][2] != correct["slots"].get(s, (0, 0, None))[2]]
        if changed:
            s = changed[0]
            m["changed"] = {"slot": s, "from": correct["slots"][s][2], "to": wrong["slots"][s][2]}
        m["changed_slots"] = changed
        return m

    @staticmethod
    def _site_of(mistake: dict | None) -> dict | None:
        if not mistake:
            return None
        return {k: v for k, v in mistake.items() if k not in ("changed", "changed_slots")}

    # ------------------------------------------------------------------------------------------
    # public API
    def solve(self, question: Question) -> TeacherCoT:
        """The correct CoT (no rewording)."""
        fam, prob = self._problem(question)
        r = self._render(question, fam, prob)
        return TeacherCoT(r["text"], r["answer"], meta={"teacher": self.name, "mode": "solve",
                                                      "mistake": None, "wording": {}})

    def generate_cot(self, question: Question) -> TeacherCoT:
        """CEP: wrong with probability ``error_rate`` (stable hash of seed and question id)."""
        fam, prob = self._problem(question)
        correct = self._render(question, fam, prob)
        base_meta = {"teacher": self.name, "mode": "cep", "wording": {}}
        if stable_unit(self.seed, question.id, "cep") >= self.error_rate:
            return TeacherCoT(correct["text"], correct["answer"], meta={**base_meta, "mistake": None})
        got = self._inject(question, fam, prob, correct, "cep")
        if got is None:
            return TeacherCoT(correct["text"], correct["answer"],
                              meta={**base_meta, "mistake": None, "no_mistake_site": True})
        site, wrong, harmless = got
        mine, partner, _ = _spans(wrong["slots"], correct["slots"])
        return TeacherCoT(wrong["text"], wrong["answer"], mistake_type=site["type"], key_spans=mine,
                          harmless=harmless,
                          meta={**base_meta, "mistake": self._describe(site, wrong, correct),
                                "partner_key_spans": partner})

    def rectify(self, question: Question, wrong: TeacherCoT) -> TeacherCoT:
        """AHP: the correct CoT along the wrong one's path, mistaken step fixed, downstream recomputed."""
        fam, prob = self._problem(question)
        w_in = dict((wrong.meta or {}).get("wording") or {})
        site = self._site_of((wrong.meta or {}).get("mistake"))
        old = self._render(question, fam, prob, site, w_in)
        probe = self._render(question, fam, prob, None, w_in)
        w_out = self._reword(question, fam, probe["segs"], w_in, "ahp")
        fixed = self._render(question, fam, prob, None, w_out)
        mine, partner, ids = _spans(fixed["slots"], old["slots"])
        return TeacherCoT(fixed["text"], fixed["answer"], key_spans=mine,
                          meta={"teacher": self.name, "mode": "ahp", "mistake": None,
                                "fixed_mistake": (wrong.meta or {}).get("mistake"), "wording": w_out,
                                "partner_key_spans": partner, "key_slots": ids,
                                "partner_text_matches": old["text"] == wrong.text})

    def corrupt(self, question: Question, correct: TeacherCoT) -> TeacherCoT:
        """CCP: the same path with one typed mistake that changes the answer (harmless if impossible)."""
        fam, prob = self._problem(question)
        w_in = dict((correct.meta or {}).get("wording") or {})
        right = self._render(question, fam, prob, None, w_in)
        w_out = self._reword(question, fam, right["segs"], w_in, "ccp")
        base = {"teacher": self.name, "mode": "ccp", "wording": w_out,
                "partner_text_matches": right["text"] == correct.text}
        got = self._inject(question, fam, prob, right, "ccp", w_in)
        if got is None:
            out = self._render(question, fam, prob, None, w_out)
            return TeacherCoT(out["text"], out["answer"], harmless=True,
                              meta={**base, "mistake": None, "no_mistake_site": True, "partner_key_spans": []})
        site, _, harmless = got
        bad = self._render(question, fam, prob, site, w_out)
        mine, partner, ids = _spans(bad["slots"], right["slots"])
        return TeacherCoT(bad["text"], bad["answer"], mistake_type=site["type"], key_spans=mine,
                          harmless=harmless,
                          meta={**base, "mistake": self._describe(site, bad, right),
                                "partner_key_spans": partner, "key_slots": ids})


# ----------------------------------------------------------------------------------------------
# accuracy on the real BBH items
def default_mirror() -> Path:
    """$EDIT_DATA_MIRROR, else <repo>/../shared/data."""
    env = os.environ.get("EDIT_DATA_MIRROR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def bbh_file(mirror_dir, task: str) -> Path | None:
    """The real BBH file of ``task`` under a mirror (``bbh/bbh/<task>.json`` or ``bbh/<task>.json``)."""
    m = Path(mirror_dir)
    for p in (m / "bbh" / "bbh" / f"{task}.json", m / "bbh" / f"{task}.json", m / f"{task}.json"):
        if p.is_file():
            return p
    return None


def load_bbh(mirror_dir, task: str) -> list[Question]:
    p = bbh_file(mirror_dir, task)
    if p is None:
        raise FileNotFoundError(f"no BBH file for {task} under {mirror_dir}")
    with open(p, encoding="utf-8") as f:
        exs = json.load(f)["examples"]
    return [Question(f"{task}/bbh/{i:05d}", task, e["input"], e["target"]) for i, e in enumerate(exs)]


def real_bbh_accuracy(mirror_dir, tasks=TASKS) -> dict:
    """task -> {"n", "correct", "accuracy", "unparsed"} of ``OracleTeacher.solve`` on the real items."""
    teacher = OracleTeacher(error_rate=0.0)
    out = {}
    for task in tasks:
        qs = load_bbh(mirror_dir, task)
        correct = unparsed = 0
        for q in qs:
            try:
                correct += teacher.solve(q).answer == q.target
            except ValueError:
                unparsed += 1
        out[task] = {"n": len(qs), "correct": correct, "accuracy": correct / len(qs) if qs else 0.0,
                     "unparsed": unparsed}
    return out
