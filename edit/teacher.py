"""The teacher interface. The oracle implements it; real LLM backends (OpenAI-compatible, local
transformers) implement the same three calls, one per prompt of the paper, through
:class:`edit.llm.teacher.LLMTeacher`."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from tqdm.auto import tqdm

from edit.records import Question, TeacherCoT

#: Keys of the ``teacher`` params section used by LLM teachers only (never passed to the oracle).
LLM_SETTINGS = ("prompt_source", "system_prompt", "sampling", "ccp_examples", "ccp_max_chars",
                "max_resamples", "temperature_step", "max_temperature", "cache", "ledger", "openai", "hf", "judge")
BACKENDS = ("oracle", "openai", "hf")


class Teacher(ABC):
    """A teacher writes, rectifies and corrupts chains of thought.

    The single-item calls are abstract; the batch calls (``generate_cots``, ``rectify_many``,
    ``corrupt_many``) default to one single-item call per item, in order, and are what
    :func:`edit.dual.build_dual_cots` uses, so that a backend can run a whole stage concurrently.
    A teacher that could not produce a CoT returns one with ``meta["error"]`` set (and no answer):
    the item is counted and skipped, never paired.
    """

    name: str = "teacher"

    @abstractmethod
    def generate_cot(self, question: Question) -> TeacherCoT:
        """CEP: the teacher's own CoT for ``question`` (may be wrong)."""

    @abstractmethod
    def rectify(self, question: Question, wrong: TeacherCoT) -> TeacherCoT:
        """AHP: given a wrong CoT and the gold answer (``question.target``), a correct CoT that
        keeps the wrong one's reasoning path and fixes its key step(s)."""

    @abstractmethod
    def corrupt(self, question: Question, correct: TeacherCoT) -> TeacherCoT:
        """CCP: given a correct CoT, a wrong CoT that keeps its path but reaches a wrong answer
        through a corrupted key step."""

    # ------------------------------------------------------------------ batch calls
    def generate_cots(self, questions: list[Question], progress: bool = False) -> list[TeacherCoT]:
        """CEP for every question, in order."""
        return [self.generate_cot(q) for q in tqdm(questions, desc="CEP", disable=not progress)]

    def rectify_many(self, items: list[tuple[Question, TeacherCoT]], progress: bool = False) -> list[TeacherCoT]:
        """AHP for every (question, wrong CoT), in order."""
        return [self.rectify(q, c) for q, c in tqdm(items, desc="AHP", disable=not progress)]

    def corrupt_many(self, items: list[tuple[Question, TeacherCoT]], progress: bool = False) -> list[TeacherCoT]:
        """CCP for every (question, correct CoT), in order."""
        return [self.corrupt(q, c) for q, c in tqdm(items, desc="CCP", disable=not progress)]

    def use_contrastive_examples(self, pairs: list[dict]) -> None:
        """Called by :func:`edit.dual.build_dual_cots` after AHP with this run's D-dual pair records
        (before any CCP call), for teachers whose CCP prompt shows (right, wrong) exemplars.
        Default: ignored."""


def make_teacher(section: dict, mirror: str | Path | None = None) -> Teacher:
    """The teacher named by the ``teacher`` params section's ``backend``.

    ``oracle``: :class:`edit.oracle.OracleTeacher` with the section's other keys (LLM-only keys,
    ``LLM_SETTINGS``, are left out). ``openai`` / ``hf``: :class:`edit.llm.teacher.LLMTeacher`
    over ``edit.llm.openai_backend.OpenAIBackend(**section["openai"])`` or
    :meth:`edit.llm.hf_backend.HFBackend.from_settings` (``section["hf"]``), wrapped in
    ``edit.llm.cache.CachedBackend(backend, **settings)`` when a ``cache`` section is given and
    its ``enabled`` is not false (``settings`` = the section less ``enabled``); ``mirror`` (default :func:`edit.oracle.default_mirror`) holds the prompt files.
    """
    backend = section.get("backend", "oracle")
    if backend == "oracle":
        from edit.oracle import OracleTeacher

        settings = {k: v for k, v in section.items() if k != "backend" and k not in LLM_SETTINGS}
        return OracleTeacher(**settings)
    if backend not in BACKENDS:
        raise ValueError(f"unknown teacher backend {backend!r}; available: {', '.join(BACKENDS)}")
    from edit.llm.teacher import LLMTeacher

    if backend == "openai":
        from edit.llm.openai_backend import OpenAIBackend

        chat = OpenAIBackend(**dict(section.get("openai") or {}))
    else:
        from edit.llm.hf_backend import HFBackend

        hf = dict(section.get("hf") or {})
        if "seed" not in hf and "seed" in section:
            hf["seed"] = section["seed"]
        chat = HFBackend.from_settings(hf)
    cache = section.get("cache")
    if cache and cache.get("enabled", True):
        from edit.llm.cache import CachedBackend

        chat = CachedBackend(chat, **{k: v for k, v in cache.items() if k != "enabled"})
    if mirror is None:
        from edit.oracle import default_mirror

        mirror = default_mirror()
    return LLMTeacher.from_settings(chat, section, mirror)
