"""The data stage's run (edit.stages.data): the judge rule, and the files it writes with the oracle
teacher on a small embedded configuration (the same bytes as the library calls it is made of)."""
import dataclasses
import json

import pytest

from edit import dual
from edit.config_schema import defaults, section_defaults
from edit.io import DataError, read_jsonl, write_jsonl
from edit.llm.base import ChatBackend, ChatResult
from edit.oracle import OracleTeacher
from edit.records import read_pairs
from edit.stages import data as data_stage
from edit.teachers import make_teacher


def small_params(tmp_path, **teacher) -> dict:
    return defaults(
        profile="test",
        runtime={"torch_threads": 1, "data_mirror": None},
        data={"source": "embedded", "seed": 7, "n_train_per_task": 6, "n_val_per_task": 2, "n_test_per_task": 2,
              "ind": {"boolean_expressions": {"n_tokens": 5, "max_depth": 1}, "navigate": {}},
              "ood": {"boolean_expressions": {}}},
        teacher={"backend": "oracle", "error_rate": 0.5, "rewrite_noise": 0.1, "seed": 3,
                 "ledger": str(tmp_path / "ledger.json"), "judge": {"enabled": True}, **teacher},
    )


@pytest.mark.parametrize("section,runs", [
    ({"backend": "openai", "judge": {"enabled": True}}, True),
    ({"backend": "hf", "judge": {"enabled": True, "sampling": {"max_tokens": 8}}}, True),
    ({"backend": "oracle", "judge": {"enabled": True}}, False),   # the oracle knows its mistake types
    ({"judge": {"enabled": True}}, False),                         # no backend: the oracle
    ({"backend": "openai", "judge": {"enabled": False}}, False),
    ({"backend": "openai"}, False),                                # judge.enabled defaults to false
])
def test_the_judge_runs_only_for_llm_teachers_that_enable_it(section, runs):
    if section.get("backend") == "hf":
        section = {**section, "hf": {"path": "some/model"}}  # the schema wants a model for backend hf
    assert data_stage.judge_runs(section_defaults("teacher", **section)) is runs


def test_run_writes_the_splits_cots_pairs_and_summary(tmp_path):
    P = small_params(tmp_path)
    out, summary_path = tmp_path / "data", tmp_path / "reports" / "data_summary.json"
    result = data_stage.run(P, out, summary_path, progress=False)

    splits = dual.question_splits(P["data"])
    assert sorted(p.name for p in (out / "questions").iterdir()) == sorted(f"{s}.jsonl" for s in splits)
    for name, qs in splits.items():
        assert list(read_jsonl(out / "questions" / f"{name}.jsonl")) == [q.to_dict() for q in qs]
    expected = dual.build_dual_cots(splits["train"], make_teacher(P["teacher"]), progress=False)
    for name, records in (("sft", expected.sft), ("wrong", expected.wrong), ("pairs", expected.pairs)):
        assert list(read_jsonl(out / "cots" / f"{name}.jsonl")) == records
    assert expected.pairs and read_pairs(out / "cots" / "pairs.jsonl") == expected.pairs
    summary = json.loads(summary_path.read_text())
    assert summary == expected.summary and "judge" not in summary  # the oracle is never judged
    assert not (tmp_path / "ledger.json").exists()                  # no LLM calls, no ledger

    assert result["profile"] == "test" and result["source"] == "embedded" and result["backend"] == "oracle"
    assert result["questions"] == {"train": {"boolean_expressions": 6, "navigate": 6},
                                   "val": {"boolean_expressions": 2, "navigate": 2},
                                   "ind_test": {"boolean_expressions": 2, "navigate": 2},
                                   "ood_test": {"boolean_expressions": 2}}
    assert result["summary"] == summary and result["example_pair"] == expected.pairs[0]

    # the same params give the same bytes
    first = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*.json*")}
    data_stage.run(P, out, summary_path, progress=False)
    assert {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*.json*")} == first


class LabellingBackend(ChatBackend):
    """Every reply is "Mistake type: knowledge"; the ledger is a file naming the calls made."""

    name, model = "scripted", "judge"

    def __init__(self):
        self.calls = []

    def complete(self, requests, progress=True):
        self.calls += [r.tag for r in requests]
        return [ChatResult("Mistake type: knowledge") for _ in requests]

    def write_ledger(self, path):
        write_jsonl(path, [{"tag": t} for t in self.calls])


class UnlabelledOracle(OracleTeacher):
    """The oracle's CoTs without mistake types (as an LLM teacher's), over a chat backend for the judge."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.backend = LabellingBackend()

    def generate_cot(self, q):
        return dataclasses.replace(super().generate_cot(q), mistake_type=None)

    def corrupt(self, q, correct):
        return dataclasses.replace(super().corrupt(q, correct), mistake_type=None)


def test_run_labels_pairs_with_the_judge_and_writes_the_ledger_for_llm_teachers(tmp_path, monkeypatch):
    P = small_params(tmp_path, backend="openai")
    P["runtime"]["data_mirror"] = str(tmp_path)  # the scripted teacher reads no prompt file
    teacher = UnlabelledOracle(error_rate=0.5, seed=3)
    monkeypatch.setattr(data_stage, "make_teacher", lambda section, mirror=None: teacher)
    result = data_stage.run(P, tmp_path / "data", tmp_path / "summary.json", progress=False)
    pairs = list(read_jsonl(tmp_path / "data" / "cots" / "pairs.jsonl"))
    assert pairs and {p["mistake_type"] for p in pairs} == {"knowledge"}
    assert result["summary"]["judge"]["knowledge"] == len(pairs)
    assert json.loads((tmp_path / "summary.json").read_text())["judge"] == result["summary"]["judge"]
    assert [r["tag"] for r in read_jsonl(tmp_path / "ledger.json")] == ["judge"] * len(pairs)


def test_an_llm_teacher_without_a_mirror_is_an_error(tmp_path):
    P = small_params(tmp_path, backend="openai")
    P["runtime"]["data_mirror"] = None
    with pytest.raises(DataError, match="runtime.data_mirror is null"):
        data_stage.run(P, tmp_path / "data", tmp_path / "summary.json", progress=False)
