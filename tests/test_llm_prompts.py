"""EDIT prompts (CEP / AHP / CCP) built from the real BBH prompt files, the verbatim EDIT files,
the CCP exemplar choice, templates, and the parsing of teacher replies."""
import re

import pytest

from edit.llm.prompts import (
    ContrastiveExample,
    PromptBuilder,
    clean_reply,
    edit_prompt_file,
    load_template,
    parse_bbh_cot_prompt,
    parse_reply,
    pick_contrastive_examples,
    read_vanilla_prompt,
    render,
)
from edit.records import ANSWER_PHRASE, Question

TASKS = ("date_understanding", "navigate", "multistep_arithmetic_two", "dyck_languages")


def _bbh_exemplars(mirror, task):
    """The 3 exemplars of BBH's own file, read independently of the code under test."""
    text = (mirror / "bbh" / "cot-prompts" / f"{task}.txt").read_text()
    blocks = text.split("\n\nQ: ")[1:]
    out = []
    for b in blocks:
        q, cot = b.split("\nA: Let's think step by step.\n")
        answer = re.search(r"So the answer is (.*)\.\s*$", cot).group(1)
        out.append((q, cot.rstrip(), answer))
    return out


def _question(mirror, task):
    import json

    from edit.oracle import bbh_file

    ex = json.loads(bbh_file(mirror, task).read_text())["examples"][7]
    return Question(f"{task}/bbh/00007", task, ex["input"], ex["target"])


@pytest.mark.parametrize("task", TASKS)
def test_cep_holds_the_three_exemplars_with_our_answer_phrase_and_ends_with_the_query(mirror, task):
    q = _question(mirror, task)
    msgs = PromptBuilder(mirror).cep_messages(q)
    assert [m["role"] for m in msgs] == ["user"]
    prompt = msgs[0]["content"]
    shots = _bbh_exemplars(mirror, task)
    assert len(shots) == 3
    for bq, bcot, ans in shots:
        converted = bcot[: bcot.rfind("So the answer is")] + f"{ANSWER_PHRASE} {ans}."
        assert f"Q: {bq}\nA: Let's think step by step.\n{converted}\n\n" in prompt
    assert prompt.endswith(f"Q: {q.input}\nA: Let's think step by step.")
    assert "So the answer is" not in prompt and "canary" not in prompt and "-----" not in prompt
    assert prompt.count(ANSWER_PHRASE + " ") == 3 + 1  # 3 exemplars + the instruction's format line
    # every exemplar's answer sentence is the last line of its CoT
    for block in prompt.split("\n\nQ: ")[1:-1]:
        assert re.search(re.escape(ANSWER_PHRASE) + r" [^\n]+\.$", block)


@pytest.mark.parametrize("task", TASKS)
def test_ahp_adds_a_hint_with_each_answer_and_the_gold_before_the_query_slot(mirror, task):
    q = _question(mirror, task)
    prompt = PromptBuilder(mirror).ahp_prompt(q)
    shots = _bbh_exemplars(mirror, task)
    for bq, _, ans in shots:
        assert f"Q: {bq}\nHint: the correct answer is {ans}.\nA: Let's think step by step.\n" in prompt
    assert prompt.endswith(f"Q: {q.input}\nHint: the correct answer is {q.target}.\nA: Let's think step by step.")
    assert prompt.count("Hint: the correct answer is") == 4
    # the same exemplars as CEP, hint lines aside
    cep = PromptBuilder(mirror).cep_prompt(q)
    assert cep.split("\n\n", 1)[1] == re.sub(r"Hint: [^\n]*\n", "", prompt.split("\n\n", 1)[1])


def test_every_bbh_prompt_file_parses_into_three_converted_exemplars(mirror):
    files = sorted((mirror / "bbh" / "cot-prompts").glob("*.txt"))
    assert len(files) == 27
    for f in files:
        tp = parse_bbh_cot_prompt(f.read_text(), f.stem)
        assert len(tp.exemplars) == 3, f.stem
        for e in tp.exemplars:
            assert e.cot.endswith(f"{ANSWER_PHRASE} {e.answer}.") and "So the answer is" not in e.cot, f.stem


def test_ccp_shows_the_run_pairs_then_the_right_response_to_corrupt(mirror):
    q = _question(mirror, "navigate")
    ex = [ContrastiveExample("navigate/train/1", "navigate", "Q-one", "right one. Therefore, the answer is Yes.",
                             "wrong one. Therefore, the answer is No.")]
    prompt = PromptBuilder(mirror).ccp_prompt(q, "my right CoT. Therefore, the answer is No.", ex)
    assert "Q: Q-one\nRight response: right one. Therefore, the answer is Yes.\n" \
           "Wrong response: wrong one. Therefore, the answer is No.\n\n" in prompt
    assert prompt.endswith(f"Q: {q.input}\nRight response: my right CoT. Therefore, the answer is No.\nWrong response:")
    assert prompt.startswith(PromptBuilder(mirror).task_prompt("navigate").description)
    zero = PromptBuilder(mirror).ccp_prompt(q, "R", [])
    assert "Right response:" in zero and zero.count("Q: ") == 1


def test_edit_files_are_used_byte_for_byte(mirror):
    q = Question("dyck_languages/bbh/1", "dyck_languages", "Input: [ { {CORRECT} <", "] } >")
    b = PromptBuilder(mirror, source="edit_files", system_prompt="SYS")
    for kind, prompt, values in (
        ("cep", b.cep_prompt(q), {"QUESTION": q.input}),
        ("ahp", b.ahp_prompt(q), {"QUESTION": q.input, "CORRECT": q.target}),
        ("ccp", b.ccp_prompt(q, "RIGHT COT", [ContrastiveExample("x", "t", "ignored", "r", "w")]),
         {"QUESTION": q.input, "RIGHT": "RIGHT COT", "WRONG": ""}),
    ):
        raw = edit_prompt_file(mirror, kind, q.task).read_bytes().decode("utf-8")
        expected = raw
        for name, value in values.items():
            assert "{" + name + "}" in raw
            expected = expected.replace("{" + name + "}", "\x00" + name + "\x00")
        for name, value in values.items():
            expected = expected.replace("\x00" + name + "\x00", value)
        assert prompt == expected, kind
        head = raw[: raw.index("{QUESTION}")]
        assert prompt.startswith(head) and len(head) > 500
        assert "ignored" not in prompt
    msgs = b.cep_messages(q)
    assert msgs[0] == {"role": "system", "content": "SYS"} and msgs[1]["role"] == "user"
    assert "{CORRECT}" in b.ahp_prompt(q).split("Q: ")[-1]  # a value is never substituted again


def test_missing_files_and_bad_source_are_clear_errors(mirror, tmp_path):
    q = Question("x", "no_such_task", "q", "a")
    with pytest.raises(FileNotFoundError, match="no_such_task"):
        PromptBuilder(mirror).cep_prompt(q)
    with pytest.raises(FileNotFoundError, match="cot-ahp"):
        PromptBuilder(tmp_path, "edit_files").ahp_prompt(Question("x", "navigate", "q", "a"))
    with pytest.raises(ValueError, match="prompt_source"):
        PromptBuilder(mirror, source="theirs")


def test_vanilla_prompt_escapes_become_newlines(mirror):
    text = read_vanilla_prompt(mirror, "prompt_3shotcot_for_vanilla")
    assert "\\n" not in text and "\n\nQ: " in text


def test_render_fills_once_and_names_the_template():
    assert render("a {{x}} b {{y}}", "t", x="{{y}}", y="2") == "a {{y}} b 2"
    with pytest.raises(ValueError, match="'t'.*missing values for \\['y'\\]"):
        render("{{x}} {{y}}", "t", x="1")
    with pytest.raises(ValueError, match="no placeholder for \\['z'\\]"):
        render("{{x}}", "t", x="1", z="2")
    assert not load_template("cep").endswith("\n")


def _pairs():
    out = []
    for task, n in (("navigate", 5), ("web_of_lies", 1)):
        for i in range(n):
            out.append({"id": f"{task}/train/{i:05d}", "task": task, "question": f"{task} q{i}", "pair_type": "D-dual",
                        "chosen": f"right {task} {i}", "rejected": f"wrong {task} {i}"})
    out.append({"id": "navigate/train/99999", "task": "navigate", "question": "d+", "pair_type": "D+dual",
                "chosen": "c", "rejected": "r"})
    return out


def test_contrastive_examples_are_seeded_per_task_and_fall_back_to_other_tasks():
    pairs = _pairs()
    got = pick_contrastive_examples(pairs, ["navigate", "web_of_lies", "boolean_expressions"], k=3, seed=1)
    assert len(got["navigate"]) == 3 and {e.task for e in got["navigate"]} == {"navigate"}
    assert len({e.id for e in got["navigate"]}) == 3
    assert [e.task for e in got["web_of_lies"]][0] == "web_of_lies" and len(got["web_of_lies"]) == 3
    assert {e.task for e in got["web_of_lies"][1:]} == {"navigate"}
    assert len(got["boolean_expressions"]) == 3
    assert all(e.id != "navigate/train/99999" for v in got.values() for e in v)  # D+dual ignored
    assert got == pick_contrastive_examples(list(reversed(pairs)), ["navigate", "web_of_lies", "boolean_expressions"],
                                            k=3, seed=1)
    seeds = {tuple(e.id for e in pick_contrastive_examples(pairs, ["navigate"], 2, s)["navigate"]) for s in range(8)}
    assert len(seeds) > 1
    assert pick_contrastive_examples([], ["navigate"], 3, 0) == {"navigate": []}
    long = pick_contrastive_examples(pairs, ["navigate"], 3, 0, max_chars=5)
    assert long == {"navigate": []}
    e = got["navigate"][0]
    assert e.right.startswith("right") and e.wrong.startswith("wrong")


@pytest.mark.parametrize("reply,text,answer", [
    ("A: Let's think step by step.\nA = 1.5 + 2 = 3.5. Therefore, the answer is 3.5.\n\nQ: next one\nA: Therefore, the answer is 9.",
     "A = 1.5 + 2 = 3.5. Therefore, the answer is 3.5.", "3.5"),
    ("Step one.\r\nStep two. Therefore, the answer is 24. I hope this helps!", "Step one.\nStep two. Therefore, the answer is 24.", "24"),
    ("Wrong response: We start. So the answer is 7\nMore chatter", "We start. So the answer is 7.", "7"),
    ("Hint: the correct answer is 5.\nA: Let's think step by step.\nTwo plus three. Therefore, the answer is 5.", "Two plus three. Therefore, the answer is 5.", "5"),
    ("I could not decide.", "I could not decide.", None),
    ("Therefore, the answer is 3 or 4.", "Therefore, the answer is 3 or 4.", None),
])
def test_replies_are_trimmed_to_the_cot_and_parsed(reply, text, answer):
    cot = parse_reply(reply, "number", "cep", {"k": 1})
    assert cot.text == text and cot.answer == answer
    assert cot.meta["raw"] == reply and cot.meta["prompt"] == "cep" and cot.meta["k"] == 1


def test_option_answers_and_notes():
    cot = parse_reply("(1) x. Therefore, the answer is (B).", "option")
    assert cot.answer == "(B)"
    text, notes = clean_reply("x. Therefore, the answer is (A). Extra words.")
    assert text == "x. Therefore, the answer is (A)." and notes["trimmed_after_answer"] > 0
    assert parse_reply(None, "bool").answer is None
