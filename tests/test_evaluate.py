"""Answer extraction, scoring, batched generation and accuracy frames."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edit.config_schema import section_defaults
from edit.evaluate import accuracy_frame, evaluate_suite, evaluate_suites
from edit.generation import generate
from edit.io import read_jsonl, write_jsonl
from edit.methods import parse_method
from edit.params import load_params
from edit.records import Question
from edit.scoring import ANSWER_TYPES, extract_answer, score
from edit.stages import evaluate as evaluate_stage
from edit.stages.evaluate import active_suites, few_shot_exemplars, generation_config
from edit.student import build_student, save_student, train_tokenizer

from conftest import ROOT

torch.set_num_threads(1)


# ---------------------------------------------------------------- extraction


@pytest.mark.parametrize("text,atype,expected", [
    # options
    ("... so (B) is right. Therefore, the answer is (B).", "option", "(B)"),
    ("Therefore, the answer is B.", "option", "(B)"),
    ("therefore, the answer is (b).", "option", "(B)"),
    ("So the answer is b)", "option", "(B)"),
    ("the answer is b", "option", "(B)"),
    ("Therefore, the answer is (C) 12/25/1937.", "option", "(C)"),
    ("Therefore, the answer is (2).", "option", "(2)"),  # ARC items labelled (1)-(4)
    # booleans
    ("not True is False. Therefore, the answer is False.", "bool", "False"),
    ("therefore, the answer is true.", "bool", "True"),
    ("Therefore, the answer is **True**.", "bool", "True"),
    # yes / no
    ("Therefore, the answer is Yes.", "yes_no", "Yes"),
    ("the answer is no.", "yes_no", "No"),
    ("So the answer is yes", "yes_no", "Yes"),
    # valid / invalid: "invalid" must never read as "valid"
    ("Therefore, the answer is invalid.", "valid_invalid", "invalid"),
    ("Therefore, the answer is valid.", "valid_invalid", "valid"),
    # numbers
    ("3 * 8 = 24. Therefore, the answer is 24.", "number", "24"),
    ("Therefore, the answer is 3.5.", "number", "3.5"),
    ("Therefore, the answer is 3.5", "number", "3.5"),
    ("Therefore, the answer is -7.", "number", "-7"),
    ("Therefore, the answer is 24.0.", "number", "24"),
    ("Therefore, the answer is 1,000.", "number", "1000"),
    ("Therefore, the answer is five.", "number", "5"),
    ("Therefore, the answer is 0.", "number", "0"),
    ("Therefore, the answer is 5 apples.", "number", "5"),
    # free text keeps its characters
    ("Therefore, the answer is ] }.", "text", "] }"),
    ("Therefore, the answer is apple banana cherry.", "text", "apple banana cherry"),
])
def test_extract_answer_real_strings(text, atype, expected):
    assert extract_answer(text, atype) == expected


@pytest.mark.parametrize("text,atype", [
    ("Therefore, the answer is (A) or (B).", "option"),
    ("Therefore, the answer is A or B.", "option"),
    ("Therefore, the answer is (A) and (C).", "option"),
    ("Therefore, the answer is Yes or No.", "yes_no"),
    ("Therefore, the answer is True or False.", "bool"),
    ("Therefore, the answer is 3 or 4.", "number"),
    ("Therefore, the answer is", "option"),
    ("Therefore, the answer is .", "number"),
    ("Therefore, the answer is unclear.", "number"),
])
def test_ambiguous_or_empty_gives_none(text, atype):
    assert extract_answer(text, atype) is None


def test_last_answer_phrase_wins():
    text = ("Therefore, the answer is (A). Wait, let me recheck. (A) is wrong.\n"
            "Therefore, the answer is (C).")
    assert extract_answer(text, "option") == "(C)"
    assert extract_answer("the answer is 3. So the answer is 4.", "number") == "4"


def test_missing_phrase_has_no_answer_and_is_not_correct():
    # no "first sentence" fallback: a template-less output is not scored
    for gen, gold, atype in [("(B).", "(B)", "option"), ("True.", "True", "bool"),
                             ("24", "24", "number"), ("Yes. It is.", "Yes", "yes_no")]:
        s = score(gen, gold, atype)
        assert s["has_answer"] is False and s["extracted"] is None
        assert s["correct"] is False
        assert s["contains_gold"] is True
        assert s["complete"] is False


def test_wrong_option_scores_wrong():
    s = score("Therefore, the answer is (A).", "(B)", "option")
    assert s == {"correct": False, "extracted": "(A)", "has_answer": True, "contains_gold": False,
                 "complete": True}


def test_ambiguous_options_not_scored_by_first():
    s = score("Therefore, the answer is (A) or (B).", "(A)", "option")
    assert s["correct"] is False and s["has_answer"] is False and s["contains_gold"] is True


@pytest.mark.parametrize("gold", ["5", "0"])
def test_one_character_gold(gold):
    assert score(f"We count them. Therefore, the answer is {gold}.", gold, "number")["correct"] is True
    assert score("Therefore, the answer is 15.", gold, "number")["correct"] is False
    # "5" does not "appear" in "15" or "3.5"
    assert score("Therefore, the answer is 15.", gold, "number")["contains_gold"] is False
    assert score("Therefore, the answer is 3.5.", "5", "number")["contains_gold"] is False


def test_one_character_text_gold():
    assert score("Therefore, the answer is }.", "}", "text")["correct"] is True
    assert score("Therefore, the answer is ].", "}", "text")["correct"] is False


def test_number_never_cut_inside_and_gold_normalised():
    assert score("Therefore, the answer is 3.5.", "3.5", "number")["correct"] is True
    assert score("Therefore, the answer is 3.", "3.5", "number")["correct"] is False
    assert score("Therefore, the answer is 24.", "24.0", "number")["correct"] is True
    assert score("Therefore, the answer is -7.", "-7", "number")["correct"] is True


def test_formal_fallacies_valid_needs_an_answer():
    assert score("The premises do not entail it.", "valid", "valid_invalid")["correct"] is False
    assert score("Therefore, the answer is invalid.", "valid", "valid_invalid")["correct"] is False
    assert score("Therefore, the answer is valid.", "valid", "valid_invalid")["correct"] is True


def test_complete_flag():
    assert score("Therefore, the answer is (B).", "(B)", "option")["complete"] is True
    assert score("Therefore, the answer is (B).\n", "(B)", "option")["complete"] is True
    assert score("Therefore, the answer is (B", "(B)", "option")["complete"] is False  # cut off
    assert score("Therefore, the answer is (B).\nQ: next", "(B)", "option")["complete"] is False


def test_unknown_answer_type_raises():
    with pytest.raises(ValueError):
        extract_answer("Therefore, the answer is 1.", "letters")


@settings(max_examples=300, deadline=None)
@given(text=st.text(), atype=st.sampled_from(ANSWER_TYPES))
def test_extract_answer_never_raises(text, atype):
    out = extract_answer(text, atype)
    assert out is None or isinstance(out, str)
    s = score(text, "(A)", atype)
    assert set(s) == {"correct", "extracted", "has_answer", "contains_gold", "complete"}


@settings(max_examples=200, deadline=None)
@given(prefix=st.text(), body=st.text(alphabet="()ABab0123456789.-, or", max_size=12),
       atype=st.sampled_from(ANSWER_TYPES))
def test_extract_answer_never_raises_near_phrase(prefix, body, atype):
    out = extract_answer(prefix + "Therefore, the answer is " + body, atype)
    assert out is None or isinstance(out, str)


# ---------------------------------------------------------------- accuracy frame


def test_accuracy_frame_micro_and_macro():
    recs = ([{"suite": "bbh", "task": "a", "correct": c} for c in [True, True, True, False]]
            + [{"suite": "bbh", "task": "b", "correct": c} for c in [False, False]])
    acc = accuracy_frame(recs).set_index(["suite", "task"])
    assert acc.loc[("bbh", "a"), "accuracy"] == pytest.approx(75.0)
    assert acc.loc[("bbh", "b"), "accuracy"] == pytest.approx(0.0)
    assert acc.loc[("bbh", "ALL"), "accuracy"] == pytest.approx(50.0)  # 3 / 6 pooled
    assert acc.loc[("bbh", "MACRO"), "accuracy"] == pytest.approx(37.5)  # (75 + 0) / 2
    assert acc.loc[("bbh", "ALL"), "n"] == 6


# ---------------------------------------------------------------- generation with a tiny model


@pytest.fixture(scope="module")
def tiny():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;'()?!\n":
        vocab.setdefault(c, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>",
                                  bos_token="<s>", unk_token="<unk>")
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    # make EOS likely enough that some generations stop early
    with torch.no_grad():
        model.lm_head.weight[2] += 0.6 * model.lm_head.weight[vocab["a"]]
    return model, tok


PROMPTS = ["Q: ab\nA: Let's think step by step.\n",
           "Q: a much longer question about several things, with commas\nA: Let's think step by step.\n",
           "Q: x\nA:",
           "Q: what is 3 and 5?\nA: Let's think step by step.\n",
           "Q: zz top\nA:"]


def test_generate_batched_equals_single_and_keeps_order(tiny):
    model, tok = tiny
    tok.padding_side = "right"
    single = [generate(model, tok, [p], max_new_tokens=12, batch_size=1, show_progress=False)[0]
              for p in PROMPTS]
    assert tok.padding_side == "right"
    batched = generate(model, tok, PROMPTS, max_new_tokens=12, batch_size=4, show_progress=False)
    assert tok.padding_side == "right"  # restored
    assert batched == single
    assert len(set(single)) > 1  # outputs depend on the prompt, so order is really checked
    # order is the input order, not the length order used internally
    rev = generate(model, tok, PROMPTS[::-1], max_new_tokens=12, batch_size=3, show_progress=False)
    assert rev == single[::-1]
    # deterministic
    assert generate(model, tok, PROMPTS, max_new_tokens=12, batch_size=4, show_progress=False) == batched
    # only new text is returned, and no special tokens
    assert all("<pad>" not in g and "</s>" not in g for g in batched)
    assert not any(g.startswith("Q:") for g in batched)


def test_generate_empty_and_padding_side_restored_on_left(tiny):
    model, tok = tiny
    tok.padding_side = "left"
    assert generate(model, tok, [], max_new_tokens=4, show_progress=False) == []
    generate(model, tok, PROMPTS[:2], max_new_tokens=3, batch_size=2, show_progress=False)
    assert tok.padding_side == "left"
    tok.padding_side = "right"
    # a tokenizer without a pad token pads with EOS and gets its missing pad token back
    expected = generate(model, tok, PROMPTS[:2], max_new_tokens=5, batch_size=2, show_progress=False)
    tok.pad_token = None
    try:
        assert generate(model, tok, PROMPTS[:2], max_new_tokens=5, batch_size=2, show_progress=False) == expected
        assert tok.pad_token is None
    finally:
        tok.pad_token = "<pad>"


def test_evaluate_suite_records_and_frame(tiny):
    model, tok = tiny
    qs = [Question(id=f"t{i}/test/{i}", task="t1" if i < 2 else "t2", input=f"q {i}", target="(A)")
          for i in range(3)]
    recs, acc = evaluate_suite(model, tok, qs, "bbh", {"max_new_tokens": 4, "batch_size": 2},
                               answer_type=lambda task: "option")
    assert [r["id"] for r in recs] == [q.id for q in qs]
    # the record keys, plus every diagnostic that score() returns (the scoring module may add more)
    assert set(recs[0]) >= {"id", "suite", "task", "prompt", "answer_type", "gold", "generation", "extracted",
                            "correct", "has_answer", "contains_gold", "complete"}
    assert set(score(recs[0]["generation"], "(A)", "option")) <= set(recs[0])
    assert list(acc.columns) == ["suite", "task", "n", "correct", "accuracy"]
    assert list(acc["task"]) == ["t1", "t2", "ALL", "MACRO"]
    assert acc.loc[acc.task == "ALL", "n"].item() == 3


# ---------------------------------------------------------------- the evaluate stage's rules


STAGE_STUDENT = section_defaults("student", kind="tiny_llama", hidden_size=16, intermediate_size=32, num_layers=1,
                                 num_heads=2, max_length=256, lora={"enabled": False})
STAGE_QUESTIONS = ["not ( True ) and ( True ) is", "True or False and not True is", "not not ( False ) is"]


def _stage_params(student_name: str | None = "tiny-student") -> dict:
    p = load_params(ROOT / "params.yaml", profile="smoke")
    p["student"] = dict(STAGE_STUDENT)
    p["eval"].update(max_new_tokens=12, max_new_tokens_direct=3, batch_size=4)
    p["eval"]["suites"] = {"A": "tiny", "Off": None}
    p["report"]["student"] = student_name
    return p


@pytest.fixture(scope="module")
def stage_dirs(tmp_path_factory):
    """A data folder (one question split, D+ CoTs for exemplars) and untrained tiny students saved
    where the stage looks for std_cot's and answer_sft's final step."""
    root = tmp_path_factory.mktemp("stage")
    data = root / "data"
    qs = [{"id": f"boolean_expressions/tiny/{i:05d}", "task": "boolean_expressions", "input": q, "target": "False"}
          for i, q in enumerate(STAGE_QUESTIONS)]
    write_jsonl(data / "questions" / "tiny.jsonl", qs)
    cots = [{"id": f"boolean_expressions/train/{i:05d}", "task": "boolean_expressions", "question": q, "gold": "False",
             "response": "It is False. Therefore, the answer is False.", "source": "D+"}
            for i, q in enumerate(STAGE_QUESTIONS)]
    write_jsonl(data / "cots" / "sft.jsonl", cots)
    tok = train_tokenizer(STAGE_QUESTIONS + [c["response"] for c in cots], 280)
    model = build_student(STAGE_STUDENT, tok, seed=0)
    for method in ("std_cot", "answer_sft"):
        save_student(model, tok, root / "models" / f"{method}-0" / "step1", seed=0)
    save_student(model, tok, root / "models" / "untuned_few_shot_cot-0" / "step0", seed=0)
    return root


def test_active_suites_skip_switched_off_suites_in_order():
    assert list(active_suites({"B": "ind_test", "Off": None, "A": {"benchmark": "bbh"}})) == ["B", "A"]
    assert active_suites({"Off": None}) == {} and active_suites(None) == {}


def test_direct_answer_methods_get_the_short_budget():
    defs = load_params(ROOT / "params.yaml")["method_defs"]
    direct, cot = parse_method(defs["answer_sft"], "answer_sft"), parse_method(defs["std_cot"], "std_cot")
    eval_params = {"max_new_tokens": 400, "max_new_tokens_direct": 32, "batch_size": 8}
    assert generation_config(eval_params, direct).max_new_tokens == 32
    assert generation_config(eval_params, cot).max_new_tokens == 400
    assert generation_config({**eval_params, "max_new_tokens": 20}, direct).max_new_tokens == 20  # never above
    assert generation_config(eval_params, direct).batch_size == 8
    with pytest.raises(ValueError, match="max_new_tokens_direct"):
        generation_config({"max_new_tokens": 400}, direct)


def test_evaluate_stage_skips_null_suites_caps_direct_answers_and_names_the_student(stage_dirs, monkeypatch):
    seen = []
    original = evaluate_stage.evaluate_suites

    def spy(model, tokenizer, suites, gen_cfg, **kwargs):
        seen.extend((suite, gen_cfg.max_new_tokens, len(items)) for suite, items in suites.items())
        return original(model, tokenizer, suites, gen_cfg, show_progress=False, **kwargs)

    monkeypatch.setattr(evaluate_stage, "evaluate_suites", spy)
    dirs = {k: stage_dirs / k for k in ("data", "models", "results")}
    for method, budget in (("answer_sft", 3), ("std_cot", 12)):
        seen.clear()
        out = evaluate_stage.run(_stage_params(), method, 0, data_dir=dirs["data"], models_dir=dirs["models"],
                                 results_dir=dirs["results"])
        assert seen == [("A", budget, len(STAGE_QUESTIONS))]  # the null suite is never loaded
        assert out["gen_cfg"].max_new_tokens == budget and out["student"] == "tiny-student"
        acc = pd.read_csv(dirs["results"] / f"{method}-0" / "accuracy.csv")
        assert set(acc["suite"]) == {"A"} and set(acc["student"]) == {"tiny-student"}
        assert set(acc["method"]) == {method} and set(acc["task"]) == {"boolean_expressions", "ALL", "MACRO"}
        samples = list(read_jsonl(dirs["results"] / f"{method}-0" / "samples.jsonl"))
        assert len(samples) == len(STAGE_QUESTIONS) and {s["student"] for s in samples} == {"tiny-student"}
    # without report.student the student is named after the profile
    out = evaluate_stage.run(_stage_params(None), "std_cot", 0, data_dir=dirs["data"], models_dir=dirs["models"],
                             results_dir=stage_dirs / "unnamed")
    assert out["student"] == "smoke" and set(out["accuracy"]["student"]) == {"smoke"}


def test_few_shot_exemplars_fall_back_to_the_trained_tasks_for_untrained_ones():
    """A task without D+ CoTs of its own (an OOD task) is shown the trained tasks' exemplars, first
    exemplar of each task in task order, then second ones; trained tasks keep their own."""
    def cot(task, i, source="D+"):
        return {"id": f"{task}/train/{i}", "task": task, "question": f"{task} q{i}", "response": "r", "source": source}

    records = [cot("b_task", 0), cot("b_task", 1), cot("a_task", 0), cot("a_task", 1, "D-+")]
    few = parse_method({"format": "few_shot_cot", "shots": 3, "steps": []}, "fs")
    out = few_shot_exemplars(few, records, 0, {"a_task", "b_task", "unseen"})
    assert [e["id"] for e in out["a_task"]] == ["a_task/train/0"]  # D-+ is never an exemplar
    assert sorted(e["id"] for e in out["b_task"]) == ["b_task/train/0", "b_task/train/1"]
    assert [e["id"] for e in out["unseen"]] == ["a_task/train/0", out["b_task"][0]["id"], out["b_task"][1]["id"]]
    assert few_shot_exemplars(few, records, 0, {"a_task"}) == {"a_task": out["a_task"], "b_task": out["b_task"]}
    assert few_shot_exemplars(parse_method([{"loss": "sft", "data": ["D+"]}], "sft"), records, 0, {"unseen"}) is None
    with pytest.raises(ValueError, match="no D\\+ CoT"):
        few_shot_exemplars(few, [cot("a_task", 0, "D-+")], 0, {"unseen"})


def test_every_prompt_is_built_before_the_first_generation(stage_dirs, monkeypatch):
    """A suite whose prompts cannot be built fails before the model generates for any suite (and in
    the stage, before the model is loaded)."""
    calls = []
    monkeypatch.setattr("edit.evaluate.generate_with", lambda *a, **k: calls.append("generate") or [])

    def prompt(item):
        if item["task"] == "bad":
            raise ValueError("no prompt for task 'bad'")
        return "p"

    suites = {"S1": [{"id": "a", "task": "t", "input": "x", "target": "1", "answer_type": "number"}],
              "S2": [{"id": "b", "task": "bad", "input": "y", "target": "2", "answer_type": "number"}]}
    with pytest.raises(ValueError, match="task 'bad'"):
        evaluate_suites(None, None, suites, item_prompt=prompt, show_progress=False)
    assert calls == []
    monkeypatch.setattr(evaluate_stage, "load_student", lambda *a, **k: calls.append("load") or (None, None))
    params = _stage_params()
    params["eval"]["suites"] = {"A": "tiny", "B": "tiny_other"}
    write_jsonl(stage_dirs / "data" / "questions" / "tiny_other.jsonl",
                [{"id": "q/0", "task": "no_such_task", "input": "x", "target": "y"}])
    with pytest.raises(Exception, match="no_such_task"):
        evaluate_stage.run(params, "std_cot", 0, data_dir=stage_dirs / "data", models_dir=stage_dirs / "models",
                           results_dir=stage_dirs / "never")
    assert calls == []


def test_suites_are_generated_one_queue_each(monkeypatch):
    """evaluate_suites sends each suite's prompts to its own generate call (a suite's generations
    never depend on the other suites); records and accuracy rows keep the suites' order."""
    calls = []

    def fake_generate_with(model, tokenizer, prompts, cfg, show_progress=True):
        calls.append(list(prompts))
        return [[f"the answer is {p[-1]}."] for p in prompts]

    monkeypatch.setattr("edit.evaluate.generate_with", fake_generate_with)
    suites = {"S1": [{"id": "a", "task": "t", "input": "x", "target": "1", "answer_type": "number"},
                     {"id": "b", "task": "t", "input": "y", "target": "2", "answer_type": "number"}],
              "S0": [{"id": "c", "task": "u", "input": "z", "target": "3", "answer_type": "number"}]}
    prompt = {"x": "p1", "y": "p9", "z": "p3"}.__getitem__
    recs, frame = evaluate_suites(None, None, suites, prompt_fn=prompt, show_progress=False)
    assert calls == [["p1", "p9"], ["p3"]]
    assert [r["suite"] for r in recs] == ["S1", "S1", "S0"] and [r["correct"] for r in recs] == [True, False, True]
    assert list(frame["suite"]) == ["S1"] * 3 + ["S0"] * 3  # suite order kept, not sorted
    one, one_frame = evaluate_suite(None, None, suites["S0"], "S0", prompt_fn=prompt, show_progress=False)
    assert one == recs[2:]
    pd.testing.assert_frame_equal(one_frame, frame.iloc[3:].reset_index(drop=True))


def test_untuned_few_shot_stage_prompts_untrained_tasks_with_the_trained_tasks_exemplars(stage_dirs):
    """The untuned few-shot CoT row on a suite of a task without D+ CoTs (OOD) runs: its prompts
    show the trained task's exemplars (the failure of the first pretrained run)."""
    write_jsonl(stage_dirs / "data" / "questions" / "tiny_nav.jsonl",
                [{"id": "navigate/tiny/00000", "task": "navigate", "input": "Take 1 step forward. Always face forward.",
                  "target": "No"}])
    params = _stage_params()
    params["eval"]["suites"] = {"A": "tiny", "NAV": "tiny_nav"}
    evaluate_stage.run(params, "untuned_few_shot_cot", 0, data_dir=stage_dirs / "data",
                       models_dir=stage_dirs / "models", results_dir=stage_dirs / "few")
    samples = {s["suite"]: s for s in read_jsonl(stage_dirs / "few" / "untuned_few_shot_cot-0" / "samples.jsonl")}
    nav = samples["NAV"]["prompt"]
    assert all(q in nav for q in STAGE_QUESTIONS)  # the three boolean exemplars, shown for navigate
    assert nav.rindex("Take 1 step forward") > max(nav.index(q) for q in STAGE_QUESTIONS)  # then the question
    assert nav.count("Therefore, the answer is False.") == 3
