"""The prompt-driven LLM teacher over an in-process scripted chat backend: batch calls, dual-CoT
construction with failures counted (never crashing), CCP exemplars from the run's own pairs,
make_teacher's backends, and the mistake-type judge."""
import json

import pytest

from edit.config_schema import section_defaults
from edit.dual import build_dual_cots, make_questions
from edit.llm.base import ChatBackend, ChatResult
from edit.llm.judge import apply_labels, judge_mistakes, judge_prompt, parse_label, record_key
from edit.llm.prompts import PromptBuilder
from edit.llm.teacher import DEFAULT_SAMPLING, LLMTeacher, sampling_per_kind
from edit.records import Question
from edit.teachers import make_teacher


class FakeBackend(ChatBackend):
    """Deterministic scripted replies: ``script(request) -> str`` (None: a failed call).
    Records every ``complete`` call (its tags and requests)."""

    name = "fake"

    def __init__(self, script, model="scripted-1"):
        self.script = script
        self.model = model
        self.calls = []

    def complete(self, requests, progress=True):
        self.calls.append(list(requests))
        out = []
        for r in requests:
            text = self.script(r)
            out.append(ChatResult(None, error="HTTP 500: scripted failure") if text is None
                       else ChatResult(text, finish_reason="stop", usage={"prompt_tokens": 3, "completion_tokens": 2}))
        return out


def _user(req):
    return req.message_dicts[-1]["content"]


def _query(req):
    """The last question of a prompt (the query)."""
    return _user(req).rsplit("Q: ", 1)[1].split("\n")[0]


QS = [Question(f"boolean_expressions/train/{i:05d}", "boolean_expressions", f"QUESTION-{i} is",
               "True" if i % 2 == 0 else "False") for i in range(10)]
GOLD = {q.input: q.target for q in QS}
FLIP = {"True": "False", "False": "True"}

# CEP: q0-q3 correct; q4-q7 wrong; q8 a failed call; q9 no answer phrase.
# AHP: q4, q5 rectified to the gold; q6 keeps the wrong answer; q7 a failed call.
# CCP: q0, q1 corrupted to the other answer; q2 keeps the gold; q3 no answer.


def script(req):
    q = _query(req)
    i = int(q.split("-")[1].split()[0])
    gold = GOLD[q]
    if req.tag == "cep":
        if i == 8:
            return None
        if i == 9:
            return "A: Let's think step by step.\nI am not sure."
        ans = gold if i < 4 else FLIP[gold]
        return f"A: Let's think step by step.\nStep for {i}. Therefore, the answer is {ans}.\n\nQ: invented"
    if req.tag == "ahp":
        if i == 7:
            return None
        return f"Fixed step for {i}. Therefore, the answer is {gold if i in (4, 5) else FLIP[gold]}."
    if req.tag == "ccp":
        return {0: f"Broken step 0. Therefore, the answer is {FLIP[gold]}.",
                1: f"Wrong response: Broken step 1. Therefore, the answer is {FLIP[gold]}.",
                2: f"Still right 2. Therefore, the answer is {gold}.",
                3: "No idea."}[i]
    raise AssertionError(req.tag)


@pytest.fixture()
def teacher(mirror):
    return LLMTeacher(FakeBackend(script), PromptBuilder(mirror), ccp_examples=2, max_resamples=0, seed=3)


def test_build_dual_cots_counts_failures_and_skips_them(teacher):
    data = build_dual_cots(QS, teacher, progress=False)
    t = data.summary["per_task"]["boolean_expressions"]
    assert t["questions"] == 10 and t["D+"] == 4 and t["D-"] == 4
    assert t["cep_error"] == 1 and t["cep_no_answer"] == 1
    assert (t["ahp_success"], t["ahp_failed"], t["ahp_error"]) == (2, 2, 1)
    assert (t["ccp_success"], t["ccp_failed"], t["ccp_same_answer"], t["ccp_no_answer"]) == (2, 2, 1, 1)
    rates = data.summary["rates"]["boolean_expressions"]
    assert rates == {"cep_accuracy": 0.5, "ahp_success_rate": 0.5, "ccp_success_rate": 0.5}
    assert data.summary["rates"]["total"] == rates
    assert [(p["id"][-1], p["pair_type"]) for p in data.pairs] == [("0", "D+dual"), ("1", "D+dual"),
                                                                  ("4", "D-dual"), ("5", "D-dual")]
    assert all(p["teacher"] == "llm:fake:scripted-1" for p in data.pairs)
    p0 = data.pairs[0]
    assert p0["chosen"] == "Step for 0. Therefore, the answer is True."  # echo and invented question cut
    assert p0["rejected"] == "Broken step 0. Therefore, the answer is False."
    assert data.pairs[1]["rejected"].startswith("Broken step 1")     # "Wrong response:" label dropped
    ids8 = [r for r in data.sft + data.wrong if r["id"].endswith("8") or r["id"].endswith("9")]
    assert ids8 == []
    assert {r["source"] for r in data.sft} == {"D+", "D-+"} and len(data.sft) == 6


def test_each_stage_is_one_batch_in_order_and_ccp_shows_the_run_pairs(teacher):
    build_dual_cots(QS, teacher, progress=False)
    calls = teacher.backend.calls
    assert [sorted({r.tag for r in c}) for c in calls] == [["cep"], ["ahp"], ["ccp"]]
    assert [len(c) for c in calls] == [10, 4, 4]
    ccp = _user(calls[2][0])
    # exemplars are this run's D-dual pairs (q4, q5: rectified = right, own wrong CoT = wrong)
    assert "Right response: Fixed step for 4. Therefore, the answer is True." in ccp
    assert "Wrong response: Step for 4. Therefore, the answer is False." in ccp
    assert ccp.endswith("Right response: Step for 0. Therefore, the answer is True.\nWrong response:")
    assert all(r.sampling_dict == DEFAULT_SAMPLING for c in calls for r in c)
    ahp = _user(calls[1][0])
    assert ahp.endswith("Q: QUESTION-4 is\nHint: the correct answer is True.\nA: Let's think step by step.")


def test_single_calls_and_failed_call_meta(teacher):
    cot = teacher.generate_cot(QS[0])
    assert cot.answer == "True" and cot.meta["prompt"] == "cep" and cot.meta["usage"]["prompt_tokens"] == 3
    failed = teacher.generate_cot(QS[8])
    assert failed.text == "" and failed.answer is None and "scripted failure" in failed.meta["error"]
    assert teacher.rectify(QS[4], cot).answer == "True"


def test_answer_type_of_real_bbh_tasks_can_be_given(mirror):
    q = Question("date_understanding/bbh/0", "date_understanding", "When?", "(B)")
    fake = FakeBackend(lambda r: "Dates. Therefore, the answer is (b).")
    t = LLMTeacher(fake, PromptBuilder(mirror), answer_type_of=lambda task: "option", max_resamples=0)
    assert t.generate_cot(q).answer == "(B)"


def test_resampling_is_bounded(mirror):
    pytest.importorskip("edit.llm.openai_backend")
    # the reply has the phrase only from the second resample on (temperature 0 + 2 * 0.3)
    fake = FakeBackend(lambda r: "Done. Therefore, the answer is True." if r.sampling_dict["temperature"] > 0.5
                       else "no phrase")
    t = LLMTeacher(fake, PromptBuilder(mirror), max_resamples=2, temperature_step=0.3)
    cot = t.generate_cot(QS[0])
    assert cot.answer == "True" and cot.meta["resamples"] == 2 and len(fake.calls) == 3
    never = FakeBackend(lambda r: "no phrase")
    t = LLMTeacher(never, PromptBuilder(mirror), max_resamples=2)
    assert t.generate_cot(QS[0]).answer is None and len(never.calls) == 3


def test_sampling_per_kind_merges_shared_and_per_prompt_values():
    s = sampling_per_kind({"temperature": 0.2, "ahp": {"temperature": 0.7}, "ccp": {"max_tokens": 99}})
    assert s["cep"] == {"temperature": 0.2, "max_tokens": 1024}
    assert s["ahp"] == {"temperature": 0.7, "max_tokens": 1024}
    assert s["ccp"] == {"temperature": 0.2, "max_tokens": 99}
    with pytest.raises(ValueError, match="sampling.cep"):
        sampling_per_kind({"cep": 0.3})


def test_oracle_batch_calls_equal_single_calls_and_ignore_llm_keys():
    qs = make_questions({"navigate": {}, "web_of_lies": {}}, 6, "train", seed=1)
    section = {"backend": "oracle", "error_rate": 0.5, "seed": 0, "prompt_source": "ours",
               "sampling": {"temperature": 0.0}, "cache": {"path": "x"}}
    a, b = make_teacher(section), make_teacher(section)
    batch = a.generate_cots(qs)
    assert [c.to_dict() for c in batch] == [b.generate_cot(q).to_dict() for q in qs]
    items = list(zip(qs, batch))
    assert [c.to_dict() for c in a.corrupt_many(items)] == [b.corrupt(q, c).to_dict() for q, c in items]
    assert [c.to_dict() for c in a.rectify_many(items)] == [b.rectify(q, c).to_dict() for q, c in items]


def test_make_teacher_openai_is_lazy_and_cached(mirror, tmp_path, monkeypatch):
    pytest.importorskip("edit.llm.openai_backend")
    pytest.importorskip("edit.llm.cache")
    monkeypatch.delenv("EDIT_TEST_NO_KEY", raising=False)
    t = make_teacher(section_defaults(
        "teacher", backend="openai", prompt_source="edit_files", seed=4,
        openai={"model": "m-1", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "EDIT_TEST_NO_KEY",
                "allow_missing_key": True},
        cache={"path": str(tmp_path / "calls.jsonl")}), mirror=mirror)
    assert isinstance(t, LLMTeacher) and t.name == "llm:openai:m-1" and t.prompts.source == "edit_files"
    assert type(t.backend).__name__ == "CachedBackend" and t.seed == 4
    with pytest.raises(ValueError, match="unknown teacher backend 'gpt-9'"):
        make_teacher({"backend": "gpt-9"})


# ------------------------------------------------------------------------------------ judge
@pytest.mark.parametrize("reply,label", [
    ("Mistake type: calculation\nThe sum in step 2 is wrong.", "calculation"),
    ("**Mistake type:** *Logical*. It inverts the rule.", "logical"),
    ("mistake_type = knowledge", "knowledge"),
    ("Knowledge. The model misremembers the rule.", "knowledge"),
    ("The error is an arithmetic slip in step 3.", "calculation"),
    ("It is a logical error, not a calculation error.", "other"),  # names two, no label line
    ("Mistake type: banana", "other"),
    ("", "other"),
])
def test_parse_label(reply, label):
    assert parse_label(reply) == label


def _wrong_records():
    return [
        {"id": "a", "task": "navigate", "question": "QA", "gold": "Yes", "pair_type": "D-dual",
         "chosen": "RIGHT-A", "rejected": "WRONG-A", "mistake_type": None},
        {"id": "b", "task": "navigate", "question": "QB", "gold": "No", "pair_type": "D+dual",
         "chosen": "RIGHT-B", "rejected": "WRONG-B", "mistake_type": None},
        {"id": "c", "task": "navigate", "question": "QC", "gold": "No", "source": "D-", "response": "WRONG-C",
         "mistake_type": "logical"},
        {"id": "d", "task": "navigate", "question": "QD", "gold": "No", "source": "D-", "response": "WRONG-D"},
    ]


def test_judge_labels_each_wrong_cot_and_counts_failures():
    def judge_script(req):
        u = _user(req)
        if "WRONG-A" in u:
            return "Mistake type: calculation"
        if "WRONG-B" in u:
            return "I cannot tell."
        if "WRONG-C" in u:
            return "Mistake type: knowledge"
        return None

    fake = FakeBackend(judge_script)
    res = judge_mistakes(_wrong_records(), fake, progress=False)
    assert res.labels == {"a#D-dual": "calculation", "b#D+dual": "other", "c#D-": "knowledge", "d#D-": None}
    assert res.counts == {"logical": 0, "knowledge": 1, "calculation": 1, "other": 1, "failed": 1, "unparsed": 1}
    assert len(fake.calls) == 1 and all(r.tag == "judge" for r in fake.calls[0])
    labelled = apply_labels(_wrong_records(), res.labels)
    assert [r.get("mistake_type") for r in labelled] == ["calculation", "other", "logical", None]
    assert apply_labels(_wrong_records(), res.labels, overwrite=True)[2]["mistake_type"] == "knowledge"


def test_judge_prompt_shows_question_gold_wrong_and_right():
    recs = _wrong_records()
    p = judge_prompt(recs[0])
    for s in ("QA", "Correct final answer: Yes", "WRONG-A", "RIGHT-A", "Mistake type:"):
        assert s in p
    assert p.index("RIGHT-A") < p.index("Wrong reasoning:\nWRONG-A")
    assert "correct reasoning" not in judge_prompt(recs[2]) and "WRONG-C" in judge_prompt(recs[2])
    with pytest.raises(ValueError, match="'z'"):
        judge_prompt({"id": "z", "question": "q", "gold": "g"})
    with pytest.raises(ValueError, match="duplicate"):
        judge_mistakes([recs[0], recs[0]], FakeBackend(lambda r: "x"), progress=False)
    assert record_key({"id": "q"}) == "q"
    json.dumps(judge_mistakes(recs[:1], FakeBackend(lambda r: "logic"), progress=False).labels)
