"""How a question and a response are laid out for the student: one template, used by training and
by evaluation alike, so the two cannot drift apart."""
from __future__ import annotations

from edit.records import ANSWER_PHRASE

COT_TRIGGER = "Let's think step by step."


def student_prompt(question_input: str) -> str:
    """The prompt the student sees; the response (a CoT ending in the answer phrase) follows it."""
    return f"Q: {question_input}\nA: {COT_TRIGGER}\n"


def answer_sentence(answer: str) -> str:
    return f"{ANSWER_PHRASE} {answer}."
