"""The teacher interface. The oracle implements it; real LLM backends (OpenAI-compatible, local
transformers) implement the same three calls, one per prompt of the paper, through
:class:`edit.llm.teacher.LLMTeacher`. Which teacher a run uses: :func:`edit.teachers.make_teacher`."""
from __future__ import annotations

from abc import ABC, abstractmethod

from tqdm.auto import tqdm

from edit.records import Question, TeacherCoT


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

