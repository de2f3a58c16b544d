"""JSONL reading and writing with errors that name the file and the record."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator


class DataError(ValueError):
    """A malformed input file or record; the message names the file and the line."""


def write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    """Write records atomically (a temporary file renamed into place); return the count.
    Keys keep their insertion order and floats their repr, so the same records give the same bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def read_jsonl(path: str | Path, required: Iterable[str] = ()) -> Iterator[dict]:
    """Yield the records of a JSONL file; a malformed line or a record missing a required key
    raises DataError naming the file, the line number and the record id if it has one."""
    path = Path(path)
    required = tuple(required)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            missing = [k for k in required if k not in rec]
            if missing:
                rid = rec.get("id", "?")
                raise DataError(f"{path}:{lineno} (id {rid}): missing field(s) {', '.join(missing)}")
            yield rec


def write_json(path: str | Path, obj) -> None:
    """Write JSON with sorted keys and a trailing newline, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path: str | Path):
    """A JSON file's content; DataError naming the file when it is missing or malformed."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON ({e})") from None
