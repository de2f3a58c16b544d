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

import hashlib
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from edit import tasks
from edit.io import DataError
from edit.records import Question, TeacherCoT
from edit.teacher import Teacher

PAIR_TYPES = ("D+dual", "D-dual")
SFT_SOURCES = ("D+", "D-+")
SFT_FIELDS = ("id", "task", "question", "gold", "response", "source")
PAIR_FIELDS = ("id", "task", "question", "gold", "pair_type", "chosen", "rejected")


def stable_seed(*parts) -> int:
    """A 63-bit seed from any printable parts, the same on every machine and Python run."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


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


@dataclass
class DualData:
    sft: list[dict] = field(default_factory=list)
    wrong: list[dict] = field(default_factory=list)
    pairs: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def _is_correct(cot: TeacherCoT, q: Question) -> bool:
    from edit.scoring import score

    return score(cot.text, q.target, tasks.answer_type(q.task))["correct"]


def _cot_record(q: Question, cot: TeacherCoT, source: str) -> dict:
    if not cot.text or not cot.text.strip():
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


def build_dual_cots(questions: list[Question], teacher: Teacher, progress: bool = True) -> DualData:
    """Run the three prompts of the method over ``questions``:

    CEP -> D+ / D-; AHP on each D- CoT -> D-+ (kept when it reaches the gold answer);
    CCP on each D+ CoT -> D+- (kept when it reaches a different, extractable answer).
    Failed rectifications and corruptions are counted in the summary, never paired.
    """
    data = DualData()
    counts: dict[str, Counter] = defaultdict(Counter)
    for q in tqdm(questions, desc="dual CoTs", disable=not progress):
        c = counts[q.task]
        c["questions"] += 1
        first = teacher.generate_cot(q)
        if _is_correct(first, q):
            c["D+"] += 1
            c["harmless_mistakes"] += int(first.harmless)
            data.sft.append(_cot_record(q, first, "D+"))
            corrupted = teacher.corrupt(q, first)
            if corrupted.answer is not None and not _is_correct(corrupted, q):
                c["ccp_success"] += 1
                data.wrong.append(_cot_record(q, corrupted, "D+-"))
                data.pairs.append(_pair_record(q, "D+dual", first, corrupted, teacher.name))
            else:
                c["ccp_failed"] += 1
        else:
            c["D-"] += 1
            data.wrong.append(_cot_record(q, first, "D-"))
            rectified = teacher.rectify(q, first)
            if _is_correct(rectified, q):
                c["ahp_success"] += 1
                data.sft.append(_cot_record(q, rectified, "D-+"))
                data.pairs.append(_pair_record(q, "D-dual", rectified, first, teacher.name))
            else:
                c["ahp_failed"] += 1
    per_task = {task: dict(sorted(c.items())) for task, c in sorted(counts.items())}
    total = Counter()
    for c in counts.values():
        total.update(c)
    data.summary = {
        "teacher": teacher.name,
        "per_task": per_task,
        "total": dict(sorted(total.items())),
        "pairs": dict(sorted(Counter(p["pair_type"] for p in data.pairs).items())),
        "pairs_by_mistake_type": dict(sorted(Counter(str(p["mistake_type"]) for p in data.pairs).items())),
    }
    return data
