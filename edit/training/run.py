"""One training run: a method's steps, one after another, on a fresh student (:func:`run_method`),
and the run as the train stage and ``accelerate launch -m edit.launch`` start it from the data
stage's files (:func:`train_one`). Methods (which steps, data, format, controls) come from
:mod:`edit.methods`; a step's hyper-parameters are ``train.<loss>`` with the step's ``hp`` merged in
(:func:`step_hp`); a method may reuse the steps it shares with another method's saved run
(:func:`shared_prefix`).

Only rank 0 writes outputs: the model after every step (``models/<method>-<seed>/step<k>``) and
``results/<method>-<seed>/train.json``; the other ranks save into a temporary folder that is removed.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from edit.io import read_json, read_jsonl, require, write_json
from edit.keysteps import read_keysteps
from edit.methods import (as_method, get_method, method_exemplars, step_pairs, step_records, val_subset,
                          with_step_hp)
from edit.params import deep_merge
from edit.records import SFT_SOURCES, WRONG_SOURCES, Question, read_cots, read_pairs
from edit.runtime import autocast_context, autocast_setting
from edit.student import build_student, load_student, load_tokenizer, save_student
from edit.training.checkpoints import CHECKPOINT_KEYS, barrier, checkpoint_hp, checkpoint_settings, rank
from edit.training.rows import dpo_dataset, krsl_dataset, sft_dataset
from edit.training.selection import SelectCheckpoint, val_accuracy
from edit.training.trainers import train, train_dpo


DATA_STAGE = "the data stage (dvc repro data)"
KEYSTEPS_STAGE = "the keysteps stage (dvc repro keysteps)"


def step_hp(params: dict, loss: str, step: dict, method: str = "<method>") -> dict:
    """``params['train'][loss]`` with the step's ``hp`` overrides merged in."""
    return deep_merge(params["train"][loss], step.get("hp") or {})


def shared_prefix(method, other, params: dict) -> int:
    """How many leading training steps ``method`` and ``other`` have in common: the same format and,
    step by step, the same definition and the same hyper-parameters after ``params`` are merged in.
    Training is deterministic given the seed, so a method may start from ``other``'s saved model
    after that many steps instead of training them again (:func:`run_method`). Checkpoint settings
    (where a run keeps its checkpoints) do not change the model and are left out."""

    def definition(step):
        return {k: v for k, v in step.items() if k != "hp"}

    def hp(step):
        return {k: v for k, v in step_hp(params, step["loss"], step).items() if k not in CHECKPOINT_KEYS}

    method, other = as_method(method), as_method(other)
    if method.format != other.format:
        return 0
    k = 0
    for a, b in zip(method.steps, other.steps):
        if definition(a) != definition(b) or hp(a) != hp(b):
            break
        k += 1
    return k


def run_method(steps, params: dict, tokenizer, sft_records: list[dict], pairs: list[dict],
               marked: list[dict], out_dir: str | Path, seed: int, *, val_questions: list | None = None,
               name: str | None = None, reuse: tuple | None = None) -> dict:
    """Train a fresh student through a method (a :class:`edit.methods.Method`, a ``method_defs``
    entry, or a bare list of steps), saving the model after every step to ``out_dir/step<k>``
    (``step0``: the untrained student of an untuned method). ``sft_records`` are CoT records of any
    source (D+ and D-+ from cots/sft.jsonl; D- and D+- from cots/wrong.jsonl for counterfactual
    formats); ``pairs`` the dual pairs; ``marked`` the key-step records. A step whose
    ``hp.select`` is ``best_val_accuracy`` evaluates ``val_questions`` (the first ``val_max_items``
    of a task-balanced order) after every epoch and keeps the best epoch. Returns per-step
    summaries (data, hp, chosen epoch and criterion) and log histories.

    ``reuse=(other_method, other_dir, other_report)`` starts from another method's saved model (same
    seed) after the steps the two share (:func:`shared_prefix`) instead of training them
    again: those step folders are copied from ``other_dir`` and their summaries from ``other_report``
    (its train.json), marked ``reused_from``. Training is deterministic, so the result is the same."""
    method = as_method(steps, name or "<method>")
    out_dir = Path(out_dir)
    model = build_student(params["student"], tokenizer, seed)
    max_length = int(params["student"]["max_length"])
    pairs_by_id = {(p["id"], p["pair_type"]): p for p in pairs}
    report = {"method": method.name, "format": method.format, "infer": method.infer, "steps": []}
    if not method.steps:
        save_student(model, tokenizer, out_dir / "step0", seed)
        report["untuned"] = True
        return report
    hps = [step_hp(params, s["loss"], s, method.name) for s in method.steps]  # all errors before training
    start = 0
    if reuse is not None:
        other, other_dir, other_report = reuse
        start = shared_prefix(method, other, params)
        if start:
            other_dir = Path(other_dir)
            if len(other_report.get("steps", [])) < start or not (other_dir / f"step{start}").is_dir():
                raise ValueError(f"method {method.name!r}: cannot reuse {other_dir}: it lacks step {start} or its report")
            model, _ = load_student(other_dir / f"step{start}", base=params["student"], trainable=True)
            for k in range(1, start + 1):
                shutil.copytree(other_dir / f"step{k}", out_dir / f"step{k}", dirs_exist_ok=True)
                report["steps"].append({**other_report["steps"][k - 1], "reused_from": str(other_dir / f"step{k}")})
    for k, (step, hp) in enumerate(zip(method.steps, hps), 1):
        if k <= start:
            continue
        loss = step["loss"]
        callbacks, selector = [], None
        if hp["select"] == "best_val_accuracy":
            if not val_questions:
                raise ValueError(f"method {method.name!r} step {k}: select best_val_accuracy needs val_questions")
            subset = val_subset(val_questions, int(hp["val_max_items"]), seed)
            n_new = int(hp.get("val_max_new_tokens") or params["eval"]["max_new_tokens"])  # optional key
            exemplars = method_exemplars(method, sft_records, seed)
            def evaluate(m, subset=subset, n_new=n_new, exemplars=exemplars, autocast=hp.get("autocast")):
                with autocast_context(autocast, m.device.type):
                    return val_accuracy(m, tokenizer, method, subset, n_new,
                                        int(params["eval"]["batch_size"]), exemplars)

            selector = SelectCheckpoint(evaluate)
            callbacks.append(selector)
        if loss == "sft":
            recs, info = step_records(step, sft_records, pairs, seed)
            rows, built = sft_dataset(recs, tokenizer, max_length, method.format)
            info.update(built)
            history = train(model, tokenizer, rows, loss, hp, seed, callbacks)
        elif loss == "krsl":
            chosen, info = step_pairs(step, marked, seed)
            rows, built = krsl_dataset(chosen, pairs_by_id, tokenizer, max_length, float(hp["alpha"]),
                                       float(hp["beta"]), fmt=method.format, key_tokens=step["key_tokens"], seed=seed)
            info.update(built)
            history = train(model, tokenizer, rows, loss, hp, seed, callbacks)
        else:
            chosen, info = step_pairs(step, pairs, seed)
            rows, built = dpo_dataset(chosen, tokenizer, max_length, method.format)
            info.update(built)
            history = train_dpo(model, tokenizer, rows, hp, seed, callbacks)
        if selector is not None:
            selector.restore(model)
            selection = selector.summary()
        else:
            selection = {"criterion": "last", "epoch": hp["epochs"]}
        save_student(model, tokenizer, out_dir / f"step{k}", seed)
        settings = {key: v for key, v in step.items() if key not in ("loss", "hp")}
        report["steps"].append({"step": k, "loss": loss, "settings": settings, "data": info, "hp": hp,
                                "selection": selection, "log": history})
    return report


def train_one(params: dict, method: str, seed: int, data_dir: str | Path = "data",
              models_dir: str | Path = "models", results_dir: str | Path = "results",
              checkpoints_dir: str | Path | None = None, progress: bool = True, reuse_from: str | None = None,
              reuse_results_dir: str | Path | None = None) -> dict:
    """Train ``method`` (an entry of ``params["method_defs"]``) with ``seed`` on the data stage's
    outputs in ``data_dir`` (tokenizer, CoTs, dual pairs, key-step marks, validation questions)
    through :func:`run_method`; the one entry point of the train stage (:mod:`edit.stages.train`)
    and of ``accelerate launch -m edit.launch``. Rank 0 saves the model after every step under
    ``<models_dir>/<method>-<seed>`` and the summary to ``<results_dir>/<method>-<seed>/train.json``;
    returns the summary (on every rank). ``reuse_from``: a method name, or several separated by
    commas; of those, the one sharing the most leading steps with ``method``
    (:func:`shared_prefix`; ties: the first listed) lends its saved model of this seed
    (``<models_dir>/<name>-<seed>``, its summary under ``reuse_results_dir``, default
    ``results_dir``) for the shared steps (see ``run_method``'s ``reuse``)."""
    run = f"{method}-{seed}"
    data = Path(data_dir)
    out_dir = Path(models_dir) / run
    report_path = Path(results_dir) / run / "train.json"
    ck = checkpoint_settings(params)
    run_ck = Path(checkpoints_dir) if checkpoints_dir else Path(ck["dir"]) / run

    params = json.loads(json.dumps(params))  # a private copy
    autocast = autocast_setting(params)
    for section in params["train"].values():
        if isinstance(section, dict) and "lr" in section:
            section["progress"] = bool(progress) and rank() == 0
            if autocast is not None:  # runtime.autocast reaches the trainers as an hp (absent: float32)
                section["autocast"] = autocast
    extra = checkpoint_hp(params, run_ck)
    spec = get_method(params, method)
    spec = with_step_hp(spec, extra) if extra else spec

    tokenizer = load_tokenizer(require(data / "tokenizer", KEYSTEPS_STAGE))
    # a record of an unknown source or with a blank response, a pair with a blank side, a key-step
    # record without its pair or with a key index out of range: each a DataError naming file and record
    cots = read_cots(require(data / "cots" / "sft.jsonl", DATA_STAGE), SFT_SOURCES)  # D+, D-+
    if (data / "cots" / "wrong.jsonl").exists():                                    # D-, D+- (counterfactual formats)
        cots += read_cots(data / "cots" / "wrong.jsonl", WRONG_SOURCES)
    pairs_path = require(data / "cots" / "pairs.jsonl", DATA_STAGE)
    pairs = read_pairs(pairs_path)
    marked = read_keysteps(require(data / "keysteps" / "pairs.jsonl", KEYSTEPS_STAGE), pairs, pairs_path)
    needs_val = any(step_hp(params, s["loss"], s)["select"] != "last"
                    for s in spec.steps)
    val = ([Question(**r) for r in read_jsonl(require(data / "questions" / "val.jsonl", DATA_STAGE),
                                              required=("id", "task", "input", "target"))]
           if needs_val else None)
    reuse = None
    candidates = [n.strip() for n in (reuse_from or "").split(",") if n.strip()]
    if candidates:
        others = [(with_step_hp(get_method(params, n), extra) if extra else get_method(params, n)) for n in candidates]
        shared = [shared_prefix(spec, o, params) for o in others]
        best = max(range(len(others)), key=lambda i: (shared[i], -i))
        if shared[best]:
            name = candidates[best]
            made_by = f"the train stage of {name}-{seed} (dvc repro train@{name}-{seed})"
            require(Path(models_dir) / f"{name}-{seed}", made_by)
            reuse = (others[best], Path(models_dir) / f"{name}-{seed}",
                     read_json(require(Path(reuse_results_dir or results_dir) / f"{name}-{seed}" / "train.json", made_by)))

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
