"""Parsers of the public benchmark files into :class:`~edit.benchmarks.suites.BenchItem` records:
BBH task files, BIG-bench task files (BB-sub), AGIEval JSONL subsets and CasCoD's ARC test files,
and the loaders that read a whole suite from verified files (:class:`edit.benchmarks.sources.BenchmarkFiles`).

Options are rendered BBH-style (``"...\\nOptions:\\n(A) text\\n(B) text"``). A malformed file or
record raises :class:`edit.io.DataError` naming the file and the record.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from tqdm.auto import tqdm

from edit.benchmarks.sources import BenchmarkFiles, load_json
from edit.benchmarks.suites import (AGIEVAL_SUBSETS, BB_SUB_TASKS, BBH_ANSWER_TYPES, BBH_TASKS, SUITES,
                                    BenchItem, validate_item)
from edit.io import DataError, read_jsonl

ARC_FILES = {"arc_e": "arc/ARC-Easy-Test.json", "arc_c": "arc/ARC-Challenge-Test.json"}
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_OPTION_LINE = re.compile(r"^\((?P<label>[A-Z]|\d{1,3})\)\s?(?P<text>.*)$")


# ====================================================================== options


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
    data = load_json(path)
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
    data = load_json(path)
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


def load_bb_sub(files: BenchmarkFiles, max_per_task: int, tasks: Iterable[str] = BB_SUB_TASKS) -> list[BenchItem]:
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
    data = load_json(path)
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


# ====================================================================== whole suites


def load_suite(files: BenchmarkFiles, suite: str, cfg: Mapping) -> list[BenchItem]:
    """The items of ``suite``; ``cfg`` is the ``benchmarks`` params section (``bb_sub_max_per_task``)."""
    if suite == "bbh":
        return load_bbh(files)
    if suite == "bb_sub":
        return load_bb_sub(files, int(cfg["bb_sub_max_per_task"]))
    if suite == "agieval":
        return load_agieval(files)
    if suite in ARC_FILES:
        return load_arc(files, suite)
    raise ValueError(f"unknown suite {suite!r}; expected one of {SUITES}")


def load_all(files: BenchmarkFiles, cfg: Mapping, suites: Iterable[str] = SUITES) -> dict[str, list[BenchItem]]:
    """``{suite: items}`` for ``suites`` (``cfg``: the ``benchmarks`` params section)."""
    suites = tuple(suites)
    return {s: load_suite(files, s, cfg) for s in tqdm(suites, desc="benchmarks", disable=len(suites) < 2)}
