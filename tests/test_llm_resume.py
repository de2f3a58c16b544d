"""Kill -9 and resume: a generation through CachedBackend in a subprocess, against the scripted
server in another process, is killed at seeded random points and resumed until it completes.

What must hold, exactly:
- a call PERSISTED in the cache before a run starts is never requested again by that run (or any
  later one);
- a call may be repeated only if it was in flight when a kill came (requested, but its record not
  on disk after the kill): per key, successful replies <= 1 + the number of kills it was in flight at;
- the bound: per kill, at most CONCURRENCY calls that the server had ANSWERED are not on disk (paid
  again by the resumed run); the test prints the largest number seen;
- the final outputs equal those of an uninterrupted run.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path


from edit.llm.cache import CallStore
from edit.llm.testing import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
N_ITEMS = 60
CONCURRENCY = 4
FAULTS = [{"random": {"p": 0.15, "kinds": ["500", "malformed"], "seed": 7}}]

GEN = r'''
import json, os, sys
from edit.llm.base import ChatRequest
from edit.llm.cache import CachedBackend
from edit.llm.openai_backend import OpenAIBackend

base_url, cache, out, n, conc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
b = OpenAIBackend("scripted", base_url=base_url, api_key_env="EDIT_TEST_NO_KEY", allow_missing_key=True,
                  concurrency=conc, max_attempts=8, timeout_s=5, backoff_base_s=0.01, backoff_max_s=0.05,
                  sampling={"temperature": 0.0, "max_tokens": 64})
reqs = [ChatRequest.make([{"role": "user", "content": f"item {i}: what is {i} * 7?"}], tag="cep") for i in range(n)]
res = CachedBackend(b, cache).complete(reqs, progress=False)
tmp = out + ".tmp"
with open(tmp, "w") as fh:
    json.dump([[r.text, r.finish_reason, r.error] for r in res], fh)
os.replace(tmp, out)
'''


def _persisted_keys(cache: Path) -> set[str]:
    return {r["key"] for r in CallStore(cache).load() if r.get("error") is None and r.get("text") is not None}


def _line_count(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return fh.read().count(b"\n")
    except FileNotFoundError:
        return 0


def _start(script: Path, srv: ServerProcess, cache: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("EDIT_TEST_NO_KEY", None)
    return subprocess.Popen([sys.executable, str(script), srv.base_url, str(cache), str(out), str(N_ITEMS),
                             str(CONCURRENCY)], env=env, cwd=str(ROOT))


def test_kill9_resume_never_repeats_a_persisted_call(tmp_path):
    script = tmp_path / "gen.py"
    script.write_text(GEN)
    rng = random.Random(20250727)

    # the reference: one uninterrupted run
    with ServerProcess(tmp_path / "ref", latency_s=0.02, faults=FAULTS) as ref_srv:
        p = _start(script, ref_srv, tmp_path / "ref.jsonl", tmp_path / "ref.json")
        assert p.wait(timeout=120) == 0
        ref_stats = ref_srv.stats()
    reference = json.loads((tmp_path / "ref.json").read_text())
    assert all(t and e is None for t, _, e in reference)
    assert set(ref_stats["ok_counts"].values()) == {1}  # uninterrupted: one reply per key

    cache, out = tmp_path / "calls.jsonl", tmp_path / "out.json"
    thresholds = sorted(rng.sample(range(2, N_ITEMS - 8), 4))  # kill once this many records are on disk
    kills, segments = 0, 0
    in_flight_at_kill: Counter = Counter()
    paid_again: list[int] = []
    with ServerProcess(tmp_path / "srv", latency_s=0.02, faults=FAULTS) as srv:
        while True:
            persisted_before = _persisted_keys(cache)
            stats_before = srv.stats()
            counts_before, ok_before = Counter(stats_before["counts"]), Counter(stats_before["ok_counts"])
            proc = _start(script, srv, cache, out)
            segments += 1
            killed = False
            if kills < len(thresholds):
                target = thresholds[kills]
                deadline = time.monotonic() + 120
                while proc.poll() is None and time.monotonic() < deadline:
                    if _line_count(cache) >= target:
                        proc.send_signal(signal.SIGKILL)
                        killed = True
                        break
                    time.sleep(0.002)
            rc = proc.wait(timeout=120)
            time.sleep(0.3)  # let the server finish counting what the dead client had sent
            stats_after = srv.stats()
            counts_after, ok_after = Counter(stats_after["counts"]), Counter(stats_after["ok_counts"])
            requested = {k for k in counts_after if counts_after[k] > counts_before[k]}
            # the exact guarantee: nothing persisted before this run was requested by it
            assert not (requested & persisted_before), f"run {segments} repeated persisted calls"
            if killed:
                assert rc == -signal.SIGKILL
                kills += 1
                lost = requested - _persisted_keys(cache)  # requested, reply not on disk: in flight
                assert len(lost) <= CONCURRENCY
                answered = {k for k in ok_after if ok_after[k] > ok_before[k]}
                paid_again.append(len(answered & lost))  # answered by the server, lost by the kill
                in_flight_at_kill.update(lost)
            else:
                assert rc == 0
                break
            assert segments < 20
        stats = srv.stats()

    assert kills == len(thresholds) >= 3
    print(f"answered but lost per kill (paid again): {paid_again}; bound {CONCURRENCY}")
    assert max(paid_again) <= CONCURRENCY
    final = json.loads(out.read_text())
    assert final == reference
    # per key: successful replies <= 1 + the kills at which that call was in flight
    for key, n_ok in stats["ok_counts"].items():
        assert n_ok <= 1 + in_flight_at_kill[key], key
    assert len(stats["ok_counts"]) == N_ITEMS
    # the persisted records are exactly one answer per item, and the file reloads cleanly
    store = CallStore(cache)
    answers = [r for r in store.load() if r["error"] is None]
    assert len(answers) == len({r["key"] for r in answers}) == N_ITEMS
