"""Checkpoint selection on a validation split: the greedy accuracy of the student with a method's
inference prompt, scored like the evaluation, and the Trainer callback that keeps the weights of the
best epoch (the hp ``select: best_val_accuracy``).
"""
from __future__ import annotations

import torch
from transformers import TrainerCallback

from edit.benchmarks import suites as benchmarks
from edit.generation import generate
from edit.methods import inference_prompt
from edit.scoring import score


def val_accuracy(model, tokenizer, method, questions: list, max_new_tokens: int, batch_size: int = 32,
                 exemplars: dict | None = None) -> float:
    """Accuracy (percent) of greedy decoding with the method's inference prompt on ``questions``
    (Question objects), scored like the evaluation (:func:`edit.scoring.score`; answer types from
    :func:`edit.benchmarks.suites.answer_type`, which knows every BBH task, the embedded ones too)."""
    if not questions:
        raise ValueError("val_accuracy: no validation questions")
    prompts = [inference_prompt(method, q, exemplars) for q in questions]
    gens = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, show_progress=False)
    correct = sum(score(g, q.target, benchmarks.answer_type(q.task))["correct"] for g, q in zip(gens, questions))
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
