"""The train stage (``notebooks/03_train.ipynb``): one method of ``method_defs`` with one seed, on
the data stage's outputs, through :func:`edit.training.run.train_one` (the same run as
``accelerate launch -m edit.launch``). It writes the model after every step to
``<models_dir>/<method>-<seed>/step<k>`` and the run's summary to
``<results_dir>/<method>-<seed>/train.json``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from edit.params import load_params
from edit.runtime import setup_runtime
from edit.training.run import train_one


def run(params: str | Path | Mapping, method: str, seed: int, data_dir: str | Path = "data",
        models_dir: str | Path = "models", results_dir: str | Path = "results", reuse_from: str = "",
        reuse_results_dir: str | Path = "") -> dict:
    """Train ``method`` with ``seed`` and return the run's summary (train.json's content).

    params - the path of params.yaml (its selected profile is applied) or the effective params;
    reuse_from - method(s), comma-separated, whose saved model of this seed replaces the steps this
        method shares with it ("" for none; see :func:`edit.training.run.train_one`);
    reuse_results_dir - the results folder of ``reuse_from``'s run ("" for ``results_dir``).
    """
    params = load_params(params) if isinstance(params, (str, Path)) else dict(params)
    setup_runtime(params, seed)
    return train_one(params, method, seed, data_dir=data_dir, models_dir=models_dir, results_dir=results_dir,
                     reuse_from=reuse_from or None, reuse_results_dir=reuse_results_dir or None)


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
