"""The paper profile's dress rehearsal on a CPU (edit/rehearsal.py, edit/llm/rehearsal_server.py,
edit/stages/train.py).

Fast: ``paper_rehearsal`` differs from ``paper`` only in the allowed keys (and the check catches
any other change); the scripted teacher answers EDIT's prompt files right and wrong as planned; the
train stage's ``accelerate launch`` command.

Slow: in a copy of the checkout, with the scripted teacher server running, ``dvc repro`` of the
rehearsal profile runs every stage with every evaluation column; a run killed during KRSL and
resumed ends byte-identical to the uninterrupted one; the adapters load with peft from their folder.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edit.benchmarks.suites import answer_type
from edit.llm.prompts import PromptBuilder, parse_reply
from edit.llm.rehearsal_server import TeacherScript
from edit.params import deep_merge, load_params
from edit.records import Question
from edit.rehearsal import check_profiles, differences, disallowed_differences
from edit.scoring import score
from edit.stages.train import launch_command

from conftest import ROOT

SUITES = ("BBH-test", "BB-sub", "AGIEval", "ARC-E", "ARC-C")


# ------------------------------------------------------------------------------------------ fast
def test_rehearsal_differs_from_paper_only_in_allowed_keys():
    keys = check_profiles(ROOT / "params.yaml")
    assert {"student.path", "teacher.openai.base_url", "runtime.num_processes", "data.max_train_per_task",
            "eval.suites.ARC-C.max_per_task", "train.krsl.batch_size"} <= set(keys)
    paper, rehearsal = load_params(ROOT / "params.yaml", "paper"), load_params(ROOT / "params.yaml", "paper_rehearsal")
    for same in ("student.lora", "student.dtype", "train.krsl.lr", "teacher.prompt_source", "data.bbh_tasks"):
        a, b = paper, rehearsal
        for part in same.split("."):
            a, b = a[part], b[part]
        assert a == b, same
    assert rehearsal["student"]["kind"] == "pretrained" and rehearsal["train"]["krsl"]["lr"] == 5e-6


@pytest.mark.parametrize("key, value", [("train.krsl.lr", 1e-4), ("student.lora.r", 8),
                                         ("teacher.prompt_source", "ours"), ("eval.suites.BB-sub", None),
                                         ("student.dtype", "float32")])
def test_another_changed_key_is_caught(tmp_path, key, value):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    overlay: dict = {}
    node = overlay
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    raw["profiles"]["paper_rehearsal"] = deep_merge(raw["profiles"]["paper_rehearsal"], overlay)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        check_profiles(tmp_path / "params.yaml")


def test_differences_of_nested_configs():
    a = {"x": {"y": 1, "z": [1, 2]}, "w": 0}
    b = {"x": {"y": 2, "z": [1, 2], "n": None}, "w": 0}
    assert differences(a, b) == ["x.n", "x.y"]
    assert disallowed_differences(a, b, allowed=("x.y",)) == ["x.n"]


def test_scripted_teacher_answers_edit_prompt_files(tmp_path, mirror):
    tasks = ["navigate", "word_sorting", "date_understanding"]
    examples = {t: json.loads((mirror / "bbh" / "bbh" / f"{t}.json").read_text())["examples"][:2] for t in tasks}
    qs = [Question(id=f"{t}-{i}", task=t, input=e["input"], target=e["target"])
          for t in tasks for i, e in enumerate(examples[t])]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(q.to_dict()) + "\n" for q in qs))
    script = TeacherScript(mirror, tmp_path / "train.jsonl")
    prompts = PromptBuilder(mirror, "edit_files")
    for i, q in enumerate(qs):
        atype = answer_type(q.task)
        cep = parse_reply(script.reply(prompts.cep_prompt(q)), atype, "cep")
        assert score(cep.text, q.target, atype)["correct"] == (i % 2 == 1), (q.id, cep.text)
        ahp = parse_reply(script.reply(prompts.ahp_prompt(q)), atype, "ahp")
        assert score(ahp.text, q.target, atype)["correct"], (q.id, ahp.text)
        ccp = parse_reply(script.reply(prompts.ccp_prompt(q, ahp.text)), atype, "ccp")
        assert ccp.answer is not None and not score(ccp.text, q.target, atype)["correct"], (q.id, ccp.text)
        # CCP keeps the right CoT's path: only the key step and the answer change
        assert ccp.text.splitlines()[0] == ahp.text.splitlines()[0]


def test_train_stage_launch_command():
    params = load_params(ROOT / "params.yaml", "paper")
    cmd = launch_command(params, "params.yaml", "edit", 1, port=29999)
    i = cmd.index("accelerate.commands.launch")
    assert cmd[i + 1:i + 7] == ["--config_file", "configs/accelerate/fsdp.yaml", "--num_processes", "8",
                                "--main_process_port", "29999"]
    assert cmd[cmd.index("-m", i) + 1] == "edit.launch"
    assert cmd[cmd.index("--profile") + 1] == "paper" and cmd[cmd.index("--seed") + 1] == "1"


# ------------------------------------------------------------------------------------------ slow
def _run(cmd, cwd, env, timeout=900):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def _start_server(work: Path, env: dict, mirror: Path) -> tuple[subprocess.Popen, int]:
    port_file = work.parent / "server-port"
    proc = subprocess.Popen([sys.executable, "-m", "edit.llm.rehearsal_server", "--port-file", str(port_file),
                             "--questions", str(work / "data" / "questions" / "train.jsonl"),
                             "--mirror", str(mirror)], cwd=work, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return proc, int(port_file.read_text())
        assert proc.poll() is None, "the scripted teacher server exited"
        time.sleep(0.05)
    proc.kill()
    raise TimeoutError("scripted teacher server not ready")


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory, mirror):
    """A copy of the checkout on the paper_rehearsal profile (seed 0), reproduced with DVC while the
    scripted teacher serves; ../shared beside it is the real one (data mirror, the paper's numbers)."""
    base = tmp_path_factory.mktemp("rehearsal")
    work = base / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        outputs = f.startswith(("reports/", "results/", "dvc.lock", "grid/results/", "grid/dvc.lock")) or (
            f.startswith("grid/students/") and f.count("/") > 2)
        if (ROOT / f).is_file() and not outputs:
            (work / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, work / f)
    if (ROOT.parent / "shared").is_dir():
        (base / "shared").symlink_to(ROOT.parent / "shared")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(work), OMP_NUM_THREADS="1", OPENAI_API_KEY="rehearsal-not-a-key")
    server, port = _start_server(work, env, mirror)
    try:
        raw = yaml.safe_load((work / "params.yaml").read_text())
        raw["profile"] = "paper_rehearsal"
        raw["seeds"] = [0]
        raw["runtime"]["data_mirror"] = str(mirror)
        raw["profiles"]["paper_rehearsal"]["teacher"]["openai"]["base_url"] = f"http://127.0.0.1:{port}/v1"
        (work / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        _run(["git", "init", "-q"], work, env)
        start = time.monotonic()
        _run([sys.executable, "-m", "edit.rehearsal", "student", "--out", ".rehearsal/student"], work, env)
        out = _run(["dvc", "repro"], work, env)
        seconds = time.monotonic() - start
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"rehearsal: dvc repro in {seconds:.0f} s")
    return work, env, out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_every_stage_and_column(rehearsal):
    work, env, out = rehearsal
    params = load_params(work / "params.yaml")
    lock = yaml.safe_load((work / "dvc.lock").read_text())
    stages = {"benchmarks", "data", "keysteps", "report", "explore"} | {
        f"{s}@{m}-{seed}" for s in ("train", "evaluate") for m in params["methods"] for seed in params["seeds"]}
    assert stages <= set(lock["stages"]), sorted(stages - set(lock["stages"]))
    assert "up to date" in _run(["dvc", "status", "dvc.yaml"], work, env)
    summary = json.loads((work / "reports" / "data_summary.json").read_text())
    assert len(summary["per_task"]) == 27
    for task, c in summary["per_task"].items():
        assert min(c.get("D+", 0), c.get("D-", 0), c.get("ahp_success", 0), c.get("ccp_success", 0)) >= 1, (task, c)
    ledger = json.loads((work / "reports" / "teacher_ledger.json").read_text())
    assert set(ledger["all_time"]["stages"]) == {"cep", "ahp", "ccp"}
    for m in params["methods"]:
        with open(work / "results" / f"{m}-0" / "accuracy.csv") as f:
            rows = [r for r in csv.DictReader(f) if r["task"] == "MACRO"]
        assert {r["suite"] for r in rows} == set(SUITES)
        assert all(int(r["n"]) > 0 for r in rows), rows
        train = json.loads((work / "results" / f"{m}-0" / "train.json").read_text())
        assert all(s["data"]["rows"] > 0 for s in train["steps"])
    with open(work / "reports" / "tables" / "table1.csv") as f:
        table = list(csv.DictReader(f))
    ours = [r for r in table if r.get("source") == "ours"]
    assert {r["method"] for r in ours} == set(params["methods"])
    assert all(r[s].strip() for r in ours for s in SUITES)
    with open(work / "reports" / "tables" / "table1_with_reported.csv") as f:
        both = list(csv.DictReader(f))
    assert {r["source"] for r in both} == {"ours", "reported"}, "the paper's numbers are not beside ours"
    assert all(r[s].strip() for r in both if r["source"] == "ours" for s in SUITES)
    edit_train = json.loads((work / "results" / "edit-0" / "train.json").read_text())
    assert [s["loss"] for s in edit_train["steps"]] == ["sft", "krsl"]
    assert edit_train["steps"][1]["hp"]["lr"] == 5e-6


@pytest.mark.slow
def test_kill_during_krsl_and_resume_is_byte_identical(rehearsal):
    """The train stage's own command (2 processes under accelerate launch), SIGKILLed once KRSL has
    written its first checkpoint, then run again: the same adapter bytes and train.json as the
    uninterrupted run of ``dvc repro``."""
    work, env, _ = rehearsal
    params = load_params(work / "params.yaml")
    cmd = launch_command(params, "params.yaml", "edit", 0, models_dir="resumed/models", results_dir="resumed/results")
    ck = work / "checkpoints" / "edit-0"
    proc = subprocess.Popen(cmd, cwd=work, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = False
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        done = [p for p in ck.glob("krsl-*/checkpoint-*") if (p / "trainer_state.json").is_file()
                and (p / "rng_state_1.pth").is_file()]
        if done:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.02)
    proc.wait()
    assert killed, "the run ended before KRSL wrote a checkpoint"
    assert not (work / "resumed" / "results" / "edit-0" / "train.json").exists()
    _run(cmd, work, env)
    assert not ck.exists()  # removed after success
    for step in ("step1", "step2"):
        a = work / "models" / "edit-0" / step / "adapter_model.safetensors"
        b = work / "resumed" / "models" / "edit-0" / step / "adapter_model.safetensors"
        assert _digest(a) == _digest(b), step
    assert ((work / "results" / "edit-0" / "train.json").read_bytes()
            == (work / "resumed" / "results" / "edit-0" / "train.json").read_bytes())


@pytest.mark.slow
def test_adapters_load_with_peft_from_their_folder(rehearsal, monkeypatch):
    import torch
    from peft import AutoPeftModelForCausalLM
    from safetensors.torch import load_file

    work, _, _ = rehearsal
    monkeypatch.chdir(work)  # the adapter names its base by the profile's student path
    folder = work / "models" / "edit-0" / "step2"
    model = AutoPeftModelForCausalLM.from_pretrained(str(folder))
    saved = load_file(str(folder / "adapter_model.safetensors"))
    state = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert saved and len(state) == len(saved)
    for k, v in saved.items():
        match = [s for s in state if s.replace(".default", "") == k]
        assert match and torch.equal(state[match[0]].to(v.dtype), v), k
    config = json.loads((folder / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (64, 32, 0.05)
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
