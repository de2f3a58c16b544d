"""Nothing silent: faults of an OpenAI-compatible server either stop the stage at once (a
rejected key, an unknown model or URL) or are retried within the bound and recorded (empty
content, an oversized reply, an error body that echoes the key); no fault is cached as an
answer, and neither the key nor any 8-character piece of it reaches a file, a log or stderr.
Two processes on one cache file pay each call once."""
from __future__ import annotations

import json
import logging
import os
import secrets as pysecrets
import subprocess
import sys
from pathlib import Path

import pytest

from edit import secrets as sec
from edit.llm.base import ChatRequest
from edit.llm.cache import CachedBackend, CallStore
from edit.llm.openai_backend import MAX_CHARS_PER_TOKEN, FatalAPIError, OpenAIBackend
from edit.llm.testing import ScriptedChatServer, ServerProcess

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "EDIT_TEST_FAULT_KEY"


@pytest.fixture
def key(monkeypatch):
    value = "sk-proj-" + pysecrets.token_urlsafe(33)
    monkeypatch.setenv(KEY_ENV, value)
    return value


def reqs(n: int) -> list[ChatRequest]:
    return [ChatRequest.make([{"role": "user", "content": f"q{i} What is the answer?"}], tag="cep") for i in range(n)]


def backend(base_url: str, **kw) -> OpenAIBackend:
    opts = dict(model="scripted-model", base_url=base_url, api_key_env=KEY_ENV, concurrency=1, max_attempts=3,
                timeout_s=2.0, backoff_base_s=0.01, backoff_max_s=0.02,
                sampling={"temperature": 0.0, "max_tokens": 64})
    opts.update(kw)
    return OpenAIBackend(**opts)


def assert_no_piece(key: str, tmp_path: Path, text: str) -> None:
    assert sec.scan_for_secrets(tmp_path, {"K": key}) == []
    assert sec.scan_text_for_secrets(text, {"K": key}) == []


@pytest.mark.bad_input("teacher")
@pytest.mark.parametrize("kind,status", [("401", 401), ("403", 403), ("404", 404), ("401_echo", 401)])
def test_auth_and_not_found_stop_the_stage_at_once(kind, status, key, tmp_path, caplog, capfd):
    rs = reqs(8)
    with caplog.at_level(logging.DEBUG):
        with ScriptedChatServer(faults=[{"match": "q2 ", "attempts": [kind] * 5}]) as srv:
            c = CachedBackend(backend(srv.base_url), tmp_path / "calls.jsonl")
            with pytest.raises(FatalAPIError) as ei:
                c.complete(rs, progress=False)
            stats = srv.stats()
    msg = str(ei.value)
    assert ei.value.status == status and f"HTTP {status}" in msg
    assert f"{srv.base_url}/chat/completions" in msg and "'scripted-model'" in msg
    assert stats["total"] == 3  # concurrency 1: q0, q1, then q2 once (not retried), nothing after it
    recs = CallStore(tmp_path / "calls.jsonl").load()
    assert [r["error"] for r in recs] == [None, None]  # the answers before the stop are kept
    assert_no_piece(key, tmp_path, caplog.text + "".join(capfd.readouterr()) + msg)


@pytest.mark.bad_input("teacher")
def test_a_wrong_base_url_is_a_404_naming_url_and_model(key):
    with ScriptedChatServer() as srv:
        with pytest.raises(FatalAPIError, match=r"HTTP 404 from POST http://127\.0\.0\.1:\d+/v2/chat/completions "
                                                r"for model 'scripted-model'.*base_url"):
            backend(srv.base_url.replace("/v1", "/v2")).complete(reqs(3), progress=False)
        assert srv.stats()["total"] == 0  # the server never saw a chat request under that path


@pytest.mark.bad_input("teacher")
@pytest.mark.parametrize("kind,error", [("empty", "empty content"), ("oversized", "oversized reply")])
def test_empty_and_oversized_replies_are_retried_then_recorded_never_cached(kind, error, key, tmp_path):
    rs = reqs(4)
    faults = [{"match": "q1 ", "attempts": [kind]},            # once: the retry succeeds
              {"match": "q2 ", "attempts": [kind] * 10}]       # always: recorded after the bound
    path = tmp_path / "calls.jsonl"
    with ScriptedChatServer(faults=faults) as srv:
        c = CachedBackend(backend(srv.base_url, concurrency=2), path)
        out = c.complete(rs, progress=False)
        assert [r.ok for r in out] == [True, True, False, True]
        assert out[1].attempts == 2 and error in out[2].error and out[2].text is None and out[2].attempts == 3
        if kind == "oversized":
            assert f"max_tokens 64 (at most {64 * MAX_CHARS_PER_TOKEN} accepted)" in out[2].error
        recs = CallStore(path).load()
        assert all(r["text"] is None for r in recs if r["error"]) and len(c) == 3
        assert max(len(r["text"] or "") for r in recs) < 64 * MAX_CHARS_PER_TOKEN  # nothing oversized written
        before = srv.stats()["total"]
        CachedBackend(backend(srv.base_url), path).complete(rs, progress=False)  # a rerun retries only q2
        assert srv.stats()["total"] - before == 3


@pytest.mark.bad_input("teacher")
def test_an_error_body_that_echoes_the_key_is_redacted_before_any_cut(key, tmp_path, caplog, capfd):
    # fillers place the key across every cut point: 300 characters of the error text, 160 of an error
    # object, 80/120 of a body excerpt
    fillers = list(range(0, 320, 7))
    rules = [{"match": f"q{i} ", "attempts": [f"{kind}:{n}"] * 5}
             for i, (kind, n) in enumerate([("500_echo", n) for n in fillers] + [("error_echo", n) for n in fillers])]
    rs = reqs(len(rules))
    with caplog.at_level(logging.DEBUG):
        with ScriptedChatServer(faults=rules) as srv:
            c = CachedBackend(backend(srv.base_url, concurrency=4, max_attempts=2), tmp_path / "calls.jsonl")
            out = c.complete(rs, progress=True)
            c.write_ledger(tmp_path / "ledger.json")
            (tmp_path / "results.json").write_text(json.dumps([r.to_dict() for r in out]))
    assert not any(r.ok for r in out)
    assert all(("HTTP 500" if i < len(fillers) else "error object") in r.error for i, r in enumerate(out))
    assert sum("***" in r.error for r in out) > len(out) // 2
    assert_no_piece(key, tmp_path, caplog.text + "".join(capfd.readouterr())
                    + "".join(str(r.args) for r in caplog.records))


# -- two processes, one cache file ----------------------------------------------------------------
GEN = r'''
import json, sys
from edit.llm.base import ChatRequest
from edit.llm.cache import CachedBackend
from edit.llm.openai_backend import OpenAIBackend

base_url, cache, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
b = OpenAIBackend("scripted", base_url=base_url, api_key_env="EDIT_TEST_NO_KEY", allow_missing_key=True,
                  concurrency=4, max_attempts=3, timeout_s=5, backoff_base_s=0.01, backoff_max_s=0.05,
                  sampling={"temperature": 0.0, "max_tokens": 64})
c = CachedBackend(b, cache)
texts = []
for start in range(0, n, 10):  # batches, as a teacher stage sends them
    reqs = [ChatRequest.make([{"role": "user", "content": f"item {i}: what is {i} * 7?"}], tag="cep")
            for i in range(start, min(n, start + 10))]
    texts += [r.text for r in c.complete(reqs, progress=False)]
with open(out, "w") as fh:
    json.dump({"texts": texts, "session": c.ledger.summary()["total"]}, fh)
'''


def test_two_processes_on_one_cache_pay_each_call_once(tmp_path):
    n = 40
    script = tmp_path / "gen.py"
    script.write_text(GEN)
    cache = tmp_path / "calls.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("EDIT_TEST_NO_KEY", None)
    with ServerProcess(tmp_path / "srv", latency_s=0.03) as srv:
        procs = [subprocess.Popen([sys.executable, str(script), srv.base_url, str(cache), str(tmp_path / f"out{k}.json"),
                                   str(n)], env=env, cwd=str(ROOT), stderr=subprocess.PIPE, text=True)
                 for k in range(2)]
        errs = [p.communicate(timeout=120)[1] for p in procs]
        stats = srv.stats()
    assert [p.returncode for p in procs] == [0, 0], errs
    assert stats["total"] == n and set(stats["counts"].values()) == {1}  # each call paid once, in all
    outs = [json.loads((tmp_path / f"out{k}.json").read_text()) for k in range(2)]
    assert outs[0]["texts"] == outs[1]["texts"] and all(outs[0]["texts"])
    assert sum(o["session"]["calls"] for o in outs) == n
    assert sum(o["session"]["cache_hits"] for o in outs) == n
    lines = cache.read_bytes().splitlines()
    assert len(lines) == n and all(json.loads(x)["error"] is None for x in lines)  # no corrupt line
    assert len({json.loads(x)["key"] for x in lines}) == n
