"""Scale-out and resume of training (edit/launch.py, edit.training.trainers.train).

* Two CPU processes under ``accelerate launch`` (DDP, gloo) log the same per-step losses as one
  process with the same GLOBAL batch: ``train.<loss>.batch_size`` is global and edit.training.trainers.train
  gives each process batch_size / N. Data order: accelerate's seedable sampler draws the same
  permutation in both runs and hands per-device batch j of global step k to rank j, so global step
  k sees exactly the rows of the single run's step k (the row count is a multiple of the global
  batch here: otherwise accelerate fills the last batch with rows from the epoch's start). The SFT
  step runs with ``group_by_length`` (edit.training.batching.LengthGroupedSampler: an order that depends
  only on seed and epoch, grouped in units of the global batch), the KRSL step with the default
  random order, so both orders are checked on 1 and 2 processes and across a kill and resume.
  Tolerance: the two runs do the same arithmetic except the order of float32 sums (a gradient is
  the mean of two half-batch gradients averaged by all-reduce, instead of one full-batch mean; each
  rank pads its half to its own longest row, which is masked). float32 rounding is ~1e-7 relative;
  a dozen Adam steps keep it below ~1e-6 (measured: 2e-7 on losses, 3e-7 on weights), so we allow
  rtol 1e-5 on losses and 1e-5 absolute on weights. A real mistake (another data split, gradients
  summed instead of averaged, a doubled batch) moves the losses by 1e-3 or more.
* A run killed with SIGKILL right after a checkpoint is written and restarted with ``resume``
  ends with a byte-identical train.json and byte-identical weights: on CPU with dropout 0 the
  Trainer restores weights, optimizer, scheduler, RNG and data position exactly, and checkpoints
  are taken at logging boundaries so the log is the same.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edit.config_schema import section_defaults
from edit.params import load_params
from edit.student import train_tokenizer
from edit.training.checkpoints import (CHECKPOINT_KEYS, checkpoint_hp, is_complete_checkpoint, last_complete_checkpoint,
                                       per_device_batch, prepare_checkpoints, run_fingerprint)
from edit.training.trainers import finish_history, train

from conftest import ROOT

PY = sys.executable
ENV = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT))
IND = {"boolean_expressions": {"n_tokens": 5, "max_depth": 1}, "web_of_lies": {"n_people": 3}}


def _build_data(out: Path) -> dict:
    """16 questions of two embedded tasks -> the data stage's and key-step stage's files."""
    from edit import dual, keysteps
    from edit.formats import student_prompt
    from edit.io import write_jsonl
    from edit.teachers import make_teacher

    train = dual.make_questions(IND, 8, "train", 7)
    teacher = make_teacher({"backend": "oracle", "error_rate": 0.35, "rewrite_noise": 0.15, "seed": 0})
    data = dual.build_dual_cots(train, teacher, progress=False)
    write_jsonl(out / "cots" / "sft.jsonl", data.sft)
    write_jsonl(out / "cots" / "pairs.jsonl", data.pairs)
    corpus = [student_prompt(q.input) for q in train] + [r["response"] for r in data.sft + data.wrong]
    tok = train_tokenizer(corpus, 300)
    tok.save_pretrained(out / "tokenizer")
    write_jsonl(out / "keysteps" / "pairs.jsonl", keysteps.mark_pairs(data.pairs, tok, progress=False))
    return {"sft": len(data.sft), "pairs": len(data.pairs)}


def _params(path: Path) -> Path:
    """A params file: the smoke profile with a 2-layer student, global batches of 4, a log per step."""
    p = load_params(ROOT / "params.yaml", profile="smoke")
    p["student"].update(kind="tiny_llama", hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                        max_length=512, lora={"enabled": False})
    # the SFT step uses the length-grouped order (group_by_length), the KRSL step the default random one
    p["train"]["sft"].update(epochs=2, batch_size=4, logging_steps=1, lr=5e-3, warmup_ratio=0.0, group_by_length=True)
    p["train"]["krsl"].update(epochs=1, batch_size=4, logging_steps=1, lr=1e-3)
    p["method_defs"] = {"edit": [{"loss": "sft", "data": ["D+", "D-+"]}, {"loss": "krsl", "pairs": ["D+dual", "D-dual"]}]}
    p["methods"], p["grid_methods"], p["grid_student_methods"] = ["edit"], [], ["edit"]  # all defined
    p["profiles"], p["profile"] = {"default": {}}, "default"
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_args(work: Path, name: str, *extra: str) -> list[str]:
    return ["-m", "edit.launch", "--params", str(work / "params.yaml"), "--method", "edit", "--seed", "0",
            "--data", str(work / "data"), "--models", str(work / name / "models"),
            "--results", str(work / name / "results"), "--checkpoints", str(work / name / "ckpt"),
            "--no-progress", *extra]


def _run(cmd: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("scaleout")
    counts = _build_data(root / "data")
    assert counts["sft"] % 4 == 0 and counts["pairs"] % 4 == 0, counts  # whole global batches (see above)
    _params(root / "params.yaml")
    return root


@pytest.fixture(scope="module")
def single(work):
    """One process, no checkpoints: the reference run."""
    _run([PY, *_launch_args(work, "single")], cwd=work)
    return work / "single"


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _step_logs(report: Path) -> list[list[dict]]:
    return [[h for h in s["log"] if "loss" in h] for s in json.loads(report.read_text())["steps"]]


# ----------------------------------------------------------------------------------------------
# fast unit tests
def test_batch_size_is_global_and_must_divide():
    assert per_device_batch(8, 2) == 4 and per_device_batch(8, 1) == 8 and per_device_batch(3, 3) == 1
    for bad, n in ((7, 2), (2, 4), (0, 1)):
        with pytest.raises(ValueError, match="global batch"):
            per_device_batch(bad, n)


def test_batch_size_error_names_the_parameter():
    with pytest.raises(ValueError, match=r"train\.sft\.batch_size=6 .*processes \(4\)"):
        per_device_batch(6, 4, what="train.sft.batch_size")


@pytest.mark.parametrize("name, kind", [("cpu_ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed_zero2", "DEEPSPEED")])
def test_accelerate_configs_are_valid(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(ROOT / "configs" / "accelerate" / f"{name}.yaml"))  # unknown keys raise
    assert cfg.distributed_type.value == kind and cfg.num_machines == 1
    if name == "cpu_ddp":
        assert cfg.use_cpu and cfg.mixed_precision == "no"
    if name == "fsdp":
        assert cfg.fsdp_config["fsdp_version"] == 2
    if name == "deepspeed_zero2":
        assert cfg.deepspeed_config["zero_stage"] == 2


def test_incomplete_checkpoints_are_never_resumed(tmp_path):
    for step in (2, 4, 6):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / "rng_state.pth").write_bytes(b"x")
        (d / "trainer_state.json").write_text('{"global_step": %d}' % step)
    (tmp_path / "checkpoint-6" / "trainer_state.json").write_text('{"global_st')  # killed while writing
    (tmp_path / "checkpoint-8").mkdir()  # killed before the state was written
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-4"
    assert not is_complete_checkpoint(tmp_path / "checkpoint-4", n_processes=2)  # rng_state_0/1 missing


def test_fingerprint_separates_configurations_and_ignores_checkpoint_settings():
    import torch

    model = torch.nn.Linear(3, 2)
    rows = [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}]
    hp = {"lr": 1e-3, "epochs": 1, "batch_size": 1}
    fp = run_fingerprint(model, rows, "sft", hp, 0)
    assert fp == run_fingerprint(model, rows, "sft", dict(hp, save_steps=5, resume=True, checkpoint_dir="x"), 0)
    assert fp != run_fingerprint(model, rows, "sft", dict(hp, lr=2e-3), 0)
    assert fp != run_fingerprint(model, rows, "krsl", hp, 0)
    assert fp != run_fingerprint(model, rows, "sft", hp, 1)
    assert fp != run_fingerprint(model, [dict(rows[0], input_ids=[1, 2, 4])], "sft", hp, 0)
    with torch.no_grad():
        model.weight[0, 0] += 1e-3
    assert fp != run_fingerprint(model, rows, "sft", hp, 0)  # other initial weights (e.g. another step 1)


def test_prepare_checkpoints_resumes_or_starts_afresh(tmp_path):
    folder, start = prepare_checkpoints(tmp_path, "f" * 16, "sft", resume=True)
    assert folder == tmp_path / f"sft-{'f' * 16}" and start is None
    for step in (2, 4):
        (folder / f"checkpoint-{step}").mkdir()
        (folder / f"checkpoint-{step}" / "rng_state.pth").write_bytes(b"x")
        (folder / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (folder / "checkpoint-6").mkdir()  # incomplete: removed
    _, start = prepare_checkpoints(tmp_path, "f" * 16, "sft", resume=True)
    assert start == folder / "checkpoint-4" and not (folder / "checkpoint-6").exists()
    _, start = prepare_checkpoints(tmp_path, "f" * 16, "sft", resume=False)
    assert start is None and not list(folder.glob("checkpoint-*"))


def test_checkpoint_hp_only_when_enabled():
    assert checkpoint_hp({"train": section_defaults("train")}, "ck") == {}  # save_steps 0 by default
    hp = checkpoint_hp({"train": section_defaults("train", checkpoints={"save_steps": 40})}, "ck/edit-0")
    assert hp == {"checkpoint_dir": "ck/edit-0", "save_steps": 40, "save_total_limit": 2, "resume": True}
    assert set(CHECKPOINT_KEYS) >= set(hp)


def test_finish_history_recomputes_the_mean_loss_over_all_steps():
    hist = [{"loss": 2.0, "step": 2, "train_runtime": 1.0}, {"loss": 1.0, "step": 3},
            {"train_loss": 1.0, "step": 3, "train_samples_per_second": 5.0}]  # the Trainer's figure after a resume
    out = finish_history(hist)
    assert out[-1] == {"train_loss": (2.0 * 2 + 1.0) / 3, "step": 3}
    assert "train_runtime" not in out[0]


def test_save_steps_must_be_a_multiple_of_logging_steps(tmp_path):
    tok = train_tokenizer(["a b c"], 270)
    rows = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}] * 4
    hp = {**section_defaults("train")["sft"], "epochs": 1, "batch_size": 2, "lr": 1e-3, "logging_steps": 2,
          "save_steps": 3, "save_total_limit": 2, "resume": True, "checkpoint_dir": str(tmp_path), "progress": False}
    with pytest.raises(ValueError, match="save_steps=3 must be a multiple of logging_steps=2"):
        train(None, tok, rows, "sft", hp, 0)


# ----------------------------------------------------------------------------------------------
# end to end (subprocesses)
@pytest.mark.slow
def test_two_cpu_processes_log_the_same_losses_as_one(work, single):
    cmd = [PY, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "configs/accelerate/cpu_ddp.yaml"),
           "--num_processes", "2", "--main_process_port", str(_free_port()), *_launch_args(work, "ddp")]
    _run(cmd, cwd=work)
    ddp = work / "ddp"
    one, two = _step_logs(single / "results" / "edit-0" / "train.json"), _step_logs(ddp / "results" / "edit-0" / "train.json")
    assert [len(s) for s in one] == [8, 4]  # 16 rows / global batch 4 x 2 epochs; 16 pairs / 4
    assert [len(s) for s in two] == [8, 4]
    for s1, s2 in zip(one, two):
        assert [h["step"] for h in s1] == [h["step"] for h in s2]
        assert len({round(h["loss"], 4) for h in s1}) > 1  # the loss moves: a real comparison
        for h1, h2 in zip(s1, s2):
            assert h2["loss"] == pytest.approx(h1["loss"], rel=1e-5, abs=1e-7), (h1, h2)
            assert h2["grad_norm"] == pytest.approx(h1["grad_norm"], rel=1e-4, abs=1e-7), (h1, h2)
    w1, w2 = _weights(single / "models" / "edit-0" / "step2"), _weights(ddp / "models" / "edit-0" / "step2")
    assert w1.keys() == w2.keys()
    worst = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    assert worst < 1e-5, f"weights differ by {worst}"
    # only rank 0 wrote: the model folders and the summary, and no checkpoints (save_steps 0)
    assert sorted(p.name for p in ddp.iterdir()) == ["models", "results"]
    assert sorted(p.name for p in (ddp / "models" / "edit-0").iterdir()) == ["step1", "step2"]


KILLER = """
import os, signal, sys
from pathlib import Path
from transformers import Trainer

loss, at = sys.argv.pop(1), int(sys.argv.pop(1))
original = Trainer._save_checkpoint

def save_then_die(self, model, trial):
    original(self, model, trial)
    if Path(self.args.output_dir).name.startswith(loss + "-") and self.state.global_step == at:
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 right after the checkpoint is on disk

Trainer._save_checkpoint = save_then_die
from edit.launch import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_killed_run_resumes_to_identical_results(work, single):
    killer = work / "killer.py"
    killer.write_text(KILLER)
    args = _launch_args(work, "resumed", "--set", "train.checkpoints.save_steps=2")[2:]  # drop "-m edit.launch"
    ckpt = work / "resumed" / "ckpt"
    # 1) killed in the SFT step after its checkpoint at step 6 of 8 (mid epoch 2 of 2: the resumed run
    #    must rebuild epoch 2's length-grouped order and skip its first 2 batches)
    p = subprocess.run([PY, str(killer), "sft", "6", *args], cwd=work, env=ENV, capture_output=True, text=True, timeout=240)
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    sft_dirs = list(ckpt.glob("sft-*"))
    assert len(sft_dirs) == 1 and last_complete_checkpoint(sft_dirs[0]).name == "checkpoint-6"
    assert not (work / "resumed" / "results" / "edit-0" / "train.json").exists()
    # 2) restarted with resume, killed in the KRSL step after its first checkpoint (step 2 of 4)
    p = subprocess.run([PY, str(killer), "krsl", "2", *args], cwd=work, env=ENV, capture_output=True, text=True, timeout=240)
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    assert last_complete_checkpoint(sft_dirs[0]).name == "checkpoint-8"  # SFT went on from step 6 to its end
    assert [c.name for c in sorted(sft_dirs[0].glob("checkpoint-*"))] == ["checkpoint-6", "checkpoint-8"]  # limit 2
    assert last_complete_checkpoint(next(ckpt.glob("krsl-*"))).name == "checkpoint-2"
    # 3) restarted again: runs to the end
    _run([PY, *_launch_args(work, "resumed", "--set", "train.checkpoints.save_steps=2")], cwd=work)
    resumed = work / "resumed"
    assert (resumed / "results" / "edit-0" / "train.json").read_bytes() == (single / "results" / "edit-0" / "train.json").read_bytes()
    for step in ("step1", "step2"):
        assert (resumed / "models" / "edit-0" / step / "model.safetensors").read_bytes() == \
            (single / "models" / "edit-0" / step / "model.safetensors").read_bytes(), step
    assert not ckpt.exists()  # deleted after success (train.checkpoints.keep false)
