"""The oracle teacher: solves generated and real BBH items, makes typed mistakes that change the
answer, rectifies/corrupts along the same path with exact key spans, and is deterministic."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from edit import tasks
from edit.formats import answer_sentence
from edit.oracle import OracleTeacher, bbh_file, load_bbh, real_bbh_accuracy
from edit.records import ANSWER_PHRASE, Question

MIRROR = Path(os.environ.get("EDIT_DATA_MIRROR") or Path(__file__).resolve().parents[2] / "shared" / "data")
HARD = {
    "boolean_expressions": {"n_tokens": 24, "max_depth": 6},
    "multistep_arithmetic_two": {"n_groups": 4, "terms_per_group": 6, "max_abs": 25},
    "tracking_shuffled_objects_three_objects": {"n_swaps": 9},
    "tracking_shuffled_objects_five_objects": {"n_objects": 6, "n_swaps": 14},
    "tracking_shuffled_objects_seven_objects": {"n_objects": 12, "n_swaps": 20},
    "navigate": {"min_instructions": 15, "max_instructions": 30, "max_steps": 15},
    "web_of_lies": {"n_people": 15},
}
FIRST_LINE = {
    "boolean_expressions": "Remember that",
    "multistep_arithmetic_two": "Let’s recall",
    "navigate": "We start at the origin (0, 0), facing the positive y-axis.",
    "web_of_lies": "(1) ",
}


def questions(task, n=40, seed=0, **knobs):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        it = tasks.generate(task, rng, **knobs)
        out.append(Question(f"{task}/gen{seed}/{i:04d}", task, it["input"], it["target"]))
    return out


def real_questions(task, n=None):
    if bbh_file(MIRROR, task) is None:
        pytest.skip(f"real BBH data not found under {MIRROR} (set EDIT_DATA_MIRROR)")
    return load_bbh(MIRROR, task)[:n]


def strip_spans(text, spans):
    out, pos = [], 0
    for s, e in sorted(spans):
        out.append(text[pos:s])
        pos = e
    out.append(text[pos:])
    return "\x00".join(out)


def check_pair(a, b, same_template=True):
    """a and b are a dual pair on one path: spans inside the texts, and the span texts differ one by one."""
    assert a.key_spans and len(a.key_spans) == len(b.key_spans)
    for cot in (a, b):
        assert all(0 <= s < e <= len(cot.text) for s, e in cot.key_spans)
        assert all(e1 <= s2 for (_, e1), (s2, _) in zip(cot.key_spans, cot.key_spans[1:]))
    for (s1, e1), (s2, e2) in zip(a.key_spans, b.key_spans):
        assert a.text[s1:e1] != b.text[s2:e2]
    if same_template:
        assert strip_spans(a.text, a.key_spans) == strip_spans(b.text, b.key_spans)
    # the final answer overlaps a key span (the span is the differing part of the answer)
    start = a.text.rindex(a.answer)
    assert any(s < start + len(a.answer) and start < e for s, e in a.key_spans) or a.harmless


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", tasks.TASKS)
def test_solves_generated_items(task):
    t = OracleTeacher()
    for knobs in ({}, HARD[task]):
        for q in questions(task, n=40, **knobs):
            cot = t.solve(q)
            assert cot.answer == q.target, (q.input, cot.text)
            assert cot.text.endswith(answer_sentence(q.target))
            assert cot.text.count(ANSWER_PHRASE) == 1 and "Let's think step by step" not in cot.text
            assert cot.mistake_type is None and cot.key_spans == [] and not cot.harmless
            if task in FIRST_LINE:
                assert cot.text.startswith(FIRST_LINE[task])
            else:
                assert cot.text.startswith("(0) At the start: ")


@pytest.mark.parametrize("task", tasks.TASKS)
def test_real_bbh_accuracy(task):
    if bbh_file(MIRROR, task) is None:
        pytest.skip(f"real BBH data not found under {MIRROR} (set EDIT_DATA_MIRROR)")
    acc = real_bbh_accuracy(MIRROR, tasks=[task])[task]
    assert acc["n"] == 250
    assert acc["accuracy"] >= 0.99, acc


def test_exemplar_style_on_bbh_exemplar_question():
    q = Question("x/1", "navigate", "If you follow these instructions, do you return to the starting point? "
                 "Turn left. Turn around. Turn left. Take 7 steps. Take 2 steps. Take 4 steps. Take 8 steps."
                 "\nOptions:\n- Yes\n- No", "No")
    lines = OracleTeacher().solve(q).text.split("\n")
    assert lines[1] == "(1) Turn left: (0, 0), facing the negative x-axis."
    assert lines[4] == "(4) Take 7 steps: (0, 7), facing the positive y-axis."
    assert lines[-1] == "Since (0, 21) is not (0, 0), we are not where we started. Therefore, the answer is No."


def test_errors():
    t = OracleTeacher()
    with pytest.raises(ValueError, match="date_understanding"):
        t.solve(Question("q1", "date_understanding", "x", "(A)"))
    with pytest.raises(ValueError, match="weird/7"):
        t.generate_cot(Question("weird/7", "boolean_expressions", "True and and False is", "True"))
    with pytest.raises(ValueError, match="web/3"):
        t.solve(Question("web/3", "web_of_lies", "Who lies?", "Yes"))
    with pytest.raises(ValueError):
        OracleTeacher(mistake_types=("typo",))


# ---------------------------------------------------------------------------------------------
def _all_questions(task, n_gen=40):
    qs = questions(task, n=n_gen, seed=1) + questions(task, n=n_gen // 2, seed=2, **HARD[task])
    if bbh_file(MIRROR, task) is not None:
        qs += load_bbh(MIRROR, task)[:n_gen]
    return qs


@pytest.mark.parametrize("task", tasks.TASKS)
def test_mistakes_change_answer_or_are_harmless_and_all_types_occur(task):
    t = OracleTeacher(error_rate=1.0, seed=4)
    types = set()
    for q in _all_questions(task):
        w = t.generate_cot(q)
        assert w.mistake_type in tasks.mistake_types(task)
        types.add(w.mistake_type)
        m = w.meta["mistake"]
        assert m["type"] == w.mistake_type and isinstance(m["step"], int) and "site" in m
        if w.harmless:
            assert w.answer == q.target
        else:
            assert w.answer != q.target and w.answer is not None
            assert m["changed"]["from"] != m["changed"]["to"]
            check_pair(w, t.rectify(q, w))
    assert types == set(tasks.mistake_types(task))
    only = OracleTeacher(error_rate=1.0, mistake_types=("logical",), seed=4)
    got = [only.generate_cot(q) for q in _all_questions(task, 10)]
    # a question without any logical mistake site stays correct and says so
    assert all(g.mistake_type == "logical" or g.meta.get("no_mistake_site") for g in got)
    assert {g.mistake_type for g in got} >= {"logical"}


@pytest.mark.parametrize("task", tasks.TASKS)
def test_rectify_keeps_path_and_fixes_answer(task):
    t = OracleTeacher(error_rate=1.0, seed=9)
    for q in _all_questions(task, 30):
        w = t.generate_cot(q)
        a = t.rectify(q, w)
        assert a.answer == q.target and a.mistake_type is None
        assert a.text == t.solve(q).text  # rewrite_noise=0: the correct CoT of the same path
        assert len(a.text.split("\n")) == len(w.text.split("\n"))
        assert a.meta["partner_key_spans"] == w.key_spans and a.meta["partner_text_matches"]
        if w.key_spans:
            check_pair(w, a)
        else:
            assert w.harmless


@pytest.mark.parametrize("task", tasks.TASKS)
def test_corrupt_keeps_path_and_changes_answer(task):
    t = OracleTeacher(error_rate=0.0, seed=2)
    changed = 0
    for q in _all_questions(task, 30):
        c = t.generate_cot(q)
        assert c.mistake_type is None and c.answer == q.target and c.key_spans == []
        x = t.corrupt(q, c)
        assert x.mistake_type in tasks.mistake_types(task)
        assert len(x.text.split("\n")) == len(c.text.split("\n"))
        assert x.meta["partner_text_matches"]
        if x.harmless:
            assert x.answer == q.target
            continue
        changed += 1
        assert x.answer != q.target
        partner = c.__class__(c.text, c.answer, key_spans=x.meta["partner_key_spans"])
        check_pair(x, partner)
        # the corrupted copy can be rectified back to the correct CoT
        assert t.rectify(q, x).text == c.text
    assert changed >= 0.9 * len(_all_questions(task, 30))


@pytest.mark.parametrize("task", tasks.TASKS)
def test_rewrite_noise_rewords_templates_only(task):
    plain = OracleTeacher(error_rate=1.0, seed=5)
    noisy = OracleTeacher(error_rate=1.0, seed=5, rewrite_noise=1.0)
    half = OracleTeacher(error_rate=1.0, seed=5, rewrite_noise=0.5)
    reworded = 0
    for q in questions(task, n=20, seed=3):
        w = noisy.generate_cot(q)
        assert w.to_dict() == plain.generate_cot(q).to_dict()  # CEP output is never reworded
        a0, a1 = plain.rectify(q, w), noisy.rectify(q, w)
        assert a1.answer == a0.answer == q.target
        assert a1.text != a0.text
        assert len(a1.text.split("\n")) == len(a0.text.split("\n"))
        assert [a1.text[s:e] for s, e in a1.key_spans] == [a0.text[s:e] for s, e in a0.key_spans]
        if w.key_spans:
            check_pair(w, a1, same_template=False)
            assert strip_spans(w.text, w.key_spans) != strip_spans(a1.text, a1.key_spans)
        # CCP from a reworded correct CoT rewords further, keeps values consistent
        x0, x1 = plain.corrupt(q, a1), noisy.corrupt(q, a1)
        assert x1.answer == x0.answer and x1.mistake_type == x0.mistake_type
        assert [x1.text[s:e] for s, e in x1.key_spans] == [x0.text[s:e] for s, e in x0.key_spans]
        assert strip_spans(x0.text, x0.key_spans) == strip_spans(a1.text, x0.meta["partner_key_spans"])
        reworded += half.rectify(q, w).text != a0.text
    assert reworded > 0


def test_error_rate_matches_fraction_of_wrong_cots():
    qs = [q for task in tasks.TASKS for q in questions(task, n=150, seed=11)]
    for rate in (0.0, 0.3, 0.7, 1.0):
        t = OracleTeacher(error_rate=rate, seed=1)
        frac = sum(t.generate_cot(q).mistake_type is not None for q in qs) / len(qs)
        assert abs(frac - rate) < 0.05, (rate, frac)


def test_determinism_and_call_order_independence():
    qs = [q for task in tasks.TASKS for q in questions(task, n=8, seed=12)]

    def run(order, seed=3):
        t = OracleTeacher(error_rate=0.5, rewrite_noise=0.4, seed=seed)
        out = {}
        for q in order:
            g = t.generate_cot(q)
            out[q.id] = (g.to_dict(), t.rectify(q, g).to_dict(), t.corrupt(q, t.solve(q)).to_dict())
        return out

    first = run(qs)
    assert run(list(reversed(qs))) == first
    random.seed(123)  # global random state must not matter
    assert run(qs) == first
    assert run(qs, seed=4) != first


def test_ground_truth_is_the_differing_part_of_a_slot():
    from edit.oracle import _differing_part

    assert _differing_part("True and True", "False and True") == ((0, 3), (0, 4))
    assert _differing_part("(-5 + -36 - 0)", "(-5 + -35 - 0)") == ((8, 9), (8, 9))
    # one side only adds characters: both slots count whole
    assert _differing_part("the ball", "the red ball") == ((0, 8), (0, 12))
