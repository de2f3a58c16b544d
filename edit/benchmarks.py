"""Real benchmarks: acquisition (pinned public sources, a local cache, an offline mirror), one
common record for every suite (:class:`BenchItem`), loaders, the BBH train/test split, and a
JSONL writer/reader.

Suites (``SUITES``) and their public sources (pinned in ``edit/sources.json``, URL + sha256 per file):

* ``bbh``     - BIG-Bench-Hard, GitHub suzgunmirac/BIG-Bench-Hard @ 9ee07bd, ``bbh/<task>.json``:
                27 tasks, 6,511 items, split 4:1 per task into train/test (:func:`bbh_split`).
* ``bb_sub``  - the EDIT paper's BIG-bench subset: 60 of its 61 tasks (``BB_SUB_MISSING`` is not in
                BIG-bench 1.0.0), from the PyPI sdist ``bigbench==1.0.0``; every (sub)task file is
                reduced to <= 100 examples by ``random.Random(0).sample`` kept in original order
                (:func:`sample_bigbench_task`), then each task is capped at ``max_per_task``
                (:func:`cap_per_task`).
* ``agieval`` - AGIEval @ 5c77d07, the 8 English multiple-choice subsets (2,546 items).
* ``arc_e`` / ``arc_c`` - ARC-Easy (2,376) and ARC-Challenge (1,172) test sets as reformatted in
                C-W-D/CasCoD @ 3468d15 (some items are labelled (1)-(4); one ARC-E item has 5 options).

Acquisition (:class:`BenchmarkFiles`): a file is taken from the mirror folder when the mirror has
it (no network is attempted then), else from the cache folder, else downloaded once into the cache
from its pinned URL (BB-sub files are extracted from the pinned sdist). Every file is verified
against its pinned sha256, wherever it comes from; a wrong checksum, a missing file or a malformed
record raises :class:`edit.io.DataError` naming the file and the record.

Mirror folder: ``EDIT_DATA_MIRROR`` if set, else ``params["runtime"]["data_mirror"]`` (relative to
the repository root; default ``../shared/data``). Cache folder: ``EDIT_DATA_CACHE`` if set, else
``params["runtime"]["data_cache"]``, else ``~/.cache/edit/benchmarks``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import tarfile
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from edit.io import DataError, read_jsonl, write_json, write_jsonl
from edit.records import Question
from edit.scoring import ANSWER_TYPES, normalise_gold

SOURCES_FILE = Path(__file__).with_name("sources.json")
SUITES = ("bbh", "bb_sub", "agieval", "arc_e", "arc_c")

#: Answer type of every BBH task (see ``edit.scoring.ANSWER_TYPES``).
BBH_ANSWER_TYPES: dict[str, str] = {
    "boolean_expressions": "bool",
    "causal_judgement": "yes_no",
    "date_understanding": "option",
    "disambiguation_qa": "option",
    "dyck_languages": "dyck",
    "formal_fallacies": "valid_invalid",
    "geometric_shapes": "option",
    "hyperbaton": "option",
    "logical_deduction_five_objects": "option",
    "logical_deduction_seven_objects": "option",
    "logical_deduction_three_objects": "option",
    "movie_recommendation": "option",
    "multistep_arithmetic_two": "number",
    "navigate": "yes_no",
    "object_counting": "number",
    "penguins_in_a_table": "option",
    "reasoning_about_colored_objects": "option",
    "ruin_names": "option",
    "salient_translation_error_detection": "option",
    "snarks": "option",
    "sports_understanding": "yes_no",
    "temporal_sequences": "option",
    "tracking_shuffled_objects_five_objects": "option",
    "tracking_shuffled_objects_seven_objects": "option",
    "tracking_shuffled_objects_three_objects": "option",
    "web_of_lies": "yes_no",
    "word_sorting": "words",
}
BBH_TASKS = tuple(sorted(BBH_ANSWER_TYPES))

AGIEVAL_SUBSETS = ("aqua-rat", "logiqa-en", "lsat-ar", "lsat-lr", "lsat-rc", "sat-math", "sat-en",
                   "sat-en-without-passage")
ARC_FILES = {"arc_e": "arc/ARC-Easy-Test.json", "arc_c": "arc/ARC-Challenge-Test.json"}

#: The EDIT paper's 61 BB-sub tasks; the 60 present in BIG-bench 1.0.0 (``BB_SUB_TASKS``).
BB_SUB_MISSING = ("indic_cause_and_effect",)
BB_SUB_TASKS = (
    "abstract_narrative_understanding", "anachronisms", "analogical_similarity", "analytic_entailment",
    "cause_and_effect", "checkmate_in_one", "cifar10_classification", "code_line_description",
    "conceptual_combinations", "crass_ai", "elementary_math_qa", "emoji_movie", "empirical_judgments",
    "english_russian_proverbs", "entailed_polarity", "entailed_polarity_hindi", "epistemic_reasoning",
    "evaluating_information_essentiality", "fantasy_reasoning", "figure_of_speech_detection",
    "goal_step_wikihow", "gre_reading_comprehension", "human_organs_senses", "identify_math_theorems",
    "identify_odd_metaphor", "implicatures", "implicit_relations", "intersect_geometry", "kanji_ascii",
    "kannada", "key_value_maps", "logic_grid_puzzle", "logical_args", "logical_fallacy_detection",
    "metaphor_boolean", "metaphor_understanding", "minute_mysteries_qa", "mnist_ascii",
    "moral_permissibility", "movie_dialog_same_or_different", "nonsense_words_grammar", "odd_one_out",
    "parsinlu_qa", "physical_intuition", "play_dialog_same_or_different", "presuppositions_as_nli",
    "riddle_sense", "similarities_abstraction", "simple_ethical_questions", "social_iqa",
    "strange_stories", "strategyqa", "swahili_english_proverbs", "swedish_to_german_proverbs",
    "symbol_interpretation", "timedial", "undo_permutation", "unit_interpretation",
    "vitaminc_fact_verification", "winowhy",
)
#: Per-file cap applied to the sdist's task files (the mirror already holds the result).
BIGBENCH_FILE_CAP = 100
BIGBENCH_SAMPLE_SEED = 0

DEFAULTS = {"bbh_split_seed": 0, "bbh_test_fraction": 0.2, "bb_sub_max_per_task": 100}
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_OPTION_LINE = re.compile(r"^\((?P<label>[A-Z]|\d{1,3})\)\s?(?P<text>.*)$")


# ====================================================================== the common record


@dataclass(frozen=True)
class BenchItem:
    """One benchmark item of any suite, in the form the student sees and writes.

    id:          stable identifier ``<suite>/<task>[/<subtask>]/<index:05d>`` (index in the source file)
    suite:       one of ``SUITES``
    task:        task (BBH task, BB-sub task, AGIEval subset; ``arc_e``/``arc_c`` for ARC)
    input:       the question exactly as the student sees it; options rendered BBH-style
                 ``"...\\nOptions:\\n(A) text\\n(B) text"``
    target:      the gold as a model writes it: ``"(B)"``, ``"True"``, ``"24"``, ``"valid"``, ``"} ]"``
    answer_type: how answers are extracted and compared (``edit.scoring.ANSWER_TYPES``)
    targets:     every accepted gold, ``target`` first (BB-sub aliases, tied best options)
    choices:     option texts in label order (empty for open answers)
    labels:      option labels in order (``"(A)"``...; ARC may use ``"(1)"``...), empty for open answers
    """

    id: str
    suite: str
    task: str
    input: str
    target: str
    answer_type: str
    targets: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.targets:
            object.__setattr__(self, "targets", (self.target,))
        for name in ("targets", "choices", "labels"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def question(self) -> Question:
        """The item as an :class:`edit.records.Question` (id, task, input, target)."""
        return Question(self.id, self.task, self.input, self.target)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("targets", "choices", "labels"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "record") -> "BenchItem":
        """Build and validate an item; DataError naming ``where`` and the id on any problem."""
        return validate_item(cls(**_checked_fields(d, where)), where)


_FIELDS = ("id", "suite", "task", "input", "target", "answer_type", "targets", "choices", "labels")


def _checked_fields(d: Mapping, where: str) -> dict:
    if not isinstance(d, Mapping):
        raise DataError(f"{where}: expected an object, got {type(d).__name__}")
    rid = d.get("id", "?")
    missing = [k for k in _FIELDS[:6] if k not in d]
    if missing:
        raise DataError(f"{where} (id {rid}): missing field(s) {', '.join(missing)}")
    unknown = [k for k in d if k not in _FIELDS]
    if unknown:
        raise DataError(f"{where} (id {rid}): unknown field(s) {', '.join(unknown)}")
    out = {}
    for k in _FIELDS:
        if k not in d:
            continue
        v = d[k]
        if k in ("targets", "choices", "labels"):
            if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
                raise DataError(f"{where} (id {rid}): field {k!r} must be a list of strings")
            v = tuple(v)
        elif not isinstance(v, str):
            raise DataError(f"{where} (id {rid}): field {k!r} must be a string, got {type(v).__name__}")
        out[k] = v
    return out


def validate_item(item: BenchItem, where: str = "record") -> BenchItem:
    """Check an item's invariants; DataError naming ``where`` and the item's id otherwise."""
    def bad(msg: str):
        raise DataError(f"{where} (id {item.id}): {msg}")

    if item.suite not in SUITES:
        bad(f"unknown suite {item.suite!r}; expected one of {SUITES}")
    if item.answer_type not in ANSWER_TYPES:
        bad(f"unknown answer_type {item.answer_type!r}; expected one of {ANSWER_TYPES}")
    if not item.id or not item.task or not item.input.strip():
        bad("empty id, task or input")
    if not item.target.strip():
        bad("empty target")
    if item.targets[0] != item.target:
        bad("targets must start with target")
    if len(item.choices) != len(item.labels):
        bad(f"{len(item.choices)} choices but {len(item.labels)} labels")
    if item.answer_type == "option":
        if not item.labels:
            bad("an option item needs labels")
        for t in item.targets:
            if t not in item.labels:
                bad(f"gold {t!r} is not one of the labels {item.labels}")
    if normalise_gold(item.target, item.answer_type) == "":
        bad(f"target {item.target!r} is empty after normalisation")
    return item


# ====================================================================== acquisition


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
        self.mirror = Path(mirror) if mirror else None
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
                    raise DataError(f"{relpath}: missing: not in the mirror ({self.mirror}) nor the cache "
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
        got = sha256_file(p)
        if got != expected:
            raise DataError(f"{p}: checksum mismatch for {relpath}: sha256 {got}, pinned {expected}")

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
                raise DataError(f"{relpath}: download from {entry['url']} failed ({e}); no mirror copy under "
                                f"{self.mirror}") from None
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
        from tqdm.auto import tqdm

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
                raise DataError(f"{relpath}: download of {name} from {a['url']} failed ({e}); no mirror copy "
                                f"under {self.mirror}") from None
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


def files_from_params(params: dict, root: str | Path = ".", allow_download: bool = True) -> BenchmarkFiles:
    """:class:`BenchmarkFiles` for the run: mirror = ``EDIT_DATA_MIRROR`` else
    ``runtime.data_mirror`` (relative to ``root``); cache = ``EDIT_DATA_CACHE`` else
    ``runtime.data_cache`` else ``~/.cache/edit/benchmarks``."""
    value = os.environ.get("EDIT_DATA_MIRROR") or params.get("runtime", {}).get("data_mirror") or "../shared/data"
    mirror = Path(root, value)
    return BenchmarkFiles(mirror if mirror.is_dir() else None, default_cache_dir(params), allow_download)


# ====================================================================== helpers


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON ({e.msg}, line {e.lineno})") from None


def _str_field(rec, key: str, where: str) -> str:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected an object, got {type(rec).__name__}")
    v = rec.get(key)
    if not isinstance(v, str) or not v.strip():
        raise DataError(f"{where}: field {key!r} missing or not a non-empty string")
    return v


def parse_options(text: str, where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Labels and option texts of the ``Options:`` block at the end of a BBH/ARC-style input."""
    head, sep, block = text.rpartition("\nOptions:\n")
    if not sep:
        return (), ()
    labels, choices = [], []
    for line in block.split("\n"):
        m = _OPTION_LINE.match(line)
        if m is None:
            if not labels:
                raise DataError(f"{where}: malformed option line {line!r}")
            choices[-1] += "\n" + line  # an option text spanning lines
            continue
        labels.append(f"({m.group('label')})")
        choices.append(m.group("text"))
    return tuple(labels), tuple(choices)


def render_options(question: str, choices: Sequence[str], labels: Sequence[str]) -> str:
    """``question`` followed by a BBH-style ``Options:`` block."""
    lines = [f"{lab} {c}" for lab, c in zip(labels, choices)]
    return question.rstrip() + "\nOptions:\n" + "\n".join(lines)


def option_labels(n: int) -> tuple[str, ...]:
    """``(A)``... for up to 26 options, ``(1)``...``(n)`` beyond (BB-sub's
    abstract_narrative_understanding/99_distractors has 100)."""
    if n <= len(_LETTERS):
        return tuple(f"({_LETTERS[i]})" for i in range(n))
    return tuple(f"({i + 1})" for i in range(n))


# ====================================================================== BBH


def parse_bbh_file(path: str | Path, task: str) -> list[BenchItem]:
    """The items of one BBH task file (``{"examples": [{"input", "target"}]}``)."""
    path = Path(path)
    data = _load_json(path)
    exs = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(exs, list) or not exs:
        raise DataError(f"{path}: expected an object with a non-empty 'examples' list")
    atype = BBH_ANSWER_TYPES.get(task)
    if atype is None:
        raise DataError(f"{path}: unknown BBH task {task!r}")
    items = []
    for i, e in enumerate(exs):
        where = f"{path}: example {i}"
        text, target = _str_field(e, "input", where), _str_field(e, "target", where)
        labels, choices = parse_options(text, where) if atype == "option" else ((), ())
        a = atype
        if atype == "option" and target not in labels:
            # upstream quirk: 3 golds are an option's text that a comma split into two options
            # (movie_recommendation 163, ruin_names 99 and 144): scored as free text against it
            if not re.fullmatch(r"\(?[A-Z]\)?", target.strip()):
                a = "free_text"
            else:
                raise DataError(f"{where}: target {target!r} is not one of the options {labels}")
        items.append(validate_item(BenchItem(f"bbh/{task}/{i:05d}", "bbh", task, text, target, a,
                                             choices=choices, labels=labels), where))
    return items


def load_bbh(files: BenchmarkFiles, tasks: Iterable[str] = BBH_TASKS) -> list[BenchItem]:
    """Every BBH item of ``tasks`` (default all 27), in task then file order."""
    out = []
    for t in tasks:
        out.extend(parse_bbh_file(files.path(f"bbh/bbh/{t}.json"), t))
    return out


def bbh_split(items: Sequence[BenchItem], seed: int = DEFAULTS["bbh_split_seed"],
              test_fraction: float = DEFAULTS["bbh_test_fraction"]) -> dict:
    """The 4:1 train/test split per task: ``round(n * test_fraction)`` items of each task go to
    test, chosen by ``random.Random(f"{seed}/{task}").sample`` over the task's ids (independent of
    other tasks and of item order). Returns ``{"seed", "test_fraction", "tasks": {task: {"train":
    [ids], "test": [ids]}}}`` with ids in source order."""
    by_task: dict[str, list[str]] = {}
    for it in items:
        by_task.setdefault(it.task, []).append(it.id)
    tasks = {}
    for task in sorted(by_task):
        ids = sorted(by_task[task])
        n_test = int(round(len(ids) * float(test_fraction)))
        test = set(random.Random(f"{seed}/{task}").sample(ids, n_test))
        tasks[task] = {"train": [i for i in ids if i not in test], "test": [i for i in ids if i in test]}
    return {"seed": seed, "test_fraction": float(test_fraction), "tasks": tasks}


def split_sha256(split: dict) -> str:
    """sha256 of the split's canonical JSON (pinned in the tests)."""
    return canonical_json_sha256(split)


def split_part(items: Sequence[BenchItem], split: dict, part: str) -> list[BenchItem]:
    """The items of ``part`` ("train" or "test") of ``split``, in the items' order; DataError
    when the split names an id that is not among the items."""
    if part not in ("train", "test"):
        raise ValueError(f"part must be 'train' or 'test', got {part!r}")
    wanted = {i for t in split["tasks"].values() for i in t[part]}
    have = {it.id for it in items}
    unknown = sorted(wanted - have)
    if unknown:
        raise DataError(f"split names {len(unknown)} unknown id(s), e.g. {unknown[0]}")
    return [it for it in items if it.id in wanted]


# ====================================================================== BB-sub

_DEFAULT_INPUT_PREFIX = "Q:"
_TRIVIAL_OUTPUT_PREFIXES = {"", "A:", "Answer:", "answer:", "A"}


def _bb_prompt(task_json: dict, example_input: str) -> str:
    """The question text of a BIG-bench example: the task prefix, the example input prefix (unless
    it is BIG-bench's default "Q:") and the input, then the example output prefix when it carries
    the question ("Does the preceding sentence contain ...?", "Relation:", ...) rather than a bare
    "A:"/"Answer:"."""
    parts = []
    tp = str(task_json.get("task_prefix") or "").strip()
    if tp:
        parts.append(tp)
    ip = str(task_json.get("example_input_prefix", "\nQ: ") or "").strip()
    body = example_input.strip()
    if body:
        parts.append(body if ip in ("", _DEFAULT_INPUT_PREFIX) else f"{ip} {body}")
    op = str(task_json.get("example_output_prefix", "\nA: ") or "").strip()
    if op not in _TRIVIAL_OUTPUT_PREFIXES:
        parts.append(op)
    return "\n".join(parts)


def parse_bigbench_file(path: str | Path, task: str, subtask: str) -> list[BenchItem]:
    """The items of one BIG-bench task file. ``preferred_score`` ``multiple_choice_grade`` with
    ``target_scores`` -> lettered options (numbers beyond 26), gold = the label of the highest
    score (every tied best option is accepted, in ``targets``); more than 26 options that are all
    numbers -> an open ``number`` question whose gold is the best option's number; otherwise (``exact_str_match``,
    ``rougeLsum``) the ``target`` string or list is kept as free text with every alias accepted."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    exs = data.get("examples") or []
    if not isinstance(exs, list):
        raise DataError(f"{path}: 'examples' must be a list")
    preferred = data.get("preferred_score", "multiple_choice_grade")
    items = []
    for i, e in enumerate(exs):
        where = f"{path}: example {i}"
        if not isinstance(e, dict) or not isinstance(e.get("input"), str):
            raise DataError(f"{where}: field 'input' missing or not a string")
        text = e["input"]  # may be empty: cause_and_effect puts the question in its prefixes and options
        rid = f"bb_sub/{task}/{subtask}/{i:05d}" if subtask else f"bb_sub/{task}/{i:05d}"
        question = _bb_prompt(data, text)
        scores = e.get("target_scores")
        if preferred == "multiple_choice_grade" or "target" not in e:
            if not isinstance(scores, dict) or len(scores) < 2:
                raise DataError(f"{where}: a multiple-choice example needs 'target_scores' with >= 2 options")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scores.values()):
                raise DataError(f"{where}: 'target_scores' values must be numbers")
            choices = tuple(str(c).strip() for c in scores)
            best = max(scores.values())
            if len(choices) > len(_LETTERS) and all(_NUMBER.fullmatch(c) for c in choices):
                # e.g. intersect_geometry: "how many ...?" over the 41 choices "0".."40": an open
                # numeric question (numbered options would pair "(2)" with "1")
                golds = tuple(c for c, v in zip(choices, scores.values()) if v == best)
                items.append(validate_item(BenchItem(rid, "bb_sub", task, question, golds[0], "number",
                                                     targets=golds), where))
                continue
            labels = option_labels(len(choices))
            golds = tuple(lab for lab, v in zip(labels, scores.values()) if v == best)
            item = BenchItem(rid, "bb_sub", task, render_options(question, choices, labels), golds[0],
                             "option", targets=golds, choices=choices, labels=labels)
        else:
            raw = e.get("target")
            aliases = [raw] if isinstance(raw, str) else raw
            if not isinstance(aliases, list) or not aliases or not all(isinstance(a, str) and a.strip() for a in aliases):
                raise DataError(f"{where}: 'target' must be a non-empty string or list of strings")
            aliases = tuple(dict.fromkeys(a.strip() for a in aliases))
            item = BenchItem(rid, "bb_sub", task, question, aliases[0], "free_text", targets=aliases)
        items.append(validate_item(item, where))
    return items


def cap_per_task(per_subtask: Mapping[str, Sequence[BenchItem]], cap: int) -> list[BenchItem]:
    """At most ``cap`` items of one task, spread over its subtasks as evenly as possible: subtasks
    in name order each get ``cap // k`` (the first ``cap % k`` one more); a subtask with fewer
    items gives its unused share to the others (water-filling). Each subtask contributes its FIRST
    items in file order (the mirror's files are already seeded random samples), so the rule has no
    randomness of its own. Returns the items ordered by subtask name, then file order."""
    names = sorted(per_subtask)
    sizes = {n: len(per_subtask[n]) for n in names}
    quota = {n: 0 for n in names}
    left = min(cap, sum(sizes.values()))
    while left > 0:
        open_ = [n for n in names if quota[n] < sizes[n]]
        share, extra = divmod(left, len(open_))
        for j, n in enumerate(open_):
            add = min(share + (1 if j < extra else 0), sizes[n] - quota[n])
            quota[n] += add
            left -= add
    return [it for n in names for it in list(per_subtask[n])[: quota[n]]]


def load_bb_sub(files: BenchmarkFiles, max_per_task: int = DEFAULTS["bb_sub_max_per_task"],
                tasks: Iterable[str] = BB_SUB_TASKS) -> list[BenchItem]:
    """BB-sub items of ``tasks`` (default the 60 available), at most ``max_per_task`` per task."""
    out = []
    for task in tasks:
        rels = files.relpaths(f"bigbench_sub/{task}/")
        if not rels:
            raise DataError(f"bigbench_sub/{task}: no pinned files for BB-sub task {task!r}")
        per_sub: dict[str, list[BenchItem]] = {}
        for rel in rels:
            sub = rel[len(f"bigbench_sub/{task}/"):-len("task.json")].strip("/")
            its = parse_bigbench_file(files.path(rel), task, sub)
            if its:
                per_sub[sub] = its
        if not per_sub:
            raise DataError(f"bigbench_sub/{task}: no examples in {len(rels)} file(s)")
        out.extend(cap_per_task(per_sub, max_per_task))
    return out


# ====================================================================== AGIEval and ARC


def _agieval_option_text(option: str, j: int) -> str:
    """An AGIEval option without its printed label. Options are labelled by POSITION (A, B, ...):
    upstream logiqa-en has options printed "A No dangshen", "B? ...", with swapped printed labels
    ("(A)", "(C)", "(B)", "(D)") or with the label lost; a leading "(X)" is always dropped, a bare
    positional letter followed by a space or "?" only when there is no "(X)"."""
    o = option.strip()
    m = re.match(r"^\(([A-Z])\)\s*", o)
    if m:
        return o[m.end():].strip()
    m = re.match(rf"^{_LETTERS[j]}(?:\?\s*|\s+)", o)
    if m:
        return o[m.end():].strip()
    return o


def parse_agieval_file(path: str | Path, subset: str) -> list[BenchItem]:
    """AGIEval rows ``{passage, question, options: ["(A)..."], label: "A"}`` as option items: the
    passage (when there is one), a newline, the question, then ``Options:`` with "(A) text" lines
    (labels by position, see :func:`_agieval_option_text`)."""
    path = Path(path)
    items = []
    for i, rec in enumerate(read_jsonl(path)):
        where = f"{path}: record {i}"
        q = _str_field(rec, "question", where)
        opts = rec.get("options")
        if not isinstance(opts, list) or len(opts) < 2 or not all(isinstance(o, str) for o in opts):
            raise DataError(f"{where}: 'options' must be a list of >= 2 strings")
        if len(opts) > len(_LETTERS):
            raise DataError(f"{where}: {len(opts)} options, at most {len(_LETTERS)} supported")
        labels = [f"({_LETTERS[j]})" for j in range(len(opts))]
        choices = [_agieval_option_text(o, j) for j, o in enumerate(opts)]
        if not all(choices):
            raise DataError(f"{where}: empty option text")
        label = rec.get("label")
        if not isinstance(label, str) or f"({label.strip()})" not in labels:
            raise DataError(f"{where}: label {label!r} is not one of the options {labels}")
        passage = rec.get("passage")
        question = f"{passage.strip()}\n{q.strip()}" if isinstance(passage, str) and passage.strip() else q.strip()
        items.append(validate_item(BenchItem(
            f"agieval/{subset}/{i:05d}", "agieval", subset, render_options(question, choices, labels),
            f"({label.strip()})", "option", choices=tuple(choices), labels=tuple(labels)), where))
    if not items:
        raise DataError(f"{path}: no records")
    return items


def load_agieval(files: BenchmarkFiles, subsets: Iterable[str] = AGIEVAL_SUBSETS) -> list[BenchItem]:
    out = []
    for s in subsets:
        out.extend(parse_agieval_file(files.path(f"agieval/data/v1/{s}.jsonl"), s))
    return out


def parse_arc_file(path: str | Path, suite: str) -> list[BenchItem]:
    """CasCoD's ARC test file ``[{"input": "Question: ...\\nOptions:\\n(A) ...", "target": "(C)"}]``;
    the input is kept as is (labels (A).. or (1)..(4))."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list) or not data:
        raise DataError(f"{path}: expected a non-empty JSON list")
    items = []
    for i, e in enumerate(data):
        where = f"{path}: item {i}"
        text, target = _str_field(e, "input", where), _str_field(e, "target", where)
        labels, choices = parse_options(text, where)
        if not labels:
            raise DataError(f"{where}: no 'Options:' block in the input")
        if target not in labels:
            raise DataError(f"{where}: target {target!r} is not one of the options {labels}")
        items.append(validate_item(BenchItem(f"{suite}/{suite}/{i:05d}", suite, suite, text, target, "option",
                                             choices=choices, labels=labels), where))
    return items


def load_arc(files: BenchmarkFiles, suite: str) -> list[BenchItem]:
    if suite not in ARC_FILES:
        raise ValueError(f"unknown ARC suite {suite!r}; expected one of {tuple(ARC_FILES)}")
    return parse_arc_file(files.path(ARC_FILES[suite]), suite)


# ====================================================================== all suites, counts, files


def load_suite(files: BenchmarkFiles, suite: str, cfg: Mapping | None = None) -> list[BenchItem]:
    cfg = {**DEFAULTS, **(cfg or {})}
    if suite == "bbh":
        return load_bbh(files)
    if suite == "bb_sub":
        return load_bb_sub(files, int(cfg["bb_sub_max_per_task"]))
    if suite == "agieval":
        return load_agieval(files)
    if suite in ARC_FILES:
        return load_arc(files, suite)
    raise ValueError(f"unknown suite {suite!r}; expected one of {SUITES}")


def load_all(files: BenchmarkFiles, cfg: Mapping | None = None, suites: Iterable[str] = SUITES) -> dict[str, list[BenchItem]]:
    """``{suite: items}`` for ``suites``."""
    from tqdm.auto import tqdm

    suites = tuple(suites)
    return {s: load_suite(files, s, cfg) for s in tqdm(suites, desc="benchmarks", disable=len(suites) < 2)}


def counts(suites: Mapping[str, Sequence[BenchItem]]) -> dict:
    """``{suite: {"total": n, "tasks": {task: n}}}`` (tasks sorted)."""
    out = {}
    for s, items in suites.items():
        per: dict[str, int] = {}
        for it in items:
            per[it.task] = per.get(it.task, 0) + 1
        out[s] = {"total": len(items), "tasks": dict(sorted(per.items()))}
    return out


def count_table(suites: Mapping[str, Sequence[BenchItem]], split: dict | None = None):
    """A pandas frame, one row per (suite, task): n (and n_train / n_test for BBH when ``split``
    is given), plus one ``ALL`` row per suite."""
    import pandas as pd

    rows = []
    for s, c in counts(suites).items():
        for task, n in c["tasks"].items():
            row = {"suite": s, "task": task, "n": n}
            if split is not None and s == "bbh":
                row["n_train"] = len(split["tasks"][task]["train"])
                row["n_test"] = len(split["tasks"][task]["test"])
            rows.append(row)
        row = {"suite": s, "task": "ALL", "n": c["total"]}
        if split is not None and s == "bbh":
            row["n_train"] = sum(len(t["train"]) for t in split["tasks"].values())
            row["n_test"] = sum(len(t["test"]) for t in split["tasks"].values())
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in ("n_train", "n_test"):
        if col in frame:
            frame[col] = frame[col].astype("Int64")
    return frame


def write_benchmarks(out_dir: str | Path, suites: Mapping[str, Sequence[BenchItem]], split: dict | None) -> dict:
    """Write ``<suite>.jsonl`` per suite, ``bbh_split.json`` (when ``split`` is given) and
    ``counts.json`` (counts per suite and task, the split's seed and hash, the missing BB-sub
    tasks) into ``out_dir``; returns the counts document."""
    out = Path(out_dir)
    for s, items in suites.items():
        write_jsonl(out / f"{s}.jsonl", (it.to_dict() for it in items))
    doc = {"suites": counts(suites), "bb_sub_missing": list(BB_SUB_MISSING)}
    if split is not None:
        write_json(out / "bbh_split.json", split)
        doc["bbh_split"] = {"seed": split["seed"], "test_fraction": split["test_fraction"],
                            "sha256": split_sha256(split),
                            "train": sum(len(t["train"]) for t in split["tasks"].values()),
                            "test": sum(len(t["test"]) for t in split["tasks"].values())}
    write_json(out / "counts.json", doc)
    return doc


def read_suite(path: str | Path) -> list[BenchItem]:
    """Read and validate a suite's JSONL (every record a valid :class:`BenchItem`, ids unique)."""
    path = Path(path)
    items, seen = [], set()
    for lineno, rec in enumerate(read_jsonl(path), 1):
        it = BenchItem.from_dict(rec, f"{path}:{lineno}")
        if it.id in seen:
            raise DataError(f"{path}:{lineno} (id {it.id}): duplicate id")
        seen.add(it.id)
        items.append(it)
    return items


def read_bbh_part(out_dir: str | Path, part: str) -> list[BenchItem]:
    """The BBH ``train`` or ``test`` items written by :func:`write_benchmarks`."""
    out = Path(out_dir)
    split = _load_json(out / "bbh_split.json") if (out / "bbh_split.json").is_file() else None
    if split is None:
        raise DataError(f"{out / 'bbh_split.json'}: file not found")
    return split_part(read_suite(out / "bbh.jsonl"), split, part)


#: The keys of a benchmark suite's entry in ``eval.suites`` (see :func:`select_suite`).
SUITE_SPEC_KEYS = ("benchmark", "part", "tasks", "max_per_task")


def select_suite(spec: Mapping, bbh_part: Callable[[str], list[BenchItem]], suite: Callable[[str], list[BenchItem]],
                 name: str = "<suite>") -> list[BenchItem]:
    """The items of one benchmark entry of ``eval.suites``: ``{benchmark: bbh | bb_sub | agieval | arc_e |
    arc_c, part: test | train (BBH only, default test), tasks: [...] (optional subset), max_per_task: n
    (optional: the first n items of each task, in file order)}``. ``bbh_part(part)`` and
    ``suite(name)`` give the items (from the benchmarks stage's files or straight from the sources).
    A task named in ``tasks`` without items is an error: a typo must not shrink a suite silently."""
    if not isinstance(spec, Mapping) or "benchmark" not in spec:
        raise ValueError(f"eval.suites.{name}: a suite is a questions split name or a mapping with 'benchmark'; "
                         f"got {spec!r}")
    unknown = set(spec) - set(SUITE_SPEC_KEYS)
    if unknown:
        raise ValueError(f"eval.suites.{name}: unknown key(s) {sorted(unknown)}; expected {SUITE_SPEC_KEYS}")
    bench = spec["benchmark"]
    if bench not in SUITES:
        raise ValueError(f"eval.suites.{name}: unknown benchmark {bench!r}; expected one of {SUITES}")
    if bench == "bbh":
        items = bbh_part(spec.get("part") or "test")
    else:
        if spec.get("part"):
            raise ValueError(f"eval.suites.{name}: only BBH has train/test parts")
        items = suite(bench)
    if spec.get("tasks"):
        wanted = list(spec["tasks"])
        items = [it for it in items if it.task in wanted]
        missing = sorted(set(wanted) - {it.task for it in items})
        if missing:
            raise ValueError(f"eval.suites.{name}: no items for task(s) {missing} in benchmark {bench!r}")
    if spec.get("max_per_task"):
        cap, seen, kept = int(spec["max_per_task"]), {}, []
        for it in items:
            seen[it.task] = seen.get(it.task, 0) + 1
            if seen[it.task] <= cap:
                kept.append(it)
        items = kept
    return items


def answer_type(task: str) -> str:
    """The default answer type of a BBH task (BB-sub, AGIEval and ARC items carry their own)."""
    try:
        return BBH_ANSWER_TYPES[task]
    except KeyError:
        raise ValueError(f"no answer type for task {task!r}: not a BBH task; use the item's answer_type") from None


def build(params: dict, out_dir: str | Path, root: str | Path = ".", allow_download: bool = True) -> dict:
    """The stage: load every suite (``params["benchmarks"]``: ``suites``, ``bbh_split_seed``,
    ``bbh_test_fraction``, ``bb_sub_max_per_task``), split BBH, write everything to ``out_dir``;
    returns the counts document of :func:`write_benchmarks` plus (not written) ``"origin"``
    (number of files taken from the mirror / cache / a download), the items under ``"_items"``
    and the split under ``"_split"``."""
    cfg = {**DEFAULTS, **(params.get("benchmarks") or {})}
    suites_wanted = tuple(cfg.get("suites") or SUITES)
    files = files_from_params(params, root, allow_download)
    suites = load_all(files, cfg, suites_wanted)
    split = bbh_split(suites["bbh"], int(cfg["bbh_split_seed"]), float(cfg["bbh_test_fraction"])) if "bbh" in suites else None
    doc = write_benchmarks(out_dir, suites, split)
    # where the files came from varies by machine, so it is returned, never written
    return {**doc, "origin": dict(sorted(_count_values(files.origin).items())), "_items": suites, "_split": split}


def _count_values(d: Mapping[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in d.values():
        out[v] = out.get(v, 0) + 1
    return out


# ====================================================================== maintenance


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
            e["content_sha256"] = canonical_json_sha256(_load_json(p))
        files[rel] = e
    table["files"] = files
    return table
