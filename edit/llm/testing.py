"""A scripted OpenAI-compatible chat-completions server for tests and benchmarks.

:class:`ScriptedChatServer` is a real HTTP server (``ThreadingHTTPServer``, HTTP/1.1 keep-alive)
on 127.0.0.1 with a free port. It speaks ``POST /v1/chat/completions`` with the OpenAI JSON
schema (``choices[0].message.content``, ``finish_reason``, ``usage``) and answers
deterministically: the reply is a function of the last user message, the sample index (header
``X-Edit-Sample-Index``, sent by :class:`edit.llm.openai_backend.OpenAIBackend`) and the
temperature, see :func:`scripted_reply`. It ends "Therefore, the answer is X." unless a fault
truncates it.

Faults are data (so that they also work in a separate process): a list of rules, each

``{"match": "<substring of the last user message>" (optional, default: every request),
   "sample_index": int (optional), "max_temperature": float (optional: only requests at or
   below this temperature),
   "attempts": ["429", "500", "hang", "malformed", "not_json", "truncate", "ok", ...]}``

The n-th request (0-based) that the server receives for a request key gets ``attempts[n]``
(``"ok"`` past the end); the first matching rule wins. ``{"random": {"p": 0.3, "kinds": [...],
"seed": 0}}`` instead gives each (key, n) a fault with probability p, decided by a hash (so it
is deterministic and independent of arrival order). Kinds:

- ``429``: status 429 with ``Retry-After`` (``retry_after`` setting, seconds, may be fractional)
- ``500`` / ``503``: a server error; ``400``: a client error (not retryable)
- ``401_echo``: 401 whose message echoes the bearer token (as careless proxies do)
- ``401`` / ``403``: a rejected key / a key without the right; ``404``: an unknown model
  (any path other than ``.../chat/completions`` is a 404 too: a wrong ``base_url``)
- ``500_echo:N`` / ``error_echo:N``: a 500, or a 200 whose body is an error object, whose message
  is N filler characters then the bearer token (N places the token where a cut may fall)
- ``empty``: status 200 with empty content
- ``oversized``: status 200 with a reply of ``oversize_chars`` characters (default 200,000)
- ``hang``: sleep ``hang_s`` (longer than the client's timeout) before answering
- ``malformed``: status 200, ``application/json``, a body cut in the middle of the JSON
- ``not_json``: status 200 with an HTML body
- ``truncate``: a normal reply cut before the answer phrase, ``finish_reason: "length"``
- ``ok``: a normal reply

The request key is the ``X-Edit-Request-Key`` header (the client's cache key) or else the
sha256 of the request body. ``GET /stats`` returns the counts: every request per key
(``counts``), the successful replies per key (``ok_counts``), the total, and the sha256 prefixes
of the bearer tokens seen (never the tokens), the request-body field names seen, and the most
requests handled at once (``max_in_flight``). ``POST /reset`` clears them.

Run it as a process: ``python -m edit.llm.testing --port-file PATH [--latency 0.05]
[--faults JSON] [--retry-after 0.2] [--hang 5]``; it writes its port to PATH when ready and
serves until killed.

Just over 400 lines: the fault catalogue, the in-process server and the server process are one
test fixture; they change together.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from edit.records import ANSWER_PHRASE

FAULT_KINDS = ("429", "500", "503", "400", "401", "403", "404", "401_echo", "500_echo", "error_echo", "empty",
               "oversized", "hang", "malformed", "not_json", "truncate", "ok")


def check_fault_kind(kind: str) -> None:
    """ValueError unless ``kind`` is a known fault kind (``500_echo`` / ``error_echo`` may carry ``:N``)."""
    base, _, arg = str(kind).partition(":")
    if base not in FAULT_KINDS or (arg and (base not in ("500_echo", "error_echo") or not arg.isdigit())):
        raise ValueError(f"unknown fault kind {kind!r}; known: {FAULT_KINDS}")


def _h(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def scripted_reply(last_user: str, sample_index: int = 0, temperature: float = 0.0) -> str:
    """The server's deterministic reply to a prompt: two reasoning sentences and an answer.

    At temperature 0 the sample index does not change the reply (greedy decoding); above 0 it
    does, like real sampling."""
    salt = sample_index if float(temperature or 0.0) > 0 else 0
    digest = _h(last_user, salt)
    answer = "(" + "ABCD"[int(digest[:2], 16) % 4] + ")"
    words = last_user.split()
    topic = " ".join(words[:6]) if words else "the question"
    return (f"Let's think step by step. The question starts with \"{topic}\". "
            f"Working through it (trace {digest[:8]}) gives option {answer}. "
            f"{ANSWER_PHRASE} {answer}.")


def _fault_for(rules: list[dict], key: str, n: int, last_user: str, sample_index: int,
               temperature: float) -> str:
    for rule in rules:
        if "random" in rule:
            spec = rule["random"]
            u = int(_h(spec.get("seed", 0), key, n)[:8], 16) / 0xFFFFFFFF
            if u < float(spec.get("p", 0.0)):
                kinds = list(spec.get("kinds", ["500"]))
                return kinds[int(_h("kind", spec.get("seed", 0), key, n)[:8], 16) % len(kinds)]
            continue
        if "match" in rule and rule["match"] not in last_user:
            continue
        if "sample_index" in rule and int(rule["sample_index"]) != sample_index:
            continue
        if "max_temperature" in rule and temperature > float(rule["max_temperature"]):
            continue
        attempts = list(rule.get("attempts", []))
        return attempts[n] if n < len(attempts) else "ok"
    return "ok"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: without this, +40 ms per reply
    server: "_Server"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self):
        if self.path.rstrip("/") == "/stats":
            self._send(200, json.dumps(self.server.owner.stats()).encode())
        elif self.path.rstrip("/").endswith("/models"):
            self._send(200, json.dumps({"object": "list", "data": [
                {"id": "scripted", "object": "model", "owned_by": "edit"}]}).encode())
        else:
            self._send(404, b'{"error": {"message": "not found"}}')

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") == "/reset":
            self.server.owner.reset()
            self._send(200, b"{}")
            return
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        try:
            body = json.loads(raw)
            messages = body["messages"]
        except (ValueError, KeyError, TypeError):
            self._send(400, b'{"error": {"message": "bad request body"}}')
            return
        owner: ScriptedChatServer = self.server.owner
        key = self.headers.get("X-Edit-Request-Key") or _h(raw.decode("utf-8", "replace"))
        sample_index = int(self.headers.get("X-Edit-Sample-Index") or 0)
        temperature = float(body.get("temperature") or 0.0)
        last_user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        auth = self.headers.get("Authorization", "")
        n = owner._count(key, auth, body)
        fault = _fault_for(owner.faults, key, n, last_user, sample_index, temperature)
        owner._enter()
        try:
            self._reply(owner, key, fault, body, messages, last_user, sample_index, temperature)
        finally:
            owner._leave()

    def _reply(self, owner, key, fault, body, messages, last_user, sample_index, temperature):
        if owner.latency_s:
            time.sleep(owner.latency_s)
        fault, _, arg = fault.partition(":")
        token = self.headers.get("Authorization", "")[7:]
        if fault in ("500_echo", "error_echo"):
            message = "x" * int(arg or 0) + f" Incorrect API key provided: {token}. Check your key."
            payload = json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()
            self._send(500 if fault == "500_echo" else 200, payload)
        elif fault in ("401", "403", "404"):
            text = {"401": "Incorrect API key provided.", "403": "You may not use this model.",
                    "404": f"The model {body.get('model')!r} does not exist."}[fault]
            self._send(int(fault), json.dumps({"error": {"message": text, "type": "invalid_request_error"}}).encode())
        elif fault == "429":
            self._send(429, b'{"error": {"message": "rate limited", "type": "rate_limit"}}',
                       headers={"Retry-After": str(owner.retry_after_s)})
        elif fault == "400":
            self._send(400, b'{"error": {"message": "scripted bad request", "type": "invalid_request_error"}}')
        elif fault == "401_echo":
            self._send(401, json.dumps({"error": {"message": f"Incorrect API key provided: {token}",
                                                  "type": "invalid_request_error"}}).encode())
        elif fault in ("500", "503"):
            self._send(int(fault), b'{"error": {"message": "scripted server error"}}')
        elif fault == "hang":
            time.sleep(owner.hang_s)
            self._send(500, b'{"error": {"message": "hung"}}')
        elif fault == "malformed":
            self._send(200, b'{"id": "chatcmpl-x", "object": "chat.completion", "choices": [{"index": 0, "mess')
        elif fault == "not_json":
            self._send(200, b"<html><body>Bad gateway</body></html>", content_type="text/html")
        else:
            text = scripted_reply(last_user, sample_index, temperature)
            finish = "stop"
            if fault == "empty":
                text = ""
            elif fault == "oversized":
                text = ("blah " * (owner.oversize_chars // 5)) + text
            elif fault == "truncate":
                text = text[: text.index(ANSWER_PHRASE)].rstrip()
                finish = "length"
            prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1
            reply = {
                "id": "chatcmpl-" + key[:12], "object": "chat.completion", "created": 0,
                "model": body.get("model", "scripted"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": finish, "logprobs": None}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text) // 4 + 1,
                          "total_tokens": prompt_tokens + len(text) // 4 + 1},
            }
            if fault not in ("empty", "oversized"):
                owner._count_ok(key)
            self._send(200, json.dumps(reply).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        """A client that went away (killed, timed out) is expected here: stay quiet about it."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class ScriptedChatServer:
    """The scripted server in a background thread of this process.

    ``with ScriptedChatServer(latency_s=0.01, faults=[...]) as srv: srv.base_url`` (ends in
    ``/v1``); ``srv.counts`` / ``srv.ok_counts`` are per request key, ``srv.total`` all requests.
    """

    def __init__(self, latency_s: float = 0.0, faults: list[dict] | None = None,
                 retry_after_s: float = 0.2, hang_s: float = 5.0, port: int = 0, oversize_chars: int = 200_000):
        for rule in faults or []:
            for kind in rule.get("attempts", []) + rule.get("random", {}).get("kinds", []):
                check_fault_kind(kind)
        self.latency_s = float(latency_s)
        self.faults = list(faults or [])
        self.retry_after_s = retry_after_s
        self.hang_s = float(hang_s)
        self.oversize_chars = int(oversize_chars)
        self._lock = threading.Lock()
        self.counts: Counter = Counter()
        self.ok_counts: Counter = Counter()
        self.auth_seen: Counter = Counter()
        self.param_names: Counter = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _count(self, key: str, auth: str, body: dict) -> int:
        with self._lock:
            n = self.counts[key]
            self.counts[key] += 1
            self.param_names.update(body.keys())
            token = auth[7:] if auth.lower().startswith("bearer ") else auth
            self.auth_seen[hashlib.sha256(token.encode()).hexdigest()[:16]] += 1
            return n

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _count_ok(self, key: str) -> None:
        with self._lock:
            self.ok_counts[key] += 1

    def stats(self) -> dict:
        with self._lock:
            return {"total": sum(self.counts.values()), "counts": dict(self.counts),
                    "ok_counts": dict(self.ok_counts), "auth_sha256_16": dict(self.auth_seen),
                    "param_names": dict(self.param_names), "max_in_flight": self.max_in_flight}

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.ok_counts.clear()
            self.auth_seen.clear()
            self.param_names.clear()
            self.max_in_flight = self.in_flight

    def start(self) -> "ScriptedChatServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"scripted-chat-{self.port}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "ScriptedChatServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ServerProcess:
    """The scripted server as a separate process (for kill -9 tests and benchmarks).

    ``with ServerProcess(tmp_dir, latency_s=0.05) as srv: srv.base_url, srv.stats()``."""

    def __init__(self, workdir: str | os.PathLike, latency_s: float = 0.0, faults: list[dict] | None = None,
                 retry_after_s: float = 0.2, hang_s: float = 5.0, startup_timeout_s: float = 60.0):
        self.workdir = Path(workdir)
        self.args = ["--latency", str(latency_s), "--faults", json.dumps(faults or []),
                     "--retry-after", str(retry_after_s), "--hang", str(hang_s)]
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "ServerProcess":
        self.workdir.mkdir(parents=True, exist_ok=True)
        port_file = self.workdir / f"server-port-{os.getpid()}-{time.monotonic_ns()}"
        self.proc = subprocess.Popen([sys.executable, "-m", "edit.llm.testing", "--port-file", str(port_file),
                                      *self.args], cwd=str(Path(__file__).resolve().parents[2]))
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                self.port = int(port_file.read_text().strip())
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"scripted server process exited with {self.proc.returncode} before it was ready")
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"scripted server process not ready within {self.startup_timeout_s} s")

    def _call(self, method: str, path: str) -> dict:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=b"{}" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict:
        return self._call("GET", "/stats")

    def reset(self) -> None:
        self._call("POST", "/reset")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Scripted OpenAI-compatible chat server (tests, benchmarks).")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True, help="written with the port once the server listens")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    ap.add_argument("--faults", default="[]", help="fault rules as JSON (see the module docstring)")
    ap.add_argument("--retry-after", default="0.2", help="Retry-After value of 429 replies (seconds)")
    ap.add_argument("--hang", type=float, default=5.0, help="seconds a 'hang' fault sleeps")
    a = ap.parse_args(argv)
    srv = ScriptedChatServer(latency_s=a.latency, faults=json.loads(a.faults), retry_after_s=a.retry_after,
                             hang_s=a.hang, port=a.port)
    serve_until_killed(srv, a.port_file)


def serve_until_killed(srv: "ScriptedChatServer", port_file: str) -> None:
    """Write ``srv``'s port to ``port_file`` (atomically: a reader never sees half a number), then
    serve in this thread until the process is killed."""
    tmp = Path(port_file + ".tmp")
    tmp.write_text(str(srv.port))
    os.replace(tmp, port_file)
    srv._httpd.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
