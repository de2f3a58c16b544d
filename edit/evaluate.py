"""Greedy generation, answer extraction and accuracy for the student.

Answer extraction is a small declared chain, in the spirit of lm-eval-harness filters:

1. ``locate``    - the text after the LAST answer phrase ("Therefore, the answer is", "So the answer
                   is" or plain "the answer is", case-insensitive, an optional ":" after it).
                   No phrase -> no answer. There is deliberately no "first sentence" fallback: a
                   template-less output must not be scored correct by accident.
2. ``cut``       - up to the end of that sentence: the first newline or the first "." that is not
                   followed by a digit, so "3.5." gives "3.5" and "(B)." gives "(B)".
3. ``clean``     - strip whitespace, quotes, markdown emphasis and trailing punctuation.
4. ``normalise`` - per answer type (``ANSWER_TYPES``); an ambiguous answer such as "(A) or (B)"
                   or "Yes or No" gives no answer (None).

Answer types:

* ``"option"``        -> ``"(B)"`` from "(B)", "B", "(b).", "b)", "(B) 12/25/1937"; ARC-style
                         numeric labels give ``"(1)"`` from "(1)", "1)" or "1".
* ``"bool"``          -> ``"True"`` / ``"False"`` (an answer containing "not" gives None)
* ``"yes_no"``        -> ``"Yes"`` / ``"No"``
* ``"valid_invalid"`` -> ``"valid"`` / ``"invalid"`` (formal_fallacies; "invalid" is never read as
                         "valid")
* ``"number"``        -> canonical int/float string: "24", "-7", "3.5"; "24.0" -> "24",
                         "1,000" -> "1000", "$12" -> "12", number words up to twenty.
* ``"text"``          -> the answer with whitespace collapsed, case kept (dyck_languages,
                         word_sorting, ...).

The gold is put through the same normaliser (a gold that does not normalise is compared as
stripped text), so single-character golds ("5", "0", "}") score like any other.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Callable

import pandas as pd
import torch
from tqdm.auto import tqdm

from edit.formats import student_prompt
from edit.records import ANSWER_PHRASE, Question

ANSWER_TYPES = ("option", "bool", "yes_no", "valid_invalid", "number", "text")

#: Every phrase that introduces the answer; the last match in a generation wins. "the answer is"
#: is a suffix of the other two, so searching for it finds all three.
ANSWER_PHRASES = (ANSWER_PHRASE, "So the answer is", "the answer is")
_PHRASE_RE = re.compile(r"the\s+answer\s+is\b\s*:?", re.IGNORECASE)
_CUT_RE = re.compile(r"\n|\.(?!\d)")
_STRIP_CHARS = " \t\r\n\"'`*_“”‘’"
_TRAILING_PUNCT = ",;:!?"

_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_NUMBER_RE = re.compile(r"(?<![\w.])[-+−]?\$?\d+(?:,\d{3})*(?:\.\d+)?(?![\w])|(?<![\w.])[-+−]?\$?\.\d+(?![\w])")
_CONJ = r"\s*(?:or|and|/|,|\|)\s*"


# ---------------------------------------------------------------- chain steps


def locate(text: str) -> str | None:
    """The text after the last answer phrase, or None when there is none."""
    last = None
    for last in _PHRASE_RE.finditer(text):
        pass
    if last is None:
        return None
    return text[last.end():]


def cut(segment: str) -> str:
    """The segment up to the end of its sentence (first newline or a "." not followed by a digit)."""
    m = _CUT_RE.search(segment)
    return segment if m is None else segment[: m.start()]


def clean(segment: str) -> str:
    s = segment.strip(_STRIP_CHARS)
    while s and s[-1] in _TRAILING_PUNCT:
        s = s[:-1].rstrip(_STRIP_CHARS)
    return s.strip(_STRIP_CHARS)


def _canonical_number(raw: str) -> str | None:
    s = raw.replace("−", "-").replace("$", "").replace(",", "")
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def _norm_option(s: str) -> str | None:
    s = s.strip()
    if not s:
        return None
    label = r"(?:[A-Za-z]|\d{1,2})"
    # "(A) or (B)", "A or B", "(A)/(C)" ... -> ambiguous
    second = rf"(?:\({label}\)|[A-Z]\)?|\d{{1,2}}\)?)(?!\w)"  # "a tall tree" is not a label
    if re.match(rf"^\(?{label}\)?{_CONJ}{second}", s):
        return None
    # the whole answer is one label: "(B)", "B", "b)", "(b)", "(1)", "1"
    m = re.fullmatch(rf"\(?({label})\)?", s)
    if m:
        return f"({m.group(1).upper()})"
    # a parenthesised label followed by the option's text: "(B) 12/25/1937"; exactly one distinct
    paren = {x.upper() for x in re.findall(rf"\(({label})\)", s)}
    if len(paren) > 1:
        return None
    m = re.match(rf"^\(({label})\)", s) or re.match(rf"^({label})\)(?=[\s,;:])", s)
    if m:
        return f"({m.group(1).upper()})"
    if len(paren) == 1:
        return f"({paren.pop()})"
    return None


def _norm_words(s: str, labels: dict[str, str]) -> str | None:
    """Map a short answer onto one of ``labels`` (lower-case word -> canonical form)."""
    words = re.findall(r"[a-z]+", s.lower())
    found = [w for w in words if w in labels]
    if not found:
        return None
    distinct = set(found)
    if len(distinct) == 1:
        return labels[found[0]]
    # several labels: accept only when the answer starts with one and is not "X or Y"
    alt = "|".join(labels)
    if words and words[0] in labels and not re.match(rf"^\W*(?:{alt}){_CONJ}(?:{alt})\b", s.lower()):
        return labels[words[0]]
    return None


def _norm_number(s: str) -> str | None:
    s = s.strip()
    if not s:
        return None
    low = s.lower()
    if low in _NUMBER_WORDS:
        return _NUMBER_WORDS[low]
    nums = [m.group(0) for m in _NUMBER_RE.finditer(s)]
    if not nums:
        w = re.match(r"^([a-z]+)\b", low)
        return _NUMBER_WORDS.get(w.group(1)) if w else None
    num = r"[-+−]?\$?(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)"
    if re.match(rf"^\(?{num}\)?\s*(?:or|and|/|\||,\s)\s*\(?{num}\)?", s):
        return None  # "3 or 4"
    first = _NUMBER_RE.match(s) or _NUMBER_RE.match(s.lstrip("=~≈ "))
    if first:
        return _canonical_number(first.group(0))
    distinct = {_canonical_number(n) for n in nums}
    distinct.discard(None)
    if len(distinct) == 1:
        return distinct.pop()
    return None


def _norm_text(s: str) -> str | None:
    s = " ".join(s.split())
    return s or None


_NORMALISERS: dict[str, Callable[[str], str | None]] = {
    "option": _norm_option,
    "bool": lambda s: None if re.search(r"\bnot\b", s.lower()) else _norm_words(s, {"true": "True", "false": "False"}),
    "yes_no": lambda s: _norm_words(s, {"yes": "Yes", "no": "No"}),
    "valid_invalid": lambda s: _norm_words(s, {"valid": "valid", "invalid": "invalid"}),
    "number": _norm_number,
    "text": _norm_text,
}


def normalise(answer: str, answer_type: str) -> str | None:
    """Canonical form of a cleaned answer for ``answer_type``; None when it does not parse."""
    try:
        fn = _NORMALISERS[answer_type]
    except KeyError:
        raise ValueError(f"unknown answer type {answer_type!r}; expected one of {ANSWER_TYPES}") from None
    try:
        return fn(answer)
    except Exception:  # never raise on arbitrary model output
        return None


# ---------------------------------------------------------------- public API


def extract_answer(text: str, answer_type: str) -> str | None:
    """The normalised answer after the last answer phrase of ``text`` (locate -> cut -> clean ->
    normalise), or None when there is no extractable, unambiguous answer. Never raises on any
    ``text``; raises ValueError only for an unknown ``answer_type``."""
    if answer_type not in _NORMALISERS:
        raise ValueError(f"unknown answer type {answer_type!r}; expected one of {ANSWER_TYPES}")
    if not isinstance(text, str):
        return None
    seg = locate(text)
    if seg is None:
        return None
    return normalise(clean(cut(seg)), answer_type)


def normalise_gold(gold: str, answer_type: str) -> str:
    """The gold in the extractor's canonical form (falls back to the stripped gold)."""
    g = normalise(clean(gold), answer_type)
    return g if g is not None else gold.strip()


def _contains(generation: str, gold: str, answer_type: str) -> bool:
    g = gold.strip()
    if not g:
        return False
    flags = 0 if answer_type == "text" else re.IGNORECASE
    left = r"(?<![\w.])" if g[0].isalnum() else ""
    right = r"(?!\w)" if g[-1].isalnum() else ""
    return re.search(left + re.escape(g) + right, generation, flags) is not None


def _complete(generation: str) -> bool:
    seg = locate(generation)
    if seg is None:
        return False
    m = _CUT_RE.search(seg)
    if m is None or m.group(0) != ".":
        return False
    return clean(seg[: m.start()]) != "" and seg[m.end():].strip() == ""


def score(generation: str, gold: str, answer_type: str) -> dict:
    """Score one generation against its gold.

    Returns ``{"correct", "extracted", "has_answer", "contains_gold", "complete"}``:
    correct - the extracted answer equals the normalised gold (False when nothing was extracted);
    extracted - ``extract_answer(generation, answer_type)``;
    has_answer - an answer could be extracted;
    contains_gold - the gold string occurs anywhere in the generation as a whole token (diagnostic
        only: "5" is not found in "15" or "3.5"; case-insensitive except for "text");
    complete - the generation ends with a finished answer sentence (answer phrase, an answer,
        a final "." and nothing but whitespace after it), i.e. it was not cut off mid-answer
        and did not ramble on.
    """
    extracted = extract_answer(generation, answer_type)
    gold_n = normalise_gold(gold, answer_type)
    return {
        "correct": extracted is not None and extracted == gold_n,
        "extracted": extracted,
        "has_answer": extracted is not None,
        "contains_gold": _contains(generation, gold, answer_type),
        "complete": _complete(generation),
    }


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 32,
             show_progress=True) -> list[str]:
    """Greedy decoding (``do_sample=False``, KV cache) of ``prompts``, ``batch_size`` at a time with
    LEFT padding, each stopping at EOS or after ``max_new_tokens``. Returns only the new text of
    each prompt (``skip_special_tokens=True``), in the order of ``prompts``. Prompts are processed
    longest first (less padding; an out-of-memory batch shows up first). The tokenizer's
    ``padding_side`` (and ``pad_token`` when it had none: EOS is used) is restored afterwards.
    Prompts are tokenised without special tokens, exactly as training tokenises them."""
    if not prompts:
        return []
    model.eval()
    old_side = tokenizer.padding_side
    old_pad = tokenizer.pad_token
    eos_id = tokenizer.eos_token_id
    try:
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        pad_id = tokenizer.pad_token_id
        lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
        out: list[str | None] = [None] * len(prompts)
        device = getattr(model, "device", torch.device("cpu"))
        starts = range(0, len(order), batch_size)
        for s in tqdm(starts, desc="generate", disable=not show_progress, total=len(starts)):
            idx = order[s: s + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            gen = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=pad_id,
                eos_token_id=eos_id,
            )
            new = gen[:, enc["input_ids"].shape[1]:]
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            for i, t in zip(idx, texts):
                out[i] = t
        return out  # type: ignore[return-value]
    finally:
        tokenizer.padding_side = old_side
        if old_pad is None and tokenizer.pad_token is not None:
            tokenizer.pad_token = None


def accuracy_frame(records: list[dict]) -> pd.DataFrame:
    """Accuracy from per-sample records (keys suite, task, correct): one row per (suite, task),
    then per suite ``task="ALL"`` (micro: all items pooled) and ``task="MACRO"`` (macro: the
    unweighted mean of the per-task accuracies; its n is the item count and its correct the
    pooled count). Columns suite, task, n, correct, accuracy (percent, 0-100)."""
    cols = ["suite", "task", "n", "correct", "accuracy"]
    if not records:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame([{"suite": r["suite"], "task": r["task"], "correct": bool(r["correct"])} for r in records])
    per = (df.groupby(["suite", "task"], sort=True)["correct"].agg(["size", "sum"])
           .reset_index().rename(columns={"size": "n", "sum": "correct"}))
    per["n"] = per["n"].astype(int)
    per["correct"] = per["correct"].astype(int)
    per["accuracy"] = 100.0 * per["correct"] / per["n"]
    rows = []
    for suite, g in per.groupby("suite", sort=False):
        rows.extend(g.to_dict("records"))
        n, c = int(g["n"].sum()), int(g["correct"].sum())
        rows.append({"suite": suite, "task": "ALL", "n": n, "correct": c, "accuracy": 100.0 * c / n})
        rows.append({"suite": suite, "task": "MACRO", "n": n, "correct": c,
                     "accuracy": float(g["accuracy"].mean())})
    return pd.DataFrame(rows, columns=cols)


def evaluate_questions(model, tokenizer, questions: list[Question], answer_type_of: Callable[[str], str],
                       suite: str, max_new_tokens: int, batch_size: int) -> tuple[list[dict], pd.DataFrame]:
    """Generate greedily for ``questions`` (prompt: ``student_prompt(q.input)``) and score them.

    ``answer_type_of(task)`` gives the answer type of a task (see ``ANSWER_TYPES``).

    Returns ``(records, acc)``:
    records - one dict per question, in order: id, suite, task, gold, generation, extracted,
        correct, has_answer, contains_gold, complete;
    acc - columns suite, task, n, correct, accuracy (percent 0-100): one row per (suite, task),
        plus per suite ``task="ALL"`` = the MICRO average (all items pooled, so large tasks weigh
        more) and ``task="MACRO"`` = the MACRO average (mean of the per-task accuracies; the
        paper's BBH numbers are per-task averages, so tables should use MACRO and say so).
    """
    prompts = [student_prompt(q.input) for q in questions]
    gens = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    records = []
    for q, g in zip(questions, gens):
        s = score(g, q.target, answer_type_of(q.task))
        records.append({"id": q.id, "suite": suite, "task": q.task, "gold": q.target, "generation": g,
                        "extracted": s["extracted"], "correct": s["correct"], "has_answer": s["has_answer"],
                        "contains_gold": s["contains_gold"], "complete": s["complete"]})
    return records, accuracy_frame(records)
