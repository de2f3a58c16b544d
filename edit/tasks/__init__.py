"""The embedded task world: procedural, seeded generators of BBH-format items and the step-by-step
solvers the oracle teacher writes its chains of thought with.

Public API: ``TASKS``, ``generate``, ``difficulty_knobs``, ``answer_type``, ``mistake_types``
(``family`` gives the module implementing a task, for the oracle).
"""
from __future__ import annotations

import random
from types import ModuleType

from edit.tasks import (
    boolean_expressions,
    multistep_arithmetic,
    navigate,
    tracking_shuffled_objects,
    web_of_lies,
)

_FAMILIES = (boolean_expressions, multistep_arithmetic, tracking_shuffled_objects, navigate, web_of_lies)
_BY_TASK: dict[str, ModuleType] = {task: mod for mod in _FAMILIES for task in mod.TASKS}

#: Supported task names (BBH names).
TASKS: tuple[str, ...] = tuple(_BY_TASK)


def family(task: str) -> ModuleType:
    """The module implementing ``task``; ValueError listing the supported tasks otherwise."""
    try:
        return _BY_TASK[task]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task {task!r}; supported tasks: {', '.join(TASKS)}") from None


def generate(task: str, rng: random.Random, **difficulty) -> dict:
    """One item ``{"input": ..., "target": ...}`` in BBH's exact format, drawn with ``rng``.
    Unknown knobs raise ValueError naming them; see ``difficulty_knobs`` for the defaults (BBH's)."""
    return family(task).generate(task, rng, **difficulty)


def difficulty_knobs(task: str) -> dict:
    """Knob name -> BBH default for ``task``."""
    return dict(family(task).TASKS[task])


def answer_type(task: str) -> str:
    """"bool", "number", "option" or "yes_no"."""
    return family(task).ANSWER_TYPE


def mistake_types(task: str) -> tuple[str, ...]:
    """The typed mistakes the oracle can make on ``task`` (subset of logical/calculation/knowledge)."""
    return tuple(family(task).MISTAKE_TYPES)
