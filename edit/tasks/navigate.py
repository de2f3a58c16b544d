"""navigate: follow movement instructions; do you return to the starting point?

Two BBH variants: turns ("Turn left/right/around. Take N steps.") and "Always face forward."
followed by directional moves ("Take N steps forward/backward/left/right."). Knobs:
``min_instructions``/``max_instructions`` (BBH: 3..10, "Always face forward" counts as one) and
``max_steps`` (steps per move, BBH: 1..10). Target ``"Yes"``/``"No"``.
"""
from __future__ import annotations

import random
import re

from edit.tasks._common import CoTBuilder, check_knobs

TASKS = {"navigate": {"min_instructions": 3, "max_instructions": 10, "max_steps": 10}}
ANSWER_TYPE = "yes_no"
MISTAKE_TYPES = ("logical", "calculation", "knowledge")

PHRASES = {
    "start": ("We start at the origin (0, 0), facing the positive y-axis.",
              "We begin at the origin (0, 0), facing the positive y-axis.",
              "Our starting point is the origin (0, 0), and we face the positive y-axis."),
    "since": ("Since", "Because", "As"),
}

PREFIX = "If you follow these instructions, do you return to the starting point? "
SUFFIX = "\nOptions:\n- Yes\n- No"
_HEADINGS = {(0, 1): "positive y-axis", (0, -1): "negative y-axis", (1, 0): "positive x-axis",
             (-1, 0): "negative x-axis"}
_YES_RATE = 0.42  # BBH: 105 of 250


def _left(h):
    return (-h[1], h[0])


def _right(h):
    return (h[1], -h[0])


def _take(n: int, d: str = "") -> str:
    return f"Take {n} step{'s' if n != 1 else ''}{' ' + d if d else ''}"


def _random_instr(rng, forward: bool, max_steps: int) -> str:
    n = rng.randint(1, max_steps)
    if forward:
        return _take(n, rng.choice(("forward", "backward", "left", "right")))
    if rng.random() < 0.35:
        return "Turn " + rng.choice(("left", "right", "around"))
    return _take(n)


def _chunks(rng, total: int, max_steps: int) -> list[int]:
    out = []
    while total > 0:
        c = min(total, rng.randint(1, max_steps))
        out.append(c)
        total -= c
    return out


def _closing(rng, instrs, forward: bool, max_steps: int) -> list[str]:
    """Instructions that bring the walker of ``instrs`` back to the origin."""
    (x, y), h = _simulate(instrs)
    legs = [(ax, v) for ax, v in (("x", x), ("y", y)) if v]
    rng.shuffle(legs)
    out = []
    for ax, v in legs:
        need = (-1 if v > 0 else 1, 0) if ax == "x" else (0, -1 if v > 0 else 1)
        if forward:
            word = {(1, 0): "right", (-1, 0): "left", (0, 1): "forward", (0, -1): "backward"}[need]
            out += [_take(c, word) for c in _chunks(rng, abs(v), max_steps)]
        else:
            if need == _left(h):
                out.append("Turn left")
            elif need == _right(h):
                out.append("Turn right")
            elif need != h:
                out.append("Turn around")
            h = need
            out += [_take(c) for c in _chunks(rng, abs(v), max_steps)]
    return out


def _simulate(instrs):
    prob = {"instrs": [_read(s) for s in instrs]}
    pos, h = (0, 0), (0, 1)
    for ins in prob["instrs"]:
        pos, h = _apply(ins, pos, h, None)
    return pos, h


def generate(task: str, rng: random.Random, **knobs) -> dict:
    k = check_knobs(task, TASKS[task], knobs)
    lo, hi, ms = int(k["min_instructions"]), int(k["max_instructions"]), int(k["max_steps"])
    if not 1 <= lo <= hi or ms < 1:
        raise ValueError("need 1 <= min_instructions <= max_instructions and max_steps >= 1")
    forward = rng.random() < 0.5 and hi >= 2
    want_yes = rng.random() < _YES_RATE
    for _ in range(10000):
        n = rng.randint(max(lo, 2) if forward else lo, hi)
        head = ["Always face forward"] if forward else []
        body_n = n - len(head)
        if want_yes:
            m = rng.randint(max(0, body_n - 6), body_n)
            body = [_random_instr(rng, forward, ms) for _ in range(m)]
            body += _closing(rng, body, forward, ms)
            if len(body) != body_n:
                continue
        else:
            body = [_random_instr(rng, forward, ms) for _ in range(body_n)]
        instrs = head + body
        pos, _ = _simulate(instrs)
        if (pos == (0, 0)) == want_yes:
            break
    else:  # pragma: no cover - practically unreachable
        raise RuntimeError("could not generate a navigate item")
    text = PREFIX + " ".join(s + "." for s in instrs) + SUFFIX
    return {"input": text, "target": "Yes" if want_yes else "No"}


def _read(s: str) -> dict:
    if s == "Always face forward":
        return {"kind": "forward", "text": s}
    mt = re.fullmatch(r"Turn (left|right|around)", s)
    if mt:
        return {"kind": "turn", "dir": mt.group(1), "text": s}
    mt = re.fullmatch(r"Take (\d+) steps?(?: (forward|backward|left|right))?", s)
    if mt:
        return {"kind": "move", "n": int(mt.group(1)), "dir": mt.group(2) or "forward", "text": s}
    raise ValueError(f"unknown instruction {s!r}")


def parse(task: str, text: str) -> dict:
    if not text.startswith(PREFIX) or not text.endswith(SUFFIX):
        raise ValueError("not a navigate question")
    body = text[len(PREFIX): -len(SUFFIX)].strip()
    if not body.endswith("."):
        raise ValueError("instructions must end with a period")
    return {"instrs": [_read(s.strip()) for s in body[:-1].split(". ")]}


_TURN = {"left": _left, "right": _right, "around": lambda h: (-h[0], -h[1])}
_WRONG_TURN = {"left": "right", "right": "left", "around": "left"}
_WRONG_DIR = {"left": "right", "right": "left", "forward": "backward", "backward": "forward"}


def _apply(ins: dict, pos, h, mistake):
    kind = ins["kind"]
    if kind == "forward":
        return pos, h
    if kind == "turn":
        d = ins["dir"]
        if mistake is not None and mistake["type"] == "knowledge":
            d = _WRONG_TURN[d]
        return pos, _TURN[d](h)
    d = ins["dir"]
    if mistake is not None and mistake["type"] == "knowledge":
        d = _WRONG_DIR[d]
    vec = {"forward": h, "backward": (-h[0], -h[1]), "left": _left(h), "right": _right(h)}[d]
    if mistake is not None and mistake["type"] == "logical":
        vec = _left(vec) if mistake["variant"] == "rotate_left" else _right(vec)
    x, y = pos[0] + ins["n"] * vec[0], pos[1] + ins["n"] * vec[1]
    if mistake is not None and mistake["type"] == "calculation":
        if vec[0]:
            x += mistake["delta"]
        else:
            y += mistake["delta"]
    return (x, y), h


def render(task: str, prob: dict, mistake: dict | None = None):
    b = CoTBuilder()
    steps = []
    pos, h = (0, 0), (0, 1)
    b.p("start").t("\n")
    for i, ins in enumerate(prob["instrs"]):
        m = mistake if mistake is not None and mistake["step"] == i else None
        old = pos
        pos, h = _apply(ins, pos, h, m)
        steps.append({"kind": ins["kind"], "dir": ins.get("dir"), "axis": None if pos == old else
                      ("x" if pos[0] != old[0] else "y")})
        b.t(f"({i + 1}) {ins['text']}: (").v(f"s{i + 1}.x", pos[0]).t(", ").v(f"s{i + 1}.y", pos[1])
        b.t("), facing the ").v(f"s{i + 1}.h", _HEADINGS[h]).t(".\n")
    home = pos == (0, 0)
    if mistake is not None and mistake["step"] == len(prob["instrs"]):  # logical: wrong verdict
        home = not home
    b.p("since").t(" (").v("final.x", pos[0]).t(", ").v("final.y", pos[1]).t(") ")
    b.v("final.verdict", "is (0, 0), we are indeed where we started" if home
        else "is not (0, 0), we are not where we started")
    ans = "Yes" if home else "No"
    b.t(". ").answer(ans)
    return b.segs, ans, steps


def sites(task: str, prob: dict, steps: list[dict]) -> list[dict]:
    out = []
    pos, h = (0, 0), (0, 1)
    for ins in prob["instrs"]:
        pos, h = _apply(ins, pos, h, None)
    final = pos
    for i, (s, ins) in enumerate(zip(steps, prob["instrs"])):
        if s["kind"] == "turn":
            out.append({"type": "knowledge", "step": i,
                        "site": f"'Turn {s['dir']}' applied as 'Turn {_WRONG_TURN[s['dir']]}'"})
        if s["kind"] != "move":
            continue
        if ins["text"].split()[-1] in _WRONG_DIR:
            out.append({"type": "knowledge", "step": i,
                            "site": f"'{s['dir']}' taken as '{_WRONG_DIR[s['dir']]}'"})
        for v in ("rotate_left", "rotate_right"):
            out.append({"type": "logical", "step": i, "variant": v,
                        "site": f"move applied along the wrong axis ({v})"})
        deltas = [1, -1, 2, -2]
        if s["axis"] is not None:
            own, other = (final[0], final[1]) if s["axis"] == "x" else (final[1], final[0])
            if other == 0 and 0 < abs(own) <= 20 and -own not in deltas:
                deltas.append(-own)
        for d in deltas:
            out.append({"type": "calculation", "step": i, "delta": d,
                        "site": f"coordinate after '{ins['text']}' off by {d}"})
    # a wrong final inference ("(3, 4) is (0, 0)"), tried only when no step mistake flips the answer
    out.append({"type": "logical", "step": len(prob["instrs"]), "variant": "verdict", "last_resort": True,
                "site": "wrong comparison of the final position with the origin"})
    return out
