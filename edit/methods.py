"""Methods as configuration: the registry that turns a ``method_defs`` entry of ``params.yaml`` into
validated training steps, and the pure functions behind its data choices, ablations and controls.

A method definition is either a list of steps (shorthand for ``{format: cot, steps: [...]}``) or a
mapping::

    format: cot            # edit.formats.FORMATS: the ONE template of training and inference
    infer: cot             # which inference template of the format (default: the format's own)
    shots: 3               # few-shot formats only: exemplars per question (same task, from D+)
    steps:                 # [] for the untuned rows (zero-/few-shot)
      - {loss: sft, data: [D+, D-+]}
      - {loss: krsl, pairs: [D+dual, D-dual], key_tokens: edit_distance, hp: {alpha: 1.0, beta: 0.025}}

Step keys:

* ``loss``: ``sft`` | ``krsl`` | ``dpo``;
* ``data`` (sft): CoT sources ``D+``, ``D-+`` (correct), ``D-``, ``D+-`` (wrong: only formats with a
  counterfactual template take them);
* ``repeat_to`` (sft, optional): ``{data: [...], pairs: [...]}``: the step's records are repeated
  (:func:`repeat_to_volume`) up to the number of CoT records of ``data`` plus dual pairs of
  ``pairs`` - EDIT's step-1 + step-2 data volume for ``{data: [D+, D-+], pairs: [D+dual, D-dual]}``;
* ``pairs`` (krsl, dpo): pair types ``D+dual``, ``D-dual``;
* ``mistake_type`` (krsl, dpo, optional): keep the pairs whose wrong CoT has this mistake type,
  subsampled to the size of the smallest group of ``mistake_groups`` (default logical,
  calculation, knowledge) so that every type's subset has the same size (:func:`mistake_subset`);
* ``key_tokens`` (krsl): ``edit_distance`` (EDIT) | ``random_tokens`` | ``all_diff_uniform``
  (controls, :func:`control_key_indices`);
* ``hp``: overrides of ``train.<loss>`` (alpha/beta for krsl, beta for dpo, lr, epochs, ``select``,
  ``val_max_items``, ...).

Everything here is plain Python (no torch), deterministic given the seed.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace

from edit.formats import CORRECT_SOURCES, FORMATS, WRONG_SOURCES, Format, get_format
from edit.records import PAIR_TYPES, stable_seed

LOSSES = ("sft", "krsl", "dpo")
SOURCES = CORRECT_SOURCES + WRONG_SOURCES
KEY_TOKEN_MODES = ("edit_distance", "random_tokens", "all_diff_uniform")
MISTAKE_TYPES = ("logical", "calculation", "knowledge")
SELECT = ("last", "best_val_accuracy")

_METHOD_KEYS = {"format", "infer", "shots", "steps", "description"}
_STEP_KEYS = {
    "sft": {"loss", "data", "repeat_to", "hp"},
    "krsl": {"loss", "pairs", "mistake_type", "mistake_groups", "key_tokens", "hp"},
    "dpo": {"loss", "pairs", "mistake_type", "mistake_groups", "hp"},
}


@dataclass(frozen=True)
class Method:
    """A validated method: its name, format (one template for training and inference), the
    inference template's name, the number of few-shot exemplars and the training steps."""

    name: str
    format: str
    infer: str
    steps: tuple[dict, ...] = field(default_factory=tuple)
    shots: int = 0

    @property
    def fmt(self) -> Format:
        return get_format(self.format)

    @property
    def final_step(self) -> int:
        """The index k of the model folder ``step<k>`` to evaluate (0: the untrained student)."""
        return len(self.steps)


def _as_list(value, where: str, name: str) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: {name} must be a list, got {value!r}")
    return list(value)


def _check_step(step: dict, k: int, fmt: Format, where: str) -> dict:
    where = f"{where} step {k}"
    if not isinstance(step, dict):
        raise ValueError(f"{where}: a step is a mapping with a 'loss', got {step!r}")
    loss = step.get("loss")
    if loss not in LOSSES:
        raise ValueError(f"{where}: unknown loss {loss!r}: expected one of {list(LOSSES)}")
    unknown = set(step) - _STEP_KEYS[loss]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)} for a {loss} step; allowed {sorted(_STEP_KEYS[loss])}")
    out = {"loss": loss, "hp": dict(step.get("hp") or {})}
    if not isinstance(out["hp"], dict):
        raise ValueError(f"{where}: hp must be a mapping")
    sel = out["hp"].get("select", "last")
    if sel not in SELECT:
        raise ValueError(f"{where}: hp.select {sel!r} unknown; expected one of {list(SELECT)}")
    if loss == "sft":
        data = _as_list(step.get("data"), where, "data")
        unknown = set(data) - set(SOURCES)
        if unknown or not data:
            raise ValueError(f"{where}: unknown SFT data source(s) {sorted(unknown)}; use {list(SOURCES)}")
        if any(s in WRONG_SOURCES for s in data) and not fmt.wrong:
            raise ValueError(f"{where}: format {fmt.name!r} has no counterfactual template, so it cannot "
                             f"train on wrong CoTs {sorted(set(data) & set(WRONG_SOURCES))}")
        if any(s in CORRECT_SOURCES for s in data) and not fmt.correct:
            raise ValueError(f"{where}: format {fmt.name!r} cannot train on correct CoTs")
        out["data"] = data
        if step.get("repeat_to") is not None:
            rep = step["repeat_to"]
            if not isinstance(rep, dict) or set(rep) - {"data", "pairs"}:
                raise ValueError(f"{where}: repeat_to must be {{data: [sources], pairs: [pair types]}}, got {rep!r}")
            r_data = _as_list(rep.get("data"), where, "repeat_to.data")
            r_pairs = _as_list(rep.get("pairs"), where, "repeat_to.pairs")
            if set(r_data) - set(SOURCES) or set(r_pairs) - set(PAIR_TYPES) or not (r_data or r_pairs):
                raise ValueError(f"{where}: repeat_to names unknown sources or pair types: {rep!r}")
            out["repeat_to"] = {"data": r_data, "pairs": r_pairs}
        return out
    if fmt.pair is None:
        raise ValueError(f"{where}: format {fmt.name!r} has no full-CoT template for dual pairs; "
                         f"a {loss} step needs one of {[n for n, f in _formats_with_pairs()]}")
    pairs = _as_list(step.get("pairs"), where, "pairs")
    unknown = set(pairs) - set(PAIR_TYPES)
    if unknown or not pairs:
        raise ValueError(f"{where}: unknown pair type(s) {sorted(unknown)}; use {list(PAIR_TYPES)}")
    out["pairs"] = pairs
    mt = step.get("mistake_type")
    groups = _as_list(step.get("mistake_groups"), where, "mistake_groups") or list(MISTAKE_TYPES)
    if mt is not None and mt not in groups:
        raise ValueError(f"{where}: mistake_type {mt!r} is not one of the groups {groups}")
    out["mistake_type"] = mt
    out["mistake_groups"] = groups
    if loss == "krsl":
        kt = step.get("key_tokens", "edit_distance")
        if kt not in KEY_TOKEN_MODES:
            raise ValueError(f"{where}: key_tokens {kt!r} unknown; expected one of {list(KEY_TOKEN_MODES)}")
        out["key_tokens"] = kt
    return out


def _formats_with_pairs():
    return [(n, f) for n, f in FORMATS.items() if f.pair is not None]


def parse_method(definition, name: str = "<method>") -> Method:
    """Validate one ``method_defs`` entry (a list of steps or a mapping, see the module doc) and
    return a :class:`Method`; errors name the method, the step and the key at fault."""
    where = f"method {name!r}"
    if isinstance(definition, (list, tuple)):
        definition = {"steps": list(definition)}
    if not isinstance(definition, dict):
        raise ValueError(f"{where}: expected a list of steps or a mapping, got {type(definition).__name__}")
    unknown = set(definition) - _METHOD_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed {sorted(_METHOD_KEYS)}")
    fmt = get_format(definition.get("format", "cot"))
    infer = definition.get("infer") or fmt.default_infer
    fmt.infer_template(infer)  # raises naming the format and the choices
    steps = definition.get("steps")
    steps = [] if steps is None else steps
    if not isinstance(steps, (list, tuple)):
        raise ValueError(f"{where}: steps must be a list")
    if fmt.untuned and steps:
        raise ValueError(f"{where}: format {fmt.name!r} is an untuned (prompting-only) row; it takes no steps")
    if not fmt.untuned and not steps:
        raise ValueError(f"{where}: a method needs at least one step (format {fmt.name!r} is trained)")
    shots = int(definition.get("shots", 3 if fmt.few_shot else 0))
    if fmt.few_shot and shots < 1:
        raise ValueError(f"{where}: a few-shot format needs shots >= 1")
    if not fmt.few_shot and shots:
        raise ValueError(f"{where}: shots is only for few-shot formats, not {fmt.name!r}")
    checked = tuple(_check_step(s, k, fmt, where) for k, s in enumerate(steps, 1))
    return Method(name=name, format=fmt.name, infer=infer, steps=checked, shots=shots)


def validate_method_defs(method_defs: dict) -> dict[str, Method]:
    """Every entry of ``method_defs`` parsed; the first invalid one raises, naming it."""
    if not isinstance(method_defs, dict) or not method_defs:
        raise ValueError("method_defs must be a non-empty mapping of method name -> definition")
    return {name: parse_method(d, name) for name, d in method_defs.items()}


def get_method(params: dict, name: str) -> Method:
    """The validated method ``name`` of ``params['method_defs']``."""
    defs = params.get("method_defs") or {}
    if name not in defs:
        raise ValueError(f"unknown method {name!r}; params.yaml method_defs defines {sorted(defs)}: pick one of "
                         "them or define it there")
    return parse_method(defs[name], name)


def as_method(method, name: str = "<method>") -> Method:
    return method if isinstance(method, Method) else parse_method(method, name)


# ---------------------------------------------------------------- inference


def _question_text(question) -> tuple[str, str | None]:
    if isinstance(question, str):
        return question, None
    if isinstance(question, dict):
        return question["input"] if "input" in question else question["question"], question.get("task")
    return question.input, getattr(question, "task", None)


def select_exemplars(records: list[dict], k: int, seed: int) -> dict[str, list[dict]]:
    """``k`` few-shot exemplars per task: the teacher's correct CoTs (source D+) of that task,
    ordered by a stable hash of (seed, id) - the same on every machine."""
    by_task: dict[str, list[dict]] = {}
    for r in records:
        if r.get("source") == "D+":
            by_task.setdefault(r["task"], []).append(r)
    return {t: sorted(rs, key=lambda r: stable_seed("exemplar", seed, r["id"]))[:k] for t, rs in sorted(by_task.items())}


def method_exemplars(method: Method, records: list[dict], seed: int) -> dict[str, list[dict]] | None:
    """The exemplar pool of a few-shot method (None for every other method)."""
    return select_exemplars(records, method.shots, seed) if method.fmt.few_shot else None


def inference_prompt(method, question, exemplars: dict[str, list[dict]] | None = None) -> str:
    """The prompt the student gets at test time for ``question`` (a Question, a dict with
    ``input``/``question`` and ``task``, or the question text). Training rows of the method start
    with exactly this prompt. Few-shot methods need ``exemplars`` (:func:`method_exemplars`) and a
    question with a task; an exemplar identical to the question is left out."""
    method = as_method(method)
    text, task = _question_text(question)
    shots: list[dict] = []
    if method.fmt.few_shot:
        if exemplars is None or task is None:
            raise ValueError(f"method {method.name!r} is few-shot: pass exemplars and a question with its task")
        shots = [e for e in exemplars.get(task, []) if e["question"] != text][: method.shots]
        if not shots:
            raise ValueError(f"method {method.name!r}: no exemplars for task {task!r}")
    return method.fmt.inference_prompt(text, method.infer, shots)


def answers_directly(method) -> bool:
    """True when the method's inference response is the answer sentence alone (a few tokens)."""
    return as_method(method).fmt.infer_template(as_method(method).infer).kind == "answer"


# ---------------------------------------------------------------- data choices and controls


def repeat_to_volume(records: list[dict], n: int, seed: int) -> list[dict]:
    """``records`` repeated up to exactly ``n`` rows: ``n // len`` full copies in the given order,
    then the first ``n % len`` records in the order of a stable hash of (seed, id, source). Fewer
    than ``len(records)`` rows (``n`` smaller) keeps that hashed prefix."""
    if not records:
        if n:
            raise ValueError("repeat_to_volume: no records to repeat")
        return []
    if n < 0:
        raise ValueError(f"repeat_to_volume: n must be >= 0, got {n}")
    full, rest = divmod(n, len(records))
    order = sorted(records, key=lambda r: stable_seed("repeat", seed, r["id"], r.get("source")))
    return [r for _ in range(full) for r in records] + order[:rest]


def data_volume(spec: dict, cot_records: list[dict], pairs: list[dict]) -> int:
    """The number of CoT records of ``spec['data']`` plus dual pairs of ``spec['pairs']``."""
    return (sum(1 for r in cot_records if r["source"] in spec.get("data", ()))
            + sum(1 for p in pairs if p["pair_type"] in spec.get("pairs", ())))


def mistake_subset(items: list[dict], mistake_type: str, groups=MISTAKE_TYPES, seed: int = 0) -> tuple[list[dict], dict]:
    """The items (pairs or key-step records, with ``mistake_type`` of their wrong CoT and ``id``,
    ``pair_type``) of ``mistake_type``, subsampled to the size of the smallest of ``groups`` so that
    every type's subset has the same size; the pick is the first ones in the order of a stable hash
    of (seed, id, pair_type), returned in input order. Returns (subset, {group sizes, size})."""
    if mistake_type not in groups:
        raise ValueError(f"mistake_type {mistake_type!r} is not one of {list(groups)}")
    sizes = Counter(str(it.get("mistake_type")) for it in items)
    n = min(sizes.get(g, 0) for g in groups)
    if n == 0:
        raise ValueError(f"mistake-type subsets: group(s) {[g for g in groups if not sizes.get(g)]} have no pairs; "
                         f"sizes {dict(sizes)}")
    mine = [i for i, it in enumerate(items) if it.get("mistake_type") == mistake_type]
    keep = set(sorted(mine, key=lambda i: stable_seed("mistake", seed, items[i]["id"], items[i]["pair_type"]))[:n])
    info = {"mistake_type": mistake_type, "group_sizes": {g: sizes.get(g, 0) for g in groups}, "size": n}
    return [items[i] for i in sorted(keep)], info


def random_key_indices(n_tokens: int, k: int, *seed_parts) -> list[int]:
    """``k`` distinct positions in ``range(n_tokens)`` drawn from a RNG seeded by ``seed_parts``
    (sorted). ``k`` larger than ``n_tokens`` is an error."""
    if not 0 <= k <= n_tokens:
        raise ValueError(f"cannot draw {k} key tokens from {n_tokens} response tokens ({seed_parts})")
    return sorted(random.Random(stable_seed("random_tokens", *seed_parts)).sample(range(n_tokens), k))


def control_key_indices(mode: str, marked: dict, seed: int) -> tuple[list[int], list[int]]:
    """Key-token indices (chosen, rejected) of one key-step record under a ``key_tokens`` mode:

    * ``edit_distance``    - the minimum-edit-distance marks (EDIT);
    * ``random_tokens``    - as many positions per side as the marks have, drawn at random over
      that side's response tokens, seeded by (seed, pair id, pair type, side);
    * ``all_diff_uniform`` - every response token of both CoTs (weighted +alpha / -beta).
    """
    c_n, r_n = len(marked["chosen_ids"]), len(marked["rejected_ids"])
    if mode == "edit_distance":
        return list(marked["chosen_key"]), list(marked["rejected_key"])
    if mode == "random_tokens":
        key = (seed, marked["id"], marked["pair_type"])
        return (random_key_indices(c_n, len(marked["chosen_key"]), *key, "chosen"),
                random_key_indices(r_n, len(marked["rejected_key"]), *key, "rejected"))
    if mode == "all_diff_uniform":
        return list(range(c_n)), list(range(r_n))
    raise ValueError(f"key_tokens {mode!r} unknown; expected one of {list(KEY_TOKEN_MODES)}")


def step_records(step: dict, cot_records: list[dict], pairs: list[dict], seed: int) -> tuple[list[dict], dict]:
    """The CoT records an sft step trains on (sources, then the repeat rule), and a summary."""
    recs = [r for r in cot_records if r["source"] in step["data"]]
    info = {"records": len(recs), "by_source": dict(sorted(Counter(r["source"] for r in recs).items()))}
    if step.get("repeat_to"):
        n = data_volume(step["repeat_to"], cot_records, pairs)
        recs = repeat_to_volume(recs, n, seed)
        info["repeated_to"] = n
    return recs, info


def step_pairs(step: dict, items: list[dict], seed: int) -> tuple[list[dict], dict]:
    """The pairs (or key-step records) a krsl / dpo step trains on: its pair types, then the
    equal-size mistake-type subset when ``mistake_type`` is set."""
    chosen = [m for m in items if m["pair_type"] in step["pairs"]]
    info = {"pairs": len(chosen), "by_pair_type": dict(sorted(Counter(m["pair_type"] for m in chosen).items()))}
    if step.get("mistake_type"):
        chosen, sub = mistake_subset(chosen, step["mistake_type"], step.get("mistake_groups") or MISTAKE_TYPES, seed)
        info["mistake_subset"] = sub
    return chosen, info


def val_subset(questions: list, n: int, seed: int) -> list:
    """At most ``n`` validation questions balanced over tasks: each task's questions in the order
    of a stable hash of (seed, id), interleaved task by task (tasks sorted by name)."""
    by_task: dict[str, list] = {}
    for q in questions:
        by_task.setdefault(q.task, []).append(q)
    queues = [sorted(qs, key=lambda q: stable_seed("val", seed, q.id)) for _, qs in sorted(by_task.items())]
    out = []
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out[:max(int(n), 0)]


def with_step_hp(method: Method, extra: dict) -> Method:
    """A copy of ``method`` with ``extra`` added to every step's ``hp`` (e.g. checkpoint settings
    of the launcher); the method's own keys are overridden by ``extra``."""
    steps = tuple(dict(s, hp={**(s.get("hp") or {}), **extra}) for s in method.steps)
    return replace(method, steps=steps)
