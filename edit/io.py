"""JSONL and JSON reading and writing with errors that name the file, the line and the field.

Reading: every problem with an input file (not UTF-8, malformed JSON, not an object, a missing
field, a field of the wrong type) is a :class:`DataError` whose message names the file and the
line; nothing is skipped silently. A stage's input that does not exist at all is a DataError naming
it and what makes it (:func:`require`).

Writing: atomic. The content goes to a unique temporary file in the target's folder
(``tempfile.mkstemp``), which is then renamed over the target (``os.replace``), so a reader sees
the old file or the new one, never a mix, and two writers of one file never share a temporary
file (the last rename wins, whole). The new file gets the permissions a plain ``open(path, "w")``
would give it (0o666 less the umask).
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping


class DataError(ValueError):
    """A malformed input file or record; the message names the file and the line."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()  # read once at import (os.umask can only be read by setting it)


@contextmanager
def _atomic_text(path: str | Path):
    """A text handle (UTF-8) on a unique temporary file next to ``path``; on a clean exit the file
    is renamed to ``path``, on an error it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with _atomic_text(path) as fh:
        fh.write(text)


def write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    """Write records atomically (a unique temporary file renamed into place); return the count.
    Keys keep their insertion order and floats their repr, so the same records give the same bytes."""
    n = 0
    with _atomic_text(path) as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def _type_names(types: tuple) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def _check_type(value, types: tuple) -> bool:
    """isinstance with JSON's eyes: a bool is not an int or a float, an int is a float."""
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def _normalize_required(required) -> dict[str, tuple | None]:
    """``{field: allowed types or None (any)}`` from a list of names or a ``{name: type | (types)}`` map."""
    if isinstance(required, Mapping):
        out = {}
        for name, types in required.items():
            if types is None:
                out[str(name)] = None
                continue
            types = tuple(types) if isinstance(types, (tuple, list)) else (types,)
            out[str(name)] = tuple(type(None) if t is None else t for t in types)
        return out
    return {str(name): None for name in required}


def read_jsonl(path: str | Path, required: Iterable[str] | Mapping[str, type | tuple] = ()) -> Iterator[dict]:
    """Yield the records of a JSONL file (blank lines are skipped).

    required: field names every record must have, or ``{name: type or tuple of types}`` to also
    check each field's type (``None`` in a tuple allows null; a bool never passes as an int; an int
    passes as a float), e.g. ``{"id": str, "response": str, "score": (float, None)}``.

    A line that is not UTF-8, not JSON or not an object, a missing field and a field of the wrong
    type raise :class:`DataError` naming the file, the line number, the record id if it has one and
    the field."""
    path = Path(path)
    fields = _normalize_required(required)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column "
                                f"{e.start + 1} of the line)") from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            missing = [k for k in fields if k not in rec]
            if missing:
                rid = rec.get("id", "?")
                raise DataError(f"{path}:{lineno} (id {rid}): missing field(s) {', '.join(missing)}")
            for name, types in fields.items():
                if types is not None and not _check_type(rec[name], types):
                    got = "null" if rec[name] is None else type(rec[name]).__name__
                    raise DataError(f"{path}:{lineno} (id {rec.get('id', '?')}): field {name!r} must be "
                                    f"{_type_names(types)}, got {got}")
            yield rec


def require(path: str | Path, made_by: str) -> Path:
    """``path`` (a file or a folder) when it exists, else a DataError naming it and ``made_by``,
    what makes it (e.g. ``"the data stage (dvc repro data)"``), so a stage run out of order says
    what to run first instead of failing deep inside a library."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; it is made by {made_by}: run that first")
    return path


def write_json(path: str | Path, obj) -> None:
    """Write JSON with sorted keys and a trailing newline, atomically."""
    with _atomic_text(path) as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def read_json(path: str | Path):
    """A JSON file's content; DataError naming the file when it is missing, not UTF-8 or malformed."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 (byte 0x{e.object[e.start]:02x} at byte offset {e.start})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON ({e})") from None
