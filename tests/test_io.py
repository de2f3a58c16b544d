"""edit.io: every malformed input is a DataError naming the file, the line and the field; writes
are atomic and two writers of one file never collide."""
from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from edit.io import DataError, read_json, read_jsonl, write_json, write_jsonl


@pytest.mark.bad_input("file")
def test_non_utf8_byte_names_file_and_line(tmp_path):
    p = tmp_path / "sft.jsonl"
    good = json.dumps({"id": "a", "response": "x" * 2500}) + "\n"
    p.write_bytes(good.encode() + b'{"id": "b", "response": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"sft\.jsonl:2: not valid UTF-8 \(byte 0xe9 at column 29"):
        list(read_jsonl(p))
    with pytest.raises(DataError, match=r"sft\.jsonl: not valid UTF-8"):
        read_json(p)


@pytest.mark.bad_input("file")
def test_malformed_json_and_non_objects_name_file_and_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"id": 1}\n\n{"id": 2,\n')
    with pytest.raises(DataError, match=r"x\.jsonl:3: malformed JSON"):
        list(read_jsonl(p))
    p.write_text('{"id": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: expected a JSON object, got list"):
        list(read_jsonl(p))
    with pytest.raises(DataError, match="file not found"):
        list(read_jsonl(tmp_path / "missing.jsonl"))


@pytest.mark.bad_input("file")
def test_required_fields_and_their_types(tmp_path):
    p = tmp_path / "pairs.jsonl"
    rows = [{"id": "q1", "chosen": "a", "rejected": "b", "score": 1},
            {"id": "q2", "chosen": None, "rejected": "b", "score": 0.5}]
    write_jsonl(p, rows)
    assert len(list(read_jsonl(p, required=("id", "chosen")))) == 2  # names only: no type check
    with pytest.raises(DataError, match=r"pairs\.jsonl:2 \(id q2\): field 'chosen' must be str, got null"):
        list(read_jsonl(p, required={"id": str, "chosen": str}))
    assert len(list(read_jsonl(p, required={"chosen": (str, None), "score": float}))) == 2  # int passes as float
    write_jsonl(p, [{"id": "q3", "response": 42}])
    with pytest.raises(DataError, match=r"pairs\.jsonl:1 \(id q3\): field 'response' must be str, got int"):
        list(read_jsonl(p, required={"response": str}))
    write_jsonl(p, [{"id": "q4", "n": True}])
    with pytest.raises(DataError, match="field 'n' must be int, got bool"):
        list(read_jsonl(p, required={"n": int}))
    with pytest.raises(DataError, match=r"\(id q4\): missing field\(s\) response"):
        list(read_jsonl(p, required={"response": str}))


def test_writes_are_byte_identical_to_the_plain_format(tmp_path):
    recs = [{"b": 1.1, "a": "é"}, {"x": [1, None]}]
    assert write_jsonl(tmp_path / "a.jsonl", recs) == 2
    assert (tmp_path / "a.jsonl").read_bytes() == "".join(
        json.dumps(r, ensure_ascii=False) + "\n" for r in recs).encode()
    write_json(tmp_path / "s" / "a.json", {"b": 1, "a": "é"})
    assert (tmp_path / "s" / "a.json").read_bytes() == '{\n  "a": "é",\n  "b": 1\n}\n'.encode()
    mode = stat.S_IMODE(os.stat(tmp_path / "a.jsonl").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.json", "a.jsonl", "s"]  # no temporary left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "a.jsonl"
    write_jsonl(p, [{"i": 0}])

    def bad():
        yield {"i": 1}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl(p, bad())
    assert p.read_text() == '{"i": 0}\n' and [q.name for q in tmp_path.iterdir()] == ["a.jsonl"]


def test_two_writers_of_one_file_never_collide(tmp_path):
    p = tmp_path / "out.jsonl"
    payloads = {w: [{"writer": w, "i": i, "pad": "x" * 200} for i in range(300)] for w in range(2)}
    expected = {json.dumps(payloads[w][0]) for w in payloads}
    errors = []

    def writer(w):
        try:
            for _ in range(30):
                write_jsonl(p, payloads[w])
                write_json(tmp_path / "out.json", payloads[w])
        except Exception as e:  # noqa: BLE001 - the test reports it
            errors.append(repr(e))

    threads = [threading.Thread(target=writer, args=(w,)) for w in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lines = p.read_text().splitlines()
    assert len(lines) == 300 and lines[0] in expected  # one writer's file, whole
    assert len({json.loads(x)["writer"] for x in lines}) == 1
    assert json.loads((tmp_path / "out.json").read_text()) in list(payloads.values())
    assert sorted(q.name for q in tmp_path.iterdir()) == ["out.json", "out.jsonl"]
