"""The prompt-driven LLM teacher: CEP, AHP and CCP (:mod:`edit.llm.prompts`) sent through any
:class:`~edit.llm.base.ChatBackend`, the replies parsed into :class:`~edit.records.TeacherCoT`.

Each batch call (``generate_cots``, ``rectify_many``, ``corrupt_many``) builds all its requests
first and hands them to the backend in ONE ``complete`` call, so a backend can run them
concurrently (OpenAI-compatible servers) or in batches (local transformers). A failed call gives
a TeacherCoT with empty text, no answer and ``meta["error"]``; a reply without an extractable
answer gives ``answer=None``: :func:`edit.dual.build_dual_cots` counts and skips both.

A reply without the answer phrase is resampled at most ``max_resamples`` times with the
bounded policy :func:`edit.llm.openai_backend.complete_with_answer` (higher temperature, new
sample index; never an unbounded retry loop); with ``max_resamples: 0`` each request is sent once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from edit.benchmarks.suites import answer_type
from edit.llm.base import ChatBackend, ChatRequest, ChatResult
from edit.llm.openai_backend import complete_with_answer
from edit.llm.prompts import (
    PROMPT_KINDS,
    ContrastiveExample,
    PromptBuilder,
    parse_reply,
    pick_contrastive_examples,
)
from edit.records import Question, TeacherCoT
from edit.teacher import Teacher

#: Sampling used when the params give none: greedy, room for BBH-length CoTs.
DEFAULT_SAMPLING = {"temperature": 0.0, "max_tokens": 1024}


def sampling_per_kind(sampling: dict | None) -> dict[str, dict]:
    """``{"cep": {...}, "ahp": {...}, "ccp": {...}}`` from a params ``sampling`` section: its flat
    keys apply to every prompt, a ``cep`` / ``ahp`` / ``ccp`` sub-dict overrides them for that
    prompt; both over :data:`DEFAULT_SAMPLING`."""
    sampling = dict(sampling or {})
    shared = {k: v for k, v in sampling.items() if k not in PROMPT_KINDS}
    bad = [k for k, v in sampling.items() if k in PROMPT_KINDS and not isinstance(v, dict)]
    if bad:
        raise ValueError(f"teacher.sampling.{bad[0]} must be a mapping of sampling parameters")
    return {kind: {**DEFAULT_SAMPLING, **shared, **(sampling.get(kind) or {})} for kind in PROMPT_KINDS}


class LLMTeacher(Teacher):
    """A teacher that prompts a chat model.

    backend:        any ChatBackend (wrap it in ``edit.llm.cache.CachedBackend`` to persist calls)
    prompts:        a :class:`PromptBuilder` (mirror, prompt source, system prompt)
    sampling:       per-kind sampling parameters (see :func:`sampling_per_kind`)
    answer_type_of: task -> answer type (default: :func:`edit.benchmarks.suites.answer_type`, every BBH task)
    ccp_examples:   number of (right, wrong) CCP exemplars per task from this run's D-dual pairs
    ccp_max_chars:  pairs with a CoT longer than this are not used as CCP exemplars (None: any)
    seed:           seeds the choice of CCP exemplars
    max_resamples:  bounded resampling of replies without the answer phrase (0: none)
    temperature_step, max_temperature: the resampling temperature schedule
    """

    def __init__(self, backend: ChatBackend, prompts: PromptBuilder, sampling: dict | None = None,
                 answer_type_of: Callable[[str], str] | None = None, ccp_examples: int = 3,
                 ccp_max_chars: int | None = 4000, seed: int = 0, max_resamples: int = 2,
                 temperature_step: float = 0.3, max_temperature: float = 1.0):
        if int(ccp_examples) < 0:
            raise ValueError(f"teacher.ccp_examples must be >= 0, got {ccp_examples}")
        if int(max_resamples) < 0:
            raise ValueError(f"teacher.max_resamples must be >= 0, got {max_resamples}")
        self.backend = backend
        self.prompts = prompts
        self.sampling = sampling_per_kind(sampling)
        self.answer_type_of = answer_type_of or answer_type
        self.ccp_examples = int(ccp_examples)
        self.ccp_max_chars = ccp_max_chars
        self.seed = int(seed)
        self.max_resamples = int(max_resamples)
        self.temperature_step = float(temperature_step)
        self.max_temperature = float(max_temperature)
        self.name = f"llm:{backend.name}:{backend.model}"
        self._pairs: list[dict] = []
        self._examples: dict[str, list[ContrastiveExample]] = {}

    @classmethod
    def from_settings(cls, backend: ChatBackend, section: dict, mirror: str | Path) -> "LLMTeacher":
        """From the ``teacher`` params section (``prompt_source``, ``system_prompt``, ``sampling``,
        ``ccp_examples``, ``ccp_max_chars``, ``seed``, ``max_resamples``, ``temperature_step``,
        ``max_temperature``; other keys are the backend's)."""
        prompts = PromptBuilder(mirror, section["prompt_source"], section["system_prompt"])
        kw = {k: section[k] for k in ("ccp_examples", "ccp_max_chars", "seed", "max_resamples",
                                      "temperature_step", "max_temperature")}
        return cls(backend, prompts, section["sampling"], **kw)

    # ------------------------------------------------------------------ plumbing
    def request(self, kind: str, messages: list[dict]) -> ChatRequest:
        return ChatRequest.make(messages, self.sampling[kind], 0, tag=kind)

    def _complete(self, requests: list[ChatRequest], progress: bool) -> list[tuple[ChatResult, int]]:
        """(result, resamples) per request, in order."""
        if not requests:
            return []
        if self.max_resamples > 0:
            kept = complete_with_answer(self.backend, requests, max_resamples=self.max_resamples,
                                        temperature_step=self.temperature_step,
                                        max_temperature=self.max_temperature, progress=progress)
            return [(k.result, k.resamples) for k in kept]
        results = self.backend.complete(requests, progress=progress)
        if len(results) != len(requests):
            raise RuntimeError(f"backend {self.backend.name}/{self.backend.model} returned {len(results)} "
                               f"results for {len(requests)} requests")
        return [(r, 0) for r in results]

    def _cot(self, kind: str, q: Question, result: ChatResult, resamples: int) -> TeacherCoT:
        meta = {"prompt": kind, "finish_reason": result.finish_reason, "usage": dict(result.usage or {}),
                "cached": result.cached, "resamples": resamples, "teacher": self.name}
        if not result.ok:
            return TeacherCoT(text="", answer=None, meta={**meta, "error": result.error or "no reply text"})
        return parse_reply(result.text, self.answer_type_of(q.task), kind, meta)

    def _run(self, kind: str, questions: list[Question], messages: list[list[dict]], progress: bool) -> list[TeacherCoT]:
        got = self._complete([self.request(kind, m) for m in messages], progress)
        return [self._cot(kind, q, r, n) for q, (r, n) in zip(questions, got)]

    # ------------------------------------------------------------------ batch calls
    def generate_cots(self, questions: list[Question], progress: bool = False) -> list[TeacherCoT]:
        return self._run("cep", questions, [self.prompts.cep_messages(q) for q in questions], progress)

    def rectify_many(self, items: list[tuple[Question, TeacherCoT]], progress: bool = False) -> list[TeacherCoT]:
        qs = [q for q, _ in items]
        return self._run("ahp", qs, [self.prompts.ahp_messages(q) for q in qs], progress)

    def corrupt_many(self, items: list[tuple[Question, TeacherCoT]], progress: bool = False) -> list[TeacherCoT]:
        qs = [q for q, _ in items]
        examples = self.contrastive_examples(sorted({q.task for q in qs}))
        msgs = [self.prompts.ccp_messages(q, c.text, examples.get(q.task, [])) for q, c in items]
        return self._run("ccp", qs, msgs, progress)

    def use_contrastive_examples(self, pairs: list[dict]) -> None:
        """Keep this run's D-dual pairs; CCP exemplars are drawn from them per task."""
        self._pairs = [p for p in pairs if p.get("pair_type") == "D-dual"]
        self._examples = {}

    def contrastive_examples(self, tasks: list[str]) -> dict[str, list[ContrastiveExample]]:
        """The CCP exemplars of ``tasks`` (:func:`pick_contrastive_examples`; fixed per task once drawn)."""
        need = [t for t in tasks if t not in self._examples]
        if need:
            self._examples.update(pick_contrastive_examples(self._pairs, need, self.ccp_examples, self.seed,
                                                            self.ccp_max_chars))
        return {t: self._examples[t] for t in tasks}

    # ------------------------------------------------------------------ single calls
    def generate_cot(self, question: Question) -> TeacherCoT:
        return self.generate_cots([question])[0]

    def rectify(self, question: Question, wrong: TeacherCoT) -> TeacherCoT:
        return self.rectify_many([(question, wrong)])[0]

    def corrupt(self, question: Question, correct: TeacherCoT) -> TeacherCoT:
        return self.corrupt_many([(question, correct)])[0]
