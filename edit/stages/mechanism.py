"""The mechanism stage (``notebooks/06_mechanism.ipynb``; ``pretrained/dvc.yaml``): for one seed of a
two-step method (``edit``), the student's key-token log-probability margin on HELD-OUT dual pairs
after step 1 and after KRSL, per task (:mod:`edit.mechanism`).

Held-out pairs: the run's own teacher (``teacher`` params) writes dual CoTs for the validation
questions (``<data_dir>/questions/val.jsonl``, never trained on) exactly as the data stage does for
the training questions (:func:`edit.dual.build_dual_cots`), and their key tokens are marked with
the student's tokenizer (:func:`edit.keysteps.mark_pairs`). With the oracle teacher this is code,
deterministic and free; an LLM teacher would make calls (through its cache).

Outputs under ``<out_dir>/<method>-<seed>/``: ``pairs_<label>.jsonl`` (one margin record per pair)
and ``by_task.csv`` (both models side by side); the figure ``<figures_dir>/mechanism-<method>-<seed>.png``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from edit.dual import build_dual_cots
from edit.figure_files import save_figure
from edit.io import read_jsonl, write_jsonl
from edit.keysteps import mark_pairs
from edit.mechanism import margin_figure, margins_by_task, pair_margins
from edit.methods import get_method
from edit.params import data_mirror, load_params
from edit.records import Question
from edit.runtime import autocast_setting, setup_runtime
from edit.student import load_student, load_tokenizer
from edit.teachers import make_teacher


def heldout_pairs(params: dict, data_dir, tokenizer) -> tuple[list[dict], list[dict]]:
    """Dual pairs of the validation questions by the run's teacher, and their key-token marks."""
    val = [Question(**r) for r in read_jsonl(Path(data_dir) / "questions" / "val.jsonl",
                                             required=("id", "task", "input", "target"))]
    if not val:
        raise ValueError(f"{data_dir}/questions/val.jsonl is empty: the mechanism needs held-out questions "
                         "(data.n_val_per_task > 0)")
    teacher = make_teacher(params["teacher"], mirror=data_mirror(params))
    pairs = build_dual_cots(val, teacher, progress=False).pairs
    return pairs, mark_pairs(pairs, tokenizer, progress=False)


def run(params: str | Path | Mapping, seed: int, method: str = "edit", data_dir="data", models_dir="models",
        out_dir="reports/mechanism", figures_dir="reports/figures") -> dict:
    """Margins of ``<models_dir>/<method>-<seed>`` after step 1 and after its last step (KRSL) on the
    held-out pairs; returns ``{"by_task": the side-by-side table, "pairs": n, "figure": path}``."""
    params = load_params(params) if isinstance(params, (str, Path)) else dict(params)
    setup_runtime(params, seed)
    spec = get_method(params, method)
    if len(spec.steps) < 2 or spec.steps[-1]["loss"] != "krsl":
        raise ValueError(f"method {method!r}: the mechanism compares step 1 with a final KRSL step")
    tokenizer = load_tokenizer(Path(data_dir) / "tokenizer")
    pairs, marked = heldout_pairs(params, data_dir, tokenizer)
    by_id = {(p["id"], p["pair_type"]): p for p in pairs}
    run_dir = Path(out_dir) / f"{method}-{seed}"
    tables = {}
    for label, k in (("step1", 1), ("krsl", spec.final_step)):
        model, _ = load_student(Path(models_dir) / f"{method}-{seed}" / f"step{k}", base=params["student"])
        recs = pair_margins(model, tokenizer, marked, by_id, int(params["student"]["max_length"]), spec.format,
                            autocast_setting(params, "eval_autocast"))
        write_jsonl(run_dir / f"pairs_{label}.jsonl", recs)
        tables[label] = margins_by_task(recs)
    both = tables["step1"].merge(tables["krsl"], on="task", suffixes=("_step1", "_krsl"))
    both["margin_change"] = both["mean_margin_krsl"] - both["mean_margin_step1"]
    both.to_csv(run_dir / "by_task.csv", index=False, float_format="%.4f")
    figure = save_figure(margin_figure(tables["step1"], tables["krsl"]),
                         Path(figures_dir) / f"mechanism-{method}-{seed}.png")
    return {"by_task": both, "pairs": len(marked), "figure": figure}


def combine(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Several seeds' ``by_task`` tables: the mean of each column per task."""
    return pd.concat(tables).groupby("task", sort=False).mean(numeric_only=True).reset_index()
