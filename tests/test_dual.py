"""Dual-CoT construction with a scripted teacher: what is paired, what is counted, what is refused."""
import pytest

from edit.dual import build_dual_cots, make_questions
from edit.io import DataError, read_jsonl, write_jsonl
from edit.records import Question, TeacherCoT
from edit.teacher import Teacher, make_teacher


class ScriptedTeacher(Teacher):
    """First CoT answers ``first[qid]``; AHP answers ``rectified[qid]``; CCP answers ``corrupted[qid]``."""

    name = "scripted"

    def __init__(self, first, rectified, corrupted):
        self.first, self.rectified, self.corrupted = first, rectified, corrupted

    @staticmethod
    def _cot(answer, mistake=None):
        text = "" if answer == "EMPTY" else f"Some steps. Therefore, the answer is {answer}."
        return TeacherCoT(text=text, answer=answer, mistake_type=mistake, key_spans=[(0, 4)] if mistake else [])

    def generate_cot(self, q):
        return self._cot(self.first[q.id], None if self.first[q.id] == q.target else "logical")

    def rectify(self, q, wrong):
        return self._cot(self.rectified[q.id])

    def corrupt(self, q, correct):
        return self._cot(self.corrupted[q.id], "calculation")


QS = [Question(f"boolean_expressions/train/{i:05d}", "boolean_expressions", f"q{i}", "True") for i in range(4)]


def test_pairs_and_failures_are_counted():
    teacher = ScriptedTeacher(
        first={QS[0].id: "True", QS[1].id: "True", QS[2].id: "False", QS[3].id: "False"},
        rectified={QS[2].id: "True", QS[3].id: "False"},      # q3's rectification fails
        corrupted={QS[0].id: "False", QS[1].id: "True"},      # q1's corruption fails
    )
    data = build_dual_cots(QS, teacher, progress=False)
    s = data.summary["total"]
    assert (s["D+"], s["D-"], s["ccp_success"], s["ccp_failed"], s["ahp_success"], s["ahp_failed"]) == (2, 2, 1, 1, 1, 1)
    assert [r["source"] for r in data.sft] == ["D+", "D+", "D-+"]
    assert [r["source"] for r in data.wrong] == ["D+-", "D-", "D-"]
    assert [(p["id"], p["pair_type"]) for p in data.pairs] == [(QS[0].id, "D+dual"), (QS[2].id, "D-dual")]
    d_minus = data.pairs[1]
    assert d_minus["rejected"].endswith("False.") and d_minus["chosen"].endswith("True.")
    assert d_minus["rejected_key_spans"] == [[0, 4]] and d_minus["mistake_type"] == "logical"


def test_an_empty_cot_is_an_error_naming_the_question():
    teacher = ScriptedTeacher({QS[0].id: "EMPTY"}, {QS[0].id: "True"}, {})
    with pytest.raises(DataError, match=QS[0].id):
        build_dual_cots(QS[:1], teacher, progress=False)


def test_questions_are_distinct_seeded_and_exclude_training_texts():
    spec = {"boolean_expressions": {}, "navigate": {}}
    a = make_questions(spec, 30, "train", seed=5)
    assert a == make_questions(spec, 30, "train", seed=5)
    assert a != make_questions(spec, 30, "train", seed=6)
    assert len({q.input for q in a}) == 60
    test = make_questions(spec, 30, "ind_test", seed=5, exclude={q.input for q in a})
    assert not {q.input for q in test} & {q.input for q in a}
    assert test[0].id == "boolean_expressions/ind_test/00000"


def test_unknown_task_and_backend_are_clear_errors():
    with pytest.raises(ValueError, match="no_such_task"):
        make_questions({"no_such_task": {}}, 3, "train", seed=0)
    with pytest.raises(ValueError, match="unknown teacher backend"):
        make_teacher({"backend": "gpt-9"})


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, [{"id": "a", "chosen": "x"}])
    with open(path, "a") as f:
        f.write('{"id": "b", "chosen": \n')
    with pytest.raises(DataError, match=r"pairs.jsonl:2: malformed JSON"):
        list(read_jsonl(path))
    with pytest.raises(DataError, match=r"pairs.jsonl:1 \(id a\): missing field\(s\) rejected"):
        list(read_jsonl(path, required=("id", "chosen", "rejected")))
