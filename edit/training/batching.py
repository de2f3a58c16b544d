"""Batches: the collator that pads rows (or KRSL pairs of rows) to the longest row of a batch, and
the optional length-grouped order (the hp ``group_by_length``) in which the rows of a batch have
similar lengths, so padding wastes little. A KRSL batch of P pairs is 2P rows (chosen, rejected,
chosen, ...) that go through one forward pass.
"""
from __future__ import annotations

import numpy as np
import torch

from edit.training.rows import IGNORE


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
