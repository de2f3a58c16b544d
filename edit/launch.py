"""Train one method with one seed from ``params.yaml``: the command line of the train stage.

It runs the same in one process and under ``accelerate launch`` (DDP on CPUs with gloo, or GPUs
with DDP / FSDP / DeepSpeed, configs in ``configs/accelerate/``)::

    python -m edit.launch --params params.yaml --method edit --seed 0
    accelerate launch --config_file configs/accelerate/cpu_ddp.yaml --num_processes 2 \\
        -m edit.launch --params params.yaml --method edit --seed 0

``train.<loss>.batch_size`` is the GLOBAL batch: with N processes each takes batch_size / N rows
(pairs for KRSL), so the same params train the same model on 1 or N processes (up to the order of
floating-point sums; ``tests/test_scaleout.py``). The run itself is
:func:`edit.training.run.train_one`; checkpoints and resume: :mod:`edit.training.checkpoints`.
"""
from __future__ import annotations

import argparse
import sys

import yaml

from edit.params import load_params
from edit.runtime import setup_runtime
from edit.training.checkpoints import rank
from edit.training.run import train_one


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
