"""Trainers: supervised fine-tuning (SFT) and KRSL, the weighted token loss over dual pairs
(:func:`edit.losses.krsl_loss`), on transformers' Trainer; DPO on dual pairs through TRL's
DPOTrainer (an optional dependency, imported when a DPO step runs).

Sequences are ``prompt ids + response ids + EOS`` (:mod:`edit.training.rows`); batches are padded
to their longest sequence, never to a fixed length (:mod:`edit.training.batching`); with the hp
``group_by_length`` the rows of a batch have similar lengths. DPO (TRL) ignores
``group_by_length``. ``batch_size`` is always the GLOBAL batch (:mod:`edit.training.checkpoints`).
With the hp ``autocast`` (``runtime.autocast``, set by :mod:`edit.training.run`), SFT and KRSL
compute the forward pass and the loss under :func:`edit.runtime.autocast_context` (absent: float32).
"""
from __future__ import annotations

import copy
import math
import tempfile

import torch
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from edit.losses import krsl_loss, krsl_loss_at, weighted_positions
from edit.runtime import autocast_context
from edit.training.batching import GroupByLengthMixin, PadToLongest
from edit.training.checkpoints import per_device_batch, prepare_checkpoints, rank, run_fingerprint, world_size

#: gradient clipping: transformers' default, the same for every step (not a setting of params.yaml)
MAX_GRAD_NORM = 1.0


class AutocastMixin:
    """Trainer mixin: the forward pass and the loss (the Trainer's compute-loss context) run under
    :func:`edit.runtime.autocast_context` of ``autocast`` (None: float32, the Trainer unchanged)."""

    def __init__(self, *args, autocast: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.autocast = autocast

    def autocast_smart_context_manager(self, cache_enabled: bool | None = True):
        if self.autocast is None:
            return super().autocast_smart_context_manager(cache_enabled)
        return autocast_context(self.autocast, self.args.device.type)


class SFTTrainer(AutocastMixin, GroupByLengthMixin, Trainer):
    """The Trainer with the optional length-grouped order (:class:`GroupByLengthMixin`) and
    autocast (:class:`AutocastMixin`)."""


class KRSLTrainer(AutocastMixin, GroupByLengthMixin, Trainer):
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


def train(model, tokenizer, rows: list[dict], loss: str, hp: dict, seed: int, callbacks=None) -> list[dict]:
    """Train ``model`` in place on ``rows`` with ``loss`` ("sft" or "krsl") and hyper-parameters
    ``hp`` (epochs, batch_size, lr, warmup_ratio, weight_decay, scheduler, max_grad_norm, logging_steps,
    and nll_cap for KRSL; ``autocast``: absent/None or "bfloat16", see :class:`AutocastMixin`); return
    the Trainer's log history. ``batch_size`` counts pairs for KRSL.
    ``callbacks``: extra TrainerCallbacks (e.g. :class:`edit.training.selection.SelectCheckpoint`).

    ``batch_size`` is the GLOBAL batch: under ``accelerate launch`` with N processes each takes
    batch_size / N (an error if N does not divide it), so the same ``hp`` trains the same model on
    1 or N processes (see :mod:`edit.launch`). The last step is always logged (the log covers every
    step) and ``train_loss`` is the mean over all steps.

    ``group_by_length`` (default false): batches of rows of similar length
    (:class:`edit.training.batching.LengthGroupedSampler` over the global batch, seeded by ``seed``;
    for KRSL the longer side of each pair) instead of a random order, so padding to the longest row
    wastes little. The order depends only on (seed, epoch), so it is the same on 1 or N processes
    and after a resume.

    Checkpoints (set by :func:`edit.training.checkpoints.checkpoint_hp`): with ``save_steps`` > 0 and
    ``checkpoint_dir``, the Trainer saves every ``save_steps`` optimizer steps (a multiple of
    ``logging_steps``, so that a resumed run logs exactly what an uninterrupted one does) and at the
    end, keeping ``save_total_limit`` (default 2), under ``checkpoint_dir/<loss>-<fingerprint>``;
    with ``resume`` it continues from the last complete checkpoint of the same fingerprint (rows,
    hyper-parameters, seed, initial weights), else it starts afresh."""
    if not rows:
        raise ValueError(f"no training rows for the {loss} step: check the data stage's summary")
    n_proc = world_size()
    device_batch = per_device_batch(hp["batch_size"], n_proc, what=f"train.{loss}.batch_size")
    steps_per_epoch = math.ceil(len(rows) / int(hp["batch_size"]))
    logging_steps = int(hp["logging_steps"])
    save_steps = int(hp.get("save_steps") or 0)
    output_dir, start = tempfile.mkdtemp(prefix="edit-trainer-"), None  # nothing is saved there
    if save_steps > 0:
        if not hp.get("checkpoint_dir"):
            raise ValueError(f"train.{loss}: save_steps={save_steps} needs a checkpoint_dir "
                             "(edit.training.run.train_one sets it)")
        if save_steps % logging_steps:
            raise ValueError(f"train.{loss}: save_steps={save_steps} must be a multiple of logging_steps="
                             f"{logging_steps}, or a resumed run would log differently from an uninterrupted one")
        fingerprint = run_fingerprint(model, rows, loss, hp, seed)  # before the Trainer moves the model
        folder, start = prepare_checkpoints(hp["checkpoint_dir"], fingerprint, loss, bool(hp["resume"]),
                                            n_proc, is_main=rank() == 0)
        output_dir = str(folder)
    args = TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=float(hp["epochs"]),
        per_device_train_batch_size=device_batch,
        learning_rate=float(hp["lr"]),
        warmup_steps=int(float(hp["warmup_ratio"]) * steps_per_epoch * float(hp["epochs"])),
        weight_decay=float(hp["weight_decay"]),
        lr_scheduler_type=hp["scheduler"],
        max_grad_norm=MAX_GRAD_NORM,
        logging_steps=logging_steps,
        save_strategy="steps" if save_steps > 0 else "no",
        save_steps=save_steps if save_steps > 0 else 500,
        save_total_limit=int(hp["save_total_limit"]) if save_steps > 0 else None,
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
                  group_by_length=bool(hp["group_by_length"]), global_batch=int(hp["batch_size"]),
                  autocast=hp.get("autocast"))
    if loss == "sft":
        trainer = SFTTrainer(**common)
    elif loss == "krsl":
        trainer = KRSLTrainer(**common, nll_cap=hp["nll_cap"])
    else:
        raise ValueError(f"unknown loss {loss!r}: expected 'sft' or 'krsl'")
    trainer.train(resume_from_checkpoint=str(start) if start else None)
    # wall-clock figures would make the log (a pipeline output) differ between identical runs
    return finish_history(trainer.state.log_history)


def make_dpo_trainer(model, tokenizer, rows: list[dict], hp: dict, seed: int, callbacks=None):
    """TRL's DPOTrainer (sigmoid loss, ``hp['beta']``) over :func:`edit.training.rows.dpo_dataset`
    rows, with the same optimiser settings as :func:`train`. The reference model is a frozen copy
    of ``model`` as it is now (for a LoRA model, TRL uses the model with its adapters disabled). No
    truncation (``max_length=None``): over-long pairs were skipped when the rows were built. The hp
    ``group_by_length`` is ignored here: DPO keeps TRL's random order. ``batch_size`` is the global
    batch (pairs), as for SFT and KRSL."""
    from trl import DPOConfig, DPOTrainer  # optional: only the DPO step needs TRL

    if not rows:
        raise ValueError("no training rows for the dpo step: check the data stage's summary")
    steps_per_epoch = math.ceil(len(rows) / int(hp["batch_size"]))
    args = DPOConfig(
        output_dir=tempfile.mkdtemp(prefix="edit-dpo-"),  # nothing is saved there
        num_train_epochs=float(hp["epochs"]),
        per_device_train_batch_size=per_device_batch(int(hp["batch_size"]), what="train.dpo.batch_size"),
        learning_rate=float(hp["lr"]),
        warmup_steps=int(float(hp["warmup_ratio"]) * steps_per_epoch * float(hp["epochs"])),
        weight_decay=float(hp["weight_decay"]),
        lr_scheduler_type=hp["scheduler"],
        max_grad_norm=MAX_GRAD_NORM,
        logging_steps=int(hp["logging_steps"]),
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
    """Train ``model`` in place with DPO on ``rows`` (:func:`edit.training.rows.dpo_dataset`); the
    log history without wall-clock fields."""
    trainer = make_dpo_trainer(model, tokenizer, rows, hp, seed, callbacks)
    trainer.train()
    return [{k: v for k, v in h.items() if "runtime" not in k and "per_second" not in k}
            for h in trainer.state.log_history]
