"""The EDIT prompts: CEP (CoT extraction), AHP (Answer Hint Prompt), CCP (Contrastive CoTs Prompt),
and the parsing of a teacher's reply into a :class:`~edit.records.TeacherCoT`.

Two prompt sources (``teacher.prompt_source``):

``ours`` (default)
    Built from BBH's official 3-shot CoT prompt files (``<mirror>/bbh/cot-prompts/<task>.txt``:
    a canary line, ``-----``, the task description, 3 exemplars "Q: ... A: Let's think step by
    step. ... So the answer is X."), with our own instruction wording (``templates/*.txt``).
    Every exemplar's final "So the answer is X." becomes "Therefore, the answer is X."
    (:data:`edit.records.ANSWER_PHRASE`).

    * CEP: description + instruction, the 3 exemplars, then ``Q: <question>`` and
      ``A: Let's think step by step.``
    * AHP: the same exemplars with a line ``Hint: the correct answer is X.`` between each
      exemplar's question and its ``A:`` line, and the same hint (the gold) before the query's
      ``A:`` slot.
    * CCP: (question, right CoT, wrong CoT) exemplars drawn from THIS run's own D-dual pairs
      (an AHP-rectified CoT as the right response, the teacher's own wrong CoT as the wrong one;
      :func:`pick_contrastive_examples`), then the query's question and right response; the model
      writes the wrong response.

``edit_files``
    EDIT's official prompt files (``<mirror>/edit_prompts/{cot-prompts,cot-ahp,cot-ccp}/<task>.txt``)
    used verbatim: the file's text with ``{QUESTION}`` (and ``{CORRECT}`` = the gold for AHP,
    ``{RIGHT}`` = the correct CoT and ``{WRONG}`` = "" for CCP) replaced, nothing else changed.
    The official CCP file ends ``Wrong Response: {WRONG}``: the model completes the wrong
    response after it (the official code does not show how ``{WRONG}`` was filled; an empty
    string is the reading that makes the prompt a completion request).

Chat layout: ONE user message holding the whole prompt (instruction, exemplars and query), preceded
by one system message only when a ``system_prompt`` is set (default none). No assistant turns: the
few-shot exemplars stay inside the user message, as in the paper's code.

Templates are ``edit/llm/templates/*.txt`` with ``{{name}}`` placeholders, filled in one pass
(a value is never scanned again, so braces in BBH questions such as Dyck words are safe); the
file's final newline is not part of the template.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable

from edit.benchmarks.sources import verified_mirror_file
from edit.records import ANSWER_PHRASE, Question, TeacherCoT, stable_seed
from edit.scoring import extract_answer

PROMPT_KINDS = ("cep", "ahp", "ccp")
PROMPT_SOURCES = ("ours", "edit_files")
#: The official EDIT file folder of each prompt kind under ``<mirror>/edit_prompts/``.
EDIT_PROMPT_DIRS = {"cep": "cot-prompts", "ahp": "cot-ahp", "ccp": "cot-ccp"}
COT_START = "A: Let's think step by step."
_BBH_PHRASE = "So the answer is"

_PLACEHOLDER_RE = re.compile(r"\{\{(\w+)\}\}")


# ---------------------------------------------------------------------------------- templates
@lru_cache(maxsize=None)
def load_template(name: str) -> str:
    """The text of ``edit/llm/templates/<name>.txt`` without its final newline."""
    try:
        text = resources.files("edit.llm").joinpath("templates", f"{name}.txt").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"prompt template {name!r} not found (edit/llm/templates/{name}.txt)") from None
    return text[:-1] if text.endswith("\n") else text


def render(template: str, name: str = "template", **values: str) -> str:
    """Fill ``{{key}}`` placeholders of ``template`` in one pass. A placeholder without a value, or
    a value without a placeholder, is a ValueError naming the template ``name``."""
    used = set(_PLACEHOLDER_RE.findall(template))
    missing = used - set(values)
    extra = set(values) - used
    if missing or extra:
        raise ValueError(f"template {name!r}: missing values for {sorted(missing)}, "
                         f"no placeholder for {sorted(extra)}")
    return _PLACEHOLDER_RE.sub(lambda m: str(values[m.group(1)]), template)


# ------------------------------------------------------------------------ BBH exemplar files
@dataclass(frozen=True)
class Exemplar:
    """One few-shot exemplar: ``cot`` ends "Therefore, the answer is <answer>."."""

    question: str
    cot: str
    answer: str


@dataclass(frozen=True)
class TaskPrompt:
    """A task's description and exemplars, parsed from BBH's CoT prompt file."""

    task: str
    description: str
    exemplars: tuple[Exemplar, ...]


def _final_answer(cot: str, phrase: str, where: str) -> tuple[str, str]:
    """(cot with its LAST ``phrase`` replaced by ANSWER_PHRASE, the answer written after it)."""
    i = cot.rfind(phrase)
    if i < 0:
        raise ValueError(f"{where}: exemplar CoT has no {phrase!r}")
    tail = cot[i + len(phrase):]
    m = re.search(r"\.(?!\d)\s*$", tail)
    answer = (tail[: m.start()] if m else tail).strip()
    if not answer:
        raise ValueError(f"{where}: exemplar CoT has no answer after {phrase!r}")
    return cot[:i] + ANSWER_PHRASE + tail, answer


def parse_bbh_cot_prompt(text: str, task: str = "", where: str = "") -> TaskPrompt:
    """Parse a BBH CoT prompt file (canary line, ``-----``, description, exemplars) into a
    :class:`TaskPrompt`, converting each exemplar's final "So the answer is X." to
    "Therefore, the answer is X."."""
    where = where or task or "prompt"
    text = text.replace("\r\n", "\n")
    head, sep, body = text.partition("\n-----\n")
    if not sep:
        body = text  # tolerate a file without the canary header
    parts = re.split(r"(?m)^Q: ", body)
    description = parts[0].strip()
    exemplars = []
    for k, block in enumerate(parts[1:], 1):
        q, sep, cot = block.partition("\n" + COT_START)
        if not sep:
            raise ValueError(f"{where}: exemplar {k} has no {COT_START!r} line")
        cot = cot.strip("\n").rstrip()
        phrase = _BBH_PHRASE if _BBH_PHRASE in cot else ANSWER_PHRASE
        cot, answer = _final_answer(cot, phrase, f"{where}, exemplar {k}")
        exemplars.append(Exemplar(q.rstrip("\n"), cot, answer))
    if not description or not exemplars:
        raise ValueError(f"{where}: expected a task description and exemplars")
    return TaskPrompt(task, description, tuple(exemplars))


def bbh_cot_prompt_file(mirror: str | Path, task: str) -> Path:
    """``<mirror>/bbh/cot-prompts/<task>.txt``, checked against its pinned sha256
    (:func:`edit.benchmarks.sources.verified_mirror_file`; FileNotFoundError naming it when missing)."""
    return verified_mirror_file(mirror, f"bbh/cot-prompts/{task}.txt")


def edit_prompt_file(mirror: str | Path, kind: str, task: str) -> Path:
    """``<mirror>/edit_prompts/<dir>/<task>.txt`` of prompt ``kind`` (cep, ahp or ccp), checked
    against its pinned sha256."""
    if kind not in EDIT_PROMPT_DIRS:
        raise ValueError(f"unknown prompt kind {kind!r}; expected one of {PROMPT_KINDS}")
    return verified_mirror_file(mirror, f"edit_prompts/{EDIT_PROMPT_DIRS[kind]}/{task}.txt")


def read_exact(path: Path) -> str:
    """A file's text, byte for byte (no newline translation)."""
    return path.read_bytes().decode("utf-8")


def fill_edit_file(text: str, **values: str) -> str:
    """An official EDIT prompt file with its ``{NAME}`` placeholders replaced in one pass (a value
    that itself contains ``{CORRECT}`` or the like is not touched again); everything else verbatim."""
    rx = re.compile("|".join(re.escape("{" + k + "}") for k in values))
    return rx.sub(lambda m: values[m.group(0)[1:-1]], text)


def read_vanilla_prompt(mirror: str | Path, name: str) -> str:
    """An EDIT ``prompt_for_vanilla/<name>.txt`` prompt (e.g. ``prompt_3shotcot_for_vanilla``) with
    its literal two-character ``\\n`` escapes turned into newlines."""
    return read_exact(verified_mirror_file(mirror, f"edit_prompts/prompt_for_vanilla/{name}.txt")).replace("\\n", "\n")


# ----------------------------------------------------------------------- contrastive examples
@dataclass(frozen=True)
class ContrastiveExample:
    """A (right, wrong) CoT pair of one question, used as a CCP exemplar."""

    id: str
    task: str
    question: str
    right: str
    wrong: str


def pick_contrastive_examples(pairs: Iterable[dict], tasks: Iterable[str], k: int = 3, seed: int = 0,
                              max_chars: int | None = None) -> dict[str, list[ContrastiveExample]]:
    """CCP exemplars per task from this run's own D-dual pairs (``pair_type == "D-dual"``:
    ``chosen`` = the AHP rectification = right, ``rejected`` = the teacher's wrong CoT).

    For each task of ``tasks``: ``k`` pairs drawn without replacement from that task's pairs with
    ``random.Random(stable_seed(seed, "ccp", task))`` (candidates sorted by id first, so the
    choice does not depend on the order of ``pairs``); a task with fewer than ``k`` pairs of its
    own is topped up with pairs of OTHER tasks drawn the same way; a run with no pairs at all gives
    empty lists (zero-shot CCP). Pairs whose right or wrong CoT is longer than ``max_chars``
    are not used. Records of another pair type are ignored."""
    by_task: dict[str, list[ContrastiveExample]] = {}
    for p in pairs:
        if p.get("pair_type", "D-dual") != "D-dual":
            continue
        ex = ContrastiveExample(p["id"], p["task"], p["question"], p["chosen"], p["rejected"])
        if max_chars is not None and max(len(ex.right), len(ex.wrong)) > max_chars:
            continue
        by_task.setdefault(ex.task, []).append(ex)
    for lst in by_task.values():
        lst.sort(key=lambda e: e.id)
    out: dict[str, list[ContrastiveExample]] = {}
    for task in tasks:
        rng = random.Random(stable_seed(seed, "ccp", task))
        own = by_task.get(task, [])
        chosen = rng.sample(own, min(k, len(own)))
        if len(chosen) < k:
            others = [e for t in sorted(by_task) if t != task for e in by_task[t]]
            chosen += rng.sample(others, min(k - len(chosen), len(others)))
        out[task] = chosen
    return out


# ------------------------------------------------------------------------------- the builder
class PromptBuilder:
    """Builds the chat messages of CEP, AHP and CCP for a question (see the module docstring).

    mirror:        the data mirror holding ``bbh/cot-prompts`` (and ``edit_prompts`` for
                   ``source="edit_files"``)
    source:        ``"ours"`` or ``"edit_files"``
    system_prompt: optional system message put before the user message
    """

    def __init__(self, mirror: str | Path, source: str = "ours", system_prompt: str | None = None):
        if source not in PROMPT_SOURCES:
            raise ValueError(f"teacher.prompt_source must be one of {PROMPT_SOURCES}, got {source!r}")
        self.mirror = Path(mirror)
        self.source = source
        self.system_prompt = system_prompt
        self._task_prompts: dict[str, TaskPrompt] = {}
        self._files: dict[tuple[str, str], str] = {}

    # ---------------------------------------------------------------- sources
    def task_prompt(self, task: str) -> TaskPrompt:
        """The parsed BBH CoT prompt of ``task`` (cached)."""
        if task not in self._task_prompts:
            path = bbh_cot_prompt_file(self.mirror, task)
            self._task_prompts[task] = parse_bbh_cot_prompt(read_exact(path), task, str(path))
        return self._task_prompts[task]

    def edit_file(self, kind: str, task: str) -> str:
        """The verbatim text of EDIT's ``kind`` prompt file for ``task`` (cached)."""
        if (kind, task) not in self._files:
            self._files[(kind, task)] = read_exact(edit_prompt_file(self.mirror, kind, task))
        return self._files[(kind, task)]

    def messages(self, prompt: str) -> list[dict]:
        """The chat layout: [system?] + one user message."""
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return msgs + [{"role": "user", "content": prompt}]

    # ---------------------------------------------------------------- prompts
    def cep_prompt(self, q: Question) -> str:
        if self.source == "edit_files":
            return fill_edit_file(self.edit_file("cep", q.task), QUESTION=q.input)
        tp = self.task_prompt(q.task)
        shots = [render(load_template("cep_exemplar"), "cep_exemplar", question=e.question, cot=e.cot)
                 for e in tp.exemplars]
        return render(load_template("cep"), "cep", description=tp.description,
                      exemplars=_block(shots), question=q.input)

    def ahp_prompt(self, q: Question) -> str:
        if self.source == "edit_files":
            return fill_edit_file(self.edit_file("ahp", q.task), QUESTION=q.input, CORRECT=q.target)
        tp = self.task_prompt(q.task)
        shots = [render(load_template("ahp_exemplar"), "ahp_exemplar", question=e.question, answer=e.answer,
                        cot=e.cot) for e in tp.exemplars]
        return render(load_template("ahp"), "ahp", description=tp.description, exemplars=_block(shots),
                      question=q.input, answer=q.target)

    def ccp_prompt(self, q: Question, right: str, examples: Iterable[ContrastiveExample] = ()) -> str:
        """CCP for ``q`` whose correct CoT is ``right``; ``examples`` are ignored for ``edit_files``
        (the official file carries its own exemplars)."""
        if self.source == "edit_files":
            return fill_edit_file(self.edit_file("ccp", q.task), QUESTION=q.input, RIGHT=right, WRONG="")
        tp = self.task_prompt(q.task)
        shots = [render(load_template("ccp_exemplar"), "ccp_exemplar", question=e.question, right=e.right,
                        wrong=e.wrong) for e in examples]
        return render(load_template("ccp"), "ccp", description=tp.description, exemplars=_block(shots),
                      question=q.input, right=right)

    def cep_messages(self, q: Question) -> list[dict]:
        return self.messages(self.cep_prompt(q))

    def ahp_messages(self, q: Question) -> list[dict]:
        return self.messages(self.ahp_prompt(q))

    def ccp_messages(self, q: Question, right: str, examples: Iterable[ContrastiveExample] = ()) -> list[dict]:
        return self.messages(self.ccp_prompt(q, right, examples))


def _block(shots: list[str]) -> str:
    """Exemplars separated by blank lines, followed by one blank line (nothing when empty)."""
    return "".join(s + "\n\n" for s in shots)


# ---------------------------------------------------------------------------- reply parsing
_STEP_RE = re.compile(r"^\s*(?:A:\s*)?Let'?s think step by step\.?[ \t]*\n?", re.IGNORECASE)
_HINT_RE = re.compile(r"^\s*(?:H|Hint)\s*:[^\n]*\n", re.IGNORECASE)
_LABEL_RE = re.compile(r"^\s*(?:\*\*)?(?:wrong|right|correct)\s+response(?:\*\*)?\s*:\s*(?:\*\*)?[ \t]*\n?",
                       re.IGNORECASE)
_NEXT_Q_RE = re.compile(r"\n\s*(?:Q|Question|\[Question\]|Right response|Wrong response)\s*:", re.IGNORECASE)
_OWN_PHRASE_RE = re.compile(re.escape(ANSWER_PHRASE), re.IGNORECASE)
_ANY_PHRASE_RE = re.compile(r"the\s+answer\s+is\b", re.IGNORECASE)
_SENTENCE_END_RE = re.compile(r"\n|\.(?!\d)")


def clean_reply(reply: str) -> tuple[str, dict]:
    """The CoT inside a teacher's reply, and notes on what was cut.

    1. CRLF -> LF; leading echoes of the prompt are dropped: "A: Let's think step by step.",
       a "Hint: ..." / "H: ..." line, a "Wrong response:" / "Right response:" label;
    2. anything from a following "Q:" / "Question:" / "Right response:" / "Wrong response:" line
       on (the model going on with a new exemplar) is cut;
    3. the text is trimmed after the answer sentence: the FIRST "Therefore, the answer is"
       (case-insensitive), else the LAST plain "the answer is"; the sentence ends at the first
       newline or "." not followed by a digit; a sentence that ends without "." gets one.
    Without an answer phrase the (stripped) text is kept whole.
    """
    notes: dict = {}
    text = (reply or "").replace("\r\n", "\n")
    changed = True
    while changed:  # leading echoes of the prompt, in any order
        changed = False
        for rx, note in ((_HINT_RE, "dropped_hint"), (_STEP_RE, "dropped_step_prefix"), (_LABEL_RE, "dropped_label")):
            m = rx.match(text)
            if m and m.end() > 0:
                text = text[m.end():]
                notes[note] = True
                changed = True
    text = text.strip()
    m = _NEXT_Q_RE.search(text)
    if m:
        notes["cut_continuation"] = len(text) - m.start()
        text = text[: m.start()].rstrip()
    m = _OWN_PHRASE_RE.search(text)
    if m is None:
        for m in _ANY_PHRASE_RE.finditer(text):
            pass
    if m is not None:
        tail = text[m.end():]
        end = _SENTENCE_END_RE.search(tail)
        if end is not None and end.group(0) == ".":
            stop = m.end() + end.end()
            body = text[:stop]
        else:
            stop = m.end() + (end.start() if end is not None else len(tail))
            body = text[:stop].rstrip()
            if text[m.end():stop].strip() and not body.endswith((".", "!", "?")):
                body += "."
                notes["added_period"] = True
        if text[stop:].strip():
            notes["trimmed_after_answer"] = len(text) - stop
        text = body
    return text, notes


def parse_reply(reply: str | None, answer_type: str, kind: str = "cep", meta: dict | None = None) -> TeacherCoT:
    """A teacher reply as a :class:`TeacherCoT`: ``text`` = :func:`clean_reply`, ``answer`` =
    :func:`edit.scoring.extract_answer` with the task's answer type (None without an answer
    phrase or an unambiguous answer). ``meta`` gets the prompt kind, the raw reply and the notes."""
    text, notes = clean_reply(reply or "")
    answer = extract_answer(text, answer_type) if text else None
    return TeacherCoT(text=text, answer=answer, meta={**(meta or {}), "prompt": kind, "raw": reply, **notes})

