"""The data stage (notebooks/01_data.ipynb, run by papermill as DVC runs it) with a real
OpenAI-compatible teacher: real BBH-train questions, the `openai` backend talking HTTP to a scripted
chat-completions server on 127.0.0.1, the persistent call cache and the ledger. A rerun makes no
request, and the API key set in the environment is found in no file the stage writes: the executed
notebook, the data, the cache, the ledger."""
import json
import os
import secrets
import subprocess
import sys
from hashlib import sha256
from pathlib import Path

import pytest
import yaml

from edit.stages import benchmarks as benchmarks_stage
from edit.llm.testing import ScriptedChatServer
from edit.params import load_params
from edit.secrets import scan_for_secrets

from conftest import ROOT

pytestmark = pytest.mark.slow

TASK = "date_understanding"  # options (A)-(F): the scripted server answers with an option


def _papermill(work: Path, env: dict) -> None:
    cmd = [str(Path(sys.executable).parent / "papermill"), "-k", "python3", "--log-level", "WARNING",
           str(ROOT / "notebooks" / "01_data.ipynb"), str(work / "reports" / "01_data.ipynb"),
           "-p", "params_file", str(work / "params.yaml"), "-p", "out_dir", str(work / "data"),
           "-p", "summary_path", str(work / "reports" / "data_summary.json")]
    (work / "reports").mkdir(exist_ok=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_data_stage_with_an_openai_compatible_teacher(tmp_path, mirror):
    key = "sk-test-" + secrets.token_hex(16)
    env = dict(os.environ, OPENAI_API_KEY=key, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    params = load_params(ROOT / "params.yaml", profile="smoke")
    params["runtime"]["data_mirror"] = str(mirror)
    benchmarks_stage.run(params, tmp_path / "data" / "benchmarks", allow_download=False)
    with ScriptedChatServer(faults=[{"random": {"p": 0.2, "kinds": ["429", "500", "malformed"], "seed": 1}}],
                            retry_after_s=0.01) as server:
        params["data"].update(source="bbh", bbh_tasks=[TASK], n_val_per_task=5)
        params["eval"]["suites"].update(IND=None, OOD=None)  # no embedded test splits with source bbh
        params["teacher"].update(
            backend="openai",
            cache={"path": str(tmp_path / "cache" / "calls.jsonl")},
            ledger=str(tmp_path / "reports" / "teacher_ledger.json"),
            openai={"model": "scripted", "base_url": server.base_url, "api_key_env": "OPENAI_API_KEY",
                    "concurrency": 8, "max_attempts": 8, "timeout_s": 10, "backoff_base_s": 0.01})
        params["profile"], params["profiles"] = "default", {"default": {}}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

        _papermill(tmp_path, env)
        first = server.stats()
        summary = json.loads((tmp_path / "reports" / "data_summary.json").read_text())
        n_train = sum(1 for _ in open(tmp_path / "data" / "questions" / "train.jsonl"))
        assert n_train == 200 - 5  # BBH-train of the task (4:1 split of 250) less the validation items
        # every question got CEP, then exactly one of AHP (wrong CoT) or CCP (right CoT)
        assert summary["total"]["questions"] == n_train
        rates = summary["rates"]["total"]
        assert 0 < rates["cep_accuracy"] < 1 and rates["ahp_success_rate"] is not None
        pairs = [json.loads(line) for line in open(tmp_path / "data" / "cots" / "pairs.jsonl")]
        assert pairs and {p["pair_type"] for p in pairs} == {"D+dual", "D-dual"}
        ledger = json.loads((tmp_path / "reports" / "teacher_ledger.json").read_text())
        assert ledger and first["total"] >= 2 * n_train  # faults were retried
        assert sha256(key.encode()).hexdigest()[:16] in first["auth_sha256_16"]  # the server did get the key

        # a rerun is served from the cache: not one request
        _papermill(tmp_path, env)
        assert server.stats()["total"] == first["total"]
    for f in ("sft.jsonl", "wrong.jsonl", "pairs.jsonl"):
        assert (tmp_path / "data" / "cots" / f).stat().st_size > 0

    found = scan_for_secrets([tmp_path], {"OPENAI_API_KEY": key})
    assert found == [], found
