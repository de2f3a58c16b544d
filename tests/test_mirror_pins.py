"""Nothing silent about the data mirror: every file the pipeline reads from it (benchmarks and the
teacher's prompt files) is checked against its pinned sha256, a mirror folder that does not exist is
an error naming it, and no message shows "None" where a path belongs."""
from __future__ import annotations

import re
import shutil

import pytest

from edit import params as edit_params
from edit.benchmarks import sources
from edit.benchmarks.parsers import load_bbh
from edit.io import DataError
from edit.llm.prompts import PromptBuilder, read_vanilla_prompt
from edit.records import Question

PROMPT_FOLDERS = ("bbh/cot-prompts", "edit_prompts/cot-prompts", "edit_prompts/cot-ahp", "edit_prompts/cot-ccp",
                  "edit_prompts/prompt_for_vanilla")
QUESTION = Question("navigate/x/00000", "navigate", "If you follow these instructions ... Take 1 step.", "No")


def _copy(mirror, tmp_path, *rels):
    """A tmp mirror holding copies of ``rels``."""
    for rel in rels:
        dst = tmp_path / "mirror" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mirror / rel, dst)
    return tmp_path / "mirror"


def _flip_byte(path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _no_none(message: str) -> None:
    assert "None" not in message, message


# ------------------------------------------------------------------------------------- the pins
def test_every_prompt_file_of_the_mirror_is_pinned_and_verifies(mirror):
    table = sources.load_sources()
    files = [p for folder in PROMPT_FOLDERS for p in sorted((mirror / folder).glob("*.txt"))]
    assert len(files) == 27 + 3 * 27 + 4
    for p in files:
        rel = p.relative_to(mirror).as_posix()
        assert rel in table["files"], rel
        assert sources.verified_mirror_file(mirror, rel) == p


@pytest.mark.bad_input("mirror")
@pytest.mark.parametrize("rel, read", [
    ("bbh/cot-prompts/navigate.txt", lambda m: PromptBuilder(m).cep_prompt(QUESTION)),
    ("edit_prompts/cot-prompts/navigate.txt", lambda m: PromptBuilder(m, "edit_files").cep_prompt(QUESTION)),
    ("edit_prompts/cot-ahp/navigate.txt", lambda m: PromptBuilder(m, "edit_files").ahp_prompt(QUESTION)),
    ("edit_prompts/cot-ccp/navigate.txt", lambda m: PromptBuilder(m, "edit_files").ccp_prompt(QUESTION, "R")),
    ("edit_prompts/prompt_for_vanilla/prompt_3shotcot_for_vanilla.txt",
     lambda m: read_vanilla_prompt(m, "prompt_3shotcot_for_vanilla")),
])
def test_a_flipped_byte_in_a_prompt_file_names_the_file_and_both_checksums(mirror, tmp_path, rel, read):
    m = _copy(mirror, tmp_path, rel)
    read(m)  # the intact copy reads
    _flip_byte(m / rel)
    pinned = sources.load_sources()["files"][rel]["sha256"]
    actual = sources.sha256_file(m / rel)
    with pytest.raises(DataError) as e:
        read(m)
    msg = str(e.value)
    assert str(m / rel) in msg and pinned in msg and actual in msg and "checksum mismatch" in msg


@pytest.mark.bad_input("mirror")
def test_a_flipped_byte_in_a_benchmark_file_names_both_checksums(mirror, tmp_path):
    rel = "bbh/bbh/navigate.json"
    m = _copy(mirror, tmp_path, rel)
    _flip_byte(m / rel, at=200)
    files = sources.BenchmarkFiles(m, tmp_path / "cache", allow_download=False)
    with pytest.raises(DataError) as e:
        load_bbh(files, ["navigate"])
    msg = str(e.value)
    assert str(m / rel) in msg and sources.load_sources()["files"][rel]["sha256"] in msg
    assert sources.sha256_file(m / rel) in msg


@pytest.mark.bad_input("mirror")
def test_an_unpinned_prompt_file_is_an_error(tmp_path):
    (tmp_path / "bbh" / "cot-prompts").mkdir(parents=True)
    (tmp_path / "bbh" / "cot-prompts" / "my_task.txt").write_text("Q: x\nA: Let's think step by step. So the answer is y.")
    with pytest.raises(DataError, match="my_task.txt is not in the pinned source table"):
        PromptBuilder(tmp_path).task_prompt("my_task")


# ------------------------------------------------------------------------------- the mirror folder
@pytest.mark.bad_input("mirror")
def test_a_data_mirror_that_does_not_exist_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("EDIT_DATA_MIRROR", raising=False)
    params = {"runtime": {"data_mirror": "no_such_mirror"}}
    missing = re.escape(str(tmp_path / "no_such_mirror"))
    for resolve in (sources.data_mirror, edit_params.data_mirror, sources.files_from_params):
        with pytest.raises(DataError, match=rf"data mirror {missing} does not exist \(set by runtime.data_mirror\)"):
            resolve(params, tmp_path)
    monkeypatch.setenv("EDIT_DATA_MIRROR", str(tmp_path / "gone"))
    with pytest.raises(DataError, match=r"gone does not exist \(set by EDIT_DATA_MIRROR\)"):
        sources.data_mirror({"runtime": {"data_mirror": str(tmp_path)}}, tmp_path)
    with pytest.raises(DataError, match=r"data mirror .*no_such_mirror does not exist"):
        sources.BenchmarkFiles(tmp_path / "no_such_mirror", tmp_path / "cache")
    # the prompt files: the same error, never another folder
    with pytest.raises(DataError, match=rf"data mirror {missing} does not exist"):
        PromptBuilder(tmp_path / "no_such_mirror").cep_prompt(QUESTION)
    with pytest.raises(DataError, match=rf"data mirror {missing} does not exist"):
        read_vanilla_prompt(tmp_path / "no_such_mirror", "prompt_3shotcot_for_vanilla")


def test_an_unset_mirror_is_none_and_an_existing_one_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("EDIT_DATA_MIRROR", raising=False)
    assert sources.data_mirror({"runtime": {"data_mirror": None}}) is None
    assert sources.data_mirror({}) is None
    assert sources.data_mirror({"runtime": {"data_mirror": "."}}, tmp_path) == tmp_path / "."
    monkeypatch.setenv("EDIT_DATA_CACHE", str(tmp_path / "cache"))
    files = sources.files_from_params({"runtime": {"data_mirror": None}}, tmp_path, allow_download=False)
    assert files.mirror is None and files.cache_dir == tmp_path / "cache"


@pytest.mark.bad_input("mirror")
def test_messages_without_a_mirror_never_say_none(tmp_path, monkeypatch):
    rel = "bbh/bbh/snarks.json"
    with pytest.raises(DataError) as e:
        sources.BenchmarkFiles(None, tmp_path / "cache", allow_download=False).path(rel)
    _no_none(str(e.value))
    assert "none is set" in str(e.value) and str(tmp_path / "cache") in str(e.value)

    def offline(url, dest, timeout=60.0):
        raise OSError("no route to host")

    monkeypatch.setattr(sources, "_download", offline)
    with pytest.raises(DataError) as e:
        sources.BenchmarkFiles(None, tmp_path / "cache").path(rel)
    _no_none(str(e.value))
    with pytest.raises(DataError) as e:
        sources.verified_mirror_file(None, "bbh/cot-prompts/navigate.txt")
    _no_none(str(e.value))
    assert "no data mirror is set" in str(e.value)
