"""Training on transformers' Trainer: supervised fine-tuning (SFT) on correct CoTs and KRSL, the
weighted token loss over dual pairs (:func:`edit.losses.krsl_loss`); DPO on dual pairs through TRL's
DPOTrainer. Methods (which steps, data, format, controls) come from :mod:`edit.methods`.

Sequences are ``prompt ids + response ids + EOS`` with labels -100 on the prompt; batches are
padded to their longest sequence (never to a fixed length); with the hp ``group_by_length`` the
rows of a batch have similar lengths (:class:`LengthGroupedSampler`). A KRSL batch of P pairs is
2P rows (chosen, rejected, chosen, ...) that go through one forward pass. DPO (TRL) ignores
``group_by_length``.
"""
from __future__ import annotations

import math
import tempfile
from collections import Counter
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from edit.align import krsl_weights
from edit.formats import student_prompt
from edit.io import DataError
from edit.keysteps import response_ids
from edit.losses import krsl_loss, krsl_loss_at, weighted_positions
from edit.student import tokenizer_fingerprint

IGNORE = -100


def encode(tokenizer, question: str, ids: list[int], max_length: int, weights: list[float] | None = None,
           prompt_text: str | None = None):
    """One training row from a question and response ids; None when it exceeds ``max_length``
    (a truncated row could lose its final answer, so it is skipped and counted, never cut).
    ``prompt_text`` (a method template's prompt) replaces the plain CoT prompt of ``question``."""
    prompt_text = student_prompt(question) if prompt_text is None else prompt_text
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    input_ids = prompt + list(ids) + [tokenizer.eos_token_id]
    if len(input_ids) > max_length:
        return None
    row = {"input_ids": input_ids, "labels": [IGNORE] * len(prompt) + list(ids) + [tokenizer.eos_token_id]}
    if weights is not None:
        row["weights"] = [0.0] * len(prompt) + list(weights) + [0.0]
    return row


def sft_dataset(records: list[dict], tokenizer, max_length: int, fmt: str = "cot") -> tuple[list[dict], dict]:
    """Rows for SFT on ``{question, gold, response, source}`` records laid out by the format
    ``fmt`` (:data:`edit.formats.FORMATS`: each record gives one or more (prompt, response)
    rows), and a summary of what was skipped."""
    from edit.formats import get_format

    layout = get_format(fmt)
    rows, skipped = [], Counter()
    for rec in records:
        if not rec["response"].strip():
            raise DataError(f"record {rec['id']} ({rec.get('source')}): empty response")
        for prompt_text, response in layout.examples(rec):
            if not response.strip():
                raise DataError(f"record {rec['id']} ({rec.get('source')}): empty response under format {fmt!r}")
            row = encode(tokenizer, rec["question"], response_ids(tokenizer, response), max_length,
                         prompt_text=prompt_text)
            if row is None:
                skipped["too_long"] += 1
                continue
            rows.append(row)
    return rows, {"rows": len(rows), "skipped": dict(skipped)}


def krsl_dataset(
    marked: list[dict], pairs_by_id: dict, tokenizer, max_length: int, alpha: float, beta: float,
    fmt: str = "cot", key_tokens: str = "edit_distance", seed: int = 0,
) -> tuple[list[dict], dict]:
    """Rows for KRSL: one ``{"chosen": row, "rejected": row}`` per pair. ``marked`` are the key-step
    records (:func:`edit.keysteps.mark_pairs`); their ids must equal this tokenizer's ids of the
    pair's texts, or the marks would describe other tokens: a mismatch is an error. Both CoTs are
    prompted with the pair template of format ``fmt``; ``key_tokens`` picks the weighted tokens
    (:func:`edit.methods.control_key_indices`: the marks, or the random / all-token controls,
    seeded by ``seed`` and the pair)."""
    from edit.formats import get_format
    from edit.methods import control_key_indices

    pair_template = get_format(fmt).pair
    if pair_template is None:
        raise ValueError(f"format {fmt!r} has no template for dual pairs")
    fp = tokenizer_fingerprint(tokenizer)
    rows, skipped = [], Counter()
    for m in marked:
        key = (m["id"], m["pair_type"])
        if m["tokenizer"] != fp:
            raise DataError(f"pair {key}: key tokens were marked with tokenizer {m['tokenizer']}, training uses {fp}")
        pair = pairs_by_id[key]
        if response_ids(tokenizer, pair["chosen"]) != m["chosen_ids"] or response_ids(tokenizer, pair["rejected"]) != m["rejected_ids"]:
            raise DataError(f"pair {key}: stored token ids differ from the training tokenizer's ids of the texts")
        c_mask = [False] * len(m["chosen_ids"])
        r_mask = [False] * len(m["rejected_ids"])
        c_key, r_key = control_key_indices(key_tokens, m, seed)
        for i in c_key:
            c_mask[i] = True
        for i in r_key:
            r_mask[i] = True
        c_w, r_w = krsl_weights(c_mask, r_mask, alpha=alpha, beta=beta)
        prompt_text = pair_template.prompt(pair["question"])
        chosen = encode(tokenizer, pair["question"], m["chosen_ids"], max_length, c_w, prompt_text=prompt_text)
        rejected = encode(tokenizer, pair["question"], m["rejected_ids"], max_length, r_w, prompt_text=prompt_text)
        if chosen is None or rejected is None:
            skipped["too_long"] += 1
            continue
        rows.append({"chosen": chosen, "rejected": rejected})
    return rows, {"rows": len(rows), "skipped": dict(skipped)}


class PadToLongest:
    """Collate rows (or chosen/rejected pairs of rows) into right-padded tensors."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        rows = []
        for f in features:
            rows.extend([f["chosen"], f["rejected"]] if "chosen" in f else [f])
        width = max(len(r["input_ids"]) for r in rows)
        batch = {
            "input_ids": torch.full((len(rows), width), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(rows), width), dtype=torch.long),
            "labels": torch.full((len(rows), width), IGNORE, dtype=torch.long),
        }
        has_weights = "weights" in rows[0]
        if has_weights:
            batch["weights"] = torch.zeros((len(rows), width), dtype=torch.float32)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            batch["input_ids"][i, :n] = torch.tensor(r["input_ids"])
            batch["attention_mask"][i, :n] = 1
            batch["labels"][i, :n] = torch.tensor(r["labels"])
            if has_weights:
                batch["weights"][i, :n] = torch.tensor(r["weights"])
        return batch


def row_length(row: dict) -> int:
    """A training row's length for length grouping: ``len(input_ids)`` for an SFT row; for a KRSL
    pair ``{"chosen", "rejected"}`` the longer side (both sides go into one batch padded to its
    longest row, so the longer side sets the padded width)."""
    if "chosen" in row:
        return max(len(row["chosen"]["input_ids"]), len(row["rejected"]["input_ids"]))
    return len(row["input_ids"])


class LengthGroupedSampler(torch.utils.data.Sampler):
    """A seeded order of row indices in which every GLOBAL batch holds rows of similar length, so
    padding each batch to its longest row wastes little.

    The order for an epoch is a function of ``(seed, epoch)`` only (:meth:`set_epoch`): shuffle all
    rows, cut into mega-batches of ``mega_batches`` global batches, sort each mega-batch by length
    (longest first; ties keep the shuffled order), cut it into global batches of ``global_batch``,
    then shuffle the order of the full batches and put the batch with the longest row first (an
    out-of-memory shows at the first step). A short last batch (the row count is not a multiple of
    ``global_batch``) stays last, so the index stream cuts into the same global batches as the
    groups.

    The sampler yields a flat index stream that knows nothing of the number of processes: the
    DataLoader cuts it into per-device batches and accelerate deals per-device batch j of global
    step k to rank j, so global step k sees the same rows on 1 or N processes (``global_batch`` is
    the hp ``batch_size``, the global batch). A resumed run rebuilds the same order from
    ``(seed, epoch)`` and skips the batches already trained."""

    def __init__(self, lengths: list[int], global_batch: int, seed: int, mega_batches: int = 50):
        if global_batch < 1 or mega_batches < 1:
            raise ValueError(f"LengthGroupedSampler: global_batch={global_batch} and mega_batches={mega_batches} "
                             "must be >= 1")
        self.lengths = [int(n) for n in lengths]
        self.global_batch, self.seed, self.mega_batches = int(global_batch), int(seed), int(mega_batches)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order :meth:`__iter__` yields."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[list[int]]:
        """This epoch's global batches (lists of row indices), in training order."""
        import numpy as np

        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths)).tolist()
        g = self.global_batch
        mega = g * self.mega_batches
        full, short = [], []
        for start in range(0, len(order), mega):
            chunk = sorted(order[start:start + mega], key=lambda i: -self.lengths[i])  # stable: ties stay shuffled
            for b in range(0, len(chunk), g):
                (full if len(chunk[b:b + g]) == g else short).append(chunk[b:b + g])
        full = [full[i] for i in rng.permutation(len(full)).tolist()]
        if full:
            longest = max(range(len(full)), key=lambda i: self.lengths[full[i][0]])  # each batch is sorted
            full.insert(0, full.pop(longest))
        return full + short

    def __iter__(self):
        for batch in self.batches():
            yield from batch


class GroupByLengthMixin:
    """Trainer mixin: with ``group_by_length`` the training order is a :class:`LengthGroupedSampler`
    over the GLOBAL batch ``global_batch`` seeded by ``args.data_seed``, and the sampler's epoch is
    set at the start of every epoch by the Trainer itself (accelerate does not reach a sampler
    under a skipped-batches loader on N processes, as after a resume)."""

    def __init__(self, *args, group_by_length: bool = False, global_batch: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.group_by_length = bool(group_by_length)
        self.global_batch = global_batch
        self.length_sampler: LengthGroupedSampler | None = None

    def _get_train_sampler(self, train_dataset=None):
        if not self.group_by_length:
            return super()._get_train_sampler(train_dataset)
        dataset = self.train_dataset if train_dataset is None else train_dataset
        global_batch = self.global_batch or self.args.train_batch_size * self.args.world_size
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        self.length_sampler = LengthGroupedSampler([row_length(r) for r in dataset], global_batch, seed)
        return self.length_sampler

    def _run_epoch(self, *args, **kwargs):
        if self.length_sampler is not None:
            epoch = kwargs["epoch"] if "epoch" in kwargs else args[1]
            self.length_sampler.set_epoch(epoch)
        return super()._run_epoch(*args, **kwargs)


class SFTTrainer(GroupByLengthMixin, Trainer):
    """The Trainer with the optional length-grouped order (:class:`GroupByLengthMixin`)."""


class KRSLTrainer(GroupByLengthMixin, Trainer):
    """Trainer whose loss is KRSL over batches that carry per-token ``weights``."""

    def __init__(self, *args, nll_cap: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.nll_cap = nll_cap

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weights = inputs.pop("weights")
        labels = inputs.pop("labels")
        loss, outputs = krsl_step_loss(model, inputs["input_ids"], inputs["attention_mask"], labels, weights,
                                       nll_cap=self.nll_cap, head=self.accelerator.unwrap_model(model))
        return (loss, outputs) if return_outputs else loss


def krsl_step_loss(model, input_ids, attention_mask, labels, weights, nll_cap: float | None = None, head=None):
    """The KRSL loss of a batch (exactly :func:`edit.losses.krsl_loss` of the model's logits) and
    the model's outputs, computing the output layer only where it matters.

    KRSL weights only the key tokens (a few percent of a CoT), so only the logits that predict a
    token of non-zero weight enter the loss. A forward pre-hook on the output layer (found through
    ``head``, the unwrapped model, default ``model``) hands it just those hidden states: the
    vocabulary projection, its log-softmax and their backward run on K positions instead of every
    position of the 2P padded rows (and the [rows, length, vocabulary] logits tensor is never
    made). The model is still called as a whole (through its DDP / PEFT wrappers), so gradient
    synchronisation is unchanged. ``outputs.logits`` is then [1, K, vocabulary]. Falls back to the
    full logits for a model without ``get_output_embeddings``."""
    out_layer = getattr(head if head is not None else model, "get_output_embeddings", lambda: None)()
    if out_layer is None:
        outputs = model(input_ids=input_ids, attention_mask=attention_mask)
        return krsl_loss(outputs.logits, labels, weights, nll_cap=nll_cap), outputs
    pos = weighted_positions(labels, weights)  # logit position t predicts label t + 1

    def select(module, args):
        return (args[0][pos.rows, pos.cols].unsqueeze(0), *args[1:])

    hook = out_layer.register_forward_pre_hook(select)
    try:
        outputs = model(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        hook.remove()
    return krsl_loss_at(outputs.logits[0], pos, nll_cap), outputs


def train(model, tokenizer, rows: list[dict], loss: str, hp: dict, seed: int, callbacks=None) -> list[dict]:
    """Train ``model`` in place on ``rows`` with ``loss`` ("sft" or "krsl") and hyper-parameters
    ``hp`` (epochs, batch_size, lr, warmup_ratio, weight_decay, scheduler, max_grad_norm, logging_steps,
    and nll_cap for KRSL); return the Trainer's log history. ``batch_size`` counts pairs for KRSL.
    ``callbacks``: extra TrainerCallbacks (e.g. :class:`SelectCheckpoint`).

    ``batch_size`` is the GLOBAL batch: under ``accelerate launch`` with N processes each takes
    batch_size / N (an error if N does not divide it), so the same ``hp`` trains the same model on
    1 or N processes (see :mod:`edit.launch`). The last step is always logged (the log covers every
    step) and ``train_loss`` is the mean over all steps.

    ``group_by_length`` (default false): batches of rows of similar length
    (:class:`LengthGroupedSampler` over the global batch, seeded by ``seed``; for KRSL the longer
    side of each pair) instead of a random order, so padding to the longest row wastes little. The
    order depends only on (seed, epoch), so it is the same on 1 or N processes and after a resume.

    Checkpoints (set by :func:`edit.launch.checkpoint_hp`): with ``save_steps`` > 0 and
    ``checkpoint_dir``, the Trainer saves every ``save_steps`` optimizer steps (a multiple of
    ``logging_steps``, so that a resumed run logs exactly what an uninterrupted one does) and at the
    end, keeping ``save_total_limit`` (default 2), under ``checkpoint_dir/<loss>-<fingerprint>``;
    with ``resume`` it continues from the last complete checkpoint of the same fingerprint (rows,
    hyper-parameters, seed, initial weights), else it starts afresh."""
    from edit.launch import (LogLastStep, finish_history, per_device_batch, prepare_checkpoints, rank,
                             run_fingerprint, world_size)

    if not rows:
        raise ValueError(f"no training rows for the {loss} step: check the data stage's summary")
    n_proc = world_size()
    device_batch = per_device_batch(hp["batch_size"], n_proc, what=f"train.{loss}.batch_size")
    steps_per_epoch = math.ceil(len(rows) / int(hp["batch_size"]))
    logging_steps = int(hp.get("logging_steps", 10))
    save_steps = int(hp.get("save_steps") or 0)
    output_dir, start = tempfile.mkdtemp(prefix="edit-trainer-"), None  # nothing is saved there
    if save_steps > 0:
        if not hp.get("checkpoint_dir"):
            raise ValueError(f"train.{loss}: save_steps={save_steps} needs a checkpoint_dir (edit.launch sets it)")
        if save_steps % logging_steps:
            raise ValueError(f"train.{loss}: save_steps={save_steps} must be a multiple of logging_steps="
                             f"{logging_steps}, or a resumed run would log differently from an uninterrupted one")
        fingerprint = run_fingerprint(model, rows, loss, hp, seed)  # before the Trainer moves the model
        folder, start = prepare_checkpoints(hp["checkpoint_dir"], fingerprint, loss, bool(hp.get("resume", False)),
                                            n_proc, is_main=rank() == 0)
        output_dir = str(folder)
    args = TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=float(hp["epochs"]),
        per_device_train_batch_size=device_batch,
        learning_rate=float(hp["lr"]),
        warmup_steps=int(float(hp.get("warmup_ratio", 0.0)) * steps_per_epoch * float(hp["epochs"])),
        weight_decay=float(hp.get("weight_decay", 0.0)),
        lr_scheduler_type=hp.get("scheduler", "linear"),
        max_grad_norm=float(hp.get("max_grad_norm", 1.0)),
        logging_steps=logging_steps,
        save_strategy="steps" if save_steps > 0 else "no",
        save_steps=save_steps if save_steps > 0 else 500,
        save_total_limit=int(hp.get("save_total_limit") or 2),
        report_to="none",
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,  # every trainable parameter is used: skip DDP's extra graph traversal
        disable_tqdm=not hp.get("progress", True),
    )
    common = dict(model=model, args=args, train_dataset=rows, data_collator=PadToLongest(tokenizer.pad_token_id),
                  callbacks=list(callbacks or []) + [LogLastStep()],
                  group_by_length=bool(hp.get("group_by_length", False)), global_batch=int(hp["batch_size"]))
    if loss == "sft":
        trainer = SFTTrainer(**common)
    elif loss == "krsl":
        trainer = KRSLTrainer(**common, nll_cap=hp.get("nll_cap"))
    else:
        raise ValueError(f"unknown loss {loss!r}: expected 'sft' or 'krsl'")
    trainer.train(resume_from_checkpoint=str(start) if start else None)
    # wall-clock figures would make the log (a pipeline output) differ between identical runs
    return finish_history(trainer.state.log_history)


def dpo_dataset(pairs: list[dict], tokenizer, max_length: int, fmt: str = "cot") -> tuple[list[dict], dict]:
    """Text rows ``{prompt, chosen, rejected}`` for DPO: both CoTs of each dual pair under the pair
    template of format ``fmt``. A pair whose longer side (prompt + response + EOS) exceeds
    ``max_length`` is skipped and counted, never truncated."""
    from edit.formats import get_format

    template = get_format(fmt).pair
    if template is None:
        raise ValueError(f"format {fmt!r} has no template for dual pairs")
    rows, skipped = [], Counter()
    for p in pairs:
        prompt_text = template.prompt(p["question"])
        if not p["chosen"].strip() or not p["rejected"].strip():
            raise DataError(f"pair {(p['id'], p['pair_type'])}: empty chosen or rejected CoT")
        if any(encode(tokenizer, p["question"], response_ids(tokenizer, p[side]), max_length, prompt_text=prompt_text) is None
               for side in ("chosen", "rejected")):
            skipped["too_long"] += 1
            continue
        rows.append({"prompt": prompt_text, "chosen": p["chosen"], "rejected": p["rejected"]})
    return rows, {"rows": len(rows), "skipped": dict(skipped)}


def make_dpo_trainer(model, tokenizer, rows: list[dict], hp: dict, seed: int, callbacks=None):
    """TRL's DPOTrainer (sigmoid loss, ``hp['beta']``) over :func:`dpo_dataset` rows, with the same
    optimiser settings as :func:`train`. The reference model is a frozen copy of ``model`` as it is
    now (for a LoRA model, TRL uses the model with its adapters disabled). No truncation
    (``max_length=None``): over-long pairs were skipped when the rows were built. The hp
    ``group_by_length`` is ignored here: DPO keeps TRL's random order. ``batch_size`` is the global
    batch (pairs), as for SFT and KRSL."""
    import copy

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from edit.launch import per_device_batch

    if not rows:
        raise ValueError("no training rows for the dpo step: check the data stage's summary")
    steps_per_epoch = math.ceil(len(rows) / int(hp["batch_size"]))
    args = DPOConfig(
        output_dir=tempfile.mkdtemp(prefix="edit-dpo-"),  # nothing is saved there
        num_train_epochs=float(hp["epochs"]),
        per_device_train_batch_size=per_device_batch(int(hp["batch_size"]), what="train.dpo.batch_size"),
        learning_rate=float(hp["lr"]),
        warmup_steps=int(float(hp.get("warmup_ratio", 0.0)) * steps_per_epoch * float(hp["epochs"])),
        weight_decay=float(hp.get("weight_decay", 0.0)),
        lr_scheduler_type=hp.get("scheduler", "linear"),
        max_grad_norm=float(hp.get("max_grad_norm", 1.0)),
        logging_steps=int(hp.get("logging_steps", 10)),
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=not hp.get("progress", True),
        beta=float(hp["beta"]),
        loss_type=["sigmoid"],
        max_length=None,
        gradient_checkpointing=False,  # TRL's default is True; train() does not use it either
    )
    is_peft = hasattr(model, "peft_config")
    ref = None if is_peft else copy.deepcopy(model).eval()
    return DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows),
                      processing_class=tokenizer, callbacks=list(callbacks or []))


def train_dpo(model, tokenizer, rows: list[dict], hp: dict, seed: int, callbacks=None) -> list[dict]:
    """Train ``model`` in place with DPO on ``rows`` (:func:`dpo_dataset`); the log history
    without wall-clock fields."""
    trainer = make_dpo_trainer(model, tokenizer, rows, hp, seed, callbacks)
    trainer.train()
    return [{k: v for k, v in h.items() if "runtime" not in k and "per_second" not in k}
            for h in trainer.state.log_history]


def val_accuracy(model, tokenizer, method, questions: list, max_new_tokens: int, batch_size: int = 32,
                 exemplars: dict | None = None, answer_type_of=None) -> float:
    """Accuracy (percent) of greedy decoding with the method's inference prompt on ``questions``
    (Question objects), scored like the evaluation (:func:`edit.scoring.score`)."""
    from edit.benchmarks import suites as benchmarks
    from edit.generation import generate
    from edit.methods import inference_prompt
    from edit.scoring import score

    answer_type_of = answer_type_of or benchmarks.answer_type  # every BBH task, the embedded ones too
    if not questions:
        raise ValueError("val_accuracy: no validation questions")
    prompts = [inference_prompt(method, q, exemplars) for q in questions]
    gens = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, show_progress=False)
    correct = sum(score(g, q.target, answer_type_of(q.task))["correct"] for g, q in zip(gens, questions))
    return 100.0 * correct / len(questions)


class SelectCheckpoint(TrainerCallback):
    """Checkpoint selection on a validation split: after every epoch, ``evaluate(model)`` gives a
    validation accuracy and the trainable weights of the best epoch are kept in memory (ties go to
    the LATER epoch, the one ``last`` would pick). :meth:`restore` loads them into the model after
    training; :meth:`summary` says which epoch was chosen and the accuracy of every epoch."""

    def __init__(self, evaluate, criterion: str = "best_val_accuracy"):
        self.evaluate = evaluate
        self.criterion = criterion
        self.history: list[dict] = []
        self._best: tuple[int, float, dict] | None = None

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        was_training = model.training
        acc = float(self.evaluate(model))
        if was_training:
            model.train()
        epoch = int(round(state.epoch or 0))
        self.history.append({"epoch": epoch, "val_accuracy": acc})
        if self._best is None or acc >= self._best[1]:
            weights = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
            self._best = (epoch, acc, weights)
        return control

    def restore(self, model) -> None:
        if self._best is None:
            raise RuntimeError("SelectCheckpoint: no epoch was evaluated")
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, w in self._best[2].items():
                params[n].copy_(w.to(params[n].device))

    def summary(self) -> dict:
        epoch, acc, _ = self._best if self._best else (None, None, None)
        return {"criterion": self.criterion, "epoch": epoch, "val_accuracy": acc, "per_epoch": list(self.history)}


def check_steps(steps) -> None:
    """Refuse a method definition (a list of steps or a ``method_defs`` mapping) with an unknown
    loss, data source, pair type, format or key before any training (:func:`edit.methods.parse_method`)."""
    from edit.methods import parse_method

    parse_method(steps)


def step_hp(params: dict, loss: str, step: dict, method: str = "<method>") -> dict:
    """``params['train'][loss]`` with the step's ``hp`` overrides merged in."""
    from edit.params import deep_merge

    base = (params.get("train") or {}).get(loss)
    if base is None:
        raise ValueError(f"method {method!r}: params.yaml has no train.{loss} section for its {loss} step")
    return deep_merge(base, step.get("hp") or {})


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
    seed) after the steps the two share (:func:`edit.methods.shared_prefix`) instead of training them
    again: those step folders are copied from ``other_dir`` and their summaries from ``other_report``
    (its train.json), marked ``reused_from``. Training is deterministic, so the result is the same."""
    from edit.methods import as_method, method_exemplars, step_pairs, step_records, val_subset
    from edit.student import build_student, save_student

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
        import shutil

        from edit.methods import shared_prefix
        from edit.student import load_student

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
        if hp.get("select", "last") == "best_val_accuracy":
            if not val_questions:
                raise ValueError(f"method {method.name!r} step {k}: select best_val_accuracy needs val_questions")
            subset = val_subset(val_questions, int(hp.get("val_max_items", 60)), seed)
            n_new = int(hp.get("val_max_new_tokens") or params.get("eval", {}).get("max_new_tokens", 400))
            exemplars = method_exemplars(method, sft_records, seed)
            selector = SelectCheckpoint(lambda m: val_accuracy(m, tokenizer, method, subset, n_new,
                                                               int(params.get("eval", {}).get("batch_size", 32)),
                                                               exemplars))
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
