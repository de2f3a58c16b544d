"""Benchmark: training throughput of our batching, and the cost of a KRSL step.

1. **Padding.** Tokens/s of SFT training steps (forward, backward, AdamW) on the same rows when a
   batch is padded to its longest row (``edit.training.batching.PadToLongest``, what the pipeline does)
   against every row padded to 1,024 tokens (what the pitfall notes describe in published code),
   in a random order and in the pipeline's length-grouped order (hp ``group_by_length``: the
   global batches of ``edit.training.batching.LengthGroupedSampler``'s epoch-0 order), and packed.
   Tokens/s counts real (non-padding) tokens. Target: >= 3x.
2. **KRSL vs Std-CoT.** Time per optimizer step on the same P pairs: a Std-CoT (SFT) step on the P
   correct CoTs, against a KRSL step (``edit.training.trainers.krsl_step_loss``, what ``KRSLTrainer`` runs:
   ``edit.losses.krsl_loss`` with the output layer computed only at weighted positions) on the P
   pairs, i.e. 2P rows (chosen and rejected) in one forward pass, in random and in length-grouped
   batches; references: the SFT loss on the same 2P rows, and krsl_loss on the full logits.
   Target: <= 2.2x.

Rows are BBH-length CoTs. ``--source bbh`` (default when the mirror is there): real BBH questions
(``<mirror>/bbh/bbh``) each with a CoT of its task's official 3-shot exemplars
(``<mirror>/bbh/cot-prompts``; "So the answer is" becomes "Therefore, the answer is"), and a
rejected copy with one number or truth value changed and another final answer, marked by the
pipeline's own minimum-edit-distance code. ``--source oracle``: the embedded task world at BBH's
difficulty, CoTs and dual pairs written by the oracle teacher (no files needed).

The student is the default profile's code-built Llama (hidden 96, 3 layers, 4 heads, BPE
vocabulary of 1,024 learned here from the rows' text) with ``max_length`` 1,024; 1 torch thread.
Each configuration runs ``--warmup`` steps, then ``--repeats`` timed passes over the batches; the
fastest and the median time of each batch over the repeats are summed over the batches (the
machine may be shared: ratios use the fastest, the least disturbed by other jobs). Pairs longer than 1,024 tokens are skipped (as in training)
and counted; the timed rows are the first ``--rows // --batch-size`` batches of those left.

Run from the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python bench/training_throughput.py
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIXED = 1024


# ----------------------------------------------------------------------------------------------
# rows
def _bbh_texts(mirror: Path, n: int, seed: int) -> list[dict]:
    """``n`` (question, CoT, rejected CoT) from the real BBH items and their task's exemplars."""
    from edit.llm.prompts import parse_bbh_cot_prompt

    items, cots = {}, {}
    for path in sorted((mirror / "bbh" / "bbh").glob("*.json")):
        prompts = mirror / "bbh" / "cot-prompts" / f"{path.stem}.txt"
        if not prompts.is_file():
            continue
        items[path.stem] = json.loads(path.read_text(encoding="utf-8"))["examples"]
        # the exemplar CoTs as the teacher prompts use them (answer phrase "Therefore, the answer is")
        cots[path.stem] = [ex.cot for ex in parse_bbh_cot_prompt(prompts.read_text(encoding="utf-8"), path.stem,
                                                                  str(prompts)).exemplars]
    if not items:
        raise SystemExit(f"no BBH tasks with CoT prompts under {mirror / 'bbh'}: use --source oracle")
    rng = random.Random(seed)
    pool = [(t, e) for t, exs in items.items() for e in exs]
    out = []
    for task, ex in rng.sample(pool, n):
        cot = rng.choice(cots[task])
        out.append({"id": f"{task}/{len(out)}", "task": task, "question": ex["input"], "chosen": cot,
                    "rejected": _corrupt(cot, rng), "pair_type": "D+dual"})
    return out


def _corrupt(cot: str, rng: random.Random) -> str:
    """A wrong copy of ``cot``: one number or truth value in its body changed, another answer."""
    body, sep, tail = cot.rpartition("Therefore, the answer is")
    spots = [m for m in re.finditer(r"\d+|True|False|Yes|No", body)]
    if spots:
        m = rng.choice(spots)
        flip = {"True": "False", "False": "True", "Yes": "No", "No": "Yes"}
        new = flip[m.group()] if m.group() in flip else str(int(m.group()) + 1)
        body = body[:m.start()] + new + body[m.end():]
    return body + sep + " (X)." if sep else body + " Therefore, the answer is (X)."


def _oracle_texts(n: int, seed: int) -> list[dict]:
    """``n`` dual pairs of the embedded task world at BBH's difficulty, from the oracle teacher."""
    from edit import dual
    from edit.teachers import make_teacher

    tasks = {"boolean_expressions": {}, "navigate": {}, "web_of_lies": {},
             "tracking_shuffled_objects_five_objects": {}, "multistep_arithmetic_two": {}}
    qs = dual.make_questions(tasks, n, "bench", seed)
    data = dual.build_dual_cots(qs, make_teacher({"backend": "oracle", "error_rate": 0.35, "seed": seed}), progress=False)
    pairs = data.pairs
    random.Random(seed).shuffle(pairs)
    return pairs[:n]


def build_rows(texts: list[dict], vocab_size: int, max_length: int):
    """The tokenizer learned from the texts, KRSL pair rows (the pipeline's own marking and
    encoding), and the SFT rows of the same pairs' correct CoTs."""
    from edit.formats import student_prompt
    from edit.keysteps import mark_pairs
    from edit.student import train_tokenizer
    from edit.training.rows import krsl_dataset

    corpus = [student_prompt(t["question"]) for t in texts] + [t["chosen"] for t in texts] + [t["rejected"] for t in texts]
    tok = train_tokenizer(corpus, vocab_size)
    pairs = [dict(t, gold="?") for t in texts]
    marked = mark_pairs(pairs, tok, progress=False)
    krsl, info = krsl_dataset(marked, {(p["id"], p["pair_type"]): p for p in pairs}, tok, max_length, 1.0, 0.025)
    sft = [{"input_ids": r["chosen"]["input_ids"], "labels": r["chosen"]["labels"]} for r in krsl]
    return tok, sft, krsl, info


# ----------------------------------------------------------------------------------------------
# timing
class PadTo:
    """Collate rows padded to a FIXED width (the wasteful baseline)."""

    def __init__(self, pad_token_id: int, width: int):
        from edit.training.batching import PadToLongest

        self.inner, self.width = PadToLongest(pad_token_id), width

    def __call__(self, features):
        import torch

        b = self.inner(features)
        extra = self.width - b["input_ids"].shape[1]
        if extra > 0:
            fill = {"input_ids": self.inner.pad_token_id, "attention_mask": 0, "labels": -100, "weights": 0.0}
            for k, v in b.items():
                b[k] = torch.cat([v, torch.full((v.shape[0], extra), fill[k], dtype=v.dtype)], dim=1)
        return b


class PackTo:
    """Collate rows packed into sequences of at most ``width`` tokens (first fit, longest first):
    ``position_ids`` restart at 0 for each row and no attention mask is passed, so transformers
    builds a block-causal mask (a row never attends to another; checked in :func:`check_packing`).
    Each row's first label is a prompt token (-100), so no loss crosses a row boundary; the SFT
    loss (mean over label tokens) equals that of the padded batch."""

    def __init__(self, pad_token_id: int, width: int):
        self.pad, self.width = pad_token_id, width

    def __call__(self, features):
        import torch

        bins: list[list[dict]] = []
        for r in sorted(features, key=lambda r: -len(r["input_ids"])):
            for b in bins:
                if sum(len(x["input_ids"]) for x in b) + len(r["input_ids"]) <= self.width:
                    b.append(r)
                    break
            else:
                bins.append([r])
        width = max(sum(len(x["input_ids"]) for x in b) for b in bins)
        out = {"input_ids": torch.full((len(bins), width), self.pad, dtype=torch.long),
               "labels": torch.full((len(bins), width), -100, dtype=torch.long),
               "position_ids": torch.zeros((len(bins), width), dtype=torch.long)}
        segments = []
        for i, b in enumerate(bins):
            at = 0
            for r in b:
                n = len(r["input_ids"])
                out["input_ids"][i, at:at + n] = torch.tensor(r["input_ids"])
                out["labels"][i, at:at + n] = torch.tensor(r["labels"])
                out["position_ids"][i, at:at + n] = torch.arange(n)
                segments.append((i, at, n))
                at += n
            last = len(b[-1]["input_ids"])
            out["position_ids"][i, at:] = torch.arange(last, last + width - at)  # padding continues the last row
        out["segments"] = segments
        return out


def check_packing(model, rows: list[dict], pad_token_id: int) -> float:
    """Largest logit difference between each row run alone and inside a packed sequence."""
    import torch

    batch = PackTo(pad_token_id, FIXED)(rows)
    worst = 0.0
    model.eval()
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        for i, at, n in batch["segments"]:
            alone = model(input_ids=batch["input_ids"][i, at:at + n].unsqueeze(0), use_cache=False).logits[0]
            worst = max(worst, (packed[i, at:at + n] - alone).abs().max().item())
    model.train()
    return worst


def _model(tok, seed: int):
    from edit.config_schema import section_defaults
    from edit.student import build_student

    student = section_defaults("student", kind="tiny_llama", hidden_size=96, intermediate_size=288, num_layers=3,
                               num_heads=4, max_length=FIXED)
    return build_student(student, tok, seed)


def time_steps(tok, batches: list[list[dict]], collate, loss: str, warmup: int, repeats: int, seed: int) -> dict:
    """Mean time per optimizer step on ``batches`` (lists of rows) collated by ``collate``: each
    batch's fastest (and median) time over ``repeats`` passes, averaged over the batches; real
    (non-padding) and computed token counts per pass."""
    import torch

    from edit.losses import krsl_loss
    from edit.training.trainers import krsl_step_loss

    model = _model(tok, seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    collated = [collate(b) for b in batches]

    def step(b):
        opt.zero_grad(set_to_none=True)
        if "position_ids" in b:
            value = model(input_ids=b["input_ids"], position_ids=b["position_ids"], labels=b["labels"], use_cache=False).loss
        elif loss == "sft":
            value = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss
        elif loss == "krsl":  # the pipeline's KRSL step (KRSLTrainer.compute_loss)
            value, _ = krsl_step_loss(model, b["input_ids"], b["attention_mask"], b["labels"], b["weights"])
        else:  # "krsl_dense": krsl_loss on the full logits (the step before the output layer was restricted)
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            value = krsl_loss(logits, b["labels"], b["weights"])
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for b in collated[:warmup]:
        step(b)
    times = [[] for _ in collated]  # per batch, one time per repeat
    for _ in range(repeats):
        for i, b in enumerate(collated):
            t0 = time.perf_counter()
            step(b)
            times[i].append(time.perf_counter() - t0)
    real = sum(len(r["chosen"]["input_ids"]) + len(r["rejected"]["input_ids"]) if "chosen" in r else len(r["input_ids"])
               for b in batches for r in b)
    computed = sum(b["input_ids"].numel() for b in collated)
    # a pass takes the sum over batches of each batch's fastest (or median) time over the repeats
    best, med = sum(min(t) for t in times), sum(statistics.median(t) for t in times)
    return {"step_s_min": best / len(collated), "step_s_median": med / len(collated), "steps": len(collated),
            "real_tokens": real, "computed_tokens": computed, "tokens_per_s": real / best,
            "tokens_per_s_median": real / med,
            "rows_per_step": collated[0]["input_ids"].shape[0],
            "mean_width": statistics.mean(b["input_ids"].shape[1] for b in collated)}


def length_grouped(rows: list[dict], batch: int, seed: int) -> list[list[dict]]:
    """The pipeline's length-grouped batches (hp ``group_by_length``): the rows of each global batch
    of :class:`edit.training.batching.LengthGroupedSampler`'s epoch-0 order, the order the Trainer feeds."""
    from edit.training.batching import LengthGroupedSampler, row_length

    sampler = LengthGroupedSampler([row_length(r) for r in rows], batch, seed)
    return [[rows[i] for i in b] for b in sampler.batches()]


def random_order(rows: list[dict], batch: int, seed: int) -> list[list[dict]]:
    """Batches of a seeded random order (what the Trainer does without ``group_by_length``)."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [[rows[i] for i in order[j:j + batch]] for j in range(0, len(order), batch)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", choices=("bbh", "oracle"), default=None, help="rows (default: bbh if the mirror is there)")
    ap.add_argument("--rows", type=int, default=96, help="pairs (and SFT rows) to time")
    ap.add_argument("--batch-size", type=int, default=16, help="rows per SFT step = pairs per KRSL step")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the figures as JSON here")
    a = ap.parse_args(argv)

    import torch

    from edit.oracle import default_mirror

    torch.set_num_threads(a.threads)
    mirror = default_mirror()
    source = a.source or ("bbh" if (mirror / "bbh" / "bbh").is_dir() else "oracle")
    texts = _bbh_texts(mirror, a.rows, a.seed) if source == "bbh" else _oracle_texts(a.rows, a.seed)
    tok, sft, krsl, info = build_rows(texts, 1024, FIXED)
    n = min(len(sft), len(krsl), a.rows) // a.batch_size * a.batch_size
    if n < a.batch_size:
        raise SystemExit(f"only {min(len(sft), len(krsl))} usable rows (skipped: {info}): raise --rows")
    sft, krsl = sft[:n], krsl[:n]
    lengths = sorted(len(r["input_ids"]) for r in sft)
    resp = sorted(sum(1 for x in r["labels"] if x != -100) for r in sft)
    print(f"source {source}: {n} rows / pairs, batch {a.batch_size}, {a.threads} thread(s); student hidden 96, 3 layers, "
          f"vocab {len(tok)}")
    print(f"row length (prompt + CoT + EOS): mean {statistics.mean(lengths):.0f}, min {lengths[0]}, max {lengths[-1]} "
          f"tokens; CoT (response) mean {statistics.mean(resp):.0f}, min {resp[0]}, max {resp[-1]}")

    from edit.training.batching import PadToLongest

    b = a.batch_size
    random_batches = [sft[i:i + b] for i in range(0, n, b)]  # rows are drawn at random: a random order
    pad = tok.pad_token_id
    collate = PadToLongest(pad)  # the pipeline's collator
    modes = {
        "pad to 1,024": time_steps(tok, random_batches, PadTo(pad, FIXED), "sft", a.warmup, a.repeats, a.seed),
        "pad to longest": time_steps(tok, random_batches, collate, "sft", a.warmup, a.repeats, a.seed),
        "pad to longest, length-grouped": time_steps(tok, length_grouped(sft, b, a.seed), collate, "sft",
                                                     a.warmup, a.repeats, a.seed),
        "packed into 1,024": time_steps(tok, random_batches, PackTo(pad, FIXED), "sft", a.warmup, a.repeats, a.seed),
    }
    pack_err = check_packing(_model(tok, a.seed), sft[:b], pad)
    std = modes["pad to longest"]
    pair_batches = [krsl[i:i + b] for i in range(0, n, b)]  # the same pairs as the Std-CoT rows, batch by batch
    krs = time_steps(tok, pair_batches, collate, "krsl", a.warmup, a.repeats, a.seed)
    dense = time_steps(tok, pair_batches, collate, "krsl_dense", a.warmup, a.repeats, a.seed)
    # reference: the same 2P rows per step under the plain SFT loss (separates the cost of twice the
    # rows from the cost of the KRSL loss itself)
    both = [{"input_ids": r[side]["input_ids"], "labels": r[side]["labels"]} for r in krsl for side in ("chosen", "rejected")]
    sft2 = time_steps(tok, [both[i:i + 2 * b] for i in range(0, 2 * n, 2 * b)], collate, "sft",
                      a.warmup, a.repeats, a.seed)
    # with group_by_length: the same length-grouped pair batches for both (Std-CoT on their chosen CoTs)
    grouped_pairs = length_grouped(krsl, b, a.seed)
    std_g = time_steps(tok, [[{"input_ids": r["chosen"]["input_ids"], "labels": r["chosen"]["labels"]} for r in bt]
                             for bt in grouped_pairs], collate, "sft", a.warmup, a.repeats, a.seed)
    krs_g = time_steps(tok, grouped_pairs, collate, "krsl", a.warmup, a.repeats, a.seed)
    base = modes["pad to 1,024"]["tokens_per_s"]
    res = {"source": source, "rows": n, "batch_size": b, "threads": a.threads, "skipped": info["skipped"],
           "row_tokens_mean": statistics.mean(lengths), "cot_tokens_mean": statistics.mean(resp),
           "modes": modes, "speedup_vs_pad_1024": {k: v["tokens_per_s"] / base for k, v in modes.items()},
           "packing_max_logit_diff": pack_err, "std_cot_step": std, "krsl_step": krs,
           "krsl_over_std_cot": krs["step_s_min"] / std["step_s_min"],
           "krsl_over_std_cot_median": krs["step_s_median"] / std["step_s_median"],
           "sft_on_2p_rows_step": sft2, "sft_2p_over_std_cot": sft2["step_s_min"] / std["step_s_min"],
           "krsl_dense_logits_step": dense, "krsl_dense_over_std_cot": dense["step_s_min"] / std["step_s_min"],
           "grouped_std_cot_step": std_g, "grouped_krsl_step": krs_g,
           "grouped_krsl_over_std_cot": krs_g["step_s_min"] / std_g["step_s_min"],
           "grouped_krsl_over_std_cot_median": krs_g["step_s_median"] / std_g["step_s_median"]}

    print(f"\nSFT steps (forward, backward, AdamW) on the same {n} rows, batches of {b}:")
    print(f"{'batching':>31} {'mean width':>10} {'rows/step':>9} {'padding':>8} {'s/step min':>10} {'median':>7} "
          f"{'real tokens/s':>13} {'vs 1,024':>8}")
    for name, r in modes.items():
        print(f"{name:>31} {r['mean_width']:>10.0f} {r['rows_per_step']:>9} {1 - r['real_tokens'] / r['computed_tokens']:>8.0%} "
              f"{r['step_s_min']:>10.3f} {r['step_s_median']:>7.3f} {r['tokens_per_s']:>13,.0f} "
              f"{res['speedup_vs_pad_1024'][name]:>7.2f}x")
    print(f"(target >= 3x over pad to 1,024; packing check: largest logit difference packed vs alone {pack_err:.1e})")
    print(f"\nPer optimizer step on the same {b} pairs (pad to longest, random batches):")
    print(f"  Std-CoT (SFT on the correct CoTs, {std['rows_per_step']} rows): {std['step_s_min']:.3f} s "
          f"(median {std['step_s_median']:.3f})")
    print(f"  KRSL ({krs['rows_per_step']} rows: chosen + rejected in one forward): {krs['step_s_min']:.3f} s "
          f"(median {krs['step_s_median']:.3f})")
    print(f"  (reference: SFT loss on the same {sft2['rows_per_step']} rows: {sft2['step_s_min']:.3f} s, "
          f"{res['sft_2p_over_std_cot']:.2f}x Std-CoT)")
    print(f"  (reference: KRSL with krsl_loss on the full logits, the step before the output layer was restricted "
          f"to weighted positions: {dense['step_s_min']:.3f} s, {res['krsl_dense_over_std_cot']:.2f}x Std-CoT)")
    print(f"KRSL / Std-CoT step time: {res['krsl_over_std_cot']:.2f}x on the fastest steps, "
          f"{res['krsl_over_std_cot_median']:.2f}x on medians (target <= 2.2x)")
    print(f"With group_by_length (the same length-grouped pair batches for both): Std-CoT {std_g['step_s_min']:.3f} s, "
          f"KRSL {krs_g['step_s_min']:.3f} s: {res['grouped_krsl_over_std_cot']:.2f}x on the fastest steps, "
          f"{res['grouped_krsl_over_std_cot_median']:.2f}x on medians")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
