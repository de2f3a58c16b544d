"""Dual-CoT data: the teacher's CoTs split into D+ (correct) and D- (wrong), AHP's rectified D-+,
CCP's corrupted D+-, and the two kinds of dual pairs.

JSONL schemas (one object per line; ``key_spans`` are ``[start, end)`` character offsets into the
text they sit beside, known only for the oracle teacher):

``questions/<split>.jsonl``  ``{id, task, input, target}``  (a :class:`~edit.records.Question`)

``cots/sft.jsonl`` - correct CoTs for supervised fine-tuning::

    {id, task, question, gold, response, source, mistake_type, harmless}
    source: "D+" (the teacher's own correct CoT) or "D-+" (an AHP-rectified wrong CoT)

``cots/wrong.jsonl`` - wrong CoTs::

    {id, task, question, gold, response, source, mistake_type, harmless}
    source: "D-" (the teacher's own wrong CoT) or "D+-" (a CCP-corrupted correct CoT)

``cots/pairs.jsonl`` - dual pairs of the same question::

    {id, task, question, gold, pair_type, mistake_type, chosen, rejected,
     chosen_key_spans, rejected_key_spans, teacher}
    pair_type: "D+dual" (chosen = D+ CoT, rejected = its CCP corruption) or
               "D-dual" (chosen = AHP rectification, rejected = the teacher's wrong CoT)
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from edit import tasks
from edit.benchmarks.suites import answer_type
from edit.io import DataError
from edit.records import Question, TeacherCoT, blank, stable_seed
from edit.scoring import score
from edit.teacher import Teacher


def make_questions(
    task_difficulty: dict[str, dict], n_per_task: int, split: str, seed: int, exclude: set[str] = frozenset()
) -> list[Question]:
    """``n_per_task`` distinct generated questions per task, none of whose text is in ``exclude``
    (pass the training questions' texts when making test splits). Ids are ``task/split/#####``."""
    out: list[Question] = []
    for task, difficulty in task_difficulty.items():
        rng = random.Random(stable_seed(seed, split, task))
        seen = set(exclude)
        made, tries = 0, 0
        while made < n_per_task:
            tries += 1
            if tries > 50 * n_per_task + 1000:
                raise ValueError(
                    f"task {task!r} (difficulty {difficulty}) cannot give {n_per_task} distinct {split} "
                    f"questions: only {made} found; lower the count or raise the difficulty"
                )
            item = tasks.generate(task, rng, **(difficulty or {}))
            if item["input"] in seen:
                continue
            seen.add(item["input"])
            out.append(Question(f"{task}/{split}/{made:05d}", task, item["input"], item["target"]))
            made += 1
    return out


def bbh_train_questions(train_items, tasks_wanted: list[str], n_val_per_task: int,
                        max_train_per_task: int | None = None) -> tuple[list[Question], list[Question]]:
    """Training and validation questions from real BBH-train items (the benchmarks stage's BBH
    ``train`` part) of ``tasks_wanted``: per task, the last ``n_val_per_task`` items (in split order)
    are held out for validation, the rest train (the first ``max_train_per_task`` of them when
    given: a smaller run for a slow student). A task without items is an error."""
    train: list[Question] = []
    val: list[Question] = []
    for task in tasks_wanted:
        qs = [it.question() for it in train_items if it.task == task]
        if len(qs) <= n_val_per_task:
            raise ValueError(f"BBH task {task!r}: {len(qs)} train items, not enough to hold out {n_val_per_task} "
                             "for validation (is the task name right?)")
        cut = len(qs) - n_val_per_task
        train += qs[:cut] if max_train_per_task is None else qs[:min(cut, int(max_train_per_task))]
        val += qs[cut:]
    return train, val


def question_splits(data: dict, bbh_train_items=None) -> dict[str, list[Question]]:
    """The data stage's question splits from the ``data`` section of the params.

    ``source: embedded``: ``train`` / ``val`` (the IND distribution ``data.ind``; validation is for
    choosing hyper-parameters and checkpoints, never a test suite) and ``ind_test`` / ``ood_test``
    (``data.ind`` / ``data.ood``); no split shares a question text with an earlier one.
    ``source: bbh``: ``train`` / ``val`` from ``bbh_train_items`` (the benchmarks stage's BBH-train
    part, :func:`bbh_train_questions`); BBH-test is an evaluation suite, not a split here."""
    if data["source"] == "embedded":
        train = make_questions(data["ind"], data["n_train_per_task"], "train", data["seed"])
        val = make_questions(data["ind"], data["n_val_per_task"], "val", data["seed"], exclude={q.input for q in train})
        seen = {q.input for q in train + val}
        return {
            "train": train,
            "val": val,
            "ind_test": make_questions(data["ind"], data["n_test_per_task"], "ind_test", data["seed"], exclude=seen),
            "ood_test": make_questions(data["ood"], data["n_test_per_task"], "ood_test", data["seed"], exclude=seen),
        }
    if data["source"] == "bbh":
        if bbh_train_items is None:
            raise ValueError("data.source is 'bbh': the BBH-train items of the benchmarks stage are needed")
        train, val = bbh_train_questions(bbh_train_items, data["bbh_tasks"], data["n_val_per_task"],
                                         data.get("bbh_max_train_per_task"))
        return {"train": train, "val": val}
    raise ValueError(f"data.source must be 'embedded' or 'bbh', got {data['source']!r}")


@dataclass
class DualData:
    sft: list[dict] = field(default_factory=list)
    wrong: list[dict] = field(default_factory=list)
    pairs: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def _is_correct(cot: TeacherCoT, q: Question) -> bool:
    return score(cot.text, q.target, answer_type(q.task))["correct"]


def _failed(cot: TeacherCoT) -> bool:
    """The teacher could not produce this CoT (a failed call): ``meta["error"]`` is set."""
    return bool((cot.meta or {}).get("error"))


def _rectified(cot: TeacherCoT, q: Question) -> bool:
    """An AHP reply that can be paired: not failed, not blank, and reaching the gold answer."""
    return not _failed(cot) and not blank(cot.text) and _is_correct(cot, q)


def _cot_record(q: Question, cot: TeacherCoT, source: str) -> dict:
    if blank(cot.text):  # never reached: build_dual_cots counts blank CoTs before writing records
        raise DataError(f"question {q.id}: the teacher returned an empty CoT ({source})")
    return {
        "id": q.id,
        "task": q.task,
        "question": q.input,
        "gold": q.target,
        "response": cot.text,
        "source": source,
        "mistake_type": cot.mistake_type,
        "harmless": cot.harmless,
    }


def _spans_of(cot: TeacherCoT, partner: TeacherCoT) -> list[list[int]]:
    """Ground-truth key spans of ``cot`` within its pair: its own, or those its partner recorded
    for it (a CCP corruption knows the spans of the correct CoT it was made from)."""
    spans = cot.key_spans or (partner.meta or {}).get("partner_key_spans") or []
    return [list(s) for s in spans]


def _pair_record(q: Question, pair_type: str, chosen: TeacherCoT, rejected: TeacherCoT, teacher: str) -> dict:
    return {
        "id": q.id,
        "task": q.task,
        "question": q.input,
        "gold": q.target,
        "pair_type": pair_type,
        "mistake_type": rejected.mistake_type,
        "chosen": chosen.text,
        "rejected": rejected.text,
        "chosen_key_spans": _spans_of(chosen, rejected),
        "rejected_key_spans": _spans_of(rejected, chosen),
        "teacher": teacher,
    }


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def build_dual_cots(questions: list[Question], teacher: Teacher, progress: bool = True) -> DualData:
    """Run the three prompts of the method over ``questions``, one stage at a time through the
    teacher's batch calls (so that an LLM backend can run each stage concurrently):

    1. CEP on every question -> D+ / D-;
    2. AHP on each D- CoT -> D-+ (kept when it reaches the gold answer); the D-dual pairs are then
       handed to the teacher (:meth:`~edit.teacher.Teacher.use_contrastive_examples`) as CCP
       exemplars;
    3. CCP on each D+ CoT -> D+- (kept when it reaches a different, extractable answer).

    Records are written in question order, each question's records together (D+ then its D+-, or
    D- then its D-+). Failed rectifications and corruptions are counted, never paired. A CEP call
    that failed (``meta["error"]``), whose reply has no extractable answer, or whose CoT is
    :func:`blank` skips the question (``cep_error`` / ``cep_no_answer`` / ``cep_empty``); failed
    AHP/CCP calls, replies without an answer and blank CoTs count as ``ahp_failed`` /
    ``ccp_failed`` and, in detail, as ``{ahp,ccp}_error`` / ``{ahp,ccp}_no_answer`` /
    ``{ahp,ccp}_empty`` (``ccp_same_answer``: the corruption kept the gold answer). So no record
    and no pair has a blank CoT (a pair with one would mark every token of its other side as a
    key step). Counters appear only once they are non-zero.

    ``summary``: ``per_task`` and ``total`` counts, ``rates`` per task and in total
    (``cep_accuracy`` = D+ / (D+ + D-), ``ahp_success_rate`` = rectified to the gold / D-,
    ``ccp_success_rate`` = corrupted to a different answer / D+; None without a denominator),
    the pair counts by type and by mistake type.
    """
    data = DualData()
    counts: dict[str, Counter] = defaultdict(Counter)
    for q in questions:
        counts[q.task]["questions"] += 1

    firsts = teacher.generate_cots(list(questions), progress=progress)
    if len(firsts) != len(questions):
        raise ValueError(f"teacher {teacher.name!r} returned {len(firsts)} CEP CoTs for {len(questions)} questions")
    plus: list[int] = []   # indices of D+ questions
    minus: list[int] = []  # indices of D- questions
    for i, (q, first) in enumerate(zip(questions, firsts)):
        c = counts[q.task]
        if _failed(first):
            c["cep_error"] += 1
        elif first.answer is None:
            c["cep_no_answer"] += 1
        elif blank(first.text):
            c["cep_empty"] += 1
        elif _is_correct(first, q):
            plus.append(i)
        else:
            minus.append(i)

    rectified = teacher.rectify_many([(questions[i], firsts[i]) for i in minus], progress=progress)
    rect_of = dict(zip(minus, rectified))
    teacher.use_contrastive_examples([
        _pair_record(questions[i], "D-dual", rect_of[i], firsts[i], teacher.name)
        for i in minus if _rectified(rect_of[i], questions[i])
    ])
    corrupted = teacher.corrupt_many([(questions[i], firsts[i]) for i in plus], progress=progress)
    corr_of = dict(zip(plus, corrupted))

    for i, (q, first) in enumerate(zip(questions, firsts)):
        c = counts[q.task]
        if i in corr_of:
            c["D+"] += 1
            c["harmless_mistakes"] += int(first.harmless)
            data.sft.append(_cot_record(q, first, "D+"))
            bad = corr_of[i]
            if not _failed(bad) and bad.answer is not None and not blank(bad.text) and not _is_correct(bad, q):
                c["ccp_success"] += 1
                data.wrong.append(_cot_record(q, bad, "D+-"))
                data.pairs.append(_pair_record(q, "D+dual", first, bad, teacher.name))
            else:
                c["ccp_failed"] += 1
                if _failed(bad):
                    c["ccp_error"] += 1
                elif bad.answer is None:
                    c["ccp_no_answer"] += 1
                elif blank(bad.text):
                    c["ccp_empty"] += 1
                else:
                    c["ccp_same_answer"] += 1
        elif i in rect_of:
            c["D-"] += 1
            data.wrong.append(_cot_record(q, first, "D-"))
            good = rect_of[i]
            if _rectified(good, q):
                c["ahp_success"] += 1
                data.sft.append(_cot_record(q, good, "D-+"))
                data.pairs.append(_pair_record(q, "D-dual", good, first, teacher.name))
            else:
                c["ahp_failed"] += 1
                if _failed(good):
                    c["ahp_error"] += 1
                elif good.answer is None:
                    c["ahp_no_answer"] += 1
                elif blank(good.text):
                    c["ahp_empty"] += 1
    per_task = {task: {k: v for k, v in sorted(c.items()) if v or k in _ALWAYS} for task, c in sorted(counts.items())}
    total = Counter()
    for c in counts.values():
        total.update(c)
    total_d = {k: v for k, v in sorted(total.items()) if v or k in _ALWAYS}
    data.summary = {
        "teacher": teacher.name,
        "per_task": per_task,
        "total": total_d,
        "pairs": dict(sorted(Counter(p["pair_type"] for p in data.pairs).items())),
        "pairs_by_mistake_type": dict(sorted(Counter(str(p["mistake_type"]) for p in data.pairs).items())),
        "rates": {**{task: _rates(c) for task, c in per_task.items()}, "total": _rates(total_d)},
    }
    return data


#: Counters kept in the summary even when zero (the ones the oracle-era summary always had).
_ALWAYS = ("questions", "D+", "D-", "harmless_mistakes", "ccp_success", "ccp_failed", "ahp_success", "ahp_failed")


def _rates(c: dict) -> dict:
    plus, minus = c.get("D+", 0), c.get("D-", 0)
    return {
        "cep_accuracy": _rate(plus, plus + minus),
        "ahp_success_rate": _rate(c.get("ahp_success", 0), minus),
        "ccp_success_rate": _rate(c.get("ccp_success", 0), plus),
    }
