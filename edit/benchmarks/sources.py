"""Pinned public sources of every file the pipeline reads from the data mirror, and their
acquisition and verification.

``edit/sources.json`` pins, per path under the mirror, the file's sha256 and where it comes from: a
URL, or an archive member (BB-sub files from the PyPI sdist ``bigbench==1.0.0``). It holds the
benchmark files (BBH, BB-sub, AGIEval, ARC; see :mod:`edit.benchmarks.suites`) and the teacher's
prompt files (BBH's CoT exemplar files ``bbh/cot-prompts/`` and EDIT's ``edit_prompts/``).

* :class:`BenchmarkFiles` resolves a benchmark file to a verified local path: from the mirror
  folder when the mirror has it (no network is attempted then), else from the cache folder, else
  downloaded once into the cache from its pinned URL (BB-sub files are extracted from the pinned
  sdist). Every file is verified against its pinned sha256, wherever it comes from.
* :func:`verified_mirror_file` gives a mirror file (the prompt files) checked against its pin.

A wrong checksum, a missing file or a mirror folder that does not exist raises
:class:`edit.io.DataError` naming the file (and the expected and actual sha256).

Mirror folder (:func:`data_mirror`): ``EDIT_DATA_MIRROR`` if set, else ``params["runtime"]
["data_mirror"]`` (relative to the repository root); a configured folder that does not exist is an
error, ``null`` means no mirror (benchmark files come from the cache or a download). Cache folder:
``EDIT_DATA_CACHE`` if set, else ``params["runtime"]["data_cache"]``, else ``~/.cache/edit/benchmarks``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import tarfile
import urllib.request
from functools import lru_cache
from pathlib import Path

from tqdm.auto import tqdm

from edit.io import DataError

SOURCES_FILE = Path(__file__).resolve().parent.parent / "sources.json"

#: Per-file cap applied to the sdist's task files (the mirror already holds the result).
BIGBENCH_FILE_CAP = 100
BIGBENCH_SAMPLE_SEED = 0


def load_sources(path: str | Path = SOURCES_FILE) -> dict:
    """The pinned source table: ``{"archives": {name: {url, sha256}}, "files": {relpath: entry}}``;
    an entry has ``sha256`` (of the mirror's bytes) and either ``url`` (a direct download) or
    ``archive`` + ``member`` (+ ``content_sha256`` of the file's canonical JSON, see
    :func:`canonical_json_sha256`) for files extracted from an archive."""
    path = Path(path)
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: source table not found") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON ({e.msg})") from None
    if not isinstance(table, dict) or "files" not in table:
        raise DataError(f"{path}: expected an object with 'files'")
    return table


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_json_sha256(obj) -> str:
    """sha256 of ``obj`` as canonical JSON (sorted keys, no spaces, UTF-8): equal for equal parsed
    content whatever the file's formatting."""
    s = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def _download(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Download ``url`` to ``dest`` (through a temporary file). Tests replace this function."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:  # noqa: S310 (pinned https URLs)
        while chunk := r.read(1 << 20):
            f.write(chunk)
    os.replace(tmp, dest)


def sample_bigbench_task(task_json: dict, cap: int = BIGBENCH_FILE_CAP, seed: int = BIGBENCH_SAMPLE_SEED) -> dict:
    """A BIG-bench task file with at most ``cap`` examples: when it has more, ``cap`` of them drawn
    with ``random.Random(seed).sample`` and kept in their original order, and ``"sampled_from": n``
    added. This is the rule that made the mirror's ``bigbench_sub`` from the sdist."""
    exs = task_json.get("examples") or []
    if len(exs) <= cap:
        return task_json
    keep = sorted(random.Random(seed).sample(range(len(exs)), cap))
    out = dict(task_json)
    out["examples"] = [exs[i] for i in keep]
    out["sampled_from"] = len(exs)
    return out


class BenchmarkFiles:
    """Resolves pinned benchmark files to verified local paths.

    mirror         - the offline mirror folder (or None)
    cache_dir      - where downloaded files are kept (created on first download)
    allow_download - False: never touch the network (a file missing from mirror and cache is an error)
    sources        - the pinned table (default: ``edit/sources.json``)
    """

    def __init__(self, mirror: str | Path | None, cache_dir: str | Path | None = None,
                 allow_download: bool = True, sources: dict | None = None):
        self.mirror = existing_mirror(mirror) if mirror else None
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.allow_download = allow_download
        self.sources = sources if sources is not None else load_sources()
        self._verified: dict[str, Path] = {}
        self.origin: dict[str, str] = {}  # relpath -> "mirror" | "cache" | "download"

    def entry(self, relpath: str) -> dict:
        try:
            return self.sources["files"][relpath]
        except KeyError:
            raise DataError(f"{relpath}: not in the pinned source table") from None

    def _mirror_words(self) -> str:
        return f"the mirror ({self.mirror})" if self.mirror is not None else "a mirror (none is set)"

    def relpaths(self, prefix: str) -> list[str]:
        """Pinned files whose path starts with ``prefix``, sorted."""
        return sorted(p for p in self.sources["files"] if p.startswith(prefix))

    def path(self, relpath: str) -> Path:
        """A verified local copy of ``relpath`` (mirror, else cache, else a fresh download)."""
        if relpath in self._verified:
            return self._verified[relpath]
        entry = self.entry(relpath)
        if self.mirror is not None and (self.mirror / relpath).is_file():
            p = self.mirror / relpath
            self._check_bytes(p, entry["sha256"], relpath)
            origin = "mirror"
        else:
            p = self.cache_dir / relpath
            origin = "cache"
            if not p.is_file():
                if not self.allow_download:
                    raise DataError(f"{relpath}: missing: not in {self._mirror_words()} nor the cache "
                                    f"({self.cache_dir}), and downloads are disabled")
                self._fetch(relpath, entry, p)
                origin = "download"
            try:
                self._check_cached(p, entry, relpath)
            except DataError as e:
                if origin == "download":  # never keep a bad download in the cache
                    p.unlink(missing_ok=True)
                    raise
                raise DataError(f"{e} (a bad cached copy: delete it to download it again)") from None
        self._verified[relpath] = p
        self.origin[relpath] = origin
        return p

    # -- checks
    @staticmethod
    def _check_bytes(p: Path, expected: str, relpath: str) -> None:
        check_sha256(p, expected, relpath)

    def _check_cached(self, p: Path, entry: dict, relpath: str) -> None:
        if "archive" in entry:  # re-serialised from an archive: compare parsed content
            try:
                obj = json.loads(p.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise DataError(f"{p}: malformed JSON ({e.msg}) for {relpath}") from None
            got = canonical_json_sha256(obj)
            if got != entry["content_sha256"]:
                raise DataError(f"{p}: content checksum mismatch for {relpath}: {got}, pinned {entry['content_sha256']}")
        else:
            self._check_bytes(p, entry["sha256"], relpath)

    # -- downloads
    def _fetch(self, relpath: str, entry: dict, dest: Path) -> None:
        if "archive" not in entry:
            try:
                _download(entry["url"], dest)
            except DataError:
                raise
            except Exception as e:
                raise DataError(f"{relpath}: download from {entry['url']} failed ({e}); not in "
                                f"{self._mirror_words()} either") from None
            return
        self._extract_from_archive(entry["archive"], relpath)
        if not dest.is_file():
            raise DataError(f"{relpath}: member {entry['member']} not found in {entry['archive']}")

    def _extract_from_archive(self, name: str, relpath: str) -> None:
        """Extract, in ONE pass over the (gzip) archive, every pinned file of ``name`` that the cache
        lacks, each reduced by :func:`sample_bigbench_task` and written as JSON."""
        archive = self._archive(name, relpath)
        wanted = {e["member"]: (rel, e) for rel, e in self.sources["files"].items()
                  if e.get("archive") == name and not (self.cache_dir / rel).is_file()}
        with tarfile.open(archive, "r:*") as tar, tqdm(total=len(wanted), desc=f"extract {name}") as bar:
            for info in tar:
                if info.name not in wanted or not info.isfile():
                    continue
                bar.update(1)
                rel, e = wanted[info.name]
                f = tar.extractfile(info)
                try:
                    obj = json.load(io.TextIOWrapper(f, encoding="utf-8"))
                except json.JSONDecodeError as err:
                    raise DataError(f"{archive}: {info.name}: malformed JSON ({err.msg})") from None
                obj = sample_bigbench_task(obj, int(e.get("cap", BIGBENCH_FILE_CAP)),
                                           int(e.get("sample_seed", BIGBENCH_SAMPLE_SEED)))
                _write_json_keep_order(self.cache_dir / rel, obj)

    def _archive(self, name: str, relpath: str) -> Path:
        try:
            a = self.sources["archives"][name]
        except KeyError:
            raise DataError(f"{relpath}: archive {name!r} is not in the pinned source table") from None
        p = self.cache_dir / "_archives" / name
        if not p.is_file():
            try:
                _download(a["url"], p)
            except Exception as e:
                raise DataError(f"{relpath}: download of {name} from {a['url']} failed ({e}); not in "
                                f"{self._mirror_words()} either") from None
        self._check_bytes(p, a["sha256"], name)
        return p


def _write_json_keep_order(path: Path, obj) -> None:
    """JSON with the keys in their original order (``target_scores`` order is the options' order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def default_cache_dir(params: dict | None = None) -> Path:
    env = os.environ.get("EDIT_DATA_CACHE")
    if env:
        return Path(env)
    value = (params or {}).get("runtime", {}).get("data_cache")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "edit" / "benchmarks"


def data_mirror(params: dict, root: str | Path = ".") -> Path | None:
    """The run's data mirror: ``EDIT_DATA_MIRROR`` if set, else ``runtime.data_mirror`` (relative to
    ``root``); None when neither is set. A folder that does not exist is a DataError naming it (the
    pipeline never falls back to another folder)."""
    env = os.environ.get("EDIT_DATA_MIRROR")
    value = env or (params.get("runtime") or {}).get("data_mirror")
    if not value:
        return None
    return existing_mirror(Path(root, value), "EDIT_DATA_MIRROR" if env else "runtime.data_mirror")


def existing_mirror(path: str | Path, setting: str = "the data mirror") -> Path:
    """``path`` when it is a folder, else a DataError naming it and the setting it came from."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"data mirror {path} does not exist (set by {setting}); point it at the mirror folder, "
                        f"or set runtime.data_mirror to null to take the benchmark files from the cache or a download")
    return path


def files_from_params(params: dict, root: str | Path = ".", allow_download: bool = True) -> BenchmarkFiles:
    """:class:`BenchmarkFiles` for the run: mirror = :func:`data_mirror` (none when unset; a
    configured folder that does not exist is an error); cache = ``EDIT_DATA_CACHE`` else
    ``runtime.data_cache`` else ``~/.cache/edit/benchmarks``."""
    return BenchmarkFiles(data_mirror(params, root), default_cache_dir(params), allow_download)


def check_sha256(path: Path, expected: str, relpath: str) -> None:
    """DataError naming ``path``, the expected and the actual sha256 when the file's bytes differ from the pin."""
    got = sha256_file(path)
    if got != expected:
        raise DataError(f"{path}: checksum mismatch for {relpath}: sha256 {got}, pinned {expected}")


@lru_cache(maxsize=1)
def _default_sources() -> dict:
    return load_sources()


def verified_mirror_file(mirror: str | Path | None, relpath: str, sources: dict | None = None) -> Path:
    """``<mirror>/<relpath>`` checked against its pinned sha256 (for files only the mirror has,
    such as the teacher's prompt files). FileNotFoundError naming the path when the file is missing;
    DataError when no mirror is set, the mirror folder does not exist, the file is not pinned, or
    its bytes differ from the pin (expected and actual sha256 in the message)."""
    if mirror is None:
        raise DataError(f"{relpath}: no data mirror is set (runtime.data_mirror / EDIT_DATA_MIRROR); "
                        f"this file is read from the mirror only")
    path = existing_mirror(mirror) / relpath
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (pinned file {relpath} of the data mirror {mirror})")
    table = sources if sources is not None else _default_sources()
    entry = table["files"].get(relpath)
    if entry is None:
        raise DataError(f"{path}: {relpath} is not in the pinned source table ({SOURCES_FILE})")
    check_sha256(path, entry["sha256"], relpath)
    return path


def load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON ({e.msg}, line {e.lineno})") from None


def pin_table(mirror: str | Path, old: dict | None = None) -> dict:
    """Recompute the source table's checksums from a mirror whose BBH/AGIEval/ARC files are
    byte-identical to upstream (URLs and archive entries are kept from ``old``). For maintainers;
    the pipeline only reads ``edit/sources.json``."""
    mirror = Path(mirror)
    old = old or load_sources()
    table = {k: v for k, v in old.items() if k != "files"}
    files = {}
    for rel, entry in sorted(old["files"].items()):
        p = mirror / rel
        e = dict(entry)
        e["sha256"] = sha256_file(p)
        if "archive" in e:
            e["content_sha256"] = canonical_json_sha256(load_json(p))
        files[rel] = e
    table["files"] = files
    return table
