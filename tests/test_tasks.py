"""The embedded task world: generated items have BBH's exact format, are seeded, and the knobs do
what they say."""
from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import pytest

from edit import tasks

MIRROR = Path(os.environ.get("EDIT_DATA_MIRROR") or Path(__file__).resolve().parents[2] / "shared" / "data")
BBH = MIRROR / "bbh" / "bbh"
TRACKING = [t for t in tasks.TASKS if t.startswith("tracking_shuffled_objects")]
HARD = {
    "boolean_expressions": {"n_tokens": 20, "max_depth": 5},
    "multistep_arithmetic_two": {"n_groups": 3, "terms_per_group": 6, "max_abs": 20},
    "tracking_shuffled_objects_three_objects": {"n_swaps": 8},
    "tracking_shuffled_objects_five_objects": {"n_swaps": 12},
    "tracking_shuffled_objects_seven_objects": {"n_objects": 10, "n_swaps": 15},
    "navigate": {"min_instructions": 15, "max_instructions": 25},
    "web_of_lies": {"n_people": 12},
}


def real_items(task):
    p = BBH / f"{task}.json"
    if not p.exists():
        pytest.skip(f"real BBH data not found at {p} (set EDIT_DATA_MIRROR)")
    return json.loads(p.read_text())["examples"]


def items(task, n=60, seed=0, **knobs):
    rng = random.Random(seed)
    return [tasks.generate(task, rng, **knobs) for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# format: a regex per task that every real item matches, and so must every generated one
_NAV_INSTR = r"(?:Always face forward|Turn (?:left|right|around)|Take \d+ steps?(?: (?:forward|backward|left|right))?)"
FORMAT = {
    "boolean_expressions": (r"(?:(?:not|and|or|\(|\)|True|False) )+is", r"True|False"),
    "multistep_arithmetic_two": (r"\(\((?:-?\d+ [-+*] )*-?\d+\)(?: [-+*] \((?:-?\d+ [-+*] )*-?\d+\))+\) =", r"-?\d+"),
    "navigate": (r"If you follow these instructions, do you return to the starting point\?(?: "
                 + _NAV_INSTR + r"\.)+\nOptions:\n- Yes\n- No", r"Yes|No"),
    "web_of_lies": (r"Question: \w+ (?:tells the truth|lies)\.(?: \w+ says \w+ (?:tells the truth|lies)\.)+"
                    r" Does \w+ tell the truth\?", r"Yes|No"),
}
for _t in TRACKING:
    FORMAT[_t] = (r"(?:\w+, )+(?:and )?\w+ are [^:\n]+: [^\n]+\.\n[^\n]+\. First, \w+ and \w+ [^.]+\."
                  r"(?: Then, \w+ and \w+ [^.]+\.)*(?: Finally, \w+ and \w+ [^.]+\.)? At the end of the \w+, "
                  r"\w+ [^\n.]+\nOptions:(?:\n\([A-Z]\) [^\n]+)+", r"\([A-Z]\)")


@pytest.mark.parametrize("task", tasks.TASKS)
def test_regex_matches_real_items(task):
    q_re, t_re = FORMAT[task]
    for e in real_items(task):
        assert re.fullmatch(q_re, e["input"]), e["input"]
        assert re.fullmatch(t_re, e["target"]), e["target"]


@pytest.mark.parametrize("task", tasks.TASKS)
@pytest.mark.parametrize("hard", [False, True])
def test_generated_items_match_bbh_format(task, hard):
    q_re, t_re = FORMAT[task]
    for it in items(task, **(HARD[task] if hard else {})):
        assert set(it) == {"input", "target"}
        assert re.fullmatch(q_re, it["input"]), it["input"]
        assert re.fullmatch(t_re, it["target"]), it["target"]


def test_boolean_default_matches_bbh_length():
    real = {len(e["input"].split()) for e in real_items("boolean_expressions")}
    assert real == {9}
    assert {len(it["input"].split()) for it in items("boolean_expressions")} == {9}


def _tracking_templates(text):
    """The scenario's fixed sentences with the names and items abstracted away."""
    first, second = text.split("\nOptions:")[0].split("\n")
    intro = re.sub(r"^.*? are ", "", first).split(":")[0]
    middle = second.split(" First, ")[0]
    verbs = set(re.findall(r"(?:First|Then|Finally), \w+ and \w+ ([^.]+)\.", second))
    end = re.sub(r", \w+ ", ", X ", re.search(r"At the end of [^\n]*$", second).group(0))
    return intro, middle, verbs, end


@pytest.mark.parametrize("task", TRACKING)
def test_tracking_uses_bbh_scenarios(task):
    real = [_tracking_templates(e["input"]) for e in real_items(task)]
    intros, middles = {r[0] for r in real}, {r[1] for r in real}
    verbs = set().union(*(r[2] for r in real))
    ends = {r[3] for r in real}
    n = tasks.difficulty_knobs(task)["n_objects"]
    real_names = re.match(r"(.*?) are ", real_items(task)[0]["input"]).group(1)
    seen = set()
    for it in items(task, n=80):
        intro, middle, vs, end = _tracking_templates(it["input"])
        assert intro in intros and middle in middles and vs <= verbs and end in ends
        assert it["input"].startswith(real_names + " are ")
        opts = it["input"].split("\nOptions:\n")[1].split("\n")
        assert [o[:3] for o in opts] == [f"({chr(65 + i)})" for i in range(n)]
        assert it["input"].count("swap") + it["input"].count("switch") + it["input"].count("trade") >= n
        seen.add(intro)
    assert seen == intros  # all five scenarios occur


def test_navigate_has_both_variants_and_bbh_rules():
    real = real_items("navigate")
    for group in (real, items("navigate", n=150)):
        fw = [e for e in group if "Always face forward" in e["input"]]
        assert 0.3 < len(fw) / len(group) < 0.7
        for e in group:
            ins = e["input"].split("? ", 1)[1].split("\n")[0][:-1].split(". ")
            assert 3 <= len(ins) <= 10
            if ins[0] == "Always face forward":
                assert all(re.fullmatch(r"Take \d+ steps? (forward|backward|left|right)", s) for s in ins[1:])
            else:
                assert all(re.fullmatch(r"Turn (left|right|around)|Take \d+ steps?", s) for s in ins)
            for n, s in re.findall(r"Take (\d+) step(s?)", e["input"]):
                assert 1 <= int(n) <= 10 and (s == "s") == (n != "1")
        yes = sum(e["target"] == "Yes" for e in group) / len(group)
        assert 0.25 < yes < 0.6


# ---------------------------------------------------------------------------------------------
# targets are right (checked independently of the package's solvers)
def _nav_truth(text):
    x = y = 0
    hx, hy = 0, 1
    for s in text.split("? ", 1)[1].split("\n")[0][:-1].split(". "):
        w = s.split()
        if w[0] == "Turn":
            hx, hy = {"left": (-hy, hx), "right": (hy, -hx), "around": (-hx, -hy)}[w[1]]
        elif w[0] == "Take":
            n, d = int(w[1]), (w[3] if len(w) > 3 else "forward")
            vx, vy = {"forward": (hx, hy), "backward": (-hx, -hy), "left": (-hy, hx), "right": (hy, -hx)}[d]
            x, y = x + n * vx, y + n * vy
    return "Yes" if (x, y) == (0, 0) else "No"


def _wol_truth(text):
    sents = text[len("Question: "):].split(". ")
    val = {}
    for s in sents:
        w = s.rstrip(".").split()
        if len(w) >= 2 and w[1] in ("tells", "lies"):
            val[w[0]] = w[1] == "tells"
        elif len(w) >= 3 and w[1] == "says":
            val[w[0]] = val[w[2]] == (w[3] == "tells")
    who = re.search(r"Does (\w+) tell", text).group(1)
    return "Yes" if val[who] else "No"


def _truth(task, text):
    if task == "boolean_expressions":
        return str(eval(text[: -len(" is")]))  # noqa: S307 - our own generated tokens only
    if task == "multistep_arithmetic_two":
        return str(eval(text[: -len(" =")]))  # noqa: S307
    if task == "navigate":
        return _nav_truth(text)
    if task == "web_of_lies":
        return _wol_truth(text)
    body, opts = text.split("\nOptions:\n")
    opts = [o[4:] for o in opts.split("\n")]
    first, second = body.split("\n")
    people = re.split(r", and |, | and ", first.split(" are ")[0])
    assign = first.split(": ", 1)[1]
    hold = {}
    for p in people:
        for i, o in sorted(enumerate(opts), key=lambda x: -len(x[1])):
            if re.search(rf"(^|, |and ){p} [^,]*{re.escape(o)}(,|\.$)", assign):
                hold.setdefault(p, i)
    for a, b in re.findall(r"(?:First|Then|Finally), (\w+) and (\w+)", second):
        hold[a], hold[b] = hold[b], hold[a]
    who = re.search(r"At the end of [^,]+, (\w+)", second).group(1)
    return f"({chr(65 + hold[who])})"


@pytest.mark.parametrize("task", tasks.TASKS)
def test_independent_truth_agrees_on_real_items(task):
    for e in real_items(task)[:80]:
        assert _truth(task, e["input"]) == e["target"], e["input"]


@pytest.mark.parametrize("task", tasks.TASKS)
@pytest.mark.parametrize("hard", [False, True])
def test_generated_targets_are_right(task, hard):
    for it in items(task, n=80, seed=5, **(HARD[task] if hard else {})):
        assert _truth(task, it["input"]) == it["target"], it["input"]


# ---------------------------------------------------------------------------------------------
# determinism, knobs, errors, API
@pytest.mark.parametrize("task", tasks.TASKS)
def test_seeded_determinism(task):
    assert items(task, n=20, seed=7) == items(task, n=20, seed=7)
    assert items(task, n=20, seed=7) != items(task, n=20, seed=8)


def test_boolean_knobs():
    for n in (1, 2, 5, 14, 30):
        assert {len(it["input"].split()) - 1 for it in items("boolean_expressions", n=30, n_tokens=n)} == {n}
    assert all("(" not in it["input"] for it in items("boolean_expressions", n=50, n_tokens=12, max_depth=0))

    def depth(text):
        d = m = 0
        for t in text.split():
            d += t == "("
            d -= t == ")"
            m = max(m, d)
        return m
    deep = [depth(it["input"]) for it in items("boolean_expressions", n=300, n_tokens=24, max_depth=6)]
    assert max(deep) >= 4 and max(deep) <= 6


def test_arithmetic_knobs():
    for it in items("multistep_arithmetic_two", n=30, n_groups=4, terms_per_group=6, max_abs=30):
        groups = re.findall(r"\(([^()]*)\)", it["input"])
        assert len(groups) == 4
        assert all(len(re.findall(r"-?\d+", g)) == 6 for g in groups)
        assert all(abs(int(x)) <= 30 for x in re.findall(r"-?\d+", it["input"]))
    nums = [abs(int(x)) for it in items("multistep_arithmetic_two", n=30, max_abs=50)
            for x in re.findall(r"-?\d+", it["input"])]
    assert max(nums) > 9


@pytest.mark.parametrize("task", TRACKING)
def test_tracking_knobs(task):
    for n, s in ((3, 1), (4, 9), (9, 20)):
        for it in items(task, n=10, n_objects=n, n_swaps=s):
            assert len(it["input"].split("\nOptions:\n")[1].split("\n")) == n
            assert len(re.findall(r"(?:First|Then|Finally), ", it["input"])) == s


def test_navigate_and_web_of_lies_knobs():
    for it in items("navigate", n=30, min_instructions=20, max_instructions=24, max_steps=3):
        ins = it["input"].split("? ", 1)[1].split("\n")[0][:-1].split(". ")
        assert 20 <= len(ins) <= 24
        assert all(int(n) <= 3 for n in re.findall(r"\d+", it["input"]))
    for it in items("web_of_lies", n=20, n_people=9):
        assert it["input"].count(" says ") == 8


def test_errors():
    with pytest.raises(ValueError, match="supported tasks: .*boolean_expressions"):
        tasks.generate("date_understanding", random.Random(0))
    with pytest.raises(ValueError, match="n_operands"):
        tasks.generate("boolean_expressions", random.Random(0), n_operands=3)
    with pytest.raises(ValueError, match="supported tasks"):
        tasks.difficulty_knobs("nope")


def test_api():
    assert set(tasks.TASKS) == {
        "boolean_expressions", "multistep_arithmetic_two", "tracking_shuffled_objects_three_objects",
        "tracking_shuffled_objects_five_objects", "tracking_shuffled_objects_seven_objects", "navigate",
        "web_of_lies"}
    assert tasks.difficulty_knobs("tracking_shuffled_objects_five_objects") == {"n_objects": 5, "n_swaps": 5}
    assert tasks.difficulty_knobs("boolean_expressions")["n_tokens"] == 8
    assert tasks.difficulty_knobs("web_of_lies") == {"n_people": 5}
    types = {t: tasks.answer_type(t) for t in tasks.TASKS}
    assert types["boolean_expressions"] == "bool" and types["multistep_arithmetic_two"] == "number"
    assert types["navigate"] == types["web_of_lies"] == "yes_no" and types[TRACKING[0]] == "option"
    for t in tasks.TASKS:
        mt = tasks.mistake_types(t)
        assert mt and set(mt) <= {"logical", "calculation", "knowledge"}


def test_embedded_answer_types_agree_with_the_bbh_table():
    """Teachers and scoring look answer types up in edit.benchmarks' BBH table; the embedded task
    world declares its own: they must agree for every task the world generates."""
    from edit import tasks
    from edit.benchmarks import suites as benchmarks

    for task in tasks.TASKS:
        assert tasks.answer_type(task) == benchmarks.answer_type(task), task
