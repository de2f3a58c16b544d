"""web_of_lies: a chain of people who say that the previous one lies or tells the truth.

Knob: ``n_people`` (BBH: 5). Target ``"Yes"``/``"No"``.
"""
from __future__ import annotations

import random
import re

from edit.tasks._common import CoTBuilder, check_knobs

TASKS = {"web_of_lies": {"n_people": 5}}
ANSWER_TYPE = "yes_no"
MISTAKE_TYPES = ("logical", "calculation")

PHRASES = {
    "so": ("So, we know that", "Hence, we know that", "Thus, we know that"),
    "since": ("Since we know from", "As we know from", "Given what we know from"),
    "asks": ("Now, the question asks:", "The question is:", "Finally, the question asks:"),
}

_NAMES = ("Abel", "Adaeze", "Agnes", "Ansel", "Beatrix", "Bertram", "Calla", "Cosmo", "Darius",
          "Delphine", "Eamon", "Elodie", "Esme", "Fenna", "Florian", "Greer", "Hadley", "Hugo",
          "Ilse", "Imogen", "Jasper", "Juno", "Kasimir", "Keziah", "Lazlo", "Leontyne", "Lucan",
          "Marisol", "Mirela", "Nico", "Noor", "Orla", "Osric", "Perpetua", "Quentin", "Rafferty",
          "Rosalind", "Sabine", "Soren", "Tamsin", "Thaddeus", "Ulla", "Vesna", "Wendell", "Wren",
          "Xavi", "Yusuf", "Zelda", "Zora", "Bo")

_T, _L = "tells the truth", "lies"


def generate(task: str, rng: random.Random, **knobs) -> dict:
    k = check_knobs(task, TASKS[task], knobs)
    n = int(k["n_people"])
    if not 2 <= n <= len(_NAMES):
        raise ValueError(f"n_people must be in [2, {len(_NAMES)}], got {n}")
    names = rng.sample(_NAMES, n)
    truth = rng.random() < 0.5
    parts = [f"{names[0]} {_T if truth else _L}."]
    for prev, cur in zip(names, names[1:]):
        says_truth = rng.random() < 0.5
        parts.append(f"{cur} says {prev} {_T if says_truth else _L}.")
        truth = truth == says_truth
    text = "Question: " + " ".join(parts) + f" Does {names[-1]} tell the truth?"
    return {"input": text, "target": "Yes" if truth else "No"}


def parse(task: str, text: str) -> dict:
    if not text.startswith("Question: "):
        raise ValueError("expected 'Question: ...'")
    mt = re.fullmatch(r"Question: (.*) Does (\S+) tell the truth\?", text.strip(), flags=re.S)
    if not mt:
        raise ValueError("no final question")
    body, who = mt.group(1), mt.group(2)
    if not body.endswith("."):
        raise ValueError("statements must end with a period")
    sents = [s.strip() for s in body[:-1].split(". ")]
    m0 = re.fullmatch(r"(\S+) (tells the truth|lies)", sents[0])
    if not m0:
        raise ValueError(f"cannot read base fact {sents[0]!r}")
    statements = []
    known = {m0.group(1)}
    for s in sents[1:]:
        ms = re.fullmatch(r"(\S+) says (\S+) (tells the truth|lies)", s)
        if not ms or ms.group(2) not in known:
            raise ValueError(f"cannot read statement {s!r}")
        known.add(ms.group(1))
        statements.append((ms.group(1), ms.group(2), ms.group(3) == _T))
    if who not in known:
        raise ValueError(f"{who} is not mentioned")
    return {"base": (m0.group(1), m0.group(2) == _T), "statements": statements, "who": who}


def render(task: str, prob: dict, mistake: dict | None = None):
    b = CoTBuilder()
    steps = []
    name, truth = prob["base"]
    val = {name: truth}
    where = {name: 1}
    word = lambda t: _T if t else _L  # noqa: E731
    b.t(f"(1) {name} {word(truth)}. ").p("so").t(f" {name} ").v("s1.val", word(truth)).t(".\n")
    for k, (x, y, says) in enumerate(prob["statements"], 2):
        m = mistake if mistake is not None and mistake["step"] == k - 2 else None
        known = val[y]
        if m is not None and m["type"] == "calculation":
            known = not known
        concl = known == says
        if m is not None and m["type"] == "logical":
            concl = not concl
        steps.append({"x": x, "y": y})
        val[x], where[x] = concl, k
        b.t(f"({k}) {x} says {y} {word(says)}. ").p("since").t(f" ({where[y]}) that {y} ").v(f"s{k}.known", word(known))
        b.t(f", if {x} says that {y} {word(says)}, then {x} ").v(f"s{k}.val", word(concl)).t(".\n")
    who = prob["who"]
    b.p("asks").t(f" Does {who} tell the truth? We know from ({where[who]}) that {who} ").v("final.val", word(val[who]))
    ans = "Yes" if val[who] else "No"
    b.t(". ").answer(ans)
    return b.segs, ans, steps


def sites(task: str, prob: dict, steps: list[dict]) -> list[dict]:
    out = []
    for i, s in enumerate(steps):
        out.append({"type": "logical", "step": i,
                    "site": f"wrong inference about {s['x']} from what {s['x']} says about {s['y']}"})
        out.append({"type": "calculation", "step": i,
                    "site": f"wrong value of {s['y']} carried into step {i + 2}"})
    return out
