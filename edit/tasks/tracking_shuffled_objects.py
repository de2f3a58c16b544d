"""tracking_shuffled_objects_{three,five,seven}_objects: people swap items; who holds what at the end?

Five scenarios as in BBH (balls, white-elephant presents, square-dance partners, books, soccer
positions). Knobs: ``n_objects`` (people = items, BBH: 3/5/7) and ``n_swaps`` (BBH: equal to
``n_objects``). Target: the option letter ``"(C)"``; options list the items in the order of the
initial assignment.
"""
from __future__ import annotations

import random
import re

from edit.tasks._common import CoTBuilder, check_knobs, join_names, option_letter

TASKS = {
    "tracking_shuffled_objects_three_objects": {"n_objects": 3, "n_swaps": 3},
    "tracking_shuffled_objects_five_objects": {"n_objects": 5, "n_swaps": 5},
    "tracking_shuffled_objects_seven_objects": {"n_objects": 7, "n_swaps": 7},
}
ANSWER_TYPE = "option"
MISTAKE_TYPES = ("logical", "calculation")

PHRASES = {
    "start": ("At the start:", "Initially:", "In the beginning:"),
}

# BBH's people (Alice ... Gertrude), extended with our own names for larger OOD settings.
PEOPLE = ("Alice", "Bob", "Claire", "Dave", "Eve", "Fred", "Gertrude", "Hector", "Iris", "Jonas",
          "Kira", "Lionel", "Mabel", "Nestor", "Olga", "Pavel")

_COLORS = ("red", "blue", "green", "yellow", "orange", "purple", "pink", "brown", "black", "white",
           "gray", "teal", "crimson", "olive", "indigo", "silver")
_BOOKS = ("The Trial", "Dracula", "Middlemarch", "Walden", "The Odyssey", "Emma", "Beloved",
          "The Iliad", "Don Quixote", "Great Expectations", "The Stranger", "Ivanhoe", "Persuasion",
          "The Idiot", "Little Women", "Kidnapped")
_PARTNERS = ("Rosa", "Nadia", "Tomas", "Ingrid", "Viktor", "Celeste", "Mateo", "Priya", "Gideon",
             "Yara", "Felix", "Odette", "Bruno", "Selma", "Ivo", "Lucia")
_POSITIONS = ("goalkeeper", "striker", "left winger", "right winger", "center midfielder",
              "left midfielder", "right midfielder", "sweeper", "fullback", "benchwarmer",
              "cheerleader", "playmaker", "center back", "left back", "right back", "second striker")

_SCENARIOS = {
    "ball": dict(
        intro="are playing a game. At the start of the game, they are each holding a ball",
        assign="{p} has a {x} ball", middle="As the game progresses, pairs of players trade balls.",
        swap="{a} and {b} swap balls", end="At the end of the game, {p} has the",
        option="{x} ball", items=_COLORS),
    "present": dict(
        intro="are holding a white elephant gift exchange. At the start of the event, they are each "
              "holding a present of a different color",
        assign="{p} has a {x} present", middle="As the event progresses, pairs of people swap gifts.",
        swap="{a} and {b} swap their gifts", end="At the end of the event, {p} has the",
        option="{x} present", items=_COLORS),
    "dance": dict(
        intro="are dancers at a square dance. At the start of a song, they each have a partner",
        assign="{p} is dancing with {x}", middle="Throughout the song, the dancers often trade partners.",
        swap="{a} and {b} switch partners", end="At the end of the dance, {p} is dancing with",
        option="{x}", items=_PARTNERS),
    "book": dict(
        intro="are friends and avid readers who occasionally trade books. At the start of the semester, "
              "they each buy one new book",
        assign="{p} gets {x}", middle="As the semester proceeds, they start trading around the new books.",
        swap="{a} and {b} swap books", end="At the end of the semester, {p} has",
        option="{x}", items=_BOOKS),
    "soccer": dict(
        intro="are on the same team in a soccer match. At the start of the match, they are each assigned "
              "to a position",
        assign="{p} is playing {x}", middle="As the game progresses, pairs of players occasionally swap positions.",
        swap="{a} and {b} trade positions", end="At the end of the match, {p} is playing",
        option="{x}", items=_POSITIONS),
}


def generate(task: str, rng: random.Random, **knobs) -> dict:
    k = check_knobs(task, TASKS[task], knobs)
    n, s = int(k["n_objects"]), int(k["n_swaps"])
    if not 2 <= n <= len(PEOPLE):
        raise ValueError(f"n_objects must be in [2, {len(PEOPLE)}], got {n}")
    if s < 1:
        raise ValueError(f"n_swaps must be >= 1, got {s}")
    sc = _SCENARIOS[rng.choice(sorted(_SCENARIOS))]
    people = PEOPLE[:n]
    items = rng.sample(sc["items"], n)
    pairs = [tuple(rng.sample(people, 2)) for _ in range(s)]
    assign = join_names([sc["assign"].format(p=p, x=x) for p, x in zip(people, items)])
    words = ["First"] + ["Then"] * (s - 2) + (["Finally"] if s > 1 else [])
    swaps = " ".join(f"{w}, {sc['swap'].format(a=a, b=b)}." for w, (a, b) in zip(words, pairs))
    who = rng.choice(people)
    text = (f"{join_names(people)} {sc['intro']}: {assign}.\n{sc['middle']} {swaps} "
            f"{sc['end'].format(p=who)}\nOptions:\n"
            + "\n".join(f"({option_letter(i)}) {sc['option'].format(x=x)}" for i, x in enumerate(items)))
    holding = dict(zip(people, range(n)))
    for a, b in pairs:
        holding[a], holding[b] = holding[b], holding[a]
    return {"input": text, "target": f"({option_letter(holding[who])})"}


def parse(task: str, text: str) -> dict:
    if "\nOptions:\n" not in text:
        raise ValueError("no options")
    body, opts = text.split("\nOptions:\n", 1)
    options = []
    for i, line in enumerate(opts.split("\n")):
        mt = re.fullmatch(r"\(([A-Z])\) (.+)", line.strip())
        if not mt or mt.group(1) != option_letter(i):
            raise ValueError(f"malformed option line {line!r}")
        options.append(mt.group(2))
    lines = body.split("\n")
    if len(lines) != 2:
        raise ValueError("expected two lines before the options")
    mt = re.match(r"(.+?) are ", lines[0])
    if not mt:
        raise ValueError("no list of people")
    people = [p for p in re.split(r", and |, | and ", mt.group(1)) if p]
    if len(people) != len(options) or len(set(people)) != len(people):
        raise ValueError("people and options differ in number")
    if ": " not in lines[0] or not lines[0].endswith("."):
        raise ValueError("no initial assignment")
    assign = lines[0].split(": ", 1)[1][:-1]
    names = "|".join(re.escape(p) for p in sorted(people, key=len, reverse=True))
    clauses = [c for c in re.split(rf"(?:, and |, )(?=(?:{names}) )", assign) if c]
    start = {}
    for c in clauses:
        p = next((p for p in people if c.startswith(p + " ")), None)
        cands = [i for i, o in enumerate(options) if c.endswith(" " + o)]
        if p is None or not cands:
            raise ValueError(f"cannot read assignment {c!r}")
        start[p] = max(cands, key=lambda i: len(options[i]))
    if sorted(start) != sorted(people) or sorted(start.values()) != list(range(len(people))):
        raise ValueError("initial assignment is not a one-to-one mapping")
    swaps = []
    for mt in re.finditer(rf"(?:First|Then|Finally), ({names}) and ({names}) ([^.]+)\.", lines[1]):
        swaps.append((mt.group(1), mt.group(2), mt.group(3)))
    if not swaps:
        raise ValueError("no swaps")
    mt = re.search(rf"(At the end of [^,]+, ({names}) [^.]*)$", lines[1])
    if not mt:
        raise ValueError("no final question")
    # short labels in the CoT ("yellow" for "yellow ball") when unambiguous
    short = [re.sub(r" (ball|present)$", "", o) for o in options]
    if len(set(short)) != len(short):
        short = list(options)
    return {"people": people, "options": options, "short": short, "start": start, "swaps": swaps,
            "question": mt.group(1), "who": mt.group(2)}


def render(task: str, prob: dict, mistake: dict | None = None):
    people, short = prob["people"], prob["short"]
    state = dict(prob["start"])
    b = CoTBuilder()
    steps = []

    def line(k):
        for i, p in enumerate(people):
            b.t(f"{p}: ").v(f"s{k}.{p}", short[state[p]]).t(", " if i < len(people) - 1 else ".\n")

    b.t("(0) ").p("start").t(" ")
    line(0)
    for k, (x, y, phrase) in enumerate(prob["swaps"], 1):
        steps.append({"a": x, "b": y})
        m = mistake if mistake is not None and mistake["step"] == k - 1 else None
        if m is None:
            state[x], state[y] = state[y], state[x]
        elif m["type"] == "logical":
            a, c = (m["other"], y) if m["variant"] == "first" else (x, m["other"])
            state[a], state[c] = state[c], state[a]
        else:  # calculation: only one side of the swap is written down
            if m["variant"] == "first":
                state[x] = state[y]
            else:
                state[y] = state[x]
        b.t(f"({k}) {x} and {y} {phrase}: ")
        line(k)
    item = state[prob["who"]]
    b.t(prob["question"] + " ").v("final.item", prob["options"][item]).t(". ")
    ans = f"({option_letter(item)})"
    b.answer(ans)
    return b.segs, ans, steps


def sites(task: str, prob: dict, steps: list[dict]) -> list[dict]:
    out = []
    for i, s in enumerate(steps):
        for o in prob["people"]:
            if o in (s["a"], s["b"]):
                continue
            out.append({"type": "logical", "step": i, "variant": "first", "other": o,
                        "site": f"swap applied to {o} and {s['b']} instead of {s['a']} and {s['b']}"})
            out.append({"type": "logical", "step": i, "variant": "second", "other": o,
                        "site": f"swap applied to {s['a']} and {o} instead of {s['a']} and {s['b']}"})
        for v, p in (("first", s["a"]), ("second", s["b"])):
            out.append({"type": "calculation", "step": i, "variant": v,
                        "site": f"only {p}'s new item written down in swap {s['a']}-{s['b']}"})
    return out
