"""Text generation with the student: batched greedy decoding."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 32,
             show_progress=True) -> list[str]:
    """Greedy decoding (``do_sample=False``, KV cache) of ``prompts``, ``batch_size`` at a time with
    LEFT padding, each stopping at EOS or after ``max_new_tokens``. Returns only the new text of
    each prompt (``skip_special_tokens=True``), in the order of ``prompts``. Prompts are processed
    longest first (less padding; an out-of-memory batch shows up first). The tokenizer's
    ``padding_side`` (and ``pad_token`` when it had none: EOS is used) is restored afterwards.
    Prompts are tokenised without special tokens, exactly as training tokenises them."""
    if not prompts:
        return []
    model.eval()
    old_side = tokenizer.padding_side
    old_pad = tokenizer.pad_token
    eos_id = tokenizer.eos_token_id
    try:
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        pad_id = tokenizer.pad_token_id
        lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
        out: list[str | None] = [None] * len(prompts)
        device = getattr(model, "device", torch.device("cpu"))
        starts = range(0, len(order), batch_size)
        for s in tqdm(starts, desc="generate", disable=not show_progress, total=len(starts)):
            idx = order[s: s + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            gen = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=pad_id,
                eos_token_id=eos_id,
            )
            new = gen[:, enc["input_ids"].shape[1]:]
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            for i, t in zip(idx, texts):
                out[i] = t
        return out  # type: ignore[return-value]
    finally:
        tokenizer.padding_side = old_side
        if old_pad is None and tokenizer.pad_token is not None:
            tokenizer.pad_token = None
