"""The persistent call cache and the cost ledger of LLM teachers.

:class:`CachedBackend` wraps any :class:`~edit.llm.base.ChatBackend`. Every finished call is
appended to a JSONL file AS SOON AS IT RETURNS (one ``os.write`` of one line on an ``O_APPEND``
descriptor, then ``fsync``), so a run killed at any point loses at most the calls in flight. On
reload a torn or otherwise unreadable line (a kill in the middle of a write) is skipped with a
warning and never harms the records before it; the next append starts on a fresh line. Records
are keyed by ``backend.normalize(request).key(backend.name, backend.model)``; a rerun serves hits
(``cached=True``) and sends only the misses, each distinct key once per batch. Failed calls
(``error`` set) are recorded (they count in the ledger) but are never served as answers, so a
rerun retries them.

Several processes may share one cache file (two runs of the same teacher stage, a notebook and
a pipeline run): a batch holds an exclusive file lock (``filelock``, on ``<cache>.lock``) from the
moment it reads what other processes have appended (check) until its last result is appended, so
each call is paid once whichever process asks first; the other process waits (with a warning
saying so) and then serves those calls from the file. Within a process the batch's calls stay
concurrent. A process killed with ``kill -9`` releases the lock (the OS drops it) and loses at most
the ``concurrency`` calls it had in flight, which a rerun pays again (tests/test_llm_resume.py
measures this). Appends are whole lines under the lock, so no line is ever interleaved.

Record (one JSON object per line): ``v, key, backend, model, stage, tag, sample_index, messages,
sampling, text, finish_reason, usage {prompt_tokens, completion_tokens}, error, attempts``. No
API key is ever part of a record, a ledger or a log line.

:class:`Ledger` sums, per stage, calls sent, cache hits, in-batch duplicates, failures, tokens
and dollars from a price table ``{model: {prompt_per_1m: x, completion_per_1m: y}}`` (dollars per
million tokens). :func:`estimate_cost` and :func:`dry_run` say what a batch would cost before it
is run.

Just over 400 lines: the store, the cross-process lock, the ledger and the cost estimates are
one contract (what was paid, once); the estimates could move out if it grows.
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from edit.io import write_text_atomic

from .base import ChatBackend, ChatRequest, ChatResult

log = logging.getLogger(__name__)

RECORD_VERSION = 1
LEDGER_FIELDS = ("calls", "cache_hits", "duplicates", "failures", "prompt_tokens", "completion_tokens",
                 "dollars", "saved_dollars", "unpriced_calls")


# -- prices ---------------------------------------------------------------------------------------
def check_price_table(table: dict | None) -> dict:
    """Validate ``{model: {prompt_per_1m: float, completion_per_1m: float}}``; errors name the model."""
    out = {}
    for model, entry in (table or {}).items():
        if not isinstance(entry, dict) or set(entry) != {"prompt_per_1m", "completion_per_1m"}:
            raise ValueError(f"price table entry for model {model!r} must have exactly prompt_per_1m and "
                             f"completion_per_1m, got {entry!r}")
        vals = {k: float(v) for k, v in entry.items()}
        if any(v < 0 or math.isnan(v) for v in vals.values()):
            raise ValueError(f"price table entry for model {model!r} has a negative or NaN price: {entry!r}")
        out[str(model)] = vals
    return out


def call_dollars(price: dict | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    """Dollars of one call under a price entry (None when unpriced)."""
    if price is None:
        return None
    return prompt_tokens / 1e6 * price["prompt_per_1m"] + completion_tokens / 1e6 * price["completion_per_1m"]


# -- the ledger -----------------------------------------------------------------------------------
class Ledger:
    """Per-stage sums of calls, cache hits, duplicates, failures, tokens and dollars."""

    def __init__(self, price_table: dict | None = None):
        self.price_table = check_price_table(price_table)
        self.stages: dict[str, dict] = defaultdict(lambda: {f: 0 for f in LEDGER_FIELDS})

    def price(self, model: str) -> dict | None:
        return self.price_table.get(model)

    def add_call(self, stage: str, model: str, result: ChatResult) -> None:
        s = self.stages[stage]
        s["calls"] += 1
        s["failures"] += int(not result.ok)
        pt, ct = int(result.usage.get("prompt_tokens", 0)), int(result.usage.get("completion_tokens", 0))
        s["prompt_tokens"] += pt
        s["completion_tokens"] += ct
        d = call_dollars(self.price(model), pt, ct)
        if d is None:
            s["unpriced_calls"] += 1
        else:
            s["dollars"] += d

    def add_hit(self, stage: str, model: str, usage: dict) -> None:
        s = self.stages[stage]
        s["cache_hits"] += 1
        d = call_dollars(self.price(model), int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
        s["saved_dollars"] += d or 0.0

    def add_duplicate(self, stage: str) -> None:
        self.stages[stage]["duplicates"] += 1

    def summary(self) -> dict:
        stages = {name: {k: (round(v, 6) if isinstance(v, float) else v) for k, v in s.items()}
                  for name, s in sorted(self.stages.items())}
        total = {f: 0 for f in LEDGER_FIELDS}
        for s in self.stages.values():
            for f in LEDGER_FIELDS:
                total[f] += s[f]
        total = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in total.items()}
        return {"stages": stages, "total": total}


# -- the store ------------------------------------------------------------------------------------
class CallStore:
    """An append-only JSONL file of call records, written one fsynced line at a time."""

    def __init__(self, path: str | os.PathLike, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self.skipped_lines: list[int] = []
        self._lock = threading.Lock()
        self._offset = 0      # bytes read so far (always the end of a whole line)
        self._lineno = 0      # lines read so far

    def load(self) -> list[dict]:
        """Every readable record in file order; unreadable lines (e.g. a torn last line) are skipped,
        their 1-based numbers kept in ``skipped_lines``."""
        self.skipped_lines = []
        self._offset = self._lineno = 0
        return self._read(final=True)

    def read_new(self) -> list[dict]:
        """The records appended (by any process) since the last :meth:`load` / :meth:`read_new`.
        A last line without its newline is left for later (another process may be writing it)."""
        return self._read(final=False)

    def _read(self, final: bool) -> list[dict]:
        if not self.path.exists():
            return []
        records, skipped = [], []
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = len(data) if final else data.rfind(b"\n") + 1
        lines = data[:end].split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        whole = data[:end].count(b"\n")
        for lineno, line in enumerate(lines, self._lineno + 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or "key" not in rec:
                    raise ValueError("not a call record")
            except ValueError:
                skipped.append(lineno)
                continue
            records.append(rec)
        # a torn last line (no newline) is reported now but read again later: the next append puts a
        # newline after it, and a line still being written by another process becomes whole
        last_whole = data[:end].rfind(b"\n") + 1
        self._offset += last_whole
        self._lineno += whole
        skipped = [n for n in skipped if n not in self.skipped_lines]
        if skipped:
            self.skipped_lines.extend(skipped)
            log.warning("%s: skipped %d unreadable line(s) (torn write after a kill?): line(s) %s", self.path,
                        len(skipped), skipped[:10])
        return records

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        if size:
            with open(self.path, "rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":  # a torn last line: start the next record on its own line
                    os.write(fd, b"\n")
        return fd

    def append(self, record: dict) -> None:
        """Append one record as one line, flushed to disk before returning."""
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            fd = self._open()
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)


# -- the cached backend ---------------------------------------------------------------------------
def _result_from_record(rec: dict) -> ChatResult:
    return ChatResult(text=rec["text"], finish_reason=rec.get("finish_reason"),
                      usage=dict(rec.get("usage") or {"prompt_tokens": 0, "completion_tokens": 0}),
                      error=None, attempts=int(rec.get("attempts", 1)), cached=True)


class CachedBackend(ChatBackend):
    """``backend`` behind a persistent call cache at ``path`` (JSONL) and a cost ledger.

    ``complete(requests, stage=None)``: the ledger's stage of a request is ``stage`` when given,
    else the request's tag, else ``"default"``. ``ledger`` covers this object's lifetime;
    ``all_time`` also counts the calls recorded in the file by earlier (possibly killed) runs.
    """

    def __init__(self, backend: ChatBackend, path: str | os.PathLike, price_table: dict | None = None,
                 fsync: bool = True):
        self.backend = backend
        self.file_lock = FileLock(str(Path(path)) + ".lock")
        self.name = backend.name
        self.model = backend.model
        self.store = CallStore(path, fsync=fsync)
        self.ledger = Ledger(price_table)
        self.all_time = Ledger(price_table)
        self._answers: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._take(self.store.load())

    def _take(self, records: list[dict]) -> None:
        for rec in records:
            self.all_time.add_call(rec.get("stage") or "default", rec.get("model", self.model),
                                   ChatResult(text=rec.get("text"), usage=rec.get("usage") or {},
                                              error=rec.get("error")))
            if rec.get("error") is None and rec.get("text") is not None:
                self._answers.setdefault(rec["key"], rec)

    @contextmanager
    def exclusive(self):
        """Hold the cache's file lock (waiting, with a warning, while another process holds it) and
        take in what other processes appended meanwhile."""
        try:
            self.file_lock.acquire(timeout=0)
        except Timeout:
            log.warning("%s: another process is using this cache; waiting for it (its answers will be "
                        "served from the cache, not paid again)", self.path)
            self.file_lock.acquire()
        try:
            self._take(self.store.read_new())
            yield
        finally:
            try:
                self.store.read_new()  # skip past this batch's own records: already counted
            finally:
                self.file_lock.release()

    @property
    def path(self) -> Path:
        return self.store.path

    def __len__(self) -> int:
        return len(self._answers)

    def normalize(self, request: ChatRequest) -> ChatRequest:
        return self.backend.normalize(request)

    def key(self, request: ChatRequest) -> str:
        return self.normalize(request).key(self.name, self.model)

    def lookup(self, request: ChatRequest) -> ChatResult | None:
        """The cached answer to ``request`` (``cached=True``), or None."""
        rec = self._answers.get(self.key(request))
        return None if rec is None else _result_from_record(rec)

    def misses(self, requests: list[ChatRequest]) -> list[ChatRequest]:
        """The distinct requests (first occurrence of each key) that would be sent."""
        seen, out = set(), []
        for r in requests:
            k = self.key(r)
            if k not in self._answers and k not in seen:
                seen.add(k)
                out.append(r)
        return out

    def _record(self, req: ChatRequest, key: str, stage: str, res: ChatResult) -> dict:
        return {"v": RECORD_VERSION, "key": key, "backend": self.name, "model": self.model, "stage": stage,
                "tag": req.tag, "sample_index": req.sample_index, "messages": req.message_dicts,
                "sampling": req.sampling_dict, "text": res.text, "finish_reason": res.finish_reason,
                "usage": {"prompt_tokens": int(res.usage.get("prompt_tokens", 0)),
                          "completion_tokens": int(res.usage.get("completion_tokens", 0))},
                "error": res.error, "attempts": res.attempts}

    def complete_each(self, requests: list[ChatRequest], on_result=None, progress: bool = True,
                      stage: str | None = None) -> list[ChatResult]:
        with self.exclusive():
            return self._complete_each(requests, on_result, progress, stage)

    def _complete_each(self, requests, on_result, progress, stage) -> list[ChatResult]:
        norm = [self.normalize(r) for r in requests]
        keys = [r.key(self.name, self.model) for r in norm]
        stages = [stage or r.tag or "default" for r in norm]
        results: list[ChatResult | None] = [None] * len(norm)
        by_key: dict[str, list[int]] = defaultdict(list)
        send: list[int] = []  # index of the first occurrence of each missing key
        for i, k in enumerate(keys):
            rec = self._answers.get(k)
            if rec is not None:
                results[i] = _result_from_record(rec)
                self.ledger.add_hit(stages[i], self.model, rec.get("usage") or {})
                if on_result is not None:
                    on_result(i, results[i])
                continue
            if k in by_key:
                self.ledger.add_duplicate(stages[i])
            else:
                send.append(i)
            by_key[k].append(i)

        def done(j: int, res: ChatResult) -> None:
            i = send[j]
            rec = self._record(norm[i], keys[i], stages[i], res)
            with self._lock:
                self.store.append(rec)  # persisted before anything else sees the result
                if res.ok:
                    self._answers.setdefault(keys[i], rec)
                self.ledger.add_call(stages[i], self.model, res)
                self.all_time.add_call(stages[i], self.model, res)
            for idx in by_key[keys[i]]:
                results[idx] = res if idx == i else ChatResult(**{**res.to_dict(), "usage": dict(res.usage)})
                if on_result is not None:
                    on_result(idx, results[idx])

        if send:
            self.backend.complete_each([norm[i] for i in send], done, progress=progress)
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            raise RuntimeError(f"backend {self.name}/{self.model} returned no result for request(s) {missing[:10]}")
        return results  # type: ignore[return-value]

    def complete(self, requests: list[ChatRequest], progress: bool = True, stage: str | None = None) -> list[ChatResult]:
        return self.complete_each(requests, None, progress=progress, stage=stage)

    def ledger_summary(self) -> dict:
        return {"backend": self.name, "model": self.model, "cache": str(self.path),
                "cache_answers": len(self._answers), "skipped_cache_lines": list(self.store.skipped_lines),
                "price": self.ledger.price(self.model),
                "session": self.ledger.summary(), "all_time": self.all_time.summary()}

    def write_ledger(self, path: str | os.PathLike) -> dict:
        """Write :meth:`ledger_summary` as JSON (atomically) and return it."""
        summary = self.ledger_summary()
        write_text_atomic(path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return summary


# -- estimates ------------------------------------------------------------------------------------
def estimate_prompt_tokens(request: ChatRequest) -> int:
    """A rough prompt-token count: ceil(characters / 4) per message plus 4 tokens of chat framing
    per message and 3 for the reply's start (OpenAI's rule of thumb; real tokenizers differ by
    perhaps +-25% on English text, more on digits and symbols)."""
    return sum(math.ceil(len(m.get("content", "")) / 4) + 4 for m in request.message_dicts) + 3


def estimate_cost(requests: list[ChatRequest], price: dict | None, expected_completion_tokens: int | None = None) -> dict:
    """Tokens and dollars that ``requests`` would cost if all were sent.

    price: one model's entry ``{prompt_per_1m, completion_per_1m}`` (None: unpriced, dollars None)
    expected_completion_tokens: per call; None uses each request's ``max_tokens`` (an upper bound)
    Prompt tokens are estimated by :func:`estimate_prompt_tokens` (characters / 4)."""
    if price is not None:
        price = check_price_table({"model": price})["model"]
    pt = ct = 0
    for i, r in enumerate(requests):
        pt += estimate_prompt_tokens(r)
        if expected_completion_tokens is not None:
            ct += int(expected_completion_tokens)
        else:
            mt = r.sampling_dict.get("max_tokens", r.sampling_dict.get("max_completion_tokens"))
            if mt is None:
                raise ValueError(f"estimate_cost: request {i} (tag {r.tag!r}) has no max_tokens; pass "
                                 f"expected_completion_tokens")
            ct += int(mt)
    d = call_dollars(price, pt, ct)
    return {"calls": len(requests), "prompt_tokens_est": pt, "completion_tokens_est": ct,
            "dollars_est": None if d is None else round(d, 6)}


def dry_run(cached: CachedBackend, requests: list[ChatRequest], expected_completion_tokens: int | None = None,
            price: dict | None = None, print_fn=print) -> dict:
    """What running ``requests`` through ``cached`` would send and cost, without sending anything:
    cache hits and in-batch duplicates are excluded. ``price`` defaults to the cache's price for its
    model. Prints one line (``print_fn=None`` to stay silent) and returns the numbers."""
    misses = cached.misses(list(requests))
    if price is None:
        price = cached.ledger.price(cached.model)
    est = estimate_cost([cached.normalize(r) for r in misses], price, expected_completion_tokens)
    n_hits = sum(cached.key(r) in cached._answers for r in requests)
    out = {"requests": len(requests), "cache_hits": n_hits, "duplicates": len(requests) - n_hits - len(misses),
           **est}
    if print_fn is not None:
        dollars = "unpriced" if out["dollars_est"] is None else f"${out['dollars_est']:.4f}"
        print_fn(f"dry run ({cached.name}/{cached.model}): {out['calls']} calls to send of {out['requests']} requests "
                 f"({out['cache_hits']} cached, {out['duplicates']} duplicates); about {out['prompt_tokens_est']} prompt + "
                 f"{out['completion_tokens_est']} completion tokens, {dollars} (prompt tokens estimated as chars/4)")
    return out
