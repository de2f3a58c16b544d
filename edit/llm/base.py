"""The chat-backend interface every LLM backend implements.

A backend turns a list of :class:`ChatRequest` into a list of :class:`ChatResult` in the same
order. Failures are results (``error`` set, ``text`` None), never exceptions: a run with some
failed calls completes and records them. ``sample_index`` distinguishes repeated samples of the
same prompt (self-consistency, resampling a reply without the answer phrase) so that each is a
separate, separately cached call.
"""
from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion call.

    messages:     ``({"role": "system"|"user"|"assistant", "content": str}, ...)``
    sampling:     sampling parameters as sorted ``(name, value)`` pairs, e.g.
                  ``(("max_tokens", 512), ("temperature", 0.0), ("top_p", 1.0))``; use :meth:`make`
    sample_index: 0 for the first sample of this prompt, 1, 2, ... for further samples
    tag:          free label for logs and ledgers (e.g. ``"cep"``, ``"ahp"``); not part of the key
    """

    messages: tuple[tuple[tuple[str, str], ...], ...]
    sampling: tuple[tuple[str, object], ...] = ()
    sample_index: int = 0
    tag: str = field(default="", compare=False)

    @classmethod
    def make(cls, messages: list[dict], sampling: dict | None = None, sample_index: int = 0, tag: str = ""):
        msgs = tuple(tuple(sorted((str(k), str(v)) for k, v in m.items())) for m in messages)
        return cls(msgs, tuple(sorted((sampling or {}).items())), int(sample_index), tag)

    @property
    def message_dicts(self) -> list[dict]:
        return [dict(m) for m in self.messages]

    @property
    def sampling_dict(self) -> dict:
        return dict(self.sampling)

    def key(self, backend: str, model: str) -> str:
        """The cache key: sha256 of (backend, model, messages, sampling, sample index)."""
        payload = json.dumps([backend, model, self.message_dicts, self.sampling_dict, self.sample_index],
                             sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class ChatResult:
    """The outcome of one call.

    text:          the reply (None when the call failed)
    finish_reason: the server's finish reason ("stop", "length", ...) when known
    usage:         ``{"prompt_tokens": int, "completion_tokens": int}`` (zeros when unknown)
    error:         None on success; else a short description of the last failure
    attempts:      how many transport attempts were made (retries included)
    cached:        served from the cache without a call
    """

    text: str | None
    finish_reason: str | None = None
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    error: str | None = None
    attempts: int = 1
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None

    def to_dict(self) -> dict:
        return asdict(self)


class ChatBackend(ABC):
    """A chat model. ``name`` is the backend kind ("openai", "hf", ...), ``model`` the model id;
    both enter the cache key."""

    name: str = "backend"
    model: str = ""

    @abstractmethod
    def complete(self, requests: list[ChatRequest], progress: bool = True) -> list[ChatResult]:
        """Run ``requests`` (concurrently where the backend can) and return their results in order."""

    def normalize(self, request: ChatRequest) -> ChatRequest:
        """The request exactly as this backend will send it (e.g. with the backend's default
        sampling parameters merged in), so that its :meth:`ChatRequest.key` changes whenever what
        is sent changes. Caches key on ``normalize(request)``. The default changes nothing."""
        return request

    def complete_each(self, requests: list[ChatRequest], on_result, progress: bool = True) -> list[ChatResult]:
        """Like :meth:`complete`, and call ``on_result(index, result)`` for every request as soon as
        its result is known (a cache persists it there). Backends that finish calls one by one
        override this; the default calls ``on_result`` after the whole batch."""
        results = self.complete(requests, progress=progress)
        for i, r in enumerate(results):
            on_result(i, r)
        return results
