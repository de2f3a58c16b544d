"""Training on transformers' Trainer: supervised fine-tuning (SFT) on correct CoTs and KRSL, the
weighted token loss over dual pairs (:func:`edit.losses.krsl_loss`).

Sequences are ``prompt ids + response ids + EOS`` with labels -100 on the prompt; batches are
padded to their longest sequence (never to a fixed length). A KRSL batch of P pairs is 2P rows
(chosen, rejected, chosen, ...) that go through one forward pass.
"""
from __future__ import annotations

import math
import tempfile
from collections import Counter
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

from edit.align import krsl_weights
from edit.dual import PAIR_TYPES, SFT_SOURCES
from edit.formats import student_prompt
from edit.io import DataError
from edit.keysteps import response_ids
from edit.losses import krsl_loss
from edit.student import tokenizer_fingerprint

IGNORE = -100


def encode(tokenizer, question: str, ids: list[int], max_length: int, weights: list[float] | None = None):
    """One training row from a question and response ids; None when it exceeds ``max_length``
    (a truncated row could lose its final answer, so it is skipped and counted, never cut)."""
    prompt = tokenizer(student_prompt(question), add_special_tokens=False)["input_ids"]
    input_ids = prompt + list(ids) + [tokenizer.eos_token_id]
    if len(input_ids) > max_length:
        return None
    row = {"input_ids": input_ids, "labels": [IGNORE] * len(prompt) + list(ids) + [tokenizer.eos_token_id]}
    if weights is not None:
        row["weights"] = [0.0] * len(prompt) + list(weights) + [0.0]
    return row


def sft_dataset(records: list[dict], tokenizer, max_length: int) -> tuple[list[dict], dict]:
    """Rows for SFT on ``{question, response}`` records, and a summary of what was skipped."""
    rows, skipped = [], Counter()
    for rec in records:
        if not rec["response"].strip():
            raise DataError(f"record {rec['id']} ({rec.get('source')}): empty response")
        row = encode(tokenizer, rec["question"], response_ids(tokenizer, rec["response"]), max_length)
        if row is None:
            skipped["too_long"] += 1
            continue
        rows.append(row)
    return rows, {"rows": len(rows), "skipped": dict(skipped)}


def krsl_dataset(
    marked: list[dict], pairs_by_id: dict, tokenizer, max_length: int, alpha: float, beta: float
) -> tuple[list[dict], dict]:
    """Rows for KRSL: one ``{"chosen": row, "rejected": row}`` per pair. ``marked`` are the key-step
    records (:func:`edit.keysteps.mark_pairs`); their ids must equal this tokenizer's ids of the
    pair's texts, or the marks would describe other tokens: a mismatch is an error."""
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
        for i in m["chosen_key"]:
            c_mask[i] = True
        for i in m["rejected_key"]:
            r_mask[i] = True
        c_w, r_w = krsl_weights(c_mask, r_mask, alpha=alpha, beta=beta)
        chosen = encode(tokenizer, pair["question"], m["chosen_ids"], max_length, c_w)
        rejected = encode(tokenizer, pair["question"], m["rejected_ids"], max_length, r_w)
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


class KRSLTrainer(Trainer):
    """Trainer whose loss is KRSL over batches that carry per-token ``weights``."""

    def __init__(self, *args, nll_cap: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.nll_cap = nll_cap

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weights = inputs.pop("weights")
        labels = inputs.pop("labels")
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        loss = krsl_loss(outputs.logits, labels, weights, nll_cap=self.nll_cap)
        return (loss, outputs) if return_outputs else loss


def train(model, tokenizer, rows: list[dict], loss: str, hp: dict, seed: int) -> list[dict]:
    """Train ``model`` in place on ``rows`` with ``loss`` ("sft" or "krsl") and hyper-parameters
    ``hp`` (epochs, batch_size, lr, warmup_ratio, weight_decay, scheduler, max_grad_norm, logging_steps,
    and nll_cap for KRSL); return the Trainer's log history. ``batch_size`` counts pairs for KRSL."""
    if not rows:
        raise ValueError(f"no training rows for the {loss} step: check the data stage's summary")
    steps_per_epoch = math.ceil(len(rows) / int(hp["batch_size"]))
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="edit-trainer-"),  # nothing is saved there
        num_train_epochs=float(hp["epochs"]),
        per_device_train_batch_size=int(hp["batch_size"]),
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
        remove_unused_columns=False,
        disable_tqdm=not hp.get("progress", True),
    )
    common = dict(model=model, args=args, train_dataset=rows, data_collator=PadToLongest(tokenizer.pad_token_id))
    if loss == "sft":
        trainer = Trainer(**common)
    elif loss == "krsl":
        trainer = KRSLTrainer(**common, nll_cap=hp.get("nll_cap"))
    else:
        raise ValueError(f"unknown loss {loss!r}: expected 'sft' or 'krsl'")
    trainer.train()
    # wall-clock figures would make the log (a pipeline output) differ between identical runs
    return [{k: v for k, v in h.items() if "runtime" not in k and "per_second" not in k}
            for h in trainer.state.log_history]


def check_steps(steps: list[dict]) -> None:
    """Refuse a method definition with an unknown loss, data source or pair type before any training."""
    if not steps:
        raise ValueError("a method needs at least one step")
    for k, step in enumerate(steps, 1):
        loss = step.get("loss")
        if loss == "sft":
            unknown = set(step.get("data") or ()) - set(SFT_SOURCES)
            if unknown or not step.get("data"):
                raise ValueError(f"step {k}: unknown SFT data source(s) {sorted(unknown)}; use {list(SFT_SOURCES)}")
        elif loss == "krsl":
            unknown = set(step.get("pairs") or ()) - set(PAIR_TYPES)
            if unknown or not step.get("pairs"):
                raise ValueError(f"step {k}: unknown pair type(s) {sorted(unknown)}; use {list(PAIR_TYPES)}")
        else:
            raise ValueError(f"step {k}: unknown loss {loss!r}: expected 'sft' or 'krsl'")


def run_method(steps: list[dict], params: dict, tokenizer, sft_records: list[dict], pairs: list[dict],
               marked: list[dict], out_dir: str | Path, seed: int) -> dict:
    """Train a fresh student through a method's ``steps`` (each ``{loss: sft, data: [sources]}`` or
    ``{loss: krsl, pairs: [pair types], hp: {...}}``), saving the model after every step to
    ``out_dir/step<k>``. Returns per-step summaries and log histories."""
    from edit.params import deep_merge
    from edit.student import build_student, save_student

    out_dir = Path(out_dir)
    model = build_student(params["student"], tokenizer, seed)
    max_length = int(params["student"]["max_length"])
    pairs_by_id = {(p["id"], p["pair_type"]): p for p in pairs}
    report = {"steps": []}
    check_steps(steps)
    for k, step in enumerate(steps, 1):
        loss = step["loss"]
        hp = deep_merge(params["train"][loss], step.get("hp") or {})
        if loss == "sft":
            recs = [r for r in sft_records if r["source"] in step["data"]]
            rows, info = sft_dataset(recs, tokenizer, max_length)
        else:
            chosen = [m for m in marked if m["pair_type"] in step["pairs"]]
            rows, info = krsl_dataset(chosen, pairs_by_id, tokenizer, max_length,
                                      float(hp["alpha"]), float(hp["beta"]))
        history = train(model, tokenizer, rows, loss, hp, seed)
        save_student(model, tokenizer, out_dir / f"step{k}", seed)
        report["steps"].append({"step": k, "loss": loss, "data": info, "hp": hp, "log": history})
    return report
