"""The evaluate stage (``notebooks/04_evaluate.ipynb``): one trained model (``<method>-<seed>``, its
final step) on every evaluation suite of ``eval.suites``, with the method's own inference prompt
(:func:`edit.methods.inference_prompt`, few-shot exemplars from the run's D+ CoTs).

Rules of the stage:

* a suite set to ``null`` (a profile switching off a suite of the base section) is skipped
  (:func:`active_suites`);
* a method that answers directly (its response is the answer sentence alone) generates at most
  ``eval.max_new_tokens_direct`` new tokens (never more than ``eval.max_new_tokens``), not a chain
  of thought's budget (:func:`generation_config`);
* the student's name in the results is the report's primary student (``report.student``, else the
  profile; :func:`edit.params.primary_student`);
* a model folder that was never trained (this method and seed) or missing CoT records are errors
  naming the folder or file and the stage to run first (:func:`edit.io.require`).
* generation runs under ``runtime.eval_autocast`` (:func:`edit.runtime.autocast_context`; null: float32);
  under bfloat16 the model's LoRA adapters are merged and its linear weights stored in bfloat16
  first (:func:`edit.inference.inference_model`), and the KV cache is bfloat16 too;
* every suite is loaded before the model, and every prompt is built before the first row is
  generated (:func:`edit.evaluate.evaluate_suites`): a suite that cannot be prompted fails at once;
* a few-shot method evaluated on a task without D+ CoTs of its own (an untrained task: OOD
  suites) shows exemplars of the trained tasks instead (:func:`few_shot_exemplars`).

Outputs under ``<results_dir>/<method>-<seed>/``: ``samples.jsonl`` (one record per question with
the student, method and seed) and ``accuracy.csv`` (the long accuracy table,
:func:`edit.evaluate.long_accuracy`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from edit.evaluate import evaluate_suites, load_suite, long_accuracy, write_results
from edit.generation import GenConfig
from edit.io import require
from edit.methods import Method, answers_directly, get_method, inference_prompt, method_exemplars
from edit.params import load_params, primary_student
from edit.records import SFT_SOURCES, read_cots
from edit.inference import inference_model
from edit.runtime import autocast_context, autocast_setting, setup_runtime
from edit.student import load_student
from edit.tracking import write_run_metrics


def active_suites(suites: Mapping) -> dict:
    """The suites of ``eval.suites`` to evaluate, in their order: those not set to ``null``."""
    return {name: spec for name, spec in (suites or {}).items() if spec is not None}


def few_shot_exemplars(method: Method, records: list[dict], seed: int, tasks) -> dict[str, list[dict]] | None:
    """The exemplars of a few-shot method (:func:`edit.methods.method_exemplars`: ``method.shots``
    D+ CoTs per task) for every task in ``tasks``; None for a method that is not few-shot. A task
    without D+ CoTs of its own gets the first exemplar of each task that has them, in task order,
    then their second ones, ..., ``method.shots`` in all (a cross-task demonstration of the CoT
    format). An error when no task has D+ CoTs."""
    own = method_exemplars(method, records, seed)
    if own is None:
        return None
    missing = sorted({t for t in tasks if t not in own})
    if not missing:
        return own
    if not own:
        raise ValueError(f"method {method.name!r} is few-shot but the CoT records hold no D+ CoT to show")
    depth = max(len(v) for v in own.values())
    mixed = [own[t][i] for i in range(depth) for t in sorted(own) if i < len(own[t])][: method.shots]
    return {**own, **{t: mixed for t in missing}}


def generation_config(eval_params: Mapping, method: Method) -> GenConfig:
    """How the stage generates for ``method``: the ``eval`` section, with the new tokens capped at
    ``eval.max_new_tokens_direct`` for a method that answers directly (a sentence, not a chain of
    thought)."""
    if not answers_directly(method):
        return GenConfig.from_params(eval_params)
    if "max_new_tokens_direct" not in eval_params:
        raise ValueError(f"method {method.name!r} answers directly: params.yaml needs eval.max_new_tokens_direct")
    cap = min(int(eval_params["max_new_tokens_direct"]), int(eval_params["max_new_tokens"]))
    return GenConfig.from_params(eval_params, max_new_tokens=cap)


def run(params: str | Path | Mapping, method: str, seed: int, data_dir: str | Path = "data",
        models_dir: str | Path = "models", results_dir: str | Path = "results") -> dict:
    """Evaluate ``<models_dir>/<method>-<seed>`` (the model after the method's last step; ``step0``
    for an untuned method) on the active suites and write its samples and accuracy table.

    params - the path of params.yaml (its selected profile is applied) or the effective params.

    Returns ``{"accuracy": the long accuracy frame, "gen_cfg": the GenConfig used, "student": the
    student's name, "samples": the number of sample records, "paths": {"samples", "accuracy", "metrics"}}``
    (``metrics.json``: the run's summary accuracies for DVC, :func:`edit.tracking.write_run_metrics`).
    """
    params = load_params(params) if isinstance(params, (str, Path)) else dict(params)
    setup_runtime(params, seed)
    run_name = f"{method}-{seed}"
    spec = get_method(params, method)
    model_dir = require(Path(models_dir) / run_name / f"step{spec.final_step}",
                        f"the train stage of {run_name} (dvc repro train@{run_name})")
    cots = read_cots(require(Path(data_dir) / "cots" / "sft.jsonl", "the data stage (dvc repro data)"), SFT_SOURCES)
    eval_params = params["eval"]
    suites = {suite: load_suite(suite_spec, data_dir) for suite, suite_spec in active_suites(eval_params["suites"]).items()}
    if not suites:
        raise ValueError("eval.suites: every suite is switched off (null); nothing to evaluate")
    gen_cfg = generation_config(eval_params, spec)
    exemplars = few_shot_exemplars(spec, cots, seed, {it["task"] for items in suites.values() for it in items})
    student = primary_student(params)
    model, tokenizer = load_student(model_dir, base=params["student"])
    autocast = autocast_setting(params, "eval_autocast")
    model = inference_model(model, autocast)  # bfloat16: adapters merged, weights cast once (edit.inference)
    with autocast_context(autocast, model.device.type):
        recs, frame = evaluate_suites(model, tokenizer, suites, gen_cfg,
                                      item_prompt=lambda q: inference_prompt(spec, q, exemplars))
    samples = [{"student": student, "method": method, "seed": seed, **r} for r in recs]
    acc = long_accuracy(frame, method, student, seed)
    paths = write_results(Path(results_dir) / run_name, samples, acc)
    paths["metrics"] = write_run_metrics(Path(results_dir) / run_name)  # for `dvc metrics show` / `dvc exp show`
    return {"accuracy": acc, "gen_cfg": gen_cfg, "student": student, "samples": len(samples), "paths": paths}
