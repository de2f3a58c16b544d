"""Processes and checkpoints of a training run: this process's rank, the number of processes, the
per-process share of a GLOBAL batch, a barrier; a digest of a model's weights and the fingerprint of
a training step (rows, loss, hyper-parameters, seed, initial weights), and the discovery and
preparation of the step's Trainer checkpoints for resuming a killed run.

Checkpoints (``train.checkpoints`` in params): with ``save_steps`` > 0 every training step (SFT,
KRSL) saves a Trainer checkpoint (model, optimizer, scheduler, RNG states, log) every ``save_steps``
optimizer steps and at its end into ``<dir>/<method>-<seed>/<loss>-<fingerprint>/`` (never inside
the model folder, which is the pipeline's output), keeping ``save_total_limit``. With ``resume:
true`` a restarted run resumes each step from its last complete checkpoint whose fingerprint
matches, so stale checkpoints of another configuration are never used. After a successful run the
run's checkpoint folder is deleted unless ``keep: true`` (:func:`edit.training.run.train_one`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from accelerate import PartialState

#: hyper-parameter keys that say where and how often to checkpoint; they change neither the
#: training nor its result, so they are left out of fingerprints and of train.json.
CHECKPOINT_KEYS = ("checkpoint_dir", "save_steps", "save_total_limit", "resume", "progress")


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
        PartialState().wait_for_everyone()


# ----------------------------------------------------------------------------------------------
# checkpoints
def weights_digest(model) -> str:
    """A cheap digest of a model's weights: per parameter, its name, shape and float64 sum and sum of
    squares (no copy of the weights; a 7B model takes seconds). Two different initial states almost
    surely differ; the same state on the same device always agrees."""
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
    from, and :func:`edit.training.run.train_one` removes the run's whole checkpoint folder after
    success."""
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


# ----------------------------------------------------------------------------------------------
# a run's checkpoint settings
def checkpoint_settings(params: dict) -> dict:
    """``train.checkpoints`` (its defaults in :mod:`edit.config_schema`: checkpointing is off unless
    ``save_steps`` > 0)."""
    return params["train"]["checkpoints"]


def checkpoint_hp(params: dict, run_checkpoints: str | Path) -> dict:
    """The hyper-parameters a run's training steps get for checkpointing (``train.checkpoints``):
    empty when ``save_steps`` is 0 (checkpointing off)."""
    ck = checkpoint_settings(params)
    if int(ck["save_steps"]) <= 0:
        return {}
    return {"checkpoint_dir": str(run_checkpoints), "save_steps": int(ck["save_steps"]),
            "save_total_limit": int(ck["save_total_limit"]), "resume": bool(ck["resume"])}
