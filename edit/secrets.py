"""Find leaked secrets (API keys) in files: a guard for caches, ledgers, logs, executed notebooks
and output folders.

``scan_for_secrets(paths, {"OPENAI_API_KEY": value})`` reads every file under ``paths`` as bytes
(in chunks, so large files are fine) and reports where a secret occurs, by the secret's NAME and
never its value. ``secrets_from_env(["OPENAI_API_KEY"])`` collects the values of the named
environment variables that are set. As a command:

    python -m edit.secrets reports results data --env OPENAI_API_KEY

exits 1 and lists the files when a secret is found (0 otherwise, also when no variable is set).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_EXCLUDE_DIRS = (".git", ".venv", "__pycache__", "node_modules", ".pytest_cache", ".hypothesis")
MIN_SECRET_LEN = 8
CHUNK = 1 << 20


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


def _find_in_file(path: Path, needle: bytes) -> int:
    """Byte offset of the first occurrence of ``needle`` in the file, or -1."""
    overlap = len(needle) - 1
    pos, tail = 0, b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                return -1
            buf = tail + chunk
            i = buf.find(needle)
            if i >= 0:
                return pos - len(tail) + i
            tail = buf[-overlap:] if overlap else b""
            pos += len(chunk)


def scan_for_secrets(paths, secrets: dict[str, str], exclude_dirs=DEFAULT_EXCLUDE_DIRS) -> list[Finding]:
    """Every (file, secret) pair where the secret's value occurs in a file under ``paths`` (files
    or folders, walked recursively, skipping ``exclude_dirs``). Each secret is also looked for in
    its UTF-16 and JSON-escaped forms where those differ from the raw text."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for name, value in secrets.items():
        if len(value) < MIN_SECRET_LEN:
            raise ValueError(f"secret {name!r} is shorter than {MIN_SECRET_LEN} characters: too short to scan for")
    needles = {}
    for name, value in secrets.items():
        forms = {value.encode("utf-8"), value.encode("utf-16-le"),
                 value.encode("unicode_escape"), value.replace("/", "\\/").encode("utf-8")}
        needles[name] = sorted(forms)
    findings = []
    for fp in _iter_files(paths, set(exclude_dirs)):
        for name, forms in needles.items():
            for needle in forms:
                off = _find_in_file(fp, needle)
                if off >= 0:
                    findings.append(Finding(str(fp), name, off))
                    break
    return findings


def scan_text_for_secrets(text: str, secrets: dict[str, str]) -> list[str]:
    """Names of the secrets whose value occurs in ``text`` (captured logs, stdout)."""
    return [name for name, value in secrets.items() if value and value in text]


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
