"""The OpenAI-compatible teacher backend (OpenAI, vLLM, llama.cpp's server, ...).

:class:`OpenAIBackend` sends chat completions through the official ``openai`` client
(``AsyncOpenAI``) with bounded concurrency, and applies ITS OWN retry policy (the client's
retries are off): a failed attempt is retried with exponential backoff and seeded jitter when it
is a 429 (``Retry-After`` / ``retry-after-ms`` honoured), a 5xx, 408 or 409, a timeout, a
connection error, or a reply that is not a usable answer: not the expected JSON (malformed body,
no ``choices[0].message.content``), EMPTY content, or an OVERSIZED reply (more than
``MAX_CHARS_PER_TOKEN`` characters per token of the request's ``max_tokens``: no tokenizer makes
that, so the reply is not what was asked for). 400 and 422 (a problem of this one request) are
not retried. After ``max_attempts`` the result carries ``error`` (recorded, never raised, and
never cached as an answer), so a batch of per-request faults always completes.

401, 403 (the key is wrong or lacks the right) and 404 (wrong model or URL) are faults of the
whole run, not of one request: they raise :class:`FatalAPIError` at once, naming the status, the
URL and the model (never the key), which stops the batch and the stage; results already handled
stay persisted. ``complete()`` is synchronous and returns results in request order; it also works
inside a running event loop (Jupyter / papermill) by running its own loop in a worker thread.

The API key is read from the environment variable named by ``api_key_env`` at call time; it is
never stored on the object, logged, or written into results: every text that comes from the
server is redacted (:func:`edit.secrets.redact`: the key and any 8-character piece of it) BEFORE
it is cut to length, so a cut cannot leave a piece of the key behind.

:func:`complete_with_answer` is the caller-side policy for replies without the answer phrase:
resample a bounded number of times at a higher temperature and a new sample index, else keep
the first reply and flag it.

Over 400 lines because the reply checks, the retry policy and the redaction share one contract
(what is a fault, what is fatal, what may be written); the answer-phrase policy at the end could
move to its own module (it is imported by edit/llm/teacher.py, H4's file).
"""
from __future__ import annotations

import asyncio
import email.utils
import inspect
import json
import logging
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tqdm.auto import tqdm

from edit.records import ANSWER_PHRASE
from edit.secrets import redact

from .base import ChatBackend, ChatRequest, ChatResult

log = logging.getLogger(__name__)

DUMMY_KEY = "sk-no-key-required"
RESAMPLE_STRIDE = 1000  # resample r of sample i gets sample_index i + r * RESAMPLE_STRIDE
# a reply longer than max_tokens * MAX_CHARS_PER_TOKEN characters is a fault: real tokenizers average
# 3-5 characters per token on text and rarely pass 10 even on code or whitespace runs
MAX_CHARS_PER_TOKEN = 32
FATAL_STATUSES = (401, 403, 404)


class MalformedReply(Exception):
    """A 2xx reply that is not a usable chat completion (retryable)."""


class MissingAPIKey(RuntimeError):
    """The environment variable that should hold the API key is unset or empty."""


class FatalAPIError(RuntimeError):
    """A status that no retry and no other request can fix (401, 403, 404): the run must stop.
    The message names the status, the URL and the model, never the key."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def excerpt(text: str, n: int, secret: str = "") -> str:
    """The first ``n`` characters of ``text`` with ``secret`` redacted first (a cut made before
    redacting could leave a piece of the key that no longer matches the whole key)."""
    text = str(text)
    if secret and secret != DUMMY_KEY:
        text = redact(text[: n + len(secret)], secret)
    return text[:n]


def max_reply_chars(request: ChatRequest) -> int | None:
    """The most characters a reply to ``request`` may have: its ``max_tokens`` (or
    ``max_completion_tokens``) times :data:`MAX_CHARS_PER_TOKEN`; None when it sets no bound."""
    sampling = request.sampling_dict
    mt = sampling.get("max_tokens", sampling.get("max_completion_tokens"))
    return None if mt is None else int(mt) * MAX_CHARS_PER_TOKEN


def parse_completion(body: str, secret: str = "") -> tuple[str, str | None, dict]:
    """``(text, finish_reason, usage)`` from a chat-completions JSON body; :class:`MalformedReply`
    when the body is not JSON, lacks ``choices[0].message.content`` (a string) or that content is
    empty (or only whitespace). Excerpts of the body in messages have ``secret`` redacted."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise MalformedReply(f"reply is not JSON ({exc.msg} at char {exc.pos}): {excerpt(body, 80, secret)!r}") from None
    if not isinstance(data, dict):
        raise MalformedReply(f"reply is JSON but not an object: {excerpt(body, 80, secret)!r}")
    if "error" in data and "choices" not in data:
        raise MalformedReply(f"reply carries an error object: {excerpt(data['error'], 160, secret)}")
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise MalformedReply(f"reply has no choices[0].message.content: {excerpt(body, 120, secret)!r}") from None
    if not isinstance(text, str):
        raise MalformedReply(f"choices[0].message.content is {type(text).__name__}, not a string")
    if not text.strip():
        raise MalformedReply(f"empty content (finish_reason {choice.get('finish_reason')!r})")
    usage_in = data.get("usage") or {}
    usage = {"prompt_tokens": int(usage_in.get("prompt_tokens") or 0),
             "completion_tokens": int(usage_in.get("completion_tokens") or 0)}
    return text, choice.get("finish_reason"), usage


def _retry_after_s(headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(ra)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class OpenAIBackend(ChatBackend):
    """Chat completions from an OpenAI-compatible server.

    model:             the model id sent to the server (enters the cache key)
    base_url:          e.g. ``http://127.0.0.1:8080/v1``; None: the client's default (OpenAI)
    api_key_env:       NAME of the environment variable holding the key (never the key itself)
    allow_missing_key: local servers: use a dummy key when the variable is unset
    concurrency:       requests in flight at once (asyncio.Semaphore)
    max_attempts:      attempts per request, retries included (>= 1)
    timeout_s:         per-attempt timeout
    sampling:          default sampling parameters (a request's own values win), e.g.
                       ``{"temperature": 0.0, "max_tokens": 512}``; names the client does not know
                       (``top_k``, ...) go in the request body as extra fields
    backoff_base_s, backoff_max_s: delay before retry a (1-based) is
                       ``min(max, base * 2**(a-1)) * (0.5 + 0.5 * u)``, u uniform from a RNG seeded
                       by (seed, request key, a): deterministic whatever the arrival order
    max_retry_after_s: cap on a server's Retry-After
    send_key_headers:  send ``X-Edit-Request-Key`` / ``X-Edit-Sample-Index`` (harmless to real
                       servers; the scripted test server uses them)
    """

    name = "openai"

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 allow_missing_key: bool = False, concurrency: int = 8, max_attempts: int = 5,
                 timeout_s: float = 60.0, sampling: dict | None = None, backoff_base_s: float = 1.0,
                 backoff_max_s: float = 30.0, max_retry_after_s: float = 120.0, seed: int = 0,
                 send_key_headers: bool = True, progress_desc: str | None = None):
        if not model:
            raise ValueError("OpenAIBackend: `model` must be a non-empty model id")
        if int(concurrency) < 1:
            raise ValueError(f"OpenAIBackend: concurrency must be >= 1, got {concurrency}")
        if int(max_attempts) < 1:
            raise ValueError(f"OpenAIBackend: max_attempts must be >= 1, got {max_attempts}")
        if float(timeout_s) <= 0:
            raise ValueError(f"OpenAIBackend: timeout_s must be > 0, got {timeout_s}")
        if not api_key_env or not str(api_key_env).replace("_", "").isalnum():
            raise ValueError(f"OpenAIBackend: api_key_env must be an environment variable NAME, got {api_key_env!r}")
        self.model = str(model)
        self.base_url = base_url
        self.api_key_env = str(api_key_env)
        self.allow_missing_key = bool(allow_missing_key)
        self.concurrency = int(concurrency)
        self.max_attempts = int(max_attempts)
        self.timeout_s = float(timeout_s)
        self.sampling = dict(sampling or {})
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_retry_after_s = float(max_retry_after_s)
        self.seed = int(seed)
        self.send_key_headers = bool(send_key_headers)
        self.progress_desc = progress_desc or f"teacher {self.model}"
        self._api_key()  # fail early, naming the variable, when the key is missing

    def __repr__(self) -> str:  # never shows the key
        return (f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r}, "
                f"concurrency={self.concurrency}, max_attempts={self.max_attempts}, timeout_s={self.timeout_s})")

    # -- key -------------------------------------------------------------------------------------
    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env, "")
        if key:
            return key
        if self.allow_missing_key:
            return DUMMY_KEY
        raise MissingAPIKey(f"OpenAIBackend: environment variable {self.api_key_env} is not set (set it, or "
                            f"set allow_missing_key for a local server that needs no key)")

    def _scrub(self, text: str, key: str) -> str:
        """``text`` with the key redacted, then cut to 300 characters."""
        return excerpt(text, 300, key)

    def _fatal(self, exc, api_key: str) -> FatalAPIError:
        status = exc.status_code
        why = {401: "the API key was rejected (check the key in ${env})",
               403: "the API key may not use this model or endpoint (check the key in ${env})",
               404: "the model or the URL does not exist (check `model` and `base_url`)"}[status]
        try:
            url = f"{exc.request.method} {exc.request.url}"
        except (AttributeError, RuntimeError):
            url = f"{self.base_url}/chat/completions"
        msg = (f"OpenAIBackend: HTTP {status} from {url} for model {self.model!r}: "
               f"{why.replace('${env}', '$' + self.api_key_env)}; the server said: {exc.message}")
        err = FatalAPIError(excerpt(msg, 600, api_key), status)
        log.error("%s", err)
        return err

    # -- requests --------------------------------------------------------------------------------
    def normalize(self, request: ChatRequest) -> ChatRequest:
        merged = {**self.sampling, **request.sampling_dict}
        return ChatRequest(request.messages, tuple(sorted(merged.items())), request.sample_index, request.tag)

    def backoff_s(self, key: str, attempt: int) -> float:
        """Delay before retrying after failed attempt ``attempt`` (1-based) of request ``key``."""
        cap = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        u = random.Random(f"{self.seed}:{key}:{attempt}").random()
        return cap * (0.5 + 0.5 * u)

    def _create_kwargs(self, req: ChatRequest, key: str, create_params: set[str]) -> dict:
        kwargs: dict = {"model": self.model, "messages": req.message_dicts, "timeout": self.timeout_s}
        extra_body = {}
        for name, value in req.sampling:
            if name in ("model", "messages", "stream", "timeout", "extra_headers", "extra_body"):
                raise ValueError(f"sampling parameter {name!r} is not allowed (request tag {req.tag!r})")
            if name in create_params:
                kwargs[name] = value
            else:
                extra_body[name] = value
        if extra_body:
            kwargs["extra_body"] = extra_body
        if self.send_key_headers:
            kwargs["extra_headers"] = {"X-Edit-Request-Key": key, "X-Edit-Sample-Index": str(req.sample_index)}
        return kwargs

    async def _call(self, client, req: ChatRequest, api_key: str, create_params: set[str]) -> ChatResult:
        import openai

        key = req.key(self.name, self.model)
        kwargs = self._create_kwargs(req, key, create_params)
        last_error = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            retry_after = None
            try:
                raw = await asyncio.wait_for(client.chat.completions.with_raw_response.create(**kwargs),
                                             timeout=self.timeout_s + 1.0)
                text, finish, usage = parse_completion(raw.http_response.text, api_key)
                limit = max_reply_chars(req)
                if limit is not None and len(text) > limit:
                    raise MalformedReply(f"oversized reply: {len(text)} characters for max_tokens "
                                         f"{limit // MAX_CHARS_PER_TOKEN} (at most {limit} accepted)")
                return ChatResult(text=text, finish_reason=finish, usage=usage, attempts=attempt)
            except openai.APIStatusError as exc:
                status = exc.status_code
                last_error = f"HTTP {status}: {exc.message}"
                if status in FATAL_STATUSES:
                    raise self._fatal(exc, api_key) from None
                if not (status == 429 or status >= 500 or status in (408, 409)):
                    return ChatResult(text=None, error=self._scrub(last_error, api_key), attempts=attempt)
                if status == 429:
                    retry_after = _retry_after_s(exc.response.headers)
            except (openai.APITimeoutError, asyncio.TimeoutError, TimeoutError):
                last_error = f"timeout after {self.timeout_s} s"
            except openai.APIConnectionError as exc:
                cause = exc.__cause__
                last_error = f"connection error: {exc}" + (f" ({type(cause).__name__}: {cause})" if cause else "")
            except (MalformedReply, openai.APIResponseValidationError) as exc:
                last_error = f"malformed reply: {exc}"
            if attempt < self.max_attempts:
                delay = self.backoff_s(key, attempt)
                if retry_after is not None:
                    ra = min(retry_after, self.max_retry_after_s)
                    delay = ra + 0.1 * ra * random.Random(f"ra:{self.seed}:{key}:{attempt}").random()
                log.debug("request %s (tag %r) attempt %d failed (%s); retrying in %.2f s",
                          key[:12], req.tag, attempt, self._scrub(last_error, api_key), delay)
                await asyncio.sleep(delay)
        error = self._scrub(f"{last_error} (after {self.max_attempts} attempts)", api_key)
        log.warning("request %s (tag %r) failed: %s", key[:12], req.tag, error)
        return ChatResult(text=None, error=error, attempts=self.max_attempts)

    async def _run(self, requests: list[ChatRequest], on_result, progress: bool) -> list[ChatResult]:
        import openai

        api_key = self._api_key()
        create_params = set(inspect.signature(openai.resources.chat.completions.AsyncCompletions.create).parameters)
        client = openai.AsyncOpenAI(api_key=api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s)
        sem = asyncio.Semaphore(self.concurrency)
        results: list[ChatResult | None] = [None] * len(requests)
        bar = tqdm(total=len(requests), disable=not progress, desc=self.progress_desc, unit="call")
        # on_result (e.g. a cache's fsync) runs on one worker thread: one call at a time, in completion
        # order, without stalling the event loop. A request keeps its concurrency slot until its
        # on_result has returned, so at most `concurrency` calls are ever sent but not yet handled
        # (a kill loses at most that many).
        handler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openai-backend-results")
        loop = asyncio.get_running_loop()

        async def one(i: int, req: ChatRequest) -> None:
            async with sem:
                res = await self._call(client, req, api_key, create_params)
                results[i] = res
                if on_result is not None:
                    await loop.run_in_executor(handler, on_result, i, res)
            bar.update(1)

        try:
            async with asyncio.TaskGroup() as tg:
                for i, req in enumerate(requests):
                    tg.create_task(one(i, req))
        except BaseExceptionGroup as eg:  # e.g. on_result could not write: stop, raise the cause itself
            raise eg.exceptions[0] from None
        finally:
            bar.close()
            handler.shutdown(wait=True)
            await client.close()
        return results  # type: ignore[return-value]

    def complete_each(self, requests: list[ChatRequest], on_result, progress: bool = True) -> list[ChatResult]:
        """:meth:`complete`, calling ``on_result(index, result)`` as each call finishes (on a worker
        thread, one call at a time, in completion order); an exception from it stops the batch and
        is raised."""
        reqs = [self.normalize(r) for r in requests]
        if not reqs:
            return []
        coro = self._run(reqs, on_result, progress)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="openai-backend") as ex:
            return ex.submit(asyncio.run, coro).result()

    def complete(self, requests: list[ChatRequest], progress: bool = True) -> list[ChatResult]:
        return self.complete_each(requests, None, progress=progress)


# -- the answer-phrase policy ---------------------------------------------------------------------
@dataclass
class AnsweredResult:
    """The kept reply of one request under :func:`complete_with_answer`.

    result:     the kept ChatResult (the first reply with the phrase, else the first reply)
    request:    the request that produced ``result`` (a resample has a new temperature and index)
    resamples:  resample requests sent for this item (0 .. max_resamples)
    has_answer: ``result.text`` contains the phrase; False means flagged (kept without it)
    """

    result: ChatResult
    request: ChatRequest
    resamples: int
    has_answer: bool

    @property
    def flagged(self) -> bool:
        return not self.has_answer


def has_phrase(text: str | None, needs: str = ANSWER_PHRASE) -> bool:
    """Whether ``text`` contains ``needs`` (case-insensitive)."""
    return bool(text) and needs.lower() in text.lower()


def resample_request(request: ChatRequest, round_: int, temperature_step: float, max_temperature: float,
                     base_temperature: float = 0.0) -> ChatRequest:
    """Resample ``round_`` (1-based) of ``request``: temperature raised by ``round_ * step`` (capped),
    sample index moved by ``round_ * RESAMPLE_STRIDE`` so that it never collides with the prompt's
    other samples."""
    sampling = request.sampling_dict
    base = float(sampling.get("temperature", base_temperature))
    sampling["temperature"] = round(min(max_temperature, base + round_ * temperature_step), 6)
    return ChatRequest(request.messages, tuple(sorted(sampling.items())),
                       request.sample_index + round_ * RESAMPLE_STRIDE, request.tag)


def complete_with_answer(backend: ChatBackend, requests: list[ChatRequest], needs: str = ANSWER_PHRASE,
                         max_resamples: int = 2, temperature_step: float = 0.3, max_temperature: float = 1.0,
                         progress: bool = True) -> list[AnsweredResult]:
    """Complete ``requests``; a successful reply without ``needs`` is resampled at most
    ``max_resamples`` times (round r: temperature + r * step, capped at ``max_temperature``; sample
    index + r * 1000), in batches, through ``backend`` (wrap it in a cache to make resamples
    resumable). A failed call (``error`` set, its retries spent) is not resampled. Items that never
    get the phrase keep their first reply and are flagged (``has_answer`` False).
    At most ``len(requests) * (1 + max_resamples)`` calls are made."""
    if max_resamples < 0:
        raise ValueError(f"max_resamples must be >= 0, got {max_resamples}")
    first = backend.complete(list(requests), progress=progress)
    kept = [AnsweredResult(r, backend.normalize(q), 0, has_phrase(r.text, needs)) for q, r in zip(requests, first)]
    pending = [i for i, k in enumerate(kept) if k.result.ok and not k.has_answer]
    for round_ in range(1, max_resamples + 1):
        if not pending:
            break
        base = [float(backend.normalize(requests[i]).sampling_dict.get("temperature", 0.0)) for i in pending]
        new = [resample_request(requests[i], round_, temperature_step, max_temperature, b)
               for i, b in zip(pending, base)]
        got = backend.complete(new, progress=progress)
        still = []
        for i, q, r in zip(pending, new, got):
            kept[i].resamples = round_
            if has_phrase(r.text, needs):
                kept[i] = AnsweredResult(r, backend.normalize(q), round_, True)
            else:
                still.append(i)
        pending = still
    n_flag = sum(k.flagged for k in kept)
    if n_flag:
        log.warning("%d of %d replies kept without %r after %d resamples", n_flag, len(kept), needs, max_resamples)
    return kept
