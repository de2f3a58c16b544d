"""Generation: stopping at the answer sentence, batched == one-at-a-time, self-consistency sampling
and voting, LoRA adapters, and the evaluation records built on top."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edit import evaluate as ev
from edit.config_schema import section_defaults
from edit.evaluate import (LONG_COLUMNS, evaluate_suite, long_accuracy, majority_vote,
                           write_results)
from edit.formats import student_prompt
from edit.generation import (AnswerSentenceStop, GenConfig, answer_end, generate, generate_with, sample,
                             trim_after_answer, vllm_available)
from edit.io import read_jsonl
from edit.records import Question
from edit.student import add_lora, build_student, load_student, save_student, train_tokenizer

torch.set_num_threads(1)

# Questions and the responses the tiny model memorises. Responses go on after their answer
# sentence (except the one that ends in EOS) so that stopping and trimming are visible; one has
# a decimal number ("3.5." must not be cut at "3."), one ends its answer sentence with a newline,
# one never gives an answer. Prompts have different lengths.
DATA = [
    ("Is A before B?", "A comes first. Therefore, the answer is (B).\nQ: another question follows here"),
    ("What is 1.5 plus 2, written with all of its digits and a long preamble to make this prompt longer?",
     "1.5 + 2 = 3.5. Therefore, the answer is 3.5. Then we keep on talking about it."),
    ("not True is", "not True = False. Therefore, the answer is False."),
    ("Walk north.", "We walk north and then we walk north again and again without end"),
    ("Does Ka tell the truth?", "Ka lies. So the answer is No\nQ: Does Bo lie? A: yes"),
]
ENDS_WITH_EOS = {2}
EXPECTED_STOPPED = [
    "A comes first. Therefore, the answer is (B).",
    "1.5 + 2 = 3.5. Therefore, the answer is 3.5.",
    "not True = False. Therefore, the answer is False.",
    None,  # no answer: runs to max_new_tokens
    "Ka lies. So the answer is No",
]
PROMPTS = [student_prompt(q) for q, _ in DATA]
TINY = section_defaults("student", kind="tiny_llama", hidden_size=48, intermediate_size=96, num_layers=2, num_heads=2,
                        max_length=256)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer([student_prompt(q) + r for q, r in DATA], 300)


@pytest.fixture(scope="module")
def memorised(tok):
    """A tiny Llama that has memorised DATA (greedy decoding reproduces each response)."""
    model = build_student(TINY, tok, seed=0)
    rows = []
    for i, (q, r) in enumerate(DATA):
        p = tok(student_prompt(q), add_special_tokens=False)["input_ids"]
        ids = tok(r, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if i in ENDS_WITH_EOS else [])
        rows.append((p + ids, [-100] * len(p) + ids))
    width = max(len(a) for a, _ in rows)
    x = torch.tensor([a + [tok.pad_token_id] * (width - len(a)) for a, _ in rows])
    y = torch.tensor([b + [-100] * (width - len(b)) for _, b in rows])
    att = (torch.arange(width)[None, :] < torch.tensor([len(a) for a, _ in rows])[:, None]).long()
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(500):
        loss = model(input_ids=x, attention_mask=att, labels=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.005:
            break
    model.eval()
    full = generate(model, tok, PROMPTS, max_new_tokens=30, batch_size=8, show_progress=False, stop_at_answer=False)
    for (q, r), g in zip(DATA, full):
        n = min(len(r), len(g))
        assert g[:n] == r[:n], f"fixture did not memorise {q!r}: {g!r}"
    return model


@pytest.fixture(scope="module")
def random_model(tok):
    """An untrained tiny Llama whose weights are scaled up so that its outputs vary with the prompt."""
    model = build_student(TINY, tok, seed=1)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.15)
    return model


class ForwardCounter:
    """Counts forward passes of a model's decoder (one per generated token position)."""

    def __init__(self, model):
        self.n = 0
        self.handle = model.model.register_forward_hook(self._hook)

    def _hook(self, *args):
        self.n += 1

    def close(self):
        self.handle.remove()


# ---------------------------------------------------------------- the answer sentence


@pytest.mark.parametrize("text,expected", [
    ("x. Therefore, the answer is (B).\nQ: more", "x. Therefore, the answer is (B)."),
    ("Therefore, the answer is 3.5. Then", "Therefore, the answer is 3.5."),
    ("Therefore, the answer is 3.5", "Therefore, the answer is 3.5"),  # not finished: unchanged
    ("Therefore, the answer is 3.", "Therefore, the answer is 3."),  # "3." may still become "3.5"
    ("So the answer is No\nQ: next", "So the answer is No"),
    ("no phrase. At all.\n", "no phrase. At all.\n"),
    ("1. 2. the answer is True. And the answer is False.", "1. 2. the answer is True."),
    ("the answer issue. the answer is (A). x", "the answer issue. the answer is (A)."),
])
def test_trim_after_answer(text, expected):
    assert trim_after_answer(text) == expected


def test_answer_end_needs_a_character_after_the_period():
    assert answer_end("the answer is 4.") is None
    assert answer_end("the answer is 4. ") == len("the answer is 4.")
    assert answer_end("the answer is 4.5 ") is None
    assert answer_end("The Answer Is 4.\n") == len("The Answer Is 4.")


PIECES = ["the answer is", "So ", "(B)", "3", ".", "5", " ", "\n", "x", "is", "The Answer"]


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.sampled_from(PIECES), max_size=14).map("".join), cut=st.integers(min_value=0, max_value=120))
def test_stopping_early_never_changes_the_trimmed_text(text, cut):
    """The invariant that makes early stopping safe: once a prefix holds a finished answer sentence,
    every longer text trims to the same thing, and trimming is idempotent."""
    prefix = text[:cut]
    if answer_end(prefix) is not None:
        assert trim_after_answer(text) == trim_after_answer(prefix)
    assert trim_after_answer(trim_after_answer(text)) == trim_after_answer(text)


class _CharTok:
    """A stand-in tokenizer: one token per character (ids = code points), EOS = 0."""

    all_special_ids = [0]
    eos_token_id = 0

    def decode(self, ids, skip_special_tokens=False):
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        return "".join(chr(i) for i in ids if not (skip_special_tokens and i == 0))


def test_stop_criterion_per_row_at_the_first_finished_sentence():
    rows = ["ab the answer is (C). more", "the answer is 3.5. x", "no answer here at all....."]
    prompt = [ord("P")] * 3
    width = max(map(len, rows))
    crit = AnswerSentenceStop(_CharTok(), prompt_len=len(prompt))
    stopped_at = [None] * 3
    for step in range(1, width + 1):
        ids = torch.tensor([prompt + [ord(c) for c in r.ljust(width, "~")[:step]] for r in rows])
        done = crit(ids, None)
        for r, d in enumerate(done.tolist()):
            if d and stopped_at[r] is None:
                stopped_at[r] = step
    # row 0 stops once the character after "(C)." is seen, row 1 after the one after "3.5."
    assert stopped_at[0] == len("ab the answer is (C).") + 1
    assert stopped_at[1] == len("the answer is 3.5.") + 1
    assert stopped_at[2] is None


# ---------------------------------------------------------------- greedy generation


def test_stops_at_the_answer_sentence_and_trims(memorised, tok):
    out = generate(memorised, tok, PROMPTS, max_new_tokens=30, batch_size=8, show_progress=False)
    for (q, r), g, exp in zip(DATA, out, EXPECTED_STOPPED):
        if exp is None:
            assert "answer" not in g and len(tok(g, add_special_tokens=False)["input_ids"]) >= 25
        else:
            assert g == exp, q


def test_stopping_equals_trimming_a_full_generation(memorised, tok):
    full = generate(memorised, tok, PROMPTS, max_new_tokens=30, batch_size=8, show_progress=False,
                    stop_at_answer=False)
    stopped = generate(memorised, tok, PROMPTS, max_new_tokens=30, batch_size=8, show_progress=False)
    assert stopped == [trim_after_answer(g) for g in full]
    assert stopped != full  # trimming really happened


def test_a_batch_whose_rows_all_answer_stops_early(memorised, tok):
    answering = [PROMPTS[i] for i in (0, 1, 4)]
    counter = ForwardCounter(memorised)
    try:
        generate(memorised, tok, answering, max_new_tokens=60, batch_size=8, show_progress=False)
        with_stop = counter.n
        counter.n = 0
        generate(memorised, tok, answering, max_new_tokens=60, batch_size=8, show_progress=False,
                 stop_at_answer=False)
        without = counter.n
    finally:
        counter.close()
    longest = max(len(tok(EXPECTED_STOPPED[i], add_special_tokens=False)["input_ids"]) for i in (0, 1, 4))
    assert without == 60
    assert with_stop <= longest + 2 < without


@pytest.mark.parametrize("which", ["memorised", "random_model"])
def test_batched_left_padded_equals_one_at_a_time(which, request, tok):
    model = request.getfixturevalue(which)
    prompts = PROMPTS + ["Q: x\nA:", "Q: " + "a very long question " * 6 + "\nA: Let's think step by step.\n"]
    single = [generate(model, tok, [p], max_new_tokens=24, batch_size=1, show_progress=False)[0] for p in prompts]
    for bs, cache in ((2, "auto"), (7, "auto"), (7, "dynamic"), (3, "static")):
        assert generate(model, tok, prompts, max_new_tokens=24, batch_size=bs, show_progress=False,
                        cache=cache) == single, (bs, cache)
    assert len(set(single)) == len(single)  # outputs depend on the prompt: order is really checked
    # rows that stopped early share a batch with rows that went on (memorised model)
    if which == "memorised":
        assert single[0] == EXPECTED_STOPPED[0] and "answer" not in single[3]


def test_prompt_order_is_kept_and_the_tokenizer_restored(memorised, tok):
    tok.padding_side = "right"
    fwd = generate(memorised, tok, PROMPTS, max_new_tokens=20, batch_size=3, show_progress=False)
    rev = generate(memorised, tok, PROMPTS[::-1], max_new_tokens=20, batch_size=2, show_progress=False)
    assert rev == fwd[::-1]
    assert tok.padding_side == "right"


def test_unknown_backend_and_missing_vllm_are_clear_errors(memorised, tok):
    with pytest.raises(ValueError, match="backend"):
        generate(memorised, tok, PROMPTS[:1], max_new_tokens=2, backend="tgi")
    with pytest.raises(ValueError, match="backend"):
        GenConfig(backend="tgi")
    with pytest.raises(ValueError, match="cache"):
        generate(memorised, tok, PROMPTS[:1], max_new_tokens=2, cache="paged")
    if not vllm_available():
        with pytest.raises(RuntimeError, match="vllm"):
            generate(memorised, tok, PROMPTS[:1], max_new_tokens=2, backend="vllm")


def test_vllm_backend_matches_hf(memorised, tok, tmp_path):
    pytest.importorskip("vllm")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a GPU here")
    from vllm import LLM

    save_student(memorised, tok, tmp_path)
    llm = LLM(model=str(tmp_path), dtype="float32", seed=0)
    hf = generate(memorised, tok, PROMPTS, max_new_tokens=30, show_progress=False)
    assert generate(llm, tok, PROMPTS, max_new_tokens=30, backend="vllm") == hf


# ---------------------------------------------------------------- sampling / self-consistency


def test_samples_are_kept_per_prompt(memorised, tok):
    """At a near-zero temperature every sample of prompt i is prompt i's greedy output: a sample
    paired with another prompt (an N x k list read by position) would show up."""
    greedy = generate(memorised, tok, PROMPTS, max_new_tokens=30, batch_size=4, show_progress=False)
    out = sample(memorised, tok, PROMPTS, num_samples=3, max_new_tokens=30, temperature=1e-3, seed=0,
                 batch_size=4, show_progress=False)
    assert [len(o) for o in out] == [3] * len(PROMPTS)
    assert out == [[g] * 3 for g in greedy]


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(random_model, tok):
    kw = dict(num_samples=4, max_new_tokens=12, temperature=1.5, top_p=1.0, batch_size=5, show_progress=False)
    torch.manual_seed(123)
    a = sample(random_model, tok, PROMPTS[:3], seed=7, **kw)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after)  # sample() did not consume the global random stream
    assert sample(random_model, tok, PROMPTS[:3], seed=7, **kw) == a
    assert sample(random_model, tok, PROMPTS[:3], seed=8, **kw) != a
    assert all(len(set(s)) > 1 for s in a)  # samples of a prompt really differ


def test_generate_with_config(memorised, tok):
    cfg = GenConfig.from_params({"max_new_tokens": 30, "batch_size": 4, "suites": {"IND": "x"},
                                 "self_consistency": {"k": 2, "temperature": 1e-3, "seed": 3}})
    assert (cfg.num_samples, cfg.temperature, cfg.seed) == (2, 1e-3, 3)
    out = generate_with(memorised, tok, PROMPTS[:2], cfg, show_progress=False)
    assert out == [[EXPECTED_STOPPED[0]] * 2, [EXPECTED_STOPPED[1]] * 2]
    assert generate_with(memorised, tok, PROMPTS[:2], {"max_new_tokens": 30}, show_progress=False) == \
        [[EXPECTED_STOPPED[0]], [EXPECTED_STOPPED[1]]]
    with pytest.raises(ValueError, match="num_samples"):
        GenConfig(num_samples=0)


# ---------------------------------------------------------------- LoRA


def test_lora_adapter_changes_outputs_and_survives_save_and_load(tok, tmp_path):
    lora = {"enabled": True, "r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    base = build_student(TINY, tok, seed=5)
    base_out = generate(base, tok, PROMPTS, max_new_tokens=12, show_progress=False)
    tuned = add_lora(build_student(TINY, tok, seed=5), lora, seed=5)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 2.0)
    tuned_out = generate(tuned, tok, PROMPTS, max_new_tokens=12, show_progress=False)
    assert tuned_out != base_out
    with tuned.disable_adapter():
        assert generate(tuned, tok, PROMPTS, max_new_tokens=12, show_progress=False) == base_out
    # batched == one at a time with the adapter too
    assert [generate(tuned, tok, [p], 12, batch_size=1, show_progress=False)[0] for p in PROMPTS] == tuned_out
    save_student(tuned, tok, tmp_path / "lora", seed=5)
    loaded, ltok = load_student(tmp_path / "lora", base=dict(TINY, lora=lora))
    assert generate(loaded, ltok, PROMPTS, max_new_tokens=12, show_progress=False) == tuned_out


# ---------------------------------------------------------------- evaluation records


@dataclass(frozen=True)
class Item:
    id: str
    task: str
    input: str
    target: str
    answer_type: str
    targets: tuple = ()


ITEMS = [
    Item("t/0", "opt", DATA[0][0], "(B)", "option"),
    Item("t/1", "num", DATA[1][0], "3.5", "number"),
    Item("t/2", "bool", DATA[2][0], "True", "bool"),  # the model says False
    Item("t/3", "opt", DATA[3][0], "(A)", "option"),  # no answer
    Item("t/4", "yn", DATA[4][0], "Yes", "yes_no", targets=("no",)),  # an accepted alias
]


def test_evaluate_suite_records_and_frame(memorised, tok):
    recs, frame = evaluate_suite(memorised, tok, ITEMS, "IND", {"max_new_tokens": 30, "batch_size": 3},
                                 show_progress=False)
    assert [r["id"] for r in recs] == [it.id for it in ITEMS]
    assert [r["correct"] for r in recs] == [True, True, False, False, True]
    assert [r["extracted"] for r in recs] == ["(B)", "3.5", "False", None, "No"]
    assert recs[4]["gold"] == "Yes" and recs[4]["gold_matched"] == "no"
    r0 = recs[0]
    assert r0["prompt"] == PROMPTS[0] and r0["generation"] == EXPECTED_STOPPED[0]
    assert r0["complete"] is True and r0["answer_type"] == "option" and r0["suite"] == "IND"
    from edit.scoring import score
    assert set(score("x", "y", "option")) <= set(r0)  # every diagnostic of score() is passed through
    acc = frame.set_index(["suite", "task"])
    assert acc.loc[("IND", "opt"), "accuracy"] == pytest.approx(50.0)
    assert acc.loc[("IND", "ALL"), "accuracy"] == pytest.approx(60.0)
    assert acc.loc[("IND", "MACRO"), "accuracy"] == pytest.approx((50 + 100 + 0 + 100) / 4)


def test_evaluate_suite_prompt_fn_and_answer_type_callable(memorised, tok):
    items = [{"id": "d/0", "task": "opt", "input": "IGNORED", "target": "(B)"}]
    seen = []

    def prompt_fn(x):
        seen.append(x)
        return PROMPTS[0]

    recs, _ = evaluate_suite(memorised, tok, items, "OOD", {"max_new_tokens": 30}, answer_type=lambda t: "option",
                             prompt_fn=prompt_fn, show_progress=False)
    assert seen == ["IGNORED"] and recs[0]["correct"] is True
    # a prompt built from the whole item (few-shot prompts need its task) wins over prompt_fn
    recs, _ = evaluate_suite(memorised, tok, items, "OOD", {"max_new_tokens": 30}, answer_type=lambda t: "option",
                             prompt_fn=lambda x: 1 / 0, item_prompt=lambda it: PROMPTS[it["task"] == "opt"],
                             show_progress=False)
    assert recs[0]["prompt"] == PROMPTS[1] and recs[0]["extracted"] is None and recs[0]["correct"] is False
    with pytest.raises(ValueError, match="d/0.*answer_type"):
        evaluate_suite(memorised, tok, items, "OOD", {"max_new_tokens": 2}, show_progress=False)


def test_self_consistency_votes_per_question(monkeypatch, tok):
    """The vote uses each question's own samples; ties go to the first-seen answer."""
    samples = {
        PROMPTS[0]: ["the answer is (A). ", "the answer is (B). ", "the answer is (B). ", "no answer"],
        PROMPTS[1]: ["the answer is (C). ", "the answer is (A). ", "the answer is (A). ", "the answer is (C). "],
        PROMPTS[2]: ["nothing", "nothing", "nothing", "nothing"],
    }

    def fake_generate_with(model, tokenizer, prompts, cfg, show_progress=True):
        assert cfg.num_samples == 4
        return [samples[p] for p in prompts]

    monkeypatch.setattr(ev, "generate_with", fake_generate_with)
    items = [Item(f"sc/{i}", "opt", DATA[i][0], gold, "option") for i, gold in enumerate(["(B)", "(A)", "(A)"])]
    recs, _ = evaluate_suite(None, tok, items, "IND", {"num_samples": 4}, show_progress=False)
    assert [r["extracted"] for r in recs] == ["(B)", "(C)", None]
    assert [r["correct"] for r in recs] == [True, False, False]
    assert [r["votes"] for r in recs] == [2, 2, 0]
    assert recs[0]["generation"] == samples[PROMPTS[0]][1]  # the first sample that gave the voted answer
    assert [s["generation"] for s in recs[1]["samples"]] == samples[PROMPTS[1]]
    assert [s["extracted"] for s in recs[0]["samples"]] == ["(A)", "(B)", "(B)", None]


def test_self_consistency_end_to_end(memorised, tok):
    recs, frame = evaluate_suite(memorised, tok, ITEMS[:2], "IND",
                                 {"max_new_tokens": 30, "self_consistency": {"k": 3, "temperature": 1e-3}},
                                 show_progress=False)
    assert [r["correct"] for r in recs] == [True, True] and [r["votes"] for r in recs] == [3, 3]
    assert all(len(r["samples"]) == 3 for r in recs)


@pytest.mark.parametrize("answers,expected", [
    (["(A)", None, "(B)", "(B)"], ("(B)", 2)),
    (["(B)", "(A)", "(A)", "(B)"], ("(B)", 2)),
    ([None, "(A)", "(B)"], ("(A)", 1)),
    ([None, None], (None, 0)),
    ([], (None, 0)),
])
def test_majority_vote(answers, expected):
    assert majority_vote(answers) == expected


def test_evaluate_suite_results_are_written(memorised, tok, tmp_path):
    qs = [Question(id=f"q/{i}", task="opt" if i < 2 else "bool", input=DATA[i][0],
                   target=["(B)", "(A)", "False"][i]) for i in range(3)]
    types = {"opt": "option", "bool": "bool"}
    recs, acc = evaluate_suite(memorised, tok, qs, "IND", {"max_new_tokens": 30, "batch_size": 2},
                               answer_type=types.__getitem__, show_progress=False)
    assert [r["correct"] for r in recs] == [True, False, True]
    assert list(acc.columns) == ["suite", "task", "n", "correct", "accuracy"]
    long = long_accuracy(acc, "edit", "tiny_llama", 2)
    assert list(long.columns) == LONG_COLUMNS
    assert list(long["task"]) == ["bool", "opt", "ALL", "MACRO"]
    assert long.loc[long.task == "MACRO", "accuracy"].item() == pytest.approx(75.0)
    paths = write_results(tmp_path / "run", recs, long)
    back = list(read_jsonl(paths["samples"]))
    assert [r["id"] for r in back] == ["q/0", "q/1", "q/2"] and back[0]["generation"] == EXPECTED_STOPPED[0]
    csv = pd.read_csv(paths["accuracy"])
    assert list(csv.columns) == LONG_COLUMNS and csv["seed"].tolist() == [2] * 4
    with pytest.raises(ValueError, match="student"):
        write_results(tmp_path / "bad", recs, acc)
