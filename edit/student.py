"""The student: a tokenizer trained in code on the task world's text, a small Llama built from a
config (no hub), or any pretrained causal LM (hub id, local folder or GGUF file), optionally
wrapped in LoRA adapters through peft."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from edit.params import resolve_model_path

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer learned from ``corpus``; digits are always single tokens (so
    numbers are spelled out digit by digit), and any byte sequence can be encoded (no unknowns)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL_TOKENS[k] for k in ("pad_token", "bos_token", "eos_token", "unk_token")],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)
    fast.padding_side = "right"
    return fast


def load_tokenizer(path: str | Path, gguf_file: str | None = None) -> PreTrainedTokenizerFast:
    """Load a saved tokenizer (our own, a hub id, a ``pkg://`` folder, or a GGUF file's) and make
    sure it can pad."""
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tok = AutoTokenizer.from_pretrained(resolve_model_path(path), **kwargs)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def tokenizer_fingerprint(tokenizer) -> str:
    """A short hash of the tokenizer's full definition: token ids stored next to it are valid for
    another tokenizer only if the fingerprints agree."""
    blob = tokenizer.backend_tokenizer.to_str() if hasattr(tokenizer, "backend_tokenizer") else json.dumps(
        tokenizer.get_vocab(), sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """The sha256 hex digest of the file at ``path`` (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_gguf(student: dict) -> None:
    """Raise ValueError when the student's ``gguf_file`` does not have the pinned ``gguf_sha256``
    (nothing to check without a pin or without a GGUF file)."""
    if not (student["gguf_file"] and student["gguf_sha256"]):
        return
    path = Path(resolve_model_path(student["path"])) / student["gguf_file"]
    if not path.is_file():
        raise FileNotFoundError(f"student.gguf_file: {path} does not exist")
    actual = file_sha256(path)
    if actual != student["gguf_sha256"]:
        raise ValueError(f"student.gguf_file: {path} has sha256 {actual}, but student.gguf_sha256 pins "
                         f"{student['gguf_sha256']}: a different or damaged file (reinstall the package that "
                         f"ships it, or update the pin if the change is intended)")


def build_student(student: dict, tokenizer, seed: int = 0):
    """Build the student model from the ``student`` params section.

    ``kind: tiny_llama`` builds a Llama from ``hidden_size``, ``num_layers``, ``num_heads``,
    ``intermediate_size`` and ``max_length`` with weights drawn from ``seed``;
    ``kind: pretrained`` loads ``path`` (hub id, folder or ``pkg://<package>``; ``gguf_file`` for a
    GGUF checkpoint, checked against ``gguf_sha256`` when pinned, de-quantised to ``dtype`` on loading and then trained like any float model).
    ``lora.enabled`` wraps the model in LoRA adapters (r, lora_alpha, lora_dropout, target_modules).
    """
    kind = student["kind"]
    if kind == "tiny_llama":
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=int(student["hidden_size"]),
            intermediate_size=int(student["intermediate_size"]),
            num_hidden_layers=int(student["num_layers"]),
            num_attention_heads=int(student["num_heads"]),
            num_key_value_heads=int(student["num_heads"]),
            max_position_embeddings=int(student["max_length"]),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=bool(student["tie_embeddings"]),
        )
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    elif kind == "pretrained":
        check_gguf(student)
        kwargs = {"gguf_file": student["gguf_file"]} if student["gguf_file"] else {}
        dtype = getattr(torch, student["dtype"])
        model = AutoModelForCausalLM.from_pretrained(resolve_model_path(student["path"]), dtype=dtype, **kwargs)
        if student["gguf_file"]:
            # the GGUF weights are de-quantised into plain `dtype` tensors, but the model still carries
            # the quantiser, and the Trainer refuses to train a "quantised" model: drop those marks
            model.hf_quantizer = None
            model.is_quantized = False
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
    else:
        raise ValueError(f"student.kind must be 'tiny_llama' or 'pretrained', got {kind!r}")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    if student["lora"]["enabled"]:
        model = add_lora(model, student["lora"], seed)
    return model


def add_lora(model, lora: dict, seed: int = 0):
    """``model`` wrapped in LoRA adapters (peft) from the ``student.lora`` params section: ``r``,
    ``lora_alpha``, ``lora_dropout`` (peft's own names) and ``target_modules``; the adapters'
    initial weights are drawn from ``seed``."""
    torch.manual_seed(seed)
    config = LoraConfig(
        r=int(lora["r"]),
        lora_alpha=int(lora["lora_alpha"]),
        lora_dropout=float(lora["lora_dropout"]),
        target_modules=list(lora["target_modules"]),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def save_student(model, tokenizer, out_dir: str | Path, seed: int = 0) -> None:
    """Save the model and tokenizer. A LoRA-wrapped model is saved as its adapters only, with the
    ``seed`` its base was built with (a code-built base is random: load_student rebuilds it)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    if (out_dir / "adapter_config.json").exists():
        (out_dir / "edit_base.json").write_text(json.dumps({"base_seed": seed}) + "\n")


def load_student(path: str | Path, base: dict | None = None, trainable: bool = False):
    """Load a saved student: a full model folder, or a LoRA adapter folder on top of the base model
    that ``base`` (the student params section) and the saved base seed describe. ``trainable``
    loads LoRA adapters for further training (they are frozen otherwise)."""
    path = Path(path)
    if (path / "adapter_config.json").exists():
        if base is None:
            raise ValueError(f"{path} holds LoRA adapters: pass the base student params to load them")
        tokenizer = load_tokenizer(path)
        seed = json.loads((path / "edit_base.json").read_text())["base_seed"]
        base_model = build_student(dict(base, lora={"enabled": False}), tokenizer, seed)
        return PeftModel.from_pretrained(base_model, str(path), is_trainable=trainable), tokenizer
    return AutoModelForCausalLM.from_pretrained(str(path)), load_tokenizer(path)


def make_tokenizer(student: dict, corpus: Iterable[str]):
    """The student's tokenizer: learned from ``corpus`` for the code-built student, else the
    pretrained model's own."""
    if student["kind"] == "tiny_llama":
        return train_tokenizer(corpus, int(student["vocab_size"]))
    check_gguf(student)
    return load_tokenizer(student["path"], student["gguf_file"])
