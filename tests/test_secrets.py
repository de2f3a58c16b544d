"""The API key never reaches a file, a log line or the console; the scanner that checks it."""
from __future__ import annotations

import hashlib
import json
import logging
import secrets as pysecrets

import pytest

from edit import secrets as sec
from edit.llm.base import ChatRequest
from edit.llm.cache import CachedBackend, dry_run
from edit.llm.openai_backend import OpenAIBackend, complete_with_answer
from edit.llm.testing import ScriptedChatServer


def test_the_key_is_used_but_written_nowhere(tmp_path, monkeypatch, caplog, capfd):
    sentinel = "sk-sentinel-" + pysecrets.token_hex(16)
    monkeypatch.setenv("OPENAI_API_KEY", sentinel)
    faults = [{"match": "q1 ", "attempts": ["500", "malformed"]},
              {"match": "q2 ", "attempts": ["500_echo:200"] * 5},  # a server that echoes the key
              {"match": "q3 ", "attempts": ["truncate"] * 5},
              {"match": "q4 ", "attempts": ["hang"] * 5}]
    reqs = [ChatRequest.make([{"role": "user", "content": f"q{i} question"}], tag="cep") for i in range(6)]
    with caplog.at_level(logging.DEBUG):  # every logger, the openai client's and httpx's included
        with ScriptedChatServer(faults=faults, hang_s=1.0) as srv:
            b = OpenAIBackend("scripted", base_url=srv.base_url, concurrency=3, max_attempts=3, timeout_s=0.3,
                              backoff_base_s=0.01, backoff_max_s=0.02,
                              sampling={"temperature": 0.0, "max_tokens": 32})
            print(repr(b))
            c = CachedBackend(b, tmp_path / "cache" / "calls.jsonl", {"scripted": {"prompt_per_1m": 1.0,
                                                                              "completion_per_1m": 2.0}})
            dry_run(c, reqs, expected_completion_tokens=20)
            out = complete_with_answer(c, reqs, max_resamples=1, progress=True)
            c.write_ledger(tmp_path / "ledger.json")
            (tmp_path / "results.json").write_text(json.dumps([o.result.to_dict() for o in out]))
            seen = srv.stats()["auth_sha256_16"]
    # the key was really sent (the check below is not vacuous) ...
    assert hashlib.sha256(sentinel.encode()).hexdigest()[:16] in seen
    assert "HTTP 500" in out[2].result.error and "***" in out[2].result.error
    assert out[4].result.error and out[3].flagged
    # ... and appears in no file, log record or console output
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 3
    assert sec.scan_for_secrets(tmp_path, {"OPENAI_API_KEY": sentinel}) == []
    captured = capfd.readouterr()
    assert "teacher scripted" in captured.err  # the progress bar was drawn (and is scanned below)
    text = caplog.text + captured.out + captured.err + "".join(str(r.args) for r in caplog.records)
    assert len(caplog.records) > 0
    assert sec.scan_text_for_secrets(text, {"OPENAI_API_KEY": sentinel}) == []


def test_scanner_finds_secrets_by_name_in_any_file(tmp_path, monkeypatch):
    secret = "sk-abcdefghijklmnop"
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "clean.txt").write_text("nothing here sk-abcd efghijk lmnop")  # no 8 characters in a row
    (tmp_path / "a" / "b" / "nb.ipynb").write_text(json.dumps({"outputs": [f"key={secret}"]}))
    (tmp_path / "a" / "u16.txt").write_bytes(("x" + secret).encode("utf-16-le"))
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text(secret)  # excluded folder
    found = sec.scan_for_secrets([tmp_path], {"OPENAI_API_KEY": secret})
    assert sorted((f.path.replace(str(tmp_path), ""), f.name) for f in found) == [
        ("/a/b/nb.ipynb", "OPENAI_API_KEY"), ("/a/u16.txt", "OPENAI_API_KEY")]
    assert all(secret not in repr(f) for f in found)
    nb = next(f for f in found if f.path.endswith("nb.ipynb"))
    assert (tmp_path / "a" / "b" / "nb.ipynb").read_bytes()[nb.offset:].startswith(secret.encode())
    assert sec.scan_for_secrets(tmp_path / "clean.txt", {"K": secret}) == []


def test_scanner_finds_a_secret_across_a_chunk_boundary(tmp_path, monkeypatch):
    monkeypatch.setattr(sec, "CHUNK", 16)
    secret = "sk-0123456789abcdef"
    for start in range(0, 20):
        p = tmp_path / f"f{start}.bin"
        p.write_bytes(b"." * start + secret.encode() + b"." * 7)
        found = sec.scan_for_secrets(p, {"K": secret})
        assert [f.offset for f in found] == [start], start


def test_scanner_rejects_short_secrets_and_reads_the_environment(monkeypatch):
    with pytest.raises(ValueError, match="'K'"):
        sec.scan_for_secrets(".", {"K": "short"})
    monkeypatch.setenv("EDIT_T_LONG", "a-long-enough-secret")
    monkeypatch.setenv("EDIT_T_SHORT", "abc")
    monkeypatch.delenv("EDIT_T_UNSET", raising=False)
    assert sec.secrets_from_env(["EDIT_T_LONG", "EDIT_T_SHORT", "EDIT_T_UNSET"]) == {"EDIT_T_LONG": "a-long-enough-secret"}


def test_scanner_command_exit_codes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDIT_T_KEY", "sk-cli-secret-value")
    (tmp_path / "ok.txt").write_text("fine")
    assert sec.main([str(tmp_path), "--env", "EDIT_T_KEY"]) == 0
    (tmp_path / "leak.log").write_text("auth sk-cli-secret-value")
    assert sec.main([str(tmp_path), "--env", "EDIT_T_KEY"]) == 1
    out = capsys.readouterr().out
    assert "leak.log" in out and "sk-cli-secret-value" not in out


def test_scanner_finds_any_8_character_piece_prefixes_included(tmp_path):
    secret = "sk-proj-Zq4vT9xLmB2nR7kW"
    for i, piece in enumerate([secret[:13], secret[:19], secret[5:13], secret[-8:], secret[9:17]]):
        p = tmp_path / f"leak{i}.txt"
        p.write_text(f"error: Incorrect API key provided: {piece}")
        found = sec.scan_for_secrets(p, {"K": secret})
        start = len("error: Incorrect API key provided: ")
        assert len(found) == 1 and start <= found[0].offset <= start + len(piece) - 8, piece
        assert sec.scan_text_for_secrets(p.read_text(), {"K": secret}) == ["K"]
    # seven characters, or the public prefix alone, are not a leak
    (tmp_path / "ok.txt").write_text(f"{secret[8:15]} and keys look like sk-proj-... {secret[10:17]}")
    assert sec.scan_for_secrets(tmp_path / "ok.txt", {"K": secret}) == []
    assert sec.public_prefix_len(secret) == 8 and sec.public_prefix_len("sk-test-not-a-secret") == 0


def test_redact_removes_every_piece_before_a_cut():
    secret = "sk-sentinel-" + "0123456789abcdef" * 2
    for cut in range(len(secret) + 1):
        text = f"Incorrect API key provided: {secret[:cut]}|{secret}|{secret[cut:]} end"
        red = sec.redact(text, secret)
        assert sec.scan_text_for_secrets(red, {"K": secret}) == [], cut
        assert red.startswith("Incorrect API key provided: ") and red.endswith(" end")
    assert sec.redact("no key here", secret) == "no key here"
    assert sec.redact(f"a{secret}b", secret) == "a***b"
    assert sec.redact("short", "abc") == "short"
