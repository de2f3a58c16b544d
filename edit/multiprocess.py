"""The train stage on several processes: when ``runtime.num_processes`` > 1 the train notebook's run
goes through ``accelerate launch -m edit.launch`` with ``runtime.accelerate_config`` (one process:
:func:`edit.launch.train_one` in the notebook's own process, as before).

The launched processes read the same params file (its own ``profile``), so they train exactly what
the notebook would; rank 0 writes the model and ``train.json``, which :func:`train_run` reads back
and returns. A failed launch raises with the command and its exit status (the processes' output
goes to the notebook's stdout/stderr as it comes).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from edit.io import read_json
from edit.launch import train_one


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the processes' rendezvous port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(params: dict, params_file: str | Path, method: str, seed: int, data_dir: str | Path = "data",
                   models_dir: str | Path = "models", results_dir: str | Path = "results",
                   reuse_from: str | None = None, reuse_results_dir: str | Path | None = None,
                   port: int | None = None) -> list[str]:
    """The ``accelerate launch`` command line of one run on ``runtime.num_processes`` processes."""
    runtime = params.get("runtime") or {}
    n = int(runtime.get("num_processes") or 1)
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if runtime.get("accelerate_config"):
        cmd += ["--config_file", str(runtime["accelerate_config"])]
    cmd += ["--num_processes", str(n), "--main_process_port", str(port or free_port()),
            "-m", "edit.launch", "--params", str(params_file), "--profile", str(params["profile"]),
            "--method", method, "--seed", str(int(seed)), "--data", str(data_dir), "--models", str(models_dir),
            "--results", str(results_dir), "--no-progress"]
    if reuse_from:
        cmd += ["--reuse-from", reuse_from]
    if reuse_results_dir:
        cmd += ["--reuse-results", str(reuse_results_dir)]
    return cmd


def train_run(params: dict, params_file: str | Path, method: str, seed: int, data_dir: str | Path = "data",
              models_dir: str | Path = "models", results_dir: str | Path = "results",
              reuse_from: str | None = None, reuse_results_dir: str | Path | None = None) -> dict:
    """Train ``method`` with ``seed``: in this process (``runtime.num_processes`` 1), else under
    ``accelerate launch`` (:func:`launch_command`, ``OMP_NUM_THREADS`` = ``runtime.torch_threads``);
    returns the run's summary (``train.json``)."""
    runtime = params.get("runtime") or {}
    if int(runtime.get("num_processes") or 1) <= 1:
        return train_one(params, method, seed, data_dir=data_dir, models_dir=models_dir, results_dir=results_dir,
                         reuse_from=reuse_from, reuse_results_dir=reuse_results_dir)
    cmd = launch_command(params, params_file, method, seed, data_dir, models_dir, results_dir, reuse_from,
                         reuse_results_dir)
    env = dict(os.environ, OMP_NUM_THREADS=str(int(runtime.get("torch_threads") or 1)),
               TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, env=env)
    if proc.returncode:
        raise RuntimeError(f"`{' '.join(cmd)}` exited with status {proc.returncode}")
    return read_json(Path(results_dir) / f"{method}-{seed}" / "train.json")
