"""Answer extraction and scoring of a generation against its gold answer.

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
* ``"text"``          -> the answer with whitespace collapsed, case kept.
* ``"dyck"``          -> a bracket sequence, one bracket per token: "} ]", "}]" and "} ]" all give
                         ``"} ]"``; anything but brackets gives None (dyck_languages; a dyck answer
                         holds no ".", so the sentence cut never splits it).
* ``"words"``         -> lower-cased words separated by single spaces; commas also separate
                         (word_sorting: "Apple, banana" -> ``"apple banana"``).
* ``"free_text"``     -> case-, whitespace- and punctuation-insensitive text (BB-sub exact-match
                         tasks): "Finding Nemo!" -> ``"finding nemo"``. Because such golds may hold
                         a "." ("Mr. Smith") or several paragraphs, :func:`score` also tries the
                         text up to every later sentence end or line break, and accepts a match
                         with any alias.

Option labels are ``(A)``..``(Z)``, or numbers ``(1)``..``(999)`` (ARC's (1)-(4); BB-sub tasks with
more than 26 options).

The gold is put through the same normaliser (a gold that does not normalise is compared as
stripped text), so single-character golds ("5", "0", "}") score like any other. A gold may come
with aliases (``score(..., aliases=...)``, ``score_full``): an answer equal to any of them is correct.

Diagnostics: ``has_answer`` (something was extracted), ``correct_format`` (:func:`correct_format`:
the extracted answer has the form of the answer type - an option label among the item's labels, a
closing-bracket sequence, lower-case words ... - even when it is wrong), ``contains_gold`` and
``complete`` (see :func:`score`).
"""
from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Callable

from edit.records import ANSWER_PHRASE

ANSWER_TYPES = ("option", "bool", "yes_no", "valid_invalid", "number", "text", "dyck", "words", "free_text")

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
    label = r"(?:[A-Za-z]|\d{1,3})"
    # "(A) or (B)", "A or B", "(A)/(C)" ... -> ambiguous
    second = rf"(?:\({label}\)|[A-Z]\)?|\d{{1,3}}\)?)(?!\w)"  # "a tall tree" is not a label
    if re.match(rf"^\(?{label}\)?{_CONJ}{second}", s):
        return None
    # the whole answer is one label: "(B)", "B", "b)", "(b)", "(1)", "1"
    m = re.fullmatch(rf"\(?({label})\)?", s)
    if m:
        return f"({m.group(1).upper()})"
    # a parenthesised label followed by the option's text: "(B) 12/25/1937"; exactly one distinct
    # STANDALONE label (so "(B) 2H_{2}O(l)" or "(D) p(x) = 3" still read as "(B)" / "(D)")
    paren = {x.upper() for x in re.findall(rf"(?<!\S)\(({label})\)(?=[\s,.;:!?]|$)", s)}
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


_OPEN_BRACKETS = "([{<"
_CLOSE_BRACKETS = ")]}>"


def _norm_dyck(s: str) -> str | None:
    chars = "".join(s.split())
    if not chars or any(c not in _OPEN_BRACKETS + _CLOSE_BRACKETS for c in chars):
        return None
    return " ".join(chars)


def _norm_word_list(s: str) -> str | None:
    words = [w.strip(_STRIP_CHARS) for w in s.replace(",", " ").lower().split()]
    words = [w for w in words if w]
    return " ".join(words) or None


def _norm_free_text(s: str) -> str | None:
    kept = "".join(" " if unicodedata.category(c).startswith("P") else c for c in s)
    out = " ".join(kept.casefold().split())
    return out or None


_NORMALISERS: dict[str, Callable[[str], str | None]] = {
    "option": _norm_option,
    "bool": lambda s: None if re.search(r"\bnot\b", s.lower()) else _norm_words(s, {"true": "True", "false": "False"}),
    "yes_no": lambda s: _norm_words(s, {"yes": "Yes", "no": "No"}),
    "valid_invalid": lambda s: _norm_words(s, {"valid": "valid", "invalid": "invalid"}),
    "number": _norm_number,
    "text": _norm_text,
    "dyck": _norm_dyck,
    "words": _norm_word_list,
    "free_text": _norm_free_text,
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


_SENTENCE_END_RE = re.compile(r"[.!?](?!\d)|\n")
_MAX_FREE_TEXT_CANDIDATES = 200


def _free_text_candidates(generation: str) -> list[str]:
    """Possible free-text answers after the last answer phrase: the text up to each sentence end
    or line break, then all of it (a gold such as "Mr. Smith", or BB-sub's multi-paragraph
    minute_mysteries_qa answers, holds "." and newlines that the ordinary cut would split)."""
    seg = locate(generation)
    if seg is None:
        return []
    ends = [m.start() for m in _SENTENCE_END_RE.finditer(seg)][:_MAX_FREE_TEXT_CANDIDATES]
    out = []
    for c in [seg[:e] for e in ends] + [seg]:
        n = normalise(clean(c), "free_text")
        if n is not None and n not in out:
            out.append(n)
    return out


def correct_format(extracted: str | None, answer_type: str, labels: tuple[str, ...] | list[str] = ()) -> bool:
    """Whether an extracted answer has the form of ``answer_type``, right or wrong: an option label
    (one of ``labels`` when they are given), True/False, Yes/No, valid/invalid, a number, a
    sequence of CLOSING brackets (dyck), lower-case words (words), any non-empty text otherwise.
    None (nothing extracted) is never of the correct format."""
    if answer_type not in _NORMALISERS:
        raise ValueError(f"unknown answer type {answer_type!r}; expected one of {ANSWER_TYPES}")
    if extracted is None or not extracted.strip():
        return False
    if answer_type == "option":
        return re.fullmatch(r"\((?:[A-Z]|\d{1,3})\)", extracted) is not None and (not labels or extracted in labels)
    if answer_type == "dyck":
        return all(tok in _CLOSE_BRACKETS for tok in extracted.split())
    if answer_type == "words":
        return all(re.fullmatch(r"[a-z][a-z&'\-]*", w) is not None for w in extracted.split())
    return True


def score(generation: str, gold: str, answer_type: str, *, aliases: tuple[str, ...] | list[str] = ()) -> dict:
    """Score one generation against its gold (and the gold's ``aliases``: any accepted answer).

    Returns ``{"correct", "extracted", "has_answer", "contains_gold", "complete"}``:
    correct - the extracted answer equals the normalised gold or an alias (False when nothing was
        extracted); for ``free_text`` the text up to every sentence end or line break after
        the answer phrase is tried;
    extracted - ``extract_answer(generation, answer_type)`` (for a correct ``free_text`` answer, the
        candidate that matched);
    has_answer - an answer could be extracted;
    contains_gold - the gold (or an alias) occurs anywhere in the generation as a whole token
        (diagnostic only: "5" is not found in "15" or "3.5"; case-insensitive except for "text");
    complete - the generation ends with a finished answer sentence (answer phrase, an answer,
        a final "." and nothing but whitespace after it), i.e. it was not cut off mid-answer
        and did not ramble on.
    """
    golds = [gold, *[a for a in aliases if a != gold]]
    extracted = extract_answer(generation, answer_type)
    golds_n = {normalise_gold(g, answer_type) for g in golds}
    correct = extracted is not None and extracted in golds_n
    if not correct and answer_type == "free_text" and isinstance(generation, str):
        hit = next((c for c in _free_text_candidates(generation) if c in golds_n), None)
        if hit is not None:
            extracted, correct = hit, True
    return {
        "correct": correct,
        "extracted": extracted,
        "has_answer": extracted is not None,
        "contains_gold": isinstance(generation, str) and any(_contains(generation, g, answer_type) for g in golds),
        "complete": isinstance(generation, str) and _complete(generation),
    }


def score_full(generation: str, golds: str | tuple[str, ...] | list[str], answer_type: str,
               labels: tuple[str, ...] | list[str] = ()) -> dict:
    """:func:`score` against ``golds`` (the gold first, then its aliases) plus two diagnostics:
    ``correct_format`` (:func:`correct_format` of the extracted answer, with the item's option
    ``labels``) and ``gold_matched`` (the accepted answer it equals, or None)."""
    golds = [golds] if isinstance(golds, str) else list(golds)
    if not golds:
        raise ValueError("score_full needs at least one gold answer")
    s = score(generation, golds[0], answer_type, aliases=golds[1:])
    matched = None
    if s["correct"]:
        matched = next((g for g in golds if normalise_gold(g, answer_type) == s["extracted"]), golds[0])
    return {**s, "correct_format": correct_format(s["extracted"], answer_type, tuple(labels)),
            "gold_matched": matched}
