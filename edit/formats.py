"""How a question and a response are laid out for the student: one template per method, used by
training and by evaluation alike, so the two cannot drift apart.

A :class:`Template` is one (prompt, response) layout: an optional task marker in front of the
question ("[CoT]", "[label]", ...) and a ``kind`` that says what the response is:

* ``cot``            - the record's full CoT, ending "Therefore, the answer is X." (correct CoTs);
* ``answer``         - only the answer sentence "Therefore, the answer is <gold>.";
* ``rationale``      - the CoT without its final answer sentence (distilling step-by-step);
* ``counterfactual`` - a WRONG CoT, ending in its wrong answer (SCOTT's counterfactual task).

A :class:`Format` (one per method, registry :data:`FORMATS`) says which templates a correct record
(D+, D-+) and a wrong record (D-, D+-) become, which template the student is prompted with at
inference, and which template dual pairs (KRSL, DPO) are trained under. Untuned formats (zero- and
few-shot, with or without CoT) have no training templates: their inference prompt is an instruction,
optional exemplars rendered by the very template that renders the question, and the question.

Every prompt ends in a newline, so that the response's first token never merges with the prompt's
last one: training tokenizes the prompt and the response separately and concatenates the ids, and
inference tokenizes the same prompt string, so the training sequence starts with exactly the
inference prompt's ids.
"""
from __future__ import annotations

from dataclasses import dataclass

from edit.records import ANSWER_PHRASE

COT_TRIGGER = "Let's think step by step."

#: Sources whose response reaches the gold answer / a wrong answer (edit/dual.py).
CORRECT_SOURCES = ("D+", "D-+")
WRONG_SOURCES = ("D-", "D+-")

#: The instruction of the untuned rows (our wording; the paper's vanilla prompts ask the same).
INSTRUCTION = 'Answer the question. End your response with "Therefore, the answer is X." where X is the answer.'

KINDS = ("cot", "answer", "rationale", "counterfactual")


def student_prompt(question_input: str) -> str:
    """The prompt of the plain CoT template (Std-CoT, EDIT); the response (a CoT ending in the
    answer phrase) follows it."""
    return f"Q: {question_input}\nA: {COT_TRIGGER}\n"


def answer_sentence(answer: str) -> str:
    return f"{ANSWER_PHRASE} {answer}."


def strip_answer_sentence(cot: str) -> str:
    """``cot`` without its last answer sentence ("Therefore, the answer is X." and anything after
    it), right-stripped; the whole text when it has no answer phrase."""
    cut = cot.rfind(ANSWER_PHRASE)
    return (cot[:cut] if cut >= 0 else cot).rstrip()


@dataclass(frozen=True)
class Template:
    """One (prompt, response) layout: ``marker`` (may be empty) and ``kind`` (see module doc)."""

    kind: str
    marker: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown template kind {self.kind!r}; expected one of {KINDS}")

    def prompt(self, question_input: str) -> str:
        head = f"{self.marker} " if self.marker else ""
        if self.kind == "answer":
            return f"{head}Q: {question_input}\nA:\n"
        return f"{head}Q: {question_input}\nA: {COT_TRIGGER}\n"

    def response(self, record: dict) -> str:
        """The response text of ``record`` (a CoT record: question, gold, response, source)."""
        if self.kind == "answer":
            return answer_sentence(record["gold"])
        if self.kind == "rationale":
            return strip_answer_sentence(record["response"])
        return record["response"]


@dataclass(frozen=True)
class Format:
    """A method's single template set.

    correct / wrong: templates a correct / wrong record becomes (empty: such records are refused);
    infer: the templates the student may be prompted with at inference, by name, and
    default_infer the one used unless a method picks another; pair: the template of both CoTs of a
    dual pair (KRSL / DPO), None when the format has no full-CoT response; untuned: no training,
    ``shots`` exemplars of the inference template before the question (0 for zero-shot).
    """

    name: str
    correct: tuple[Template, ...] = ()
    wrong: tuple[Template, ...] = ()
    infer: tuple[tuple[str, Template], ...] = ()
    default_infer: str = "cot"
    pair: Template | None = None
    untuned: bool = False
    few_shot: bool = False
    doc: str = ""

    def infer_template(self, infer: str | None = None) -> Template:
        name = infer or self.default_infer
        for key, t in self.infer:
            if key == name:
                return t
        raise ValueError(f"format {self.name!r} has no inference template {name!r}; "
                         f"choose one of {[k for k, _ in self.infer]}")

    def examples(self, record: dict) -> list[tuple[str, str]]:
        """The (prompt, response) training pairs of one CoT record (by its ``source``)."""
        source = record.get("source")
        if source in CORRECT_SOURCES:
            templates = self.correct
        elif source in WRONG_SOURCES:
            templates = self.wrong
        else:
            raise ValueError(f"record {record.get('id')}: unknown source {source!r}; "
                             f"expected one of {CORRECT_SOURCES + WRONG_SOURCES}")
        if not templates:
            raise ValueError(f"record {record.get('id')}: format {self.name!r} cannot train on {source} records")
        return [(t.prompt(record["question"]), t.response(record)) for t in templates]

    def inference_prompt(self, question_input: str, infer: str | None = None,
                         exemplars: list[dict] | tuple = ()) -> str:
        """The prompt the student is given at test time. ``exemplars`` (CoT records with
        question, gold, response) are used by few-shot formats only and must then be given."""
        t = self.infer_template(infer)
        if not self.untuned:
            return t.prompt(question_input)
        if self.few_shot and not exemplars:
            raise ValueError(f"format {self.name!r} is few-shot: pass its exemplars")
        shots = "".join(f"{t.prompt(ex['question'])}{t.response(ex)}\n\n" for ex in (exemplars if self.few_shot else ()))
        return f"{INSTRUCTION}\n\n{shots}{t.prompt(question_input)}"


_COT = Template("cot")
_ANSWER = Template("answer")


def _fmt(name, doc, **kw) -> Format:
    return Format(name=name, doc=doc, **kw)


#: The registry of formats; a method names one (``format:``), default ``cot``.
FORMATS: dict[str, Format] = {f.name: f for f in (
    _fmt("cot", "Std-CoT / EDIT: question -> CoT ending in the answer sentence.",
         correct=(_COT,), infer=(("cot", _COT),), pair=_COT),
    _fmt("answer", "Answer-only SFT: question -> 'Therefore, the answer is <gold>.'",
         correct=(_ANSWER,), infer=(("answer", _ANSWER),), default_infer="answer"),
    _fmt("mt_cot", "MT-CoT: '[CoT]' task -> CoT + answer, '[Answer]' task -> answer. Inference uses the "
                   "[CoT] task by default (the paper evaluates MT-CoT with self-consistency over sampled "
                   "CoTs, Table 8); `infer: answer` picks the [Answer] task.",
         correct=(Template("cot", "[CoT]"), Template("answer", "[Answer]")),
         infer=(("cot", Template("cot", "[CoT]")), ("answer", Template("answer", "[Answer]"))),
         pair=Template("cot", "[CoT]")),
    _fmt("sbs", "Distilling step-by-step: '[rationale]' task -> the CoT without its answer sentence, "
                "'[label]' task -> the answer sentence; the answer is predicted directly at test time.",
         correct=(Template("rationale", "[rationale]"), Template("answer", "[label]")),
         infer=(("answer", Template("answer", "[label]")), ("rationale", Template("rationale", "[rationale]"))),
         default_infer="answer"),
    _fmt("scott", "SCOTT (student side): '[factual]' correct CoTs, '[counterfactual]' wrong CoTs leading to "
                  "their wrong answers; inference with '[factual]'.",
         correct=(Template("cot", "[factual]"),), wrong=(Template("counterfactual", "[counterfactual]"),),
         infer=(("cot", Template("cot", "[factual]")),), pair=Template("cot", "[factual]")),
    _fmt("dual_cot", "Std-CoT with dual CoTs: correct CoTs under the plain CoT prompt, wrong CoTs under a "
                     "'[counterfactual]' marker; inference with the plain CoT prompt.",
         correct=(_COT,), wrong=(Template("counterfactual", "[counterfactual]"),),
         infer=(("cot", _COT),), pair=_COT),
    _fmt("zero_shot", "Untuned student, zero-shot: instruction + question, direct answer.",
         infer=(("answer", _ANSWER),), default_infer="answer", untuned=True),
    _fmt("zero_shot_cot", "Untuned student, zero-shot CoT: instruction + question + 'Let's think step by step.'",
         infer=(("cot", _COT),), untuned=True),
    _fmt("few_shot", "Untuned student, few-shot: instruction + exemplars (question -> answer sentence) + question.",
         infer=(("answer", _ANSWER),), default_infer="answer", untuned=True, few_shot=True),
    _fmt("few_shot_cot", "Untuned student, few-shot CoT: instruction + exemplars (question -> CoT) + question.",
         infer=(("cot", _COT),), untuned=True, few_shot=True),
)}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}; expected one of {sorted(FORMATS)}") from None
