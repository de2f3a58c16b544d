"""Benchmark: batched (left-padded, KV-cached) greedy generation against one-at-a-time generation
of the same prompts, with a check that both give identical outputs.

The prompts are BBH-format questions of the embedded task world in the student's prompt template;
the student is a code-built tiny Llama of the chosen profile's size (default profile: hidden 96,
3 layers, BPE vocabulary of 1,024 learned here from the task world's text) with random weights,
so every row runs to ``--max-new-tokens`` (a fixed amount of work). Prints examples/s of each
mode, their ratio, and the largest difference between a prompt's next-token logits computed in a
left-padded batch and alone.

Run from the repository root:

    .venv/bin/python bench/generation_speed.py            # 64 prompts, 128 new tokens, batch 64

Exit status 1 when the batched outputs differ from the one-at-a-time outputs.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TASKS = ("boolean_expressions", "tracking_shuffled_objects_three_objects", "navigate", "web_of_lies")


def bbh_prompts(n: int, seed: int) -> list[str]:
    """``n`` student prompts, tasks in turn, drawn with ``seed`` at BBH's default difficulty."""
    from edit import tasks
    from edit.formats import student_prompt

    rng = random.Random(seed)
    return [student_prompt(tasks.generate(TASKS[i % len(TASKS)], rng)["input"]) for i in range(n)]


def tokenizer_corpus(n: int, seed: int) -> list[str]:
    """Prompts and the oracle teacher's CoTs of ``n`` other questions (the pipeline learns the
    student's tokenizer from the same kind of text)."""
    from edit import tasks
    from edit.formats import student_prompt
    from edit.oracle import OracleTeacher
    from edit.records import Question

    rng = random.Random(seed)
    teacher = OracleTeacher(error_rate=0.0, seed=seed)
    out = []
    for i in range(n):
        task = TASKS[i % len(TASKS)]
        item = tasks.generate(task, rng)
        q = Question(id=f"{task}/bench/{i}", task=task, input=item["input"], target=item["target"])
        out.append(student_prompt(q.input) + teacher.generate_cot(q).text)
    return out


def prefill_logit_gap(model, tokenizer, prompts: list[str]) -> float:
    """Max |difference| between each prompt's next-token logits in one left-padded batch and alone."""
    import torch

    old = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        with torch.no_grad():
            enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            batched = model(**enc, logits_to_keep=1).logits[:, -1]
            gap = 0.0
            for i, p in enumerate(prompts):
                one = tokenizer([p], return_tensors="pt", add_special_tokens=False)
                alone = model(**one, logits_to_keep=1).logits[0, -1]
                gap = max(gap, float((batched[i] - alone).abs().max()))
    finally:
        tokenizer.padding_side = old
    return gap


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="number of prompts (default 64)")
    ap.add_argument("--max-new-tokens", type=int, default=128, help="new tokens per prompt (default 128)")
    ap.add_argument("--batch-size", type=int, default=64, help="rows per batch in batched mode (default 64)")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"), help="params file (student size)")
    ap.add_argument("--profile", default="default", help="params profile (default: default)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the prompts and of the weights")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--cache", default="auto", choices=["auto", "static", "dynamic"],
                    help="KV cache of the batched run (auto: static on the CPU); one-at-a-time runs use auto (dynamic)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from edit.generation import generate
    from edit.params import load_params
    from edit.student import build_student, train_tokenizer

    student = dict(load_params(args.params, profile=args.profile)["student"], lora={"enabled": False})
    prompts = bbh_prompts(args.n, args.seed)
    corpus = tokenizer_corpus(400, args.seed + 1)  # the tokenizer is learned from other questions
    tokenizer = train_tokenizer(corpus, int(student["vocab_size"]))
    model = build_student(student, tokenizer, seed=args.seed)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    print(f"student: hidden {student['hidden_size']}, {student['num_layers']} layers, vocab {len(tokenizer)}, "
          f"{n_params / 1e6:.2f}M parameters; torch threads {torch.get_num_threads()}")
    print(f"prompts: {len(prompts)} ({', '.join(TASKS)}), {min(lengths)}-{max(lengths)} tokens "
          f"(mean {sum(lengths) / len(lengths):.0f}); max_new_tokens {args.max_new_tokens}")

    generate(model, tokenizer, prompts[:2], max_new_tokens=4, batch_size=2, show_progress=False)  # warm-up

    t0, c0 = time.perf_counter(), time.process_time()
    batched = generate(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                       show_progress=False, cache=args.cache)
    t_batched, c_batched = time.perf_counter() - t0, time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    single = [generate(model, tokenizer, [p], max_new_tokens=args.max_new_tokens, batch_size=1,
                       show_progress=False)[0] for p in prompts]
    t_single, c_single = time.perf_counter() - t0, time.process_time() - c0

    same = sum(a == b for a, b in zip(batched, single))
    gap = prefill_logit_gap(model, tokenizer, prompts)
    new_tokens = sum(len(tokenizer(g, add_special_tokens=False)["input_ids"]) for g in batched)
    figures = {
        "n_prompts": len(prompts), "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
        "threads": torch.get_num_threads(), "new_tokens": new_tokens,
        "batched_s": round(t_batched, 3), "single_s": round(t_single, 3),
        "batched_examples_per_s": round(len(prompts) / t_batched, 2),
        "single_examples_per_s": round(len(prompts) / t_single, 2),
        "speedup": round(t_single / t_batched, 2), "batched_cpu_s": round(c_batched, 3),
        "single_cpu_s": round(c_single, 3), "speedup_cpu_time": round(c_single / c_batched, 2),
        "cache": args.cache, "identical": same, "max_prefill_logit_gap": gap,
    }
    print(f"batched (batch {args.batch_size}): {t_batched:7.2f} s  {figures['batched_examples_per_s']:8.2f} examples/s")
    print(f"one at a time:       {t_single:7.2f} s  {figures['single_examples_per_s']:8.2f} examples/s")
    print(f"speed-up: {figures['speedup']:.2f}x wall clock, {figures['speedup_cpu_time']:.2f}x CPU time "
          f"(target >= 5x; CPU time is steadier on a shared machine)")
    print(f"identical outputs: {same}/{len(prompts)}; max |logit difference| batched vs alone: {gap:.3g}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if same == len(prompts) else 1


if __name__ == "__main__":
    sys.exit(main())
