"""Which teacher a run uses: the ``teacher`` params section's ``backend`` (oracle, openai or hf)
turned into a :class:`~edit.teacher.Teacher`. Kept apart from :mod:`edit.teacher` (the interface)
so that the interface imports no implementation and no import circle forms."""
from __future__ import annotations

from pathlib import Path

from edit.llm.cache import CachedBackend
from edit.llm.hf_backend import HFBackend
from edit.llm.openai_backend import OpenAIBackend
from edit.llm.teacher import LLMTeacher
from edit.oracle import OracleTeacher, default_mirror
from edit.teacher import Teacher

#: Keys of the ``teacher`` params section used by LLM teachers only (never passed to the oracle).
LLM_SETTINGS = ("prompt_source", "system_prompt", "sampling", "ccp_examples", "ccp_max_chars",
                "max_resamples", "temperature_step", "max_temperature", "cache", "ledger", "openai", "hf", "judge")
BACKENDS = ("oracle", "openai", "hf")


def make_teacher(section: dict, mirror: str | Path | None = None) -> Teacher:
    """The teacher named by the ``teacher`` params section's ``backend``.

    ``oracle``: :class:`edit.oracle.OracleTeacher` with the section's other keys (LLM-only keys,
    ``LLM_SETTINGS``, are left out). ``openai`` / ``hf``: :class:`edit.llm.teacher.LLMTeacher`
    over ``edit.llm.openai_backend.OpenAIBackend(**section["openai"])`` or
    :meth:`edit.llm.hf_backend.HFBackend.from_settings` (``section["hf"]``, its ``seed``
    defaulting to the section's), wrapped in ``edit.llm.cache.CachedBackend(backend, **settings)``
    when ``cache.enabled`` (``settings`` = the ``cache`` section less ``enabled``); ``mirror``
    (default :func:`edit.oracle.default_mirror`) holds the prompt files.
    """
    backend = section["backend"]
    if backend == "oracle":
        settings = {k: v for k, v in section.items() if k != "backend" and k not in LLM_SETTINGS}
        return OracleTeacher(**settings)
    if backend not in BACKENDS:
        raise ValueError(f"unknown teacher backend {backend!r}; available: {', '.join(BACKENDS)}")
    if backend == "openai":
        chat = OpenAIBackend(**section["openai"])
    else:
        hf = dict(section["hf"])
        if "seed" not in hf:  # teacher.hf.seed left out: the teacher's seed
            hf["seed"] = section["seed"]
        chat = HFBackend.from_settings(hf)
    cache = section["cache"]
    if cache["enabled"]:
        chat = CachedBackend(chat, **{k: v for k, v in cache.items() if k != "enabled"})
    return LLMTeacher.from_settings(chat, section, default_mirror() if mirror is None else mirror)
