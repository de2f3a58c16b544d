"""boolean_expressions: random Boolean expressions over True/False with not/and/or and brackets.

BBH items are ``"<expression> is"`` with exactly 8 expression tokens (brackets count as tokens)
and target ``"True"``/``"False"``. Knobs: ``n_tokens`` (expression length in tokens, BBH: 8) and
``max_depth`` (deepest bracket nesting allowed, BBH: 3, which 8 tokens never exceed).
"""
from __future__ import annotations

import random

from edit.tasks._common import CoTBuilder, check_knobs, join_names

TASKS = {"boolean_expressions": {"n_tokens": 8, "max_depth": 3}}
ANSWER_TYPE = "bool"
MISTAKE_TYPES = ("logical", "knowledge")

PHRASES = {
    "remember": (
        'Remember that (i) expressions inside brackets are always evaluated first and that (ii) the order '
        'of operations from highest priority to lowest priority is "not", "and", "or", respectively.',
        'Recall that (i) bracketed sub-expressions are evaluated first and that (ii) "not" binds tightest, '
        'then "and", then "or".',
        'Keep in mind that (i) brackets are always evaluated first and (ii) the priority of the operators, '
        'from highest to lowest, is "not", "and", "or".',
    ),
    "simplify": ("We first simplify this expression", "Let us first rewrite the expression",
                 "First, we simplify the expression"),
    "evaluate": ("Let's evaluate", "Now we evaluate", "Next, we evaluate"),
    "plug": ("Plugging in", "Substituting", "Putting back"),
    "direct": ("We evaluate this expression", "We compute the expression", "Let's evaluate the expression"),
}

_LIT = ("True", "False")
_OPS = ("not", "and", "or", "(", ")")


# ----------------------------------------------------------------------------------------------
# generator
def _gen(rng: random.Random, n: int, depth: int, max_depth: int) -> list[str]:
    if n == 1:
        return [rng.choice(_LIT)]
    choices, weights = ["not"], [0.35]
    if n >= 3:
        choices.append("bin")
        weights.append(0.5)
        if depth < max_depth:
            choices.append("paren")
            weights.append(0.15)
    kind = rng.choices(choices, weights)[0]
    if kind == "not":
        return ["not"] + _gen(rng, n - 1, depth, max_depth)
    if kind == "paren":
        return ["("] + _gen(rng, n - 2, depth + 1, max_depth) + [")"]
    k = rng.randint(1, n - 2)
    return _gen(rng, k, depth, max_depth) + [rng.choice(("and", "or"))] + _gen(rng, n - 1 - k, depth, max_depth)


def generate(task: str, rng: random.Random, **knobs) -> dict:
    k = check_knobs(task, TASKS[task], knobs)
    n, d = int(k["n_tokens"]), int(k["max_depth"])
    if n < 1 or d < 0:
        raise ValueError(f"n_tokens must be >= 1 and max_depth >= 0, got {n}, {d}")
    toks = _gen(rng, n, 0, d)
    val = _eval_tokens(toks)
    return {"input": " ".join(toks) + " is", "target": str(val)}


# ----------------------------------------------------------------------------------------------
# parsing and exact evaluation
def _parse(toks: list[str], i: int = 0):
    """Recursive descent, returns (value, next index); or < and < not < atom."""

    def p_or(i):
        v, i = p_and(i)
        while i < len(toks) and toks[i] == "or":
            w, i = p_and(i + 1)
            v = v or w
        return v, i

    def p_and(i):
        v, i = p_not(i)
        while i < len(toks) and toks[i] == "and":
            w, i = p_not(i + 1)
            v = v and w
        return v, i

    def p_not(i):
        if i < len(toks) and toks[i] == "not":
            v, i = p_not(i + 1)
            return (not v), i
        return p_atom(i)

    def p_atom(i):
        if i >= len(toks):
            raise ValueError("unexpected end of expression")
        t = toks[i]
        if t in _LIT:
            return t == "True", i + 1
        if t == "(":
            v, i = p_or(i + 1)
            if i >= len(toks) or toks[i] != ")":
                raise ValueError("unbalanced bracket")
            return v, i + 1
        raise ValueError(f"unexpected token {t!r}")

    return p_or(i)


def _eval_tokens(toks: list[str]) -> bool:
    v, i = _parse(toks)
    if i != len(toks):
        raise ValueError("trailing tokens")
    return v


def parse(task: str, text: str) -> dict:
    s = text.strip()
    if not s.endswith(" is"):
        raise ValueError("expected '<expression> is'")
    toks = s[: -len(" is")].split()
    if not toks or any(t not in _LIT + _OPS for t in toks):
        raise ValueError("unknown token in expression")
    _eval_tokens(toks)  # validates
    return {"tokens": toks}


# ----------------------------------------------------------------------------------------------
# step-by-step solver
def _apply(op: str, a: bool, b: bool | None = None) -> bool:
    if op == "not":
        return not a
    if op == "and":
        return a and b
    return a or b


def _flat_step(toks: list[str], mistake):
    """One reduction of a bracket-free token list: the innermost "not", else the first "and",
    else the first "or". Returns (new tokens, step info)."""
    for k in range(len(toks) - 1):
        if toks[k] == "not" and toks[k + 1] in _LIT:
            a = toks[k + 1] == "True"
            res = _apply("not", a)
            if mistake and mistake["type"] == "knowledge":
                res = not res
            return toks[:k] + [str(res)] + toks[k + 2:], {"op": "not"}
    for op in ("and", "or"):
        if op in toks:
            k = toks.index(op)
            a, b = toks[k - 1] == "True", toks[k + 1] == "True"
            res = _apply(op, a, b)
            if mistake and mistake["type"] == "knowledge":
                res = not res
            elif mistake and mistake["type"] == "logical":
                res = _apply("or" if op == "and" else "and", a, b)
            return toks[: k - 1] + [str(res)] + toks[k + 2:], {"op": op}
    raise ValueError("cannot reduce expression")


def _step(toks: list[str], mistake):
    if ")" in toks:
        j = toks.index(")")
        i = max(k for k in range(j) if toks[k] == "(")
        inner = toks[i + 1: j]
        if len(inner) == 1:
            return toks[:i] + inner + toks[j + 1:], {"op": "paren"}
        new_inner, info = _flat_step(inner, mistake)
        return toks[: i + 1] + new_inner + toks[j:], info
    return _flat_step(toks, mistake)


def _match(toks: list[str], i: int) -> int:
    depth = 0
    for j in range(i, len(toks)):
        depth += toks[j] == "("
        depth -= toks[j] == ")"
        if depth == 0:
            return j
    raise ValueError("unbalanced bracket")


def _letter_plan(toks: list[str]):
    """Top-level bracket groups with non-trivial content get letters A, B, ...
    Returns (lettered Z tokens, [(letter, content tokens)])."""
    letters, out, i = [], [], 0
    while i < len(toks):
        if toks[i] != "(":
            out.append(toks[i])
            i += 1
            continue
        j = _match(toks, i)
        a, b = i + 1, j  # content toks[a:b]
        while b - a > 1 and toks[a] == "(" and _match(toks, a) == b - 1:
            a, b = a + 1, b - 1
        if b - a > 1:
            letter = chr(ord("A") + len(letters))
            letters.append((letter, toks[a:b]))
            out.extend(toks[i:a] + [letter] + toks[b: j + 1])
        else:
            out.extend(toks[i: j + 1])
        i = j + 1
    return out, letters


def render(task: str, prob: dict, mistake: dict | None = None):
    toks = prob["tokens"]
    b = CoTBuilder()
    steps: list[dict] = []

    def chain(name: str, cur: list[str]) -> str:
        k = 0
        while len(cur) > 1:
            m = mistake if mistake is not None and mistake["step"] == len(steps) else None
            cur, info = _step(cur, m)
            steps.append(info)
            k += 1
            b.t(" = ").v(f"{name}.s{k}", " ".join(cur))
        return cur[0]

    b.p("remember").t("\n")
    lettered, letters = _letter_plan(toks)
    if not letters:
        b.p("direct").t(' "Z" directly: Z = ' + " ".join(toks))
        val = chain("Z", list(toks))
        b.t(". ").answer(val)
        return b.segs, val, steps
    where = join_names([f'"{L} = {" ".join(c)}"' for L, c in letters])
    b.p("simplify").t(f' "Z" as follows: "Z = {" ".join(toks)} = {" ".join(lettered)}" where {where}.\n')
    values = {}
    for L, content in letters:
        b.p("evaluate").t(f" {L}: {L} = " + " ".join(content))
        values[L] = chain(L, list(content))
        b.t(".\n")
    b.p("plug").t(f" {join_names([L for L, _ in letters])}, we get: Z = {' '.join(lettered)} = ")
    sub = [values.get(t, t) for t in lettered]
    b.v("Z.sub", " ".join(sub))
    val = chain("Z", sub)
    b.t(". ").answer(val)
    return b.segs, val, steps


def sites(task: str, prob: dict, steps: list[dict]) -> list[dict]:
    out = []
    for i, s in enumerate(steps):
        if s["op"] in ("not", "and", "or"):
            out.append({"type": "knowledge", "step": i, "site": f"wrong truth value of {s['op']}"})
        if s["op"] in ("and", "or"):
            other = "or" if s["op"] == "and" else "and"
            out.append({"type": "logical", "step": i, "site": f"{s['op']} applied as {other}"})
    return out
