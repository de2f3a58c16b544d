"""Benchmark: float32 against bfloat16 autocast (``runtime.autocast``) for the pretrained student,
SmolLM2-135M-Instruct with the paper's LoRA (the ``smollm2_bbh`` profile's student), side by side in
one run.

1. **Training**: real (non-padding) tokens/s of LoRA training steps (forward under
   :func:`edit.runtime.autocast_context`, the causal-LM loss, backward, AdamW), ``--batch-size`` rows
   of ``--seq-len`` tokens of BBH text (the official CoT exemplars of the mirror, else a fixed
   paragraph). The two precisions alternate step by step (fp32, bf16, fp32, ...), so that load
   from other jobs on a shared machine hits both alike; ``--warmup`` steps each are not timed.
2. **Prefill**: tokens/s of a no-grad forward pass over ``--gen-prompts`` prompts of
   ``--prompt-len`` tokens (what an evaluation's long few-shot prompts cost before decoding).
3. **Generation**: new tokens/s of batched greedy decoding (static KV cache, as the pipeline's
   ``cache: auto`` on a CPU) of ``--new-tokens`` new tokens for each of those prompts, forced to
   full length (``min_new_tokens``), including the prefill; and how many rows' outputs agree
   between the precisions. ``--bf16-weights`` also decodes with the weights cast to bfloat16.
4. **Inference model** (``--inference``): the evaluate stage's decoding under bfloat16 autocast as it
   is now (:func:`edit.inference.inference_model`: LoRA merged, linear weights stored in bfloat16;
   the KV cache in bfloat16, :mod:`edit.generation`) against the model as trained (LoRA unmerged,
   float32 weights and cache, as before), ``--inference-rows`` prompts of ``--inference-prompt-len``
   tokens, ``--inference-new-tokens`` forced, the two alternating ``--inference-repeats`` times after
   one short warm-up each; the LoRA B matrices get small random values (as after training: fresh
   ones are zero and merging would change nothing). Also how many rows' outputs agree.
5. **Batch sweep** (``--sweep-batches 8,16,32``): bfloat16-autocast decoding of that many prompts at
   once, seconds per decoding step and per row-step: which ``eval.batch_size`` is cheapest here
   when rows that have stopped still ride along to the end of their batch.

The ratios bf16 / fp32 and the figures go to stdout (and ``--json``); the numbers are what
``plan.throughput`` in params.yaml holds for ``python -m edit.plan`` to predict wall time.

    OMP_NUM_THREADS=2 /work/main/.venv/bin/python bench/smollm2_speed.py --threads 2
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from edit.generation import _cache_kwargs
from edit.inference import inference_model
from edit.params import load_params
from edit.runtime import autocast_context
from edit.student import build_student, make_tokenizer

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = {"fp32": None, "bf16": "bfloat16"}
FALLBACK_TEXT = ("Let's think step by step. We start at the origin facing north. Take 3 steps: (0, 3). "
                 "Turn right and take 5 steps: (5, 3). Always face forward. Therefore, the answer is No. ")


def corpus(mirror: Path | None) -> str:
    """BBH's official CoT exemplars (every task's prompt file, concatenated), or a fixed paragraph."""
    folder = mirror / "bbh" / "cot-prompts" if mirror else None
    if folder is not None and folder.is_dir():
        return "\n\n".join(p.read_text() for p in sorted(folder.glob("*.txt")))
    return FALLBACK_TEXT * 400


def token_rows(tokenizer, text: str, n: int, length: int, offset: int = 0) -> torch.Tensor:
    """``n`` rows of ``length`` consecutive token ids of ``text`` (wrapping around)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    need = offset + n * length
    ids = (ids * (need // len(ids) + 1))[offset:need]
    return torch.tensor(ids).view(n, length)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def train_speed(model, rows: torch.Tensor, steps: int, warmup: int, lr: float = 1e-4) -> dict:
    """Seconds per LoRA training step for each precision, alternating; tokens/s from the median."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()

    def step(dtype):
        with autocast_context(dtype):
            loss = model(input_ids=rows, labels=rows).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = {k: [] for k in PRECISIONS}
    for i in range(warmup + steps):
        for name, dtype in PRECISIONS.items():
            t = timed(lambda: step(dtype))
            if i >= warmup:
                times[name].append(t)
    tokens = rows.numel()
    return {name: {"step_s": ts, "tokens_per_s": tokens / statistics.median(ts),
                   "best_tokens_per_s": tokens / min(ts)} for name, ts in times.items()}


@torch.no_grad()
def prefill_speed(model, prompts: torch.Tensor, repeats: int) -> dict:
    model.eval()
    out = {}
    for name, dtype in PRECISIONS.items():
        ts = []
        for _ in range(repeats):
            with autocast_context(dtype):
                ts.append(timed(lambda: model(input_ids=prompts)))
        out[name] = {"tokens_per_s": prompts.numel() / statistics.median(ts), "s": ts}
    return out


def decode(model, tokenizer, prompts: torch.Tensor, new_tokens: int, cache_kwargs: dict | None = None) -> torch.Tensor:
    """Greedy decoding of ``new_tokens`` forced new tokens per row, under whatever autocast the caller
    set; ``cache_kwargs`` (default: a plain static KV cache, as the pipeline's ``cache: auto`` on a
    CPU before its bfloat16 cache) go to ``generate``."""
    cache_kwargs = cache_kwargs or {"cache_implementation": "static", "disable_compile": True}
    return model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new_tokens,
                          min_new_tokens=new_tokens, do_sample=False, num_beams=1,
                          pad_token_id=tokenizer.pad_token_id, **cache_kwargs)


@torch.no_grad()
def generation_speed(model, tokenizer, prompts: torch.Tensor, new_tokens: int, weights_bf16: bool = False) -> dict:
    model.eval()
    out, texts = {}, {}
    for name, dtype in PRECISIONS.items():
        holder = {}

        def run():
            with autocast_context(dtype):
                holder["ids"] = decode(model, tokenizer, prompts, new_tokens)

        t = timed(run)
        new = holder["ids"][:, prompts.shape[1]:]
        texts[name] = new.tolist()
        out[name] = {"new_tokens_per_s": new.numel() / t, "s": t, "new_tokens": new.numel()}
    if weights_bf16:  # the model's weights cast to bfloat16 (no autocast): a third way to decode
        holder = {}
        half = copy.deepcopy(model).to(torch.bfloat16)
        t = timed(lambda: holder.update(ids=decode(half, tokenizer, prompts, new_tokens)))
        new = holder["ids"][:, prompts.shape[1]:]
        out["bf16_weights"] = {"new_tokens_per_s": new.numel() / t, "s": t, "new_tokens": new.numel(),
                               "rows_identical_to_fp32": sum(a == b for a, b in zip(texts["fp32"], new.tolist()))}
    out["rows_identical"] = sum(a == b for a, b in zip(texts["fp32"], texts["bf16"]))
    out["rows"] = prompts.shape[0]
    return out


@torch.no_grad()
def inference_speed(model, tokenizer, prompts: torch.Tensor, new_tokens: int, repeats: int) -> dict:
    """bf16-autocast greedy decoding with the pipeline's KV cache (``_cache_kwargs``): the model as
    trained against :func:`edit.inference.inference_model` of it, alternating, fastest of ``repeats``."""
    gen = torch.Generator().manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    ways = {"as_trained": copy.deepcopy(model).eval(), "inference_model": inference_model(copy.deepcopy(model), "bfloat16")}
    max_len = prompts.shape[1] + new_tokens

    def run(m, n):
        with autocast_context("bfloat16"):
            return decode(m, tokenizer, prompts, n, _cache_kwargs("auto", prompts.shape[0], prompts.device, m.config, max_len))

    out, ids = {name: {"s": []} for name in ways}, {}
    for m in ways.values():
        run(m, 4)  # warm-up: first-call allocations
    for _ in range(repeats):
        for name, m in ways.items():
            holder = {}
            out[name]["s"].append(timed(lambda: holder.update(ids=run(m, new_tokens))))
            ids[name] = holder["ids"][:, prompts.shape[1]:].tolist()
    for name in ways:
        out[name]["new_tokens_per_s"] = prompts.shape[0] * new_tokens / min(out[name]["s"])
    out["speedup"] = out["inference_model"]["new_tokens_per_s"] / out["as_trained"]["new_tokens_per_s"]
    out["rows_identical"] = sum(a == b for a, b in zip(ids["as_trained"], ids["inference_model"]))
    out["rows"] = prompts.shape[0]
    return out


@torch.no_grad()
def batch_sweep(model, tokenizer, text: str, batches: list[int], prompt_len: int, new_tokens: int) -> dict:
    """bf16-autocast greedy decoding, ``new_tokens`` forced, for each batch size in ``batches``."""
    model.eval()
    out = {}
    for b in batches:
        prompts = token_rows(tokenizer, text, b, prompt_len, offset=7 * b)
        with autocast_context("bfloat16"):
            t = timed(lambda: decode(model, tokenizer, prompts, new_tokens))
        out[str(b)] = {"s": t, "s_per_step": t / new_tokens, "s_per_row_step": t / (new_tokens * b),
                       "new_tokens_per_s": b * new_tokens / t}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smollm2_bbh", help="params profile giving the student (default smollm2_bbh)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per precision")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--gen-prompts", type=int, default=16)
    ap.add_argument("--prompt-len", type=int, default=200)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16-weights", action="store_true", help="also decode with the weights cast to bfloat16")
    ap.add_argument("--sweep-batches", default="", help="comma-separated batch sizes for a bf16 decoding sweep")
    ap.add_argument("--inference", action="store_true", help="time the evaluate stage's inference model (see 4.)")
    ap.add_argument("--inference-only", action="store_true", help="run only the inference-model comparison")
    ap.add_argument("--inference-rows", type=int, default=48)
    ap.add_argument("--inference-prompt-len", type=int, default=300)
    ap.add_argument("--inference-new-tokens", type=int, default=150)
    ap.add_argument("--inference-repeats", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    params = load_params(ROOT / "params.yaml", profile=a.profile)
    student = params["student"]
    mirror = Path(params["runtime"]["data_mirror"])
    mirror = mirror if mirror.is_absolute() else ROOT / mirror
    tokenizer = make_tokenizer(student, [])
    model = build_student(student, tokenizer, seed=0)
    text = corpus(mirror if mirror.is_dir() else None)
    rows = token_rows(tokenizer, text, a.batch_size, a.seq_len)
    prompts = token_rows(tokenizer, text, a.gen_prompts, a.prompt_len, offset=a.batch_size * a.seq_len)
    t0 = time.perf_counter()
    result = {"student": f"{student.get('path')} {student.get('gguf_file') or ''}".strip(),
              "lora": {k: student["lora"][k] for k in ("r", "lora_alpha", "target_modules")}, "threads": a.threads,
              "settings": vars(a)}
    if a.inference or a.inference_only:
        long_prompts = token_rows(tokenizer, text, a.inference_rows, a.inference_prompt_len, offset=3 * a.seq_len)
        inf = result["inference"] = inference_speed(model, tokenizer, long_prompts, a.inference_new_tokens,
                                                    a.inference_repeats)
        print(f"bf16 decoding, {a.inference_rows} rows x {a.inference_prompt_len} prompt tokens, "
              f"{a.inference_new_tokens} new: as trained {inf['as_trained']['new_tokens_per_s']:.1f} new tok/s "
              f"{inf['as_trained']['s']}, inference model {inf['inference_model']['new_tokens_per_s']:.1f} "
              f"{inf['inference_model']['s']}: {inf['speedup']:.2f}x; {inf['rows_identical']}/{inf['rows']} rows identical")
    if a.inference_only:
        if a.json:
            Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
        return 0
    result["train"] = train_speed(model, rows, a.steps, a.warmup)
    result["prefill"] = prefill_speed(model, prompts, repeats=2)
    result["generation"] = generation_speed(model, tokenizer, prompts, a.new_tokens, a.bf16_weights)
    batches = [int(b) for b in a.sweep_batches.split(",") if b.strip()]
    if batches:
        result["batch_sweep"] = batch_sweep(model, tokenizer, text, batches, a.prompt_len, a.new_tokens)
    result["wall_s"] = time.perf_counter() - t0
    tr, pf, ge = result["train"], result["prefill"], result["generation"]
    result["ratios_bf16_over_fp32"] = {
        "train_tokens_per_s": tr["bf16"]["tokens_per_s"] / tr["fp32"]["tokens_per_s"],
        "prefill_tokens_per_s": pf["bf16"]["tokens_per_s"] / pf["fp32"]["tokens_per_s"],
        "generation_new_tokens_per_s": ge["bf16"]["new_tokens_per_s"] / ge["fp32"]["new_tokens_per_s"]}
    print(f"SmolLM2 speed ({result['student']}, LoRA {result['lora']}, {a.threads} threads, wall {result['wall_s']:.0f} s)")
    print(f"{'':>6} {'train tok/s':>12} {'prefill tok/s':>14} {'gen new tok/s':>14}")
    for name in PRECISIONS:
        print(f"{name:>6} {tr[name]['tokens_per_s']:>12.1f} {pf[name]['tokens_per_s']:>14.1f} "
              f"{ge[name]['new_tokens_per_s']:>14.1f}")
    r = result["ratios_bf16_over_fp32"]
    print(f"{'ratio':>6} {r['train_tokens_per_s']:>11.2f}x {r['prefill_tokens_per_s']:>13.2f}x "
          f"{r['generation_new_tokens_per_s']:>13.2f}x   (bf16 / fp32)")
    print(f"greedy outputs identical in both precisions: {ge['rows_identical']}/{ge['rows']} rows")
    if "bf16_weights" in ge:
        w = ge["bf16_weights"]
        print(f"weights cast to bf16: {w['new_tokens_per_s']:.1f} new tok/s "
              f"({w['new_tokens_per_s'] / ge['fp32']['new_tokens_per_s']:.2f}x fp32), "
              f"{w['rows_identical_to_fp32']}/{ge['rows']} rows identical to fp32")
    for b, v in result.get("batch_sweep", {}).items():
        print(f"bf16 decoding, batch {b:>3}: {v['s_per_step']:.3f} s/step, {v['s_per_row_step'] * 1000:.1f} ms/row-step, "
              f"{v['new_tokens_per_s']:.1f} new tok/s")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
