"""runtime.autocast: bfloat16 autocast for training and generation on the CPU, deterministic (the
same seed writes the same bytes) and really applied (it changes the result against float32)."""
import pytest
import torch

from edit.config_schema import section_defaults
from edit.generation import generate
from edit.keysteps import mark_pairs
from edit.runtime import autocast_context, autocast_setting
from edit.student import build_student
from edit.training.run import run_method

from test_training import QUESTIONS, _params, _records, tok  # noqa: F401  (the module's tokenizer fixture)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_autocast_setting_reads_runtime_and_refuses_other_dtypes():
    assert autocast_setting({"runtime": {}}) is None
    assert autocast_setting({"runtime": {"autocast": "bfloat16"}}) == "bfloat16"
    with pytest.raises(ValueError, match="runtime.autocast"):
        autocast_setting({"runtime": {"autocast": "float16"}})
    with pytest.raises(ValueError):
        autocast_context("float16")


def test_autocast_context_runs_matmuls_in_bfloat16_and_none_is_float32():
    a = torch.randn(4, 4)
    with autocast_context("bfloat16"):
        assert (a @ a).dtype == torch.bfloat16
    with autocast_context(None):
        assert (a @ a).dtype == torch.float32


def _train(tok, tmp_path, name, autocast):
    sft, pairs = _records()
    marked = mark_pairs(pairs, tok, progress=False)
    params = _params()
    for sec in ("sft", "krsl"):
        if autocast:
            params["train"][sec]["autocast"] = autocast  # what train_one does with runtime.autocast
    steps = [{"loss": "sft", "data": ["D+"]}, {"loss": "krsl", "pairs": ["D+dual"]}]
    run_method(steps, params, tok, sft, pairs, marked, tmp_path / name, seed=5)
    return _files(tmp_path / name)


def test_bfloat16_training_is_deterministic_and_differs_from_float32(tok, tmp_path):  # noqa: F811
    a = _train(tok, tmp_path, "bf16_a", "bfloat16")
    b = _train(tok, tmp_path, "bf16_b", "bfloat16")
    f = _train(tok, tmp_path, "fp32", None)
    assert a == b, "two bfloat16 runs with one seed wrote different bytes"
    weights = [k for k in a if k.endswith(".safetensors")]
    assert weights and any(a[k] != f[k] for k in weights), "autocast changed nothing: was it applied?"


def test_bfloat16_generation_is_deterministic(tok):  # noqa: F811
    student = section_defaults("student", kind="tiny_llama", hidden_size=16, intermediate_size=32, num_layers=1,
                               num_heads=2, max_length=256)
    model = build_student(student, tok, seed=1)
    prompts = [q + " " for q in QUESTIONS]
    outs = []
    for _ in range(2):
        with autocast_context("bfloat16"):
            outs.append(generate(model, tok, prompts, max_new_tokens=12, batch_size=2, show_progress=False))
    assert outs[0] == outs[1]
    assert all(isinstance(t, str) for t in outs[0])
