"""Find leaked secrets (API keys) in files: a guard for caches, ledgers, logs, executed notebooks
and output folders.

``scan_for_secrets(paths, {"OPENAI_API_KEY": value})`` reads every file under ``paths`` as bytes
(in chunks, so large files are fine) and reports where a secret occurs, by the secret's NAME and
never its value. It looks for every PIECE of ``PIECE_LEN`` (8) characters of the secret, so a
truncated key (an error message cut in the middle of the key) is found as well as the whole key;
pieces that lie wholly inside the key's public prefix (its leading lowercase segments that end in
``-``, e.g. ``sk-proj-``) are not secret and are not looked for. ``redact(text, secret)`` replaces
every such piece in a text by ``***`` (use it BEFORE truncating a text that may carry a key). ``secrets_from_env(["OPENAI_API_KEY"])`` collects the values of the named
environment variables that are set. As a command:

    python -m edit.secrets reports results data --env OPENAI_API_KEY

exits 1 and lists the files when a secret is found (0 otherwise, also when no variable is set).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_EXCLUDE_DIRS = (".git", ".venv", "__pycache__", "node_modules", ".pytest_cache", ".hypothesis")
MIN_SECRET_LEN = 8
PIECE_LEN = 8   # any run of this many characters of a secret counts as a leak
CHUNK = 1 << 20
REDACTED = "***"
_PUBLIC_PREFIX = re.compile(r"^(?:[a-z]{1,10}-)+")  # "sk-", "sk-proj-", "sk-ant-" (not "sk-ant-api03-": has digits)


@dataclass(frozen=True)
class Finding:
    path: str
    name: str      # the secret's name (e.g. the environment variable), never its value
    offset: int    # byte offset of the first occurrence in the file


def secrets_from_env(names=("OPENAI_API_KEY",), min_len: int = MIN_SECRET_LEN) -> dict[str, str]:
    """``{name: value}`` for the named environment variables that are set with at least
    ``min_len`` characters (shorter values would match by chance)."""
    return {n: os.environ[n] for n in names if len(os.environ.get(n, "")) >= min_len}


def _iter_files(paths, exclude_dirs):
    for p in paths:
        p = Path(p)
        if p.is_file():
            yield p
        elif p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if d not in exclude_dirs)
                for f in sorted(files):
                    fp = Path(root) / f
                    if fp.is_file() and not fp.is_symlink():
                        yield fp


def public_prefix_len(secret: str) -> int:
    """Length of the secret's public prefix (e.g. 8 for ``sk-proj-...``), never more than half of it."""
    m = _PUBLIC_PREFIX.match(secret)
    n = m.end() if m else 0
    return n if n <= len(secret) // 2 else 0


def secret_pieces(secret: str, n: int = PIECE_LEN) -> list[str]:
    """Every distinct ``n``-character piece of ``secret`` that reaches past its public prefix (the
    whole secret when it is shorter than ``n``)."""
    if len(secret) <= n:
        return [secret]
    start = max(0, public_prefix_len(secret) - n + 1)
    return sorted({secret[i:i + n] for i in range(start, len(secret) - n + 1)})


def redact(text: str, secret: str, n: int = PIECE_LEN) -> str:
    """``text`` with every run of characters covered by an ``n``-character piece of ``secret``
    replaced by ``***`` (the whole secret, a prefix, a suffix or a middle part of at least ``n``
    characters). Redact before truncating: a cut can turn a whole key into an undetectable piece."""
    text = str(text)
    if not secret or len(secret) < MIN_SECRET_LEN:
        return text
    text = text.replace(secret, REDACTED)
    pieces = set(secret_pieces(secret, n))
    first = {p[0] for p in pieces}
    covered = bytearray(len(text))
    hit = False
    for i in range(len(text) - n + 1):
        if text[i] in first and text[i:i + n] in pieces:
            covered[i:i + n] = b"\x01" * n
            hit = True
    if not hit:
        return text
    out, i = [], 0
    while i < len(text):
        if covered[i]:
            while i < len(text) and covered[i]:
                i += 1
            out.append(REDACTED)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _needles(secret: str) -> list[bytes]:
    """The byte forms to look for: every piece in UTF-8, UTF-16-LE, unicode-escaped and JSON
    (``/`` escaped) form."""
    forms = set()
    for piece in secret_pieces(secret):
        forms.update({piece.encode("utf-8"), piece.encode("utf-16-le"), piece.encode("unicode_escape"),
                      piece.replace("/", "\\/").encode("utf-8")})
    return sorted(forms)


def _find_in_file(path: Path, needles) -> int:
    """Byte offset of the first occurrence of any of ``needles`` in the file, or -1. The file is
    read once, in chunks that overlap by the longest needle less one byte."""
    if isinstance(needles, bytes):
        needles = [needles]
    overlap = max(len(x) for x in needles) - 1
    pos, tail = 0, b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                return -1
            buf = tail + chunk
            found = [i for i in (buf.find(x) for x in needles) if i >= 0]
            if found:
                return pos - len(tail) + min(found)
            tail = buf[-overlap:] if overlap else b""
            pos += len(chunk)


def scan_for_secrets(paths, secrets: dict[str, str], exclude_dirs=DEFAULT_EXCLUDE_DIRS) -> list[Finding]:
    """Every (file, secret) pair where a piece of the secret's value (see :func:`secret_pieces`)
    occurs in a file under ``paths`` (files or folders, walked recursively, skipping
    ``exclude_dirs``); the offset is that of the first piece found. Each piece is also looked for in
    its UTF-16 and JSON-escaped forms where those differ from the raw text."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for name, value in secrets.items():
        if len(value) < MIN_SECRET_LEN:
            raise ValueError(f"secret {name!r} is shorter than {MIN_SECRET_LEN} characters: too short to scan for")
    needles = {name: _needles(value) for name, value in secrets.items()}
    findings = []
    for fp in _iter_files(paths, set(exclude_dirs)):
        for name, forms in needles.items():
            off = _find_in_file(fp, forms)
            if off >= 0:
                findings.append(Finding(str(fp), name, off))
    return findings


def scan_text_for_secrets(text: str, secrets: dict[str, str]) -> list[str]:
    """Names of the secrets of which a piece occurs in ``text`` (captured logs, stdout)."""
    return [name for name, value in secrets.items() if value and any(p in text for p in secret_pieces(value))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Fail when a secret from the environment occurs in files.")
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--env", action="append", default=None, help="environment variable holding a secret "
                    "(repeatable; default OPENAI_API_KEY)")
    a = ap.parse_args(argv)
    secrets = secrets_from_env(a.env or ["OPENAI_API_KEY"])
    if not secrets:
        print("secret scan: none of the named variables is set; nothing to scan for")
        return 0
    findings = scan_for_secrets(a.paths, secrets)
    for f in findings:
        print(f"secret {f.name} found in {f.path} at byte {f.offset}")
    print(f"secret scan: {len(findings)} finding(s) for {sorted(secrets)} under {a.paths}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
