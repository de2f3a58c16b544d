"""Dual-CoT construction with a scripted teacher: what is paired, what is counted, what is refused."""
import pytest

from edit.dual import build_dual_cots, make_questions
from edit.records import pair_defect, read_pairs
from edit.io import DataError, read_jsonl, write_jsonl
from edit.records import Question, TeacherCoT
from edit.teacher import Teacher
from edit.teachers import make_teacher


class ScriptedTeacher(Teacher):
    """First CoT answers ``first[qid]``; AHP answers ``rectified[qid]``; CCP answers ``corrupted[qid]``.
    The answers "EMPTY" and "BLANK" give a CoT whose text is empty / only whitespace (a teacher bug:
    the answer is set all the same)."""

    name = "scripted"

    def __init__(self, first, rectified, corrupted):
        self.first, self.rectified, self.corrupted = first, rectified, corrupted

    @staticmethod
    def _cot(answer, mistake=None):
        text = {"EMPTY": "", "BLANK": " \n\t "}.get(answer, f"Some steps. Therefore, the answer is {answer}.")
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


def test_blank_cots_are_counted_and_never_paired():
    """An empty or whitespace-only CoT is a counted skip at every prompt: the run goes on (an LLM
    teacher's cached reply would fail every rerun the same way) and no record or pair carries it."""
    qs = [Question(f"boolean_expressions/train/{i:05d}", "boolean_expressions", f"q{i}", "True") for i in range(6)]
    teacher = ScriptedTeacher(
        first={qs[0].id: "EMPTY", qs[1].id: "BLANK", qs[2].id: "True", qs[3].id: "False", qs[4].id: "True",
               qs[5].id: "False"},
        rectified={qs[3].id: "BLANK", qs[5].id: "True"},
        corrupted={qs[2].id: "BLANK", qs[4].id: "False"},
    )
    data = build_dual_cots(qs, teacher, progress=False)
    s = data.summary["total"]
    assert s["cep_empty"] == 2 and s["D+"] == 2 and s["D-"] == 2
    assert (s["ccp_failed"], s["ccp_empty"], s["ccp_success"]) == (1, 1, 1)
    assert (s["ahp_failed"], s["ahp_empty"], s["ahp_success"]) == (1, 1, 1)
    assert [(p["id"], p["pair_type"]) for p in data.pairs] == [(qs[4].id, "D+dual"), (qs[5].id, "D-dual")]
    assert all(r["response"].strip() for r in data.sft + data.wrong)
    assert all(pair_defect(p) is None for p in data.pairs)


@pytest.mark.bad_input("file")
def test_read_pairs_refuses_a_pair_with_a_blank_side(tmp_path):
    """Pairs are read for key steps and training through read_pairs: a blank side is a DataError
    naming the file and the record (dropping it silently would change the training data)."""
    good = {"id": "a", "task": "navigate", "question": "q", "gold": "No", "pair_type": "D+dual",
            "chosen": "Right. Therefore, the answer is No.", "rejected": "Wrong. Therefore, the answer is Yes."}
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, [good, {**good, "id": "b", "pair_type": "D-dual"}])
    assert read_pairs(path) == [good, {**good, "id": "b", "pair_type": "D-dual"}]
    for side, value in (("chosen", ""), ("rejected", " \n ")):
        write_jsonl(path, [good, {**good, "id": "b", side: value}])
        with pytest.raises(DataError, match=rf"pairs.jsonl: record 2 \(id b, D\+dual\): its {side} CoT is empty"):
            read_pairs(path)
    for side, value in (("rejected", None), ("chosen", 42)):  # not text at all: the record's types
        write_jsonl(path, [good, {**good, "id": "b", side: value}])
        with pytest.raises(DataError, match=rf"pairs.jsonl:2 \(id b\): field '{side}' must be"):
            read_pairs(path)
    write_jsonl(path, [{k: v for k, v in good.items() if k != "rejected"}])
    with pytest.raises(DataError, match="missing field"):
        read_pairs(path)


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


@pytest.mark.bad_input("file")
def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, [{"id": "a", "chosen": "x"}])
    with open(path, "a") as f:
        f.write('{"id": "b", "chosen": \n')
    with pytest.raises(DataError, match=r"pairs.jsonl:2: malformed JSON"):
        list(read_jsonl(path))
    with pytest.raises(DataError, match=r"pairs.jsonl:1 \(id a\): missing field\(s\) rejected"):
        list(read_jsonl(path, required=("id", "chosen", "rejected")))
