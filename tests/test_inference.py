"""edit.inference: the evaluate stage's inference model under bfloat16 autocast (LoRA merged, linear
weights stored in bfloat16 once) computes what autocast computes with the merged float32 model,
bit for bit; and edit.generation's bfloat16 KV cache under autocast."""
import copy

import pytest
import torch

from edit.config_schema import section_defaults
from edit.generation import _cache_kwargs, _CastStaticLayer, generate
from edit.inference import cast_linear_weights, inference_model, merge_adapters
from edit.runtime import autocast_context
from edit.student import build_student, train_tokenizer

TEXT = ["Q: not True or False. A: not True = False. Therefore, the answer is False.",
        "Q: Ka lies. Does Bo tell the truth? A: Ka lies, so Bo lies. Therefore, the answer is No."]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXT * 4, 200)


def _lora_student(tok, tie=True):
    student = section_defaults("student", kind="tiny_llama", hidden_size=32, intermediate_size=64, num_layers=2,
                               num_heads=2, max_length=128, tie_embeddings=tie)
    student["lora"] = dict(student["lora"], enabled=True, r=4, lora_alpha=8,
                           target_modules=["q_proj", "v_proj", "up_proj"])
    model = build_student(student, tok, seed=3)
    gen = torch.Generator().manual_seed(1)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # trained adapters are not zero; fresh ones are
            p.data.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model.eval()


def _ids(tok):
    return torch.tensor([tok(TEXT[1], add_special_tokens=False)["input_ids"]])


@pytest.mark.parametrize("tie", [True, False])
def test_inference_model_equals_autocast_on_the_merged_float32_model(tok, tie):
    model = _lora_student(tok, tie)
    merged = merge_adapters(copy.deepcopy(model))
    fast = inference_model(copy.deepcopy(model), "bfloat16")
    ids = _ids(tok)
    with torch.no_grad(), autocast_context("bfloat16"):
        want = merged(input_ids=ids).logits
        got = fast(input_ids=ids).logits
        unmerged = model(input_ids=ids).logits
    assert torch.equal(got, want)
    assert not torch.equal(unmerged, want), "the adapters did nothing: the test would not see a missing merge"
    linears = [m for m in fast.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert fast.get_input_embeddings().weight.dtype == torch.float32


def test_a_tied_output_layer_is_untied_and_the_embedding_keeps_float32(tok):
    model = merge_adapters(_lora_student(tok, tie=True))
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    before = model.get_input_embeddings().weight.detach().clone()
    n = cast_linear_weights(model, torch.bfloat16)
    assert n == sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    assert torch.equal(model.get_input_embeddings().weight, before)
    assert torch.equal(model.get_output_embeddings().weight, before.to(torch.bfloat16))


def test_without_autocast_the_model_is_returned_unchanged_and_other_dtypes_are_refused(tok):
    model = _lora_student(tok)
    assert inference_model(model, None) is model
    with pytest.raises(ValueError, match="autocast"):
        inference_model(model, "float16")


def test_bfloat16_kv_cache_only_under_bfloat16_autocast(tok):
    model = _lora_student(tok)
    cpu = torch.device("cpu")
    assert _cache_kwargs("auto", 3, cpu, model.config, 40) == {"cache_implementation": "static", "disable_compile": True}
    assert _cache_kwargs("auto", 1, cpu, model.config, 40) == {"disable_compile": True}
    with autocast_context("bfloat16"):
        kw = _cache_kwargs("auto", 3, cpu, model.config, 40)
        assert all(isinstance(layer, _CastStaticLayer) for layer in kw["cache"].layers)
        assert "cache_implementation" not in kw
        assert _cache_kwargs("dynamic", 3, cpu, model.config, 40) == {"disable_compile": True}


def test_generation_with_the_inference_model_and_bfloat16_cache_is_deterministic(tok):
    fast = inference_model(_lora_student(tok), "bfloat16")
    prompts = [t.split(" A: ")[0] + " A:" for t in TEXT] * 2
    outs = []
    for _ in range(2):
        with autocast_context("bfloat16"):
            outs.append(generate(fast, tok, prompts, max_new_tokens=10, batch_size=4, show_progress=False,
                                 stop_at_answer=False))
    assert outs[0] == outs[1] and all(isinstance(t, str) and t for t in outs[0])
