"""multistep_arithmetic_two: ``((a op b op c op d) op (e op f op g op h)) =`` over integers.

Knobs: ``n_groups`` (bracketed groups, BBH: 2), ``terms_per_group`` (numbers per group, BBH: 4),
``max_abs`` (numbers are drawn from [-max_abs, max_abs], BBH: 9). Target: the integer as text.
"""
from __future__ import annotations

import random
import re

from edit.tasks._common import CoTBuilder, check_knobs, join_names

TASKS = {"multistep_arithmetic_two": {"n_groups": 2, "terms_per_group": 4, "max_abs": 9}}
ANSWER_TYPE = "number"
MISTAKE_TYPES = ("logical", "calculation", "knowledge")

PHRASES = {
    "recall": (
        "Let’s recall that the order of operations in mathematics is as follows: (1) Parentheses, "
        "(2) exponents, (3) multiplication and division (from left to right), (4) addition and "
        "subtraction (from left to right). So, remember to always compute the expressions inside "
        "parentheses or brackets first.",
        "Recall the order of operations: first parentheses, then exponents, then multiplication and "
        "division (left to right), and finally addition and subtraction (left to right). So the "
        "expressions inside brackets are computed first.",
        "Remember that we compute brackets first, then multiplication and division from left to right, "
        "and then addition and subtraction from left to right.",
    ),
    "written": ("This equation can be written as", "We can write this expression as",
                "The expression has the form"),
    "calc": ("Let's calculate", "Now we compute", "Next, we calculate"),
    "final": ("Then, the final equation is", "Putting it together, the final equation is",
              "Finally, we compute"),
}

_TOKEN = re.compile(r"\s*(-?\d+|[-+*()]|=)")


def generate(task: str, rng: random.Random, **knobs) -> dict:
    k = check_knobs(task, TASKS[task], knobs)
    g, t, m = int(k["n_groups"]), int(k["terms_per_group"]), int(k["max_abs"])
    if g < 1 or t < 1 or m < 1:
        raise ValueError("n_groups, terms_per_group and max_abs must be >= 1")
    groups = []
    for _ in range(g):
        parts = [str(rng.randint(-m, m))]
        for _ in range(t - 1):
            parts += [rng.choice("+-*"), str(rng.randint(-m, m))]
        groups.append("(" + " ".join(parts) + ")")
    outer = [groups[0]]
    for grp in groups[1:]:
        outer += [rng.choice("+-*"), grp]
    text = "(" + " ".join(outer) + ") ="
    return {"input": text, "target": str(_solve_exact(parse(task, text)))}


def _tokens(text: str) -> list[str]:
    toks, pos = [], 0
    text = text.strip()
    while pos < len(text):
        mt = _TOKEN.match(text, pos)
        if not mt:
            raise ValueError(f"cannot tokenize at {text[pos:pos + 10]!r}")
        toks.append(mt.group(1))
        pos = mt.end()
    return toks


def _flat(toks: list[str]) -> list:
    """Alternating number/operator list from a bracket-free token list."""
    if len(toks) % 2 == 0:
        raise ValueError("malformed group")
    out = []
    for i, t in enumerate(toks):
        if i % 2 == 0:
            if not re.fullmatch(r"-?\d+", t):
                raise ValueError(f"expected a number, got {t!r}")
            out.append(int(t))
        else:
            if t not in "+-*" or len(t) != 1:
                raise ValueError(f"expected an operator, got {t!r}")
            out.append(t)
    return out


def parse(task: str, text: str) -> dict:
    toks = _tokens(text)
    if len(toks) < 4 or toks[-1] != "=" or toks[0] != "(" or toks[-2] != ")":
        raise ValueError("expected '(...) ='")
    body = toks[1:-2]
    groups, outer, i = [], [], 0
    while i < len(body):
        if groups:
            if body[i] not in ("+", "-", "*"):
                raise ValueError("expected an operator between groups")
            outer.append(body[i])
            i += 1
        if i >= len(body) or body[i] != "(":
            raise ValueError("expected a bracketed group")
        j = body.index(")", i)
        if "(" in body[i + 1: j]:
            raise ValueError("nested brackets inside a group")
        groups.append(_flat(body[i + 1: j]))
        i = j + 1
    if not groups:
        raise ValueError("no groups")
    return {"groups": groups, "outer": outer}


def _pick(state: list) -> int:
    """Index (in the alternating list) of the operator evaluated next: first *, else first +/-."""
    ops = list(range(1, len(state), 2))
    for k in ops:
        if state[k] == "*":
            return k
    return ops[0]


def _calc(op: str, a: int, b: int) -> int:
    return a * b if op == "*" else a + b if op == "+" else a - b


def _reduce_all(state: list) -> int:
    state = list(state)
    while len(state) > 1:
        k = _pick(state)
        state[k - 1: k + 2] = [_calc(state[k], state[k - 1], state[k + 1])]
    return state[0]


def _solve_exact(prob: dict) -> int:
    vals = [_reduce_all(g) for g in prob["groups"]]
    flat = [vals[0]]
    for op, v in zip(prob["outer"], vals[1:]):
        flat += [op, v]
    return _reduce_all(flat)


def _show(state: list, brackets: bool) -> str:
    s = " ".join(str(x) for x in state)
    return f"({s})" if brackets and len(state) > 1 else s


def _step(state: list, mistake):
    """One reduction; returns (new state, info describing the correct step)."""
    k = _pick(state)
    info = {"op": state[k], "a": state[k - 1], "b": state[k + 1], "k": k,
            "left": state[k - 2] if k >= 3 else None, "right": state[k + 2] if k + 2 < len(state) else None}
    if mistake is not None and mistake["type"] == "logical":
        k = k - 2 if mistake["variant"] == "precedence" else k + 2
    op, a, b = state[k], state[k - 1], state[k + 1]
    res = _calc(op, a, b)
    if mistake is not None:
        if mistake["type"] == "calculation":
            res += mistake["delta"]
        elif mistake["type"] == "knowledge":
            res = -res if mistake["variant"] == "sign" else a + b
    return state[: k - 1] + [res] + state[k + 2:], info


def render(task: str, prob: dict, mistake: dict | None = None):
    groups, outer = prob["groups"], prob["outer"]
    letters = [chr(ord("A") + i) if i < 26 else f"A{i}" for i in range(len(groups))]
    b = CoTBuilder()
    steps: list[dict] = []

    def chain(name, state, brackets):
        n = 0
        while len(state) > 1:
            m = mistake if mistake is not None and mistake["step"] == len(steps) else None
            state, info = _step(state, m)
            steps.append(info)
            n += 1
            b.t(" = ").v(f"{name}.s{n}", _show(state, brackets))
        return state[0]

    form = [letters[0]]
    for op, L in zip(outer, letters[1:]):
        form += [op, L]
    form_s = " ".join(form)
    b.p("recall").t("\n")
    defs = join_names([f"{L} = {_show(g, True)}" for L, g in zip(letters, groups)]).replace(", and ", " and ")
    b.p("written").t(f' "{form_s}", where {defs}.\n')
    vals = []
    for L, g in zip(letters, groups):
        b.p("calc").t(f" {L} = {_show(g, True)}")
        vals.append(chain(L, list(g), True))
        b.t(".\n")
    flat = [vals[0]]
    for op, v in zip(outer, vals[1:]):
        flat += [op, v]
    b.p("final").t(f" {form_s} = ")
    b.v("final.sub", _show(flat, False))
    val = chain("final", flat, False)
    b.t(". ").answer(str(val))
    return b.segs, str(val), steps


def sites(task: str, prob: dict, steps: list[dict]) -> list[dict]:
    out = []
    for i, s in enumerate(steps):
        for d in (1, -1, 2, -2, 3, -3, 10, -10):
            out.append({"type": "calculation", "step": i, "delta": d,
                        "site": f"{s['a']} {s['op']} {s['b']} off by {d}"})
        if s["op"] == "*" and (s["a"] < 0 or s["b"] < 0) and s["a"] * s["b"] != 0:
            out.append({"type": "knowledge", "step": i, "variant": "sign",
                        "site": f"sign rule broken in {s['a']} * {s['b']}"})
        if s["op"] == "-" and s["b"] < 0:
            out.append({"type": "knowledge", "step": i, "variant": "minus_negative",
                        "site": f"{s['a']} - {s['b']} computed as {s['a']} - {-s['b']}"})
        if s["op"] == "*" and s["left"] in ("+", "-"):
            out.append({"type": "logical", "step": i, "variant": "precedence",
                        "site": f"{s['left']} evaluated before *"})
        if s["op"] == "-" and s["right"] in ("+", "-"):
            out.append({"type": "logical", "step": i, "variant": "associativity",
                        "site": f"right-hand {s['right']} evaluated before -"})
    return out
