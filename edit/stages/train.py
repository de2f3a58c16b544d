"""The train stage (``notebooks/03_train.ipynb``): one method of ``method_defs`` with one seed, on
the data stage's outputs, through :func:`edit.training.run.train_one`. It writes the model after
every step to ``<models_dir>/<method>-<seed>/step<k>`` and the run's summary to
``<results_dir>/<method>-<seed>/train.json``.

With ``runtime.num_processes`` > 1 the run goes through ``accelerate launch -m edit.launch`` with
``runtime.accelerate_config`` (:func:`launch_command`): the launched processes read the same params
file and train exactly what one process would; rank 0 writes the model and ``train.json``, which the
stage reads back. A failed launch raises with the command and its exit status.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from edit.io import read_json
from edit.params import load_params
from edit.runtime import setup_runtime
from edit.training.run import train_one


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the processes' rendezvous port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(params: Mapping, params_file: str | Path, method: str, seed: int, data_dir: str | Path = "data",
                   models_dir: str | Path = "models", results_dir: str | Path = "results",
                   reuse_from: str | None = None, reuse_results_dir: str | Path | None = None,
                   port: int | None = None) -> list[str]:
    """The ``accelerate launch`` command line of one run on ``runtime.num_processes`` processes."""
    runtime = params["runtime"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if runtime["accelerate_config"]:
        cmd += ["--config_file", str(runtime["accelerate_config"])]
    cmd += ["--num_processes", str(int(runtime["num_processes"])), "--main_process_port", str(port or free_port()),
            "-m", "edit.launch", "--params", str(params_file), "--profile", str(params["profile"]),
            "--method", method, "--seed", str(int(seed)), "--data", str(data_dir), "--models", str(models_dir),
            "--results", str(results_dir), "--no-progress"]
    if reuse_from:
        cmd += ["--reuse-from", reuse_from]
    if reuse_results_dir:
        cmd += ["--reuse-results", str(reuse_results_dir)]
    return cmd


def run(params: str | Path | Mapping, method: str, seed: int, data_dir: str | Path = "data",
        models_dir: str | Path = "models", results_dir: str | Path = "results", reuse_from: str = "",
        reuse_results_dir: str | Path = "") -> dict:
    """Train ``method`` with ``seed`` and return the run's summary (train.json's content).

    params - the path of params.yaml (its selected profile is applied) or the effective params (one
        process only: launched processes need the file);
    reuse_from - method(s), comma-separated, whose saved model of this seed replaces the steps this
        method shares with it ("" for none; see :func:`edit.training.run.train_one`);
    reuse_results_dir - the results folder of ``reuse_from``'s run ("" for ``results_dir``).
    """
    params_file = params if isinstance(params, (str, Path)) else None
    params = load_params(params_file) if params_file is not None else dict(params)
    reuse_from, reuse_results_dir = reuse_from or None, reuse_results_dir or None
    n = int(params["runtime"]["num_processes"])
    if n > 1:
        if params_file is None:
            raise ValueError(f"runtime.num_processes is {n}: the launched processes read the params FILE; pass its path")
        cmd = launch_command(params, params_file, method, seed, data_dir, models_dir, results_dir, reuse_from,
                             reuse_results_dir)
        env = dict(os.environ, OMP_NUM_THREADS=str(int(params["runtime"]["torch_threads"])),
                   TOKENIZERS_PARALLELISM="false")
        proc = subprocess.run(cmd, env=env)
        if proc.returncode:
            raise RuntimeError(f"`{' '.join(cmd)}` exited with status {proc.returncode}")
        return read_json(Path(results_dir) / f"{method}-{seed}" / "train.json")
    setup_runtime(params, seed)
    return train_one(params, method, seed, data_dir=data_dir, models_dir=models_dir, results_dir=results_dir,
                     reuse_from=reuse_from, reuse_results_dir=reuse_results_dir)


def describe(summary: dict, tail: int = 5) -> str:
    """A few lines on a run's summary: per step its loss, settings, data and selected epoch, and the
    last ``tail`` logged losses."""
    if not summary["steps"]:
        return f"{summary['method']}: untuned ({summary['format']}), no training"
    lines = []
    for s in summary["steps"]:
        lines.append(f"step {s['step']} ({s['loss']}, {s['settings']}): {s['data']}; selection {s['selection']}")
        lines += [f"  step {h['step']:>5}  loss {h['loss']:.4f}" for h in [h for h in s["log"] if "loss" in h][-tail:]]
    return "\n".join(lines)
