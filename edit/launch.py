"""Train one method with one seed from ``params.yaml``: the command-line entry of the train stage.

It runs the same in one process and under ``accelerate launch`` (DDP on CPUs with gloo, or GPUs
with DDP / FSDP / DeepSpeed, configs in ``configs/accelerate/``)::

    python -m edit.launch --params params.yaml --method edit --seed 0
    accelerate launch --config_file configs/accelerate/cpu_ddp.yaml --num_processes 2 \\
        -m edit.launch --params params.yaml --method edit --seed 0

``train.<loss>.batch_size`` is the GLOBAL batch: with N processes each takes batch_size / N rows
(pairs for KRSL), so the same params train the same model on 1 or N processes (up to the order of
floating-point sums; ``tests/test_scaleout.py``). Only rank 0 writes outputs: the model after every
step (``models/<method>-<seed>/step<k>``) and ``results/<method>-<seed>/train.json``; the other
ranks save into a temporary folder that is removed.

Checkpoints and resume (``train.checkpoints`` in params): with ``save_steps`` > 0 every training
step (SFT, KRSL) saves a Trainer checkpoint (model, optimizer, scheduler, RNG states, log) every
``save_steps`` optimizer steps and at its end into ``<dir>/<method>-<seed>/<loss>-<fingerprint>/``
(never inside the model folder, which is the pipeline's output), keeping ``save_total_limit``.
With ``resume: true`` a restarted run resumes each step from its last complete checkpoint whose
fingerprint (rows, hyper-parameters, seed, initial weights) matches, so stale checkpoints of another
configuration are never used. After a successful run the run's checkpoint folder is deleted unless
``keep: true``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import yaml
from transformers import TrainerCallback

#: hyper-parameter keys that say where and how often to checkpoint; they change neither the
#: training nor its result, so they are left out of fingerprints and of train.json.
CHECKPOINT_KEYS = ("checkpoint_dir", "save_steps", "save_total_limit", "resume", "progress")
#: ``train.checkpoints`` defaults: checkpointing is off unless save_steps > 0.
CHECKPOINT_DEFAULTS = {"dir": "checkpoints", "save_steps": 0, "save_total_limit": 2, "resume": True, "keep": False}


# ----------------------------------------------------------------------------------------------
# process topology
def rank() -> int:
    """This process's global rank (0 when not launched by torchrun / accelerate / deepspeed)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """The number of training processes (1 when not launched by a distributed launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def per_device_batch(global_batch: int, n_processes: int | None = None, what: str = "batch_size") -> int:
    """The per-process batch for a GLOBAL batch of ``global_batch`` over ``n_processes`` (default:
    :func:`world_size`); an error naming ``what`` if it does not divide evenly."""
    n = world_size() if n_processes is None else int(n_processes)
    global_batch = int(global_batch)
    if global_batch < 1 or global_batch % n:
        raise ValueError(f"{what}={global_batch} is the global batch and must be a positive multiple of the "
                         f"number of processes ({n})")
    return global_batch // n


def barrier() -> None:
    """Wait for every process (a no-op in a single process)."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


# ----------------------------------------------------------------------------------------------
# checkpoints
def weights_digest(model) -> str:
    """A cheap digest of a model's weights: per parameter, its name, shape and float64 sum and sum of
    squares (no copy of the weights; a 7B model takes seconds). Two different initial states almost
    surely differ; the same state on the same device always agrees."""
    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            s = torch.sum(p, dtype=torch.float64).item()
            q = torch.sum(p.float() ** 2, dtype=torch.float64).item() if p.numel() <= 2 ** 26 else 0.0
            h.update(f"{name}|{tuple(p.shape)}|{p.dtype}|{s!r}|{q!r}\n".encode())
    return h.hexdigest()


def run_fingerprint(model, rows: list[dict], loss: str, hp: dict, seed: int) -> str:
    """What a checkpoint belongs to: the training rows, the loss, the hyper-parameters (without the
    checkpoint settings), the seed and the model's initial weights. 16 hex digits."""
    rows_hash = hashlib.sha256(json.dumps(rows, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    settings = {k: v for k, v in sorted(hp.items()) if k not in CHECKPOINT_KEYS}
    blob = json.dumps({"loss": loss, "hp": settings, "seed": int(seed), "rows": rows_hash,
                       "weights": weights_digest(model)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_complete_checkpoint(path: str | Path, n_processes: int = 1) -> bool:
    """A checkpoint folder that a kill did not cut short: the Trainer writes ``trainer_state.json``
    last, so it must exist and parse, and every process's RNG state must be there."""
    path = Path(path)
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    rng = ["rng_state.pth"] if n_processes == 1 else [f"rng_state_{r}.pth" for r in range(n_processes)]
    return all((path / f).is_file() for f in rng)


def _step_of(path: Path) -> int:
    try:
        return int(path.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def last_complete_checkpoint(folder: str | Path, n_processes: int = 1) -> Path | None:
    """The ``checkpoint-<step>`` folder with the highest step that is complete, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = sorted((p for p in folder.glob("checkpoint-*") if p.is_dir() and _step_of(p) >= 0), key=_step_of)
    for p in reversed(found):
        if is_complete_checkpoint(p, n_processes):
            return p
    return None


def prepare_checkpoints(root: str | Path, fingerprint: str, loss: str, resume: bool,
                        n_processes: int = 1, is_main: bool = True) -> tuple[Path, Path | None]:
    """The folder for this training step's checkpoints (``root/<loss>-<fingerprint>``) and the
    checkpoint to resume from (None: start fresh). Every process decides from the same files; then
    the main process removes what must not be used: incomplete checkpoints and, for a fresh start
    (``resume`` false or nothing to resume), old ones. Folders of other fingerprints (another
    configuration, or another step with the same loss) are left alone: they are never resumed
    from, and :func:`train_one` removes the run's whole checkpoint folder after success."""
    root = Path(root)
    folder = root / f"{loss}-{fingerprint}"
    start = last_complete_checkpoint(folder, n_processes) if resume else None
    barrier()
    if is_main:
        folder.mkdir(parents=True, exist_ok=True)
        for p in folder.glob("checkpoint-*"):
            if p != start and (start is None or not is_complete_checkpoint(p, n_processes)):
                shutil.rmtree(p, ignore_errors=True)
    barrier()
    return folder, start


class LogLastStep(TrainerCallback):
    """Log at the last optimizer step too (the Trainer logs only every ``logging_steps``), so that
    the log covers every step and the run's mean loss can be recomputed from it whether or not the
    run was resumed."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_log = True
        return control


def finish_history(history: list[dict]) -> list[dict]:
    """The Trainer's log without wall-clock fields, and with ``train_loss`` recomputed as the mean
    loss over ALL steps from the step logs (the Trainer's own figure covers only the steps run since
    the last resume)."""
    out = [{k: v for k, v in h.items() if "runtime" not in k and "per_second" not in k} for h in history]
    logs = [h for h in out if "loss" in h and "step" in h]
    total, prev = 0.0, 0
    for h in logs:
        total += float(h["loss"]) * (int(h["step"]) - prev)
        prev = int(h["step"])
    for h in out:
        if "train_loss" in h and prev > 0:
            h["train_loss"] = total / prev
    return out


# ----------------------------------------------------------------------------------------------
# one run
def checkpoint_settings(params: dict) -> dict:
    """``train.checkpoints`` with defaults filled in."""
    return {**CHECKPOINT_DEFAULTS, **(params.get("train", {}).get("checkpoints") or {})}


def checkpoint_hp(params: dict, run_checkpoints: str | Path) -> dict:
    """The hyper-parameters a run's training steps get for checkpointing (``train.checkpoints``):
    empty when ``save_steps`` is 0 (checkpointing off)."""
    ck = checkpoint_settings(params)
    if int(ck["save_steps"]) <= 0:
        return {}
    return {"checkpoint_dir": str(run_checkpoints), "save_steps": int(ck["save_steps"]),
            "save_total_limit": int(ck["save_total_limit"]), "resume": bool(ck["resume"])}


def train_one(params: dict, method: str, seed: int, data_dir: str | Path = "data",
              models_dir: str | Path = "models", results_dir: str | Path = "results",
              checkpoints_dir: str | Path | None = None, progress: bool = True, reuse_from: str | None = None,
              reuse_results_dir: str | Path | None = None) -> dict:
    """Train ``method`` (an entry of ``params["method_defs"]``) with ``seed`` on the data stage's
    outputs in ``data_dir`` (tokenizer, CoTs, dual pairs, key-step marks, validation questions)
    through :func:`edit.training.run_method`; the one entry point of the notebook and of
    ``accelerate launch -m edit.launch``. Rank 0 saves the model after every step under
    ``<models_dir>/<method>-<seed>`` and the summary to ``<results_dir>/<method>-<seed>/train.json``;
    returns the summary (on every rank). ``reuse_from``: a method name, or several separated by
    commas; of those, the one sharing the most leading steps with ``method``
    (:func:`edit.methods.shared_prefix`; ties: the first listed) lends its saved model of this seed
    (``<models_dir>/<name>-<seed>``, its summary under ``reuse_results_dir``, default
    ``results_dir``) for the shared steps (see ``run_method``'s ``reuse``)."""
    from edit.records import read_pairs
    from edit.records import SFT_FIELDS
    from edit.io import read_json, read_jsonl, write_json
    from edit.keysteps import KEYSTEP_FIELDS
    from edit.methods import get_method, with_step_hp
    from edit.records import Question
    from edit.student import load_tokenizer
    from edit.training import run_method

    run = f"{method}-{seed}"
    data = Path(data_dir)
    out_dir = Path(models_dir) / run
    report_path = Path(results_dir) / run / "train.json"
    ck = checkpoint_settings(params)
    run_ck = Path(checkpoints_dir) if checkpoints_dir else Path(ck["dir"]) / run

    params = json.loads(json.dumps(params))  # a private copy
    for section in params["train"].values():
        if isinstance(section, dict) and "lr" in section:
            section["progress"] = bool(progress) and rank() == 0
    extra = checkpoint_hp(params, run_ck)
    spec = get_method(params, method)
    spec = with_step_hp(spec, extra) if extra else spec

    tokenizer = load_tokenizer(data / "tokenizer")
    cots = list(read_jsonl(data / "cots" / "sft.jsonl", required=SFT_FIELDS))  # D+, D-+
    if (data / "cots" / "wrong.jsonl").exists():                              # D-, D+- (counterfactual formats)
        cots += list(read_jsonl(data / "cots" / "wrong.jsonl", required=SFT_FIELDS))
    pairs = read_pairs(data / "cots" / "pairs.jsonl")  # a pair with a blank side is a DataError
    marked = list(read_jsonl(data / "keysteps" / "pairs.jsonl", required=KEYSTEP_FIELDS))
    needs_val = any((s.get("hp") or {}).get("select", params["train"].get(s["loss"], {}).get("select", "last")) != "last"
                    for s in spec.steps)
    val = ([Question(**r) for r in read_jsonl(data / "questions" / "val.jsonl", required=("id", "task", "input", "target"))]
           if needs_val else None)
    reuse = None
    candidates = [n.strip() for n in (reuse_from or "").split(",") if n.strip()]
    if candidates:
        from edit.methods import shared_prefix

        others = [(with_step_hp(get_method(params, n), extra) if extra else get_method(params, n)) for n in candidates]
        shared = [shared_prefix(spec, o, params) for o in others]
        best = max(range(len(others)), key=lambda i: (shared[i], -i))
        if shared[best]:
            name = candidates[best]
            reuse = (others[best], Path(models_dir) / f"{name}-{seed}",
                     read_json(Path(reuse_results_dir or results_dir) / f"{name}-{seed}" / "train.json"))

    main = rank() == 0
    scratch = None if main else tempfile.mkdtemp(prefix=f"edit-rank{rank()}-")
    try:
        summary = run_method(spec, params, tokenizer, cots, pairs, marked, out_dir if main else scratch, seed,
                             val_questions=val, name=method, reuse=reuse)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    for s in summary["steps"]:
        s["hp"] = {k: v for k, v in s["hp"].items() if k not in CHECKPOINT_KEYS}
    barrier()
    if main:
        write_json(report_path, summary)
        if int(ck["save_steps"]) > 0 and not ck["keep"]:
            shutil.rmtree(run_ck, ignore_errors=True)
    barrier()
    return summary


def _set(params: dict, assignment: str) -> None:
    """Apply one ``a.b.c=value`` override (value parsed as YAML)."""
    if "=" not in assignment:
        raise ValueError(f"--set {assignment!r}: expected key.path=value")
    key, value = assignment.split("=", 1)
    node = params
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    from edit.params import load_params, setup_runtime

    ap = argparse.ArgumentParser(prog="python -m edit.launch", description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--profile", default=None, help="profile overlay (default: the file's `profile`)")
    ap.add_argument("--method", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--data", default="data", help="the data stage's outputs (tokenizer, cots, keysteps)")
    ap.add_argument("--models", default="models", help="models folder (the run saves <models>/<method>-<seed>)")
    ap.add_argument("--results", default="results", help="results folder (<results>/<method>-<seed>/train.json)")
    ap.add_argument("--reuse-from", default=None, help="method(s), comma-separated, whose saved model of this seed replaces the shared steps")
    ap.add_argument("--reuse-results", default=None, help="results folder of --reuse-from's run (default --results)")
    ap.add_argument("--checkpoints", default=None, help="checkpoint folder of this run "
                    "(default <train.checkpoints.dir>/<method>-<seed>)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a param after the profile is applied, e.g. train.sft.epochs=1")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)

    params = load_params(a.params, profile=a.profile)
    for s in a.set:
        _set(params, s)
    setup_runtime(params, a.seed)
    summary = train_one(params, a.method, a.seed, data_dir=a.data, models_dir=a.models, results_dir=a.results,
                        checkpoints_dir=a.checkpoints, progress=not a.no_progress, reuse_from=a.reuse_from,
                        reuse_results_dir=a.reuse_results)
    if rank() == 0:
        for s in summary["steps"]:
            final = [h for h in s["log"] if "train_loss" in h]
            print(f"step {s['step']} ({s['loss']}): {s['data']['rows']} rows, "
                  f"train_loss {final[-1]['train_loss']:.4f}" if final else f"step {s['step']} ({s['loss']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
