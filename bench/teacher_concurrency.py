"""Teacher-call throughput: requests/s at concurrency 1 vs 16 against the scripted
OpenAI-compatible server (a separate process, 50 ms latency per request), and the number of
requests a fully cached rerun makes (must be 0).

    .venv/bin/python bench/teacher_concurrency.py [--latency 0.05] [--n-serial 30] [--n-parallel 320]
                                                  [--json out.json]

Prints one line per measurement and, with --json, writes the figures to a file. Exits 1 when the
speed-up is below --target (10x) or the cached rerun sent anything.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edit.llm.base import ChatRequest  # noqa: E402
from edit.llm.cache import CachedBackend  # noqa: E402
from edit.llm.openai_backend import OpenAIBackend  # noqa: E402
from edit.llm.testing import ServerProcess  # noqa: E402


def _requests(n: int, prefix: str) -> list[ChatRequest]:
    return [ChatRequest.make([{"role": "user", "content": f"{prefix} question {i}: what follows?"}], tag=prefix)
            for i in range(n)]


def _rate(backend: OpenAIBackend, reqs: list[ChatRequest]) -> tuple[float, float]:
    t0 = time.perf_counter()
    out = backend.complete(reqs, progress=False)
    dt = time.perf_counter() - t0
    bad = [r.error for r in out if not r.ok]
    if bad:
        raise RuntimeError(f"{len(bad)} calls failed, e.g. {bad[0]}")
    return len(reqs) / dt, dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--n-serial", type=int, default=30)
    ap.add_argument("--n-parallel", type=int, default=320)
    ap.add_argument("--target", type=float, default=10.0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp, ServerProcess(tmp, latency_s=a.latency) as srv:
        def make(conc: int) -> OpenAIBackend:
            return OpenAIBackend("scripted", base_url=srv.base_url, api_key_env="EDIT_BENCH_NO_KEY",
                                 allow_missing_key=True, concurrency=conc, max_attempts=3, timeout_s=10,
                                 sampling={"temperature": 0.0, "max_tokens": 64})

        _rate(make(4), _requests(8, "warmup"))
        r1, t1 = _rate(make(1), _requests(a.n_serial, "serial"))
        print(f"concurrency  1: {a.n_serial:4d} requests in {t1:6.2f} s = {r1:7.1f} requests/s "
              f"(latency {a.latency * 1000:.0f} ms)")
        r16, t16 = _rate(make(16), _requests(a.n_parallel, "parallel"))
        print(f"concurrency 16: {a.n_parallel:4d} requests in {t16:6.2f} s = {r16:7.1f} requests/s")
        speedup = r16 / r1
        print(f"speed-up: {speedup:.1f}x (target >= {a.target:.0f}x; ideal 16x)")

        cache = Path(tmp) / "calls.jsonl"
        reqs = _requests(a.n_parallel, "cached")
        t0 = time.perf_counter()
        first = CachedBackend(make(16), cache).complete(reqs, progress=False)
        r_cache = len(reqs) / (time.perf_counter() - t0)
        print(f"concurrency 16 through the cache (a fsync per record): {r_cache:7.1f} requests/s")
        before = srv.stats()["total"]
        t0 = time.perf_counter()
        again = CachedBackend(make(16), cache).complete(reqs, progress=False)
        t_cached = time.perf_counter() - t0
        sent = srv.stats()["total"] - before
        same = [r.text for r in again] == [r.text for r in first] and all(r.cached for r in again)
        print(f"cached rerun: {len(reqs)} requests, {sent} sent to the server, {t_cached:.2f} s "
              f"(reload + lookup), outputs identical: {same}")

    figures = {"latency_s": a.latency, "rps_c1": round(r1, 2), "rps_c16": round(r16, 2),
               "speedup": round(speedup, 2), "rps_c16_cached_fsync": round(r_cache, 2), "cached_rerun_requests": sent, "cached_rerun_s": round(t_cached, 3),
               "cached_outputs_identical": same, "cpu_count": os.cpu_count()}
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=2) + "\n")
    ok = speedup >= a.target and sent == 0 and same
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
