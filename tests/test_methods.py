"""Methods as configuration (edit/methods.py, edit/formats.py): one template per method for training
and inference, validation of method definitions, the data choices (repeat rule, equal-size
mistake-type subsets), the key-token controls, checkpoint selection, DPO through TRL, and a smoke
run of every method on a tiny student."""
import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edit.config_schema import section_defaults
from edit.formats import FORMATS, INSTRUCTION, answer_sentence, get_format, strip_answer_sentence, student_prompt
from edit.generation import generate
from edit.keysteps import mark_pairs, response_ids
from edit.losses import token_log_probs
from edit.methods import (
    answers_directly, control_key_indices, get_method, inference_prompt, method_exemplars, mistake_subset,
    parse_method, random_key_indices, repeat_to_volume, select_exemplars, validate_method_defs, val_subset,
)
from edit.params import load_params
from edit.records import Question
from edit.student import build_student, load_student, train_tokenizer
from edit.training import run as training_run
from edit.training.rows import dpo_dataset, krsl_dataset, sft_dataset
from edit.training.run import run_method, shared_prefix
from edit.training.selection import SelectCheckpoint, val_accuracy
from edit.training.trainers import make_dpo_trainer, train

from conftest import ROOT

# The methods of params.yaml: the one place where methods are defined.
METHOD_DEFS = load_params(ROOT / "params.yaml")["method_defs"]

TASK = "boolean_expressions"
QUESTIONS = ["not ( True ) and ( True ) is", "True or False and not True is", "not not ( False ) is",
             "True and not False or False is", "not True or ( False ) is", "( True and True ) and not True is"]
GOLD = ["False", "True", "False", "True", "False", "False"]
MISTAKES = ["logical", "calculation", "knowledge", "logical", "logical", "knowledge"]


def _flip(v: str) -> str:
    return "True" if v == "False" else "False"


def _cot(q: str, value: str) -> str:
    return f"We evaluate {q[:-3]}. The value is {value}. Therefore, the answer is {value}."


def _data():
    """Questions 0-3: D+ (correct first CoT) with a CCP corruption D+-; questions 4-5: D- (wrong
    first CoT) with an AHP rectification D-+. Pairs D+dual / D-dual with mistake types."""
    sft, wrong, pairs = [], [], []
    for i, (q, g) in enumerate(zip(QUESTIONS, GOLD)):
        base = {"id": f"{TASK}/train/{i:05d}", "task": TASK, "question": q, "gold": g}
        good, bad = _cot(q, g), _cot(q, _flip(g))
        if i < 4:
            sft.append({**base, "response": good, "source": "D+"})
            wrong.append({**base, "response": bad, "source": "D+-"})
            pt = "D+dual"
        else:
            sft.append({**base, "response": good, "source": "D-+"})
            wrong.append({**base, "response": bad, "source": "D-"})
            pt = "D-dual"
        pairs.append({**base, "pair_type": pt, "mistake_type": MISTAKES[i], "chosen": good, "rejected": bad})
    return sft, wrong, pairs


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def tok(data):
    sft, wrong, pairs = data
    corpus = [student_prompt(q) for q in QUESTIONS] + [r["response"] for r in sft + wrong] + [INSTRUCTION]
    return train_tokenizer(corpus, 300)


@pytest.fixture(scope="module")
def marked(data, tok):
    return mark_pairs(data[2], tok, progress=False)


STUDENT = section_defaults("student", kind="tiny_llama", hidden_size=16, intermediate_size=32, num_layers=1,
                           num_heads=2, max_length=512)


def _params():
    p = load_params(ROOT / "params.yaml", profile="smoke")
    p["student"] = dict(STUDENT)
    p["train"]["sft"].update(epochs=1, batch_size=16, progress=False, logging_steps=1)
    p["train"]["krsl"].update(epochs=1, batch_size=8, progress=False, lr=1e-2, logging_steps=1)
    p["train"]["dpo"].update(epochs=1, batch_size=8, lr=1e-2, beta=0.1, warmup_ratio=0.0, scheduler="constant",
                             logging_steps=1, progress=False)
    p["eval"] = dict(p.get("eval", {}), max_new_tokens=6, batch_size=8)
    return p


def _val_questions():
    return [Question(f"{TASK}/val/{i:05d}", TASK, q, g) for i, (q, g) in enumerate(zip(QUESTIONS, GOLD))]


# ---------------------------------------------------------------- one template per method


@pytest.mark.parametrize("name", sorted(n for n, d in METHOD_DEFS.items() if parse_method(d, n).steps))
def test_training_rows_start_with_exactly_the_inference_prompt(name, data, tok):
    """For every trained method, each correct record gives a row whose prompt is the inference
    prompt (same string, same token ids) and whose labels start right after it, with the response
    the method is meant to produce at test time; krsl/dpo pairs use that same prompt."""
    method = parse_method(METHOD_DEFS[name], name)
    sft, wrong, _ = data
    rec = sft[0]
    prompt = inference_prompt(method, Question("x", TASK, rec["question"], rec["gold"]))
    examples = method.fmt.examples(rec)
    expected = answer_sentence(rec["gold"]) if answers_directly(method) else rec["response"]
    assert (prompt, expected) in examples, f"{name}: no training pair equals its inference layout"
    rows, info = sft_dataset([rec], tok, 512, method.format)
    assert info["rows"] == len(examples)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    row = rows[examples.index((prompt, expected))]
    assert row["input_ids"][: len(p_ids)] == p_ids
    assert all(x == -100 for x in row["labels"][: len(p_ids)]) and row["labels"][len(p_ids)] != -100
    assert row["input_ids"][len(p_ids):-1] == response_ids(tok, expected)
    if any(s["loss"] in ("krsl", "dpo") for s in method.steps):
        assert method.fmt.pair.prompt(rec["question"]) == prompt


def test_formats_lay_out_each_task_as_documented(data):
    sft, wrong, _ = data
    rec, bad = sft[0], wrong[0]
    q = rec["question"]
    assert get_format("cot").examples(rec) == [(student_prompt(q), rec["response"])]
    assert get_format("answer").examples(rec) == [(f"Q: {q}\nA:\n", "Therefore, the answer is False.")]
    mt = get_format("mt_cot").examples(rec)
    assert [p.split(" Q:")[0] for p, _ in mt] == ["[CoT]", "[Answer]"]
    assert mt[0][1] == rec["response"] and mt[1][1] == answer_sentence(rec["gold"])
    sbs = dict((p.split(" Q:")[0], r) for p, r in get_format("sbs").examples(rec))
    assert sbs["[rationale]"] == strip_answer_sentence(rec["response"]) and "answer is" not in sbs["[rationale]"]
    assert sbs["[label]"] == "Therefore, the answer is False."
    scott = get_format("scott")
    assert scott.examples(bad) == [(f"[counterfactual] {student_prompt(q)}", bad["response"])]
    assert scott.inference_prompt(q).startswith("[factual] Q:")
    dual = get_format("dual_cot")
    assert dual.examples(rec) == [(student_prompt(q), rec["response"])]
    assert dual.examples(bad)[0][0].startswith("[counterfactual] Q:")
    with pytest.raises(ValueError, match="cannot train on D\\+- records"):
        get_format("cot").examples(bad)
    for f in FORMATS.values():  # a prompt ends in a newline: no token merges into the response
        assert f.infer_template().prompt(q).endswith("\n")


def test_mt_cot_and_sbs_inference_variants():
    q = QUESTIONS[0]
    assert inference_prompt(parse_method(METHOD_DEFS["mt_cot"], "mt_cot"), q).startswith("[CoT] Q:")
    m = parse_method({"format": "mt_cot", "infer": "answer", "steps": [{"loss": "sft", "data": ["D+"]}]}, "m")
    assert inference_prompt(m, q) == f"[Answer] Q: {q}\nA:\n" and answers_directly(m)
    sbs = parse_method(METHOD_DEFS["sbs"], "sbs")
    assert inference_prompt(sbs, q) == f"[label] Q: {q}\nA:\n" and answers_directly(sbs)
    assert not answers_directly(parse_method(METHOD_DEFS["scott"], "scott"))


def test_untuned_prompts_zero_and_few_shot(data):
    sft, _, _ = data
    q = Question("t/val/1", TASK, "True and True is", "True")
    zs = inference_prompt(parse_method(METHOD_DEFS["untuned_zero_shot"], "untuned_zero_shot"), q)
    assert zs == f"{INSTRUCTION}\n\nQ: True and True is\nA:\n"
    zsc = inference_prompt(parse_method(METHOD_DEFS["untuned_zero_shot_cot"], "untuned_zero_shot_cot"), q)
    assert zsc == f"{INSTRUCTION}\n\n{student_prompt('True and True is')}"
    fs = parse_method(METHOD_DEFS["untuned_few_shot_cot"], "untuned_few_shot_cot")
    ex = method_exemplars(fs, sft, seed=0)
    assert ex == method_exemplars(fs, sft, seed=0)  # deterministic
    assert len(ex[TASK]) == 3 and all(e["source"] == "D+" for e in ex[TASK])
    p = inference_prompt(fs, q, ex)
    assert p.startswith(INSTRUCTION) and p.endswith(student_prompt("True and True is"))
    assert all(f"{student_prompt(e['question'])}{e['response']}\n\n" in p for e in ex[TASK])
    # an exemplar identical to the question is never shown with its answer
    own = Question("x", TASK, ex[TASK][0]["question"], ex[TASK][0]["gold"])
    assert inference_prompt(fs, own, ex).count(ex[TASK][0]["question"]) == 1
    f = parse_method(METHOD_DEFS["untuned_few_shot"], "untuned_few_shot")
    assert "Therefore, the answer is" in inference_prompt(f, q, method_exemplars(f, sft, 0)).split("\n\n")[1]
    with pytest.raises(ValueError, match="few-shot"):
        inference_prompt(fs, q)
    assert select_exemplars(sft, 2, seed=1)[TASK] != select_exemplars(sft, 2, seed=2)[TASK] or len(sft) < 3


# ---------------------------------------------------------------- validation


def test_every_proposed_and_configured_method_validates():
    methods = validate_method_defs(METHOD_DEFS)
    assert methods["edit_logical"].steps[1]["mistake_type"] == "logical"
    assert methods["edit_random_tokens"].steps[1]["key_tokens"] == "random_tokens"
    assert methods["untuned_zero_shot"].final_step == 0 and methods["edit"].final_step == 2


def test_params_yaml_method_defs_all_validate():
    params = load_params(ROOT / "params.yaml")
    validate_method_defs(params["method_defs"])
    for name in params["methods"]:
        get_method(params, name)


@pytest.mark.parametrize("definition, message", [
    ({"steps": [{"loss": "sft", "data": ["D+"]}], "fromat": "cot"}, "unknown key"),
    ({"format": "nope", "steps": [{"loss": "sft", "data": ["D+"]}]}, "unknown format"),
    ([{"loss": "sft", "data": ["D+"], "pair": ["D+dual"]}], "unknown key"),
    ([{"loss": "sft", "data": ["D-"]}], "no counterfactual template"),
    ({"format": "sbs", "steps": [{"loss": "sft", "data": ["D+"]}, {"loss": "krsl", "pairs": ["D+dual"]}]}, "dual pairs"),
    ({"format": "answer", "steps": [{"loss": "dpo", "pairs": ["D-dual"]}]}, "dual pairs"),
    ({"format": "zero_shot", "steps": [{"loss": "sft", "data": ["D+"]}]}, "takes no steps"),
    ({"format": "cot", "steps": []}, "at least one step"),
    ([{"loss": "krsl", "pairs": ["D+dual"], "key_tokens": "all"}], "key_tokens"),
    ([{"loss": "krsl", "pairs": ["D+dual"], "mistake_type": "other"}], "mistake_type"),
    ([{"loss": "sft", "data": ["D+"], "hp": {"select": "best"}}], "select"),
    ([{"loss": "sft", "data": ["D+"], "repeat_to": {"data": ["D?"]}}], "repeat_to"),
    ({"format": "cot", "shots": 3, "steps": [{"loss": "sft", "data": ["D+"]}]}, "shots"),
    ({"format": "mt_cot", "infer": "label", "steps": [{"loss": "sft", "data": ["D+"]}]}, "inference template"),
])
def test_invalid_definitions_are_errors_naming_method_and_key(definition, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_method(definition, "my_method")
    assert "my_method" in str(err.value) or "format" in str(err.value)


# ---------------------------------------------------------------- data choices and controls


def test_repeat_rule_hand_made():
    recs = [{"id": f"r{i}", "source": "D+"} for i in range(3)]
    out = repeat_to_volume(recs, 8, seed=0)
    assert len(out) == 8 and out[:6] == recs + recs
    assert len({r["id"] for r in out[6:]}) == 2
    assert out == repeat_to_volume(recs, 8, seed=0)
    assert repeat_to_volume(recs, 3, 0) == sorted(recs, key=lambda r: out.index(r))[:3] or len(repeat_to_volume(recs, 3, 0)) == 3


@settings(max_examples=60, deadline=None)
@given(n_recs=st.integers(1, 12), n=st.integers(0, 60), seed=st.integers(0, 5))
def test_repeat_rule_properties(n_recs, n, seed):
    recs = [{"id": f"r{i}", "source": "D+"} for i in range(n_recs)]
    out = repeat_to_volume(recs, n, seed)
    assert len(out) == n
    counts = [sum(1 for r in out if r["id"] == x["id"]) for x in recs]
    assert max(counts) - min(counts) <= 1  # every record as often as the others, give or take one


def test_mistake_subsets_have_equal_size_and_are_deterministic(data):
    pairs = data[2]
    sizes = {}
    for mt in ("logical", "calculation", "knowledge"):
        sub, info = mistake_subset(pairs, mt, seed=0)
        assert all(p["mistake_type"] == mt for p in sub)
        assert sub == mistake_subset(pairs, mt, seed=0)[0]
        sizes[mt] = len(sub)
        assert info["group_sizes"] == {"logical": 3, "calculation": 1, "knowledge": 2}
    assert set(sizes.values()) == {1}
    picks = {mistake_subset(pairs, "logical", seed=s)[0][0]["id"] for s in range(12)}
    assert len(picks) > 1  # the seed decides which logical pair is kept
    with pytest.raises(ValueError, match="no pairs"):
        mistake_subset([p for p in pairs if p["mistake_type"] != "calculation"], "logical")


def test_key_token_controls_hand_made():
    m = {"id": "t/1", "pair_type": "D+dual", "chosen_ids": [5, 6, 7, 8, 9], "rejected_ids": [5, 6, 1, 8],
         "chosen_key": [2], "rejected_key": [2]}
    assert control_key_indices("edit_distance", m, 0) == ([2], [2])
    assert control_key_indices("all_diff_uniform", m, 0) == ([0, 1, 2, 3, 4], [0, 1, 2, 3])
    c, r = control_key_indices("random_tokens", m, 0)
    assert len(c) == 1 and len(r) == 1 and 0 <= c[0] < 5 and 0 <= r[0] < 4
    assert control_key_indices("random_tokens", m, 0) == (c, r)
    with pytest.raises(ValueError, match="key_tokens"):
        control_key_indices("uniform", m, 0)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 80), data=st.data(), seed=st.integers(0, 10**6), pid=st.text(max_size=8))
def test_random_tokens_keep_counts_stay_in_range_and_are_deterministic(n, data, seed, pid):
    k = data.draw(st.integers(0, n))
    idx = random_key_indices(n, k, seed, pid, "chosen")
    assert len(idx) == k == len(set(idx)) and all(0 <= i < n for i in idx) and idx == sorted(idx)
    assert idx == random_key_indices(n, k, seed, pid, "chosen")


def test_random_positions_depend_on_seed_and_pair():
    draws = {tuple(random_key_indices(50, 3, s, "pair")) for s in range(10)}
    assert len(draws) > 5
    assert random_key_indices(50, 3, 0, "a") != random_key_indices(50, 3, 0, "b")


def test_krsl_rows_under_controls(data, tok, marked):
    _, _, pairs = data
    by_id = {(p["id"], p["pair_type"]): p for p in pairs}
    rows = {mode: krsl_dataset(marked, by_id, tok, 512, 1.0, 0.025, key_tokens=mode, seed=4)[0]
            for mode in ("edit_distance", "random_tokens", "all_diff_uniform")}
    again = krsl_dataset(marked, by_id, tok, 512, 1.0, 0.025, key_tokens="random_tokens", seed=4)[0]
    assert again == rows["random_tokens"]
    for ed, rnd, alld in zip(rows["edit_distance"], rows["random_tokens"], rows["all_diff_uniform"]):
        for side, w in (("chosen", 1.0), ("rejected", -0.025)):
            n_key = sum(1 for x in ed[side]["weights"] if x != 0)
            assert sum(1 for x in rnd[side]["weights"] if x != 0) == n_key  # same count, other places
            resp = [i for i, lab in enumerate(alld[side]["labels"]) if lab != -100][:-1]  # not the EOS
            assert all(alld[side]["weights"][i] == w for i in resp)
            assert sum(1 for x in alld[side]["weights"] if x != 0) == len(resp)
    assert any(r["chosen"]["weights"] != e["chosen"]["weights"] for r, e in zip(rows["random_tokens"], rows["edit_distance"]))


def test_val_subset_is_task_balanced():
    qs = [Question(f"a/{i}", "a", f"qa{i}", "x") for i in range(5)] + [Question(f"b/{i}", "b", f"qb{i}", "x") for i in range(2)]
    sub = val_subset(qs, 4, seed=0)
    assert [q.task for q in sub] == ["a", "b", "a", "b"]
    assert val_subset(qs, 100, 0) == val_subset(qs, 100, 0) and len(val_subset(qs, 100, 0)) == 7


# ---------------------------------------------------------------- sign sanity (KRSL and DPO)


def _margin(model, tok, prompt, chosen, rejected):
    """Sum of log-probs of the chosen minus the rejected response after ``prompt``."""
    out = []
    for text in (chosen, rejected):
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        r = response_ids(tok, text)
        ids = torch.tensor([p + r])
        labels = torch.tensor([[-100] * len(p) + r])
        with torch.no_grad():
            out.append(token_log_probs(model(ids).logits, labels).sum().item())
    return out[0] - out[1]


def test_one_krsl_step_raises_chosen_over_rejected(data, tok, marked):
    _, _, pairs = data
    model = build_student(STUDENT, tok, seed=1)
    p = pairs[0]
    before = _margin(model, tok, student_prompt(p["question"]), p["chosen"], p["rejected"])
    rows, _ = krsl_dataset(marked[:1], {(p["id"], p["pair_type"]): p}, tok, 512, 1.0, 0.5)
    train(model, tok, rows, "krsl", {**section_defaults("train")["krsl"], "epochs": 1, "batch_size": 1, "lr": 1e-2,
                                      "scheduler": "constant", "logging_steps": 1, "progress": False}, seed=0)
    assert _margin(model, tok, student_prompt(p["question"]), p["chosen"], p["rejected"]) > before + 1e-3


def test_dpo_uses_our_tokenization_and_one_step_raises_chosen_over_rejected(data, tok):
    _, _, pairs = data
    model = build_student(STUDENT, tok, seed=1)
    rows, info = dpo_dataset(pairs, tok, 512)
    assert info == {"rows": len(pairs), "skipped": {}}
    hp = {**section_defaults("train")["dpo"], "epochs": 1, "batch_size": 1, "lr": 1e-2, "beta": 0.1,
          "scheduler": "constant", "logging_steps": 1, "progress": False}
    trainer = make_dpo_trainer(model, tok, rows[:1], hp, seed=0)
    ex = trainer.train_dataset[0]
    p = pairs[0]
    assert ex["prompt_ids"] == tok(student_prompt(p["question"]), add_special_tokens=False)["input_ids"]
    assert ex["chosen_ids"] == response_ids(tok, p["chosen"]) + [tok.eos_token_id]
    assert ex["rejected_ids"] == response_ids(tok, p["rejected"]) + [tok.eos_token_id]
    before = _margin(model, tok, student_prompt(p["question"]), p["chosen"], p["rejected"])
    trainer.train()
    assert _margin(model, tok, student_prompt(p["question"]), p["chosen"], p["rejected"]) > before + 1e-3
    assert dpo_dataset(pairs, tok, 20)[1]["skipped"] == {"too_long": len(pairs)}


# ---------------------------------------------------------------- smoke: every method trains and evaluates


@pytest.fixture(scope="module")
def smoke_runs(data, tok, marked, tmp_path_factory):
    sft, wrong, pairs = data
    params = _params()
    out = {}
    for name, d in METHOD_DEFS.items():
        d = {"steps": d} if isinstance(d, list) else d
        run_dir = tmp_path_factory.mktemp(name)
        report = run_method(d, params, tok, sft + wrong, pairs, marked, run_dir, seed=0, name=name)
        out[name] = (report, run_dir)
    return out


@pytest.mark.parametrize("name", sorted(METHOD_DEFS))
def test_every_method_trains_and_generates(name, smoke_runs, data, tok):
    report, run_dir = smoke_runs[name]
    method = parse_method(METHOD_DEFS[name], name)
    assert [s["loss"] for s in report["steps"]] == [s["loss"] for s in method.steps]
    assert report["format"] == method.format
    for s in report["steps"]:
        assert s["data"]["rows"] > 0 and s["selection"] == {"criterion": "last", "epoch": 1}
    model, tk = load_student(run_dir / f"step{method.final_step}")
    ex = method_exemplars(method, data[0], 0)
    prompts = [inference_prompt(method, q, ex) for q in _val_questions()[:2]]
    gens = generate(model, tk, prompts, max_new_tokens=3, batch_size=2, show_progress=False)
    assert len(gens) == 2 and all(isinstance(g, str) for g in gens)


def test_smoke_reports_record_the_data_choices(smoke_runs, data):
    sft, wrong, pairs = data
    rep = smoke_runs["std_cot_repeat"][0]["steps"][0]["data"]
    assert rep["repeated_to"] == len(sft) + len(pairs) == rep["rows"]
    assert smoke_runs["edit_logical"][0]["steps"][1]["data"]["mistake_subset"]["size"] == 1
    assert smoke_runs["edit_logical"][0]["steps"][1]["data"]["rows"] == 1
    assert smoke_runs["edit_dminus_only"][0]["steps"][1]["data"]["rows"] == 2
    assert smoke_runs["mt_cot"][0]["steps"][0]["data"]["rows"] == 2 * 4  # two tasks per D+ record
    assert smoke_runs["std_cot_dual"][0]["steps"][0]["data"]["rows"] == len(sft) + len(wrong)
    assert smoke_runs["edit_random_tokens"][0]["steps"][1]["settings"]["key_tokens"] == "random_tokens"
    assert smoke_runs["untuned_zero_shot"][0].get("untuned") is True


def test_alpha_beta_zero_leaves_the_step1_model_unchanged(smoke_runs):
    m1, _ = load_student(smoke_runs["edit_a0_b0"][1] / "step1")
    m2, _ = load_student(smoke_runs["edit_a0_b0"][1] / "step2")
    e2, _ = load_student(smoke_runs["edit"][1] / "step2")
    s1, s2, se = m1.state_dict(), m2.state_dict(), e2.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)  # zero weights: zero gradient
    assert any(not torch.equal(s1[k], se[k]) for k in s1)  # (1, 0.025) moves it


# ---------------------------------------------------------------- checkpoint selection


def test_best_val_accuracy_selection_is_recorded_and_restored(data, tok, marked, tmp_path):
    sft, wrong, pairs = data
    params = _params()
    val = _val_questions()
    method = {"format": "answer", "steps": [{"loss": "sft", "data": ["D+", "D-+"],
              "hp": {"epochs": 6, "batch_size": 2, "lr": 3e-2, "select": "best_val_accuracy",
                     "val_max_items": 6, "val_max_new_tokens": 16}}]}
    report = run_method(method, params, tok, sft, pairs, marked, tmp_path / "a", seed=0, val_questions=val)
    sel = report["steps"][0]["selection"]
    accs = [e["val_accuracy"] for e in sel["per_epoch"]]
    assert sel["criterion"] == "best_val_accuracy" and [e["epoch"] for e in sel["per_epoch"]] == list(range(1, 7))
    best = max(accs)
    assert best > 0 and len(set(accs)) > 1  # the accuracy really moves over the epochs
    assert sel["val_accuracy"] == best and sel["epoch"] == max(i + 1 for i, a in enumerate(accs) if a == best)
    model, tk = load_student(tmp_path / "a" / "step1")
    assert val_accuracy(model, tk, parse_method(method), val_subset(val, 6, 0), 16, 8) == best
    with pytest.raises(ValueError, match="val_questions"):
        run_method(method, params, tok, sft, pairs, marked, tmp_path / "b", seed=0)


def test_selection_saves_an_earlier_epoch_when_it_was_best(data, tok, tmp_path, monkeypatch):
    """With scripted validation accuracies 20, 70, 40 the saved model is the epoch-2 model, and the
    report says so (a broken restore would save the epoch-3 weights)."""
    sft, _, pairs = data
    scripted, snapshots = iter([20.0, 70.0, 40.0]), []

    def fake_val_accuracy(model, *args, **kwargs):
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return next(scripted)

    monkeypatch.setattr(training_run, "val_accuracy", fake_val_accuracy)
    method = [{"loss": "sft", "data": ["D+"], "hp": {"epochs": 3, "batch_size": 4, "lr": 1e-2,
                                                     "select": "best_val_accuracy", "val_max_items": 2}}]
    report = run_method(method, _params(), tok, sft, pairs, [], tmp_path, seed=0, val_questions=_val_questions())
    assert report["steps"][0]["selection"]["epoch"] == 2
    saved = load_student(tmp_path / "step1")[0].state_dict()
    assert all(torch.equal(saved[k], snapshots[1][k]) for k in saved)
    assert any(not torch.equal(saved[k], snapshots[2][k]) for k in saved)


def test_selection_restores_the_chosen_epoch_weights():
    """SelectCheckpoint on a hand-driven model: epoch accuracies 10, 30, 20 keep epoch 2."""
    from types import SimpleNamespace

    lin = torch.nn.Linear(2, 1)
    accs = iter([10.0, 30.0, 20.0])
    cb = SelectCheckpoint(lambda m: next(accs))
    snapshots = []
    for epoch in (1, 2, 3):
        with torch.no_grad():
            lin.weight.fill_(float(epoch))
        snapshots.append(lin.weight.clone())
        cb.on_epoch_end(None, SimpleNamespace(epoch=float(epoch)), None, model=lin)
    cb.restore(lin)
    assert torch.equal(lin.weight, snapshots[1])
    assert cb.summary()["epoch"] == 2 and cb.summary()["val_accuracy"] == 30.0


def test_reusing_a_shared_step_gives_the_same_model_as_training_it(smoke_runs, data, tok, marked, tmp_path):
    """The grid starts EDIT's ablations from EDIT's saved step 1: the steps both share are copied
    (not trained) and the result equals training the method from scratch, weight for weight."""
    sft, wrong, pairs = data
    params = _params()
    edit_report, edit_dir = smoke_runs["edit"]
    name = "edit_a1_b0"
    method = parse_method(METHOD_DEFS[name], name)
    assert shared_prefix(method, parse_method(METHOD_DEFS["edit"], "edit"), params) == 1
    assert shared_prefix(parse_method(METHOD_DEFS["edit_no_rwc"], "edit_no_rwc"),
                         parse_method(METHOD_DEFS["edit"], "edit"), params) == 0  # different step-1 data
    report = run_method(method, params, tok, sft + wrong, pairs, marked,
                        tmp_path / "reused", seed=0, name=name,
                        reuse=(parse_method(METHOD_DEFS["edit"], "edit"), edit_dir, edit_report))
    assert report["steps"][0]["reused_from"].endswith("step1") and "reused_from" not in report["steps"][1]
    fresh, _ = load_student(smoke_runs[name][1] / "step2")
    reused, _ = load_student(tmp_path / "reused" / "step2")
    for (k, a), (_, b) in zip(fresh.state_dict().items(), reused.state_dict().items()):
        assert torch.equal(a, b), k
    # a step-1 hyper-parameter of one method only means nothing is shared
    changed = copy.deepcopy(METHOD_DEFS[name])
    changed[0]["hp"] = {"lr": 0.5}
    assert shared_prefix(parse_method(changed, name), parse_method(METHOD_DEFS["edit"], "edit"), params) == 0


def test_validation_accuracy_scores_real_bbh_tasks_too(smoke_runs):
    """Checkpoint selection on a real-BBH profile validates on tasks outside the embedded world
    (their answer types come from the BBH table)."""
    _, run_dir = smoke_runs["std_cot"]
    model, tk = load_student(run_dir / "step1")
    qs = [Question("date_understanding/val/00000", "date_understanding", "Today is 9/7. What is the date tomorrow?\n"
                   "Options:\n(A) 09/08\n(B) 09/06", "(A)")]
    acc = val_accuracy(model, tk, parse_method(METHOD_DEFS["std_cot"], "std_cot"), qs, 4, 2)
    assert acc in (0.0, 100.0)
