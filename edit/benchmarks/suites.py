"""The benchmark suites as data: one common record for every suite (:class:`BenchItem`) and its
validation, what each suite holds (tasks, answer types), the BBH train/test split, the selection
of an ``eval.suites`` entry (:func:`select_suite`), and the suite files the benchmarks stage writes
and later stages read.

Suites (``SUITES``):

* ``bbh``     - BIG-Bench-Hard, GitHub suzgunmirac/BIG-Bench-Hard @ 9ee07bd, ``bbh/<task>.json``:
                27 tasks, 6,511 items, split 4:1 per task into train/test (:func:`bbh_split`).
* ``bb_sub``  - the EDIT paper's BIG-bench subset: 60 of its 61 tasks (``BB_SUB_MISSING`` is not in
                BIG-bench 1.0.0), from the PyPI sdist ``bigbench==1.0.0``; every (sub)task file is
                reduced to <= 100 examples (:func:`edit.benchmarks.sources.sample_bigbench_task`),
                then each task is capped at ``max_per_task``
                (:func:`edit.benchmarks.parsers.cap_per_task`).
* ``agieval`` - AGIEval @ 5c77d07, the 8 English multiple-choice subsets (2,546 items).
* ``arc_e`` / ``arc_c`` - ARC-Easy (2,376) and ARC-Challenge (1,172) test sets as reformatted in
                C-W-D/CasCoD @ 3468d15 (some items are labelled (1)-(4); one ARC-E item has 5 options).

Files written by the benchmarks stage (:func:`write_benchmarks`): ``<suite>.jsonl`` (one
:class:`BenchItem` per line), ``bbh_split.json`` and ``counts.json``. A malformed record raises
:class:`edit.io.DataError` naming the file and the record.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from edit.benchmarks.sources import canonical_json_sha256, load_json
from edit.io import DataError, read_jsonl, write_json, write_jsonl
from edit.records import Question
from edit.scoring import ANSWER_TYPES, normalise_gold

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

AGIEVAL_SUBSETS = ("aqua-rat", "logiqa-en", "lsat-ar", "lsat-lr", "lsat-rc", "sat-math", "sat-en",
                   "sat-en-without-passage")

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


# ====================================================================== the BBH split


def bbh_split(items: Sequence[BenchItem], seed: int, test_fraction: float) -> dict:
    """The 4:1 train/test split per task (``benchmarks.bbh_split_seed``, ``benchmarks.bbh_test_fraction``): ``round(n * test_fraction)`` items of each task go to
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


# ====================================================================== suite files and counts


def counts(suites: Mapping[str, Sequence[BenchItem]]) -> dict:
    """``{suite: {"total": n, "tasks": {task: n}}}`` (tasks sorted)."""
    out = {}
    for s, items in suites.items():
        per: dict[str, int] = {}
        for it in items:
            per[it.task] = per.get(it.task, 0) + 1
        out[s] = {"total": len(items), "tasks": dict(sorted(per.items()))}
    return out


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
    split = load_json(out / "bbh_split.json") if (out / "bbh_split.json").is_file() else None
    if split is None:
        raise DataError(f"{out / 'bbh_split.json'}: file not found")
    return split_part(read_suite(out / "bbh.jsonl"), split, part)


# ====================================================================== selection


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
