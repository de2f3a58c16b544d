"""The teacher interface. The oracle implements it; real LLM backends (OpenAI-compatible, local
transformers) implement the same three calls, one per prompt of the paper."""
from __future__ import annotations

from abc import ABC, abstractmethod

from edit.records import Question, TeacherCoT


class Teacher(ABC):
    """A teacher writes, rectifies and corrupts chains of thought."""

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


def make_teacher(section: dict) -> Teacher:
    """The teacher named by the ``teacher`` params section's ``backend``; the other keys are its
    settings."""
    settings = {k: v for k, v in section.items() if k != "backend"}
    backend = section.get("backend", "oracle")
    if backend == "oracle":
        from edit.oracle import OracleTeacher

        return OracleTeacher(**settings)
    raise ValueError(f"unknown teacher backend {backend!r}; available: oracle")
