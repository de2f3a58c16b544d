"""Dry run of a profile: every configuration, count and cost of a run, without training, without
calling a teacher and without downloading anything (no network, no model loaded). Just over 400
lines: the counts (here) and the costs (:mod:`edit.plan_costs`) are already split; what is left is
the report's text and its command line, read together.

    python -m edit.plan --profile paper            # tables on stdout
    python -m edit.plan --profile paper --json plan.json
    python -m edit.plan --profile paper --grid     # also the experiment grid's methods (grid_methods)

The profile is read with :func:`edit.params.load_params` (``params.yaml``'s base sections with the
profile's overlay); everything is counted with the pipeline's own code, so the plan and the run agree:

* **BBH**: the benchmarks stage's split (:func:`edit.benchmarks.suites.bbh_split` with
  ``benchmarks.bbh_split_seed`` / ``bbh_test_fraction``: ``round(n * 0.2)`` test items per task,
  5,209 train / 1,302 test over the 27 tasks), read from ``<data>/benchmarks`` when ``--data``
  holds the stage's outputs, else loaded from the mirror (:func:`edit.benchmarks.sources.files_from_params`,
  downloads disabled).
* **questions**: the data stage's own splits (:func:`edit.dual.question_splits`): with
  ``data.source: bbh`` the BBH-train items of ``data.bbh_tasks`` less ``data.n_val_per_task`` per
  task held out for validation; with ``embedded`` the generated train / val / IND / OOD questions.
* **dual data**: D+ / D- / D-+ / D+- and the pairs D+dual / D-dual, counted from ``<data>/cots``
  with ``--data``, else estimated: the teacher's accuracy defaults to the paper's 3,805 / 5,207
  (the oracle's is ``1 - teacher.error_rate``), AHP / CCP succeed with ``plan.ahp_success`` /
  ``plan.ccp_success``.
* **training** (:mod:`edit.plan_costs`): the steps of every method of ``methods`` (and ``grid_methods`` with ``--grid``)
  from :func:`edit.methods.get_method`; per step the examples, the merged hyper-parameters, the
  GLOBAL batch (``train.<loss>.batch_size``) and per-device batch over ``runtime.num_processes``,
  steps per epoch, optimizer and warm-up steps as :func:`edit.training.train` computes them,
  tokens seen and FLOPs; times the number of seeds (``seeds``; ``grid_seeds`` for the grid's methods).
* **teacher**: calls per prompt (CEP per train question, AHP per wrong CoT, CCP per correct CoT),
  the real prompts built by :class:`edit.llm.prompts.PromptBuilder` for every train question and
  counted by :func:`edit.llm.cache.estimate_prompt_tokens` (the cache ledger's rule), completions
  as long as the task's BBH exemplar CoTs; dollars from ``teacher.cache.price_table`` for
  ``teacher.openai.model`` (None when unpriced); expected resamples (``plan.resample_rate``) and a
  worst case (every resample used, every completion ``max_tokens`` long).
* **evaluation**: every suite of ``eval.suites`` (a split name of the embedded world, or a
  benchmark spec ``{benchmark, part, tasks, max_per_task}`` selected by
  :func:`edit.benchmarks.suites.select_suite`, as :func:`edit.evaluate.load_suite` does; ``null``
  switches a suite off).
* **wall time** (:mod:`edit.plan_time`): per train / evaluate stage and in total, from the measured
  rates of ``plan.throughput`` when it lists this run's student.
* **student**: kind, path, size (``student.n_params``, else derived from a local ``config.json`` or
  GGUF header, else unknown; :func:`edit.plan_costs.llama_param_count`), LoRA trainable parameters; **accelerate**: the config file
  ``runtime.accelerate_config`` checked with accelerate's own loader.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from edit.benchmarks.parsers import load_suite
from edit.benchmarks.sources import BenchmarkFiles, default_cache_dir, files_from_params, load_json
from edit.benchmarks.suites import BBH_TASKS, SUITES, bbh_split, read_suite, select_suite, split_part, split_sha256
from edit.dual import question_splits
from edit.io import read_jsonl
from edit.llm.prompts import PromptBuilder
from edit.params import load_params
from edit.plan_costs import (accelerate_plan, answer_row_tokens, row_tokens, student_plan, teacher_plan,
                             training_plan)
from edit.plan_time import format_times, predict_times

#: the EDIT paper's dual-pair counts (D+dual from correct CoTs, D-dual from wrong ones)
PAPER_D_PLUS_DUAL, PAPER_D_MINUS_DUAL = 3805, 1402
#: the paper's Ddual mistake-type counts (gpt-3.5 classifier), for mistake-type subsets
PAPER_MISTAKE_TYPES = {"logical": 3695, "knowledge": 529, "calculation": 412, "other": 113, "mixed": 458}

#: the teacher's accuracy the plan assumes for an LLM teacher when ``plan.teacher_accuracy`` is not set
PAPER_TEACHER_ACCURACY = PAPER_D_PLUS_DUAL / (PAPER_D_PLUS_DUAL + PAPER_D_MINUS_DUAL)


def assumptions(params: dict) -> dict:
    """The ``plan`` section (its defaults in :mod:`edit.config_schema`), with ``teacher_accuracy``
    first: as given, else the oracle's ``1 - teacher.error_rate`` (its wrong-CoT share is a
    setting), else the paper's share of correct CoTs (:data:`PAPER_TEACHER_ACCURACY`)."""
    teacher = params["teacher"]
    derived = 1.0 - float(teacher["error_rate"]) if teacher["backend"] == "oracle" else PAPER_TEACHER_ACCURACY
    return {"teacher_accuracy": derived, **params["plan"]}


# ----------------------------------------------------------------------------------------------
# benchmarks
class Benchmarks:
    """The benchmark items the run will see: from the benchmarks stage's outputs
    (``<data_dir>/benchmarks``: ``bbh.jsonl`` + ``bbh_split.json`` and ``<suite>.jsonl``) when
    they are there, else loaded from the mirror / cache with :mod:`edit.benchmarks` and split
    with the ``benchmarks`` params (never downloading)."""

    def __init__(self, params: dict, root: str | Path = ".", data_dir: str | Path | None = None,
                 mirror: str | Path | None = None):
        self.cfg = params["benchmarks"]
        self.bench_dir = Path(data_dir) / "benchmarks" if data_dir else None
        if self.bench_dir is not None and not (self.bench_dir / "bbh_split.json").is_file():
            self.bench_dir = None
        if mirror is not None:
            self.files = BenchmarkFiles(mirror, default_cache_dir(params), allow_download=False)
        else:
            self.files = files_from_params(params, root, allow_download=False)
        self.origin = (f"benchmarks stage outputs in {self.bench_dir}" if self.bench_dir else
                       f"mirror {self.files.mirror} / cache {self.files.cache_dir} (edit.benchmarks loaders)")
        self._suites: dict[str, list] = {}
        self._split: dict | None = None

    def suite(self, name: str) -> list:
        """Every item of benchmark ``name`` (bbh: all 27 tasks), in the stage's order."""
        if name not in SUITES:
            raise ValueError(f"unknown benchmark {name!r}; expected one of {SUITES}")
        if name not in self._suites:
            if self.bench_dir is not None:
                self._suites[name] = read_suite(self.bench_dir / f"{name}.jsonl")
            else:
                self._suites[name] = load_suite(self.files, name, self.cfg)
        return self._suites[name]

    def split(self) -> dict:
        """The BBH train/test split (the stage's ``bbh_split.json``, or recomputed)."""
        if self._split is None:
            if self.bench_dir is not None:
                self._split = load_json(self.bench_dir / "bbh_split.json")
            else:
                self._split = bbh_split(self.suite("bbh"), int(self.cfg["bbh_split_seed"]),
                                        float(self.cfg["bbh_test_fraction"]))
        return self._split

    def bbh_part(self, part: str) -> list:
        return split_part(self.suite("bbh"), self.split(), part)


def bbh_split_summary(bench: Benchmarks) -> dict:
    """Totals of the BBH split: tasks, items, train, test, seed, test fraction and sha256."""
    s = bench.split()
    tr = sum(len(t["train"]) for t in s["tasks"].values())
    te = sum(len(t["test"]) for t in s["tasks"].values())
    return {"tasks": len(s["tasks"]), "items": tr + te, "train": tr, "test": te, "seed": s["seed"],
            "test_fraction": s["test_fraction"], "sha256": split_sha256(s), "origin": bench.origin}


# ----------------------------------------------------------------------------------------------
# questions
def questions(params: dict, bench: Benchmarks) -> dict[str, list]:
    """The data stage's question splits (:func:`edit.dual.question_splits`), with BBH-train items
    from ``bench`` when ``data.source`` is ``bbh``."""
    data = params["data"]
    return question_splits(data, bench.bbh_part("train") if data["source"] == "bbh" else None)


def question_counts(params: dict, splits: dict, bench: Benchmarks) -> tuple[dict, dict]:
    """``(per_task, summary)`` of the training questions: ``per_task[task] = {"train", "val"}``
    (for BBH also the task's split sizes ``split_train`` / ``split_test``)."""
    data = params["data"]
    train, val = splits["train"], splits["val"]
    tr, va = Counter(q.task for q in train), Counter(q.task for q in val)
    if data["source"] == "bbh":
        split = bench.split()["tasks"]
        per_task = {t: {"split_train": len(split[t]["train"]), "split_test": len(split[t]["test"]),
                        "val": va[t], "train": tr[t]} for t in data["bbh_tasks"]}
        source = "bbh (BBH-train items of data.bbh_tasks, edit.dual.question_splits)"
    else:
        per_task = {t: {"val": va[t], "train": tr[t]} for t in data["ind"]}
        source = "embedded task world (edit.dual.question_splits)"
    return per_task, {"source": source, "tasks": len(per_task), "train": len(train), "val": len(val)}


# ----------------------------------------------------------------------------------------------
# evaluation suites
def suite_items(spec, bench: Benchmarks | None, splits: dict, data_dir: str | Path | None = None,
                name: str = "<suite>") -> tuple[int, int]:
    """(items, tasks) of one ``eval.suites`` entry, as :func:`edit.evaluate.load_suite` reads it: a
    string is a question split of the data stage (``<data>/questions/<spec>.jsonl`` when there, else
    ``splits[spec]``); a mapping is a benchmark selection (:func:`edit.benchmarks.suites.select_suite`)."""
    if isinstance(spec, str):
        path = Path(data_dir, "questions", f"{spec}.jsonl") if data_dir else None
        if path is not None and path.is_file():
            tasks = [r["task"] for r in read_jsonl(path, required=("task",))]
        elif spec in splits:
            tasks = [q.task for q in splits[spec]]
        else:
            raise ValueError(f"eval.suites.{name}: {spec!r} is not a question split of this profile's data stage "
                             f"({sorted(splits)}; ind_test / ood_test exist only with data.source 'embedded'); "
                             f"set the suite to null")
        return len(tasks), len(set(tasks))
    items = select_suite(spec, bench.bbh_part, bench.suite, name)
    return len(items), len({it.task for it in items})


def suite_warnings(params: dict) -> list[str]:
    """Suites that look unintended: with ``data.source: bbh``, a BBH test suite that leaves out some
    of the training tasks ``data.bbh_tasks`` (e.g. a ``tasks`` list inherited from the base section
    by a profile that meant all tasks: a profile must set ``tasks: null`` to drop it)."""
    data = params["data"]
    if data["source"] != "bbh":
        return []
    trained = set(data["bbh_tasks"])
    out = []
    for name, spec in params["eval"]["suites"].items():
        if isinstance(spec, dict) and spec["benchmark"] == "bbh" and spec["part"] == "test":
            evaluated = set(spec["tasks"] or BBH_TASKS)
            if not trained <= evaluated:
                out.append(f"eval.suites.{name} evaluates {len(evaluated)} BBH task(s) {sorted(evaluated)[:4]}"
                           f"{' ...' if len(evaluated) > 4 else ''} and misses {len(trained - evaluated)} of the "
                           f"{len(trained)} trained (data.bbh_tasks); if all are meant, set eval.suites.{name}.tasks "
                           f"to null (or list them)")
    return out


def evaluation_plan(params: dict, bench: Benchmarks, splits: dict, data_dir, n_runs: int) -> dict:
    ev = params["eval"]
    suites, tasks, off = {}, {}, []
    for name, spec in ev["suites"].items():
        if spec is None:
            off.append(name)
            continue
        suites[name], tasks[name] = suite_items(spec, bench, splits, data_dir, name)
    k = int(ev["self_consistency"]["k"])
    per_run = sum(suites.values()) * k
    return {"suites": suites, "suite_tasks": tasks, "off": off, "samples_per_item": k,
            "warnings": suite_warnings(params),
            "generations_per_run": per_run, "generations_total": per_run * n_runs,
            "max_new_tokens": ev["max_new_tokens"], "batch_size": ev["batch_size"]}


# ----------------------------------------------------------------------------------------------
# dual data
def dual_counts(n_train: int, plan: dict, data_dir: str | Path | None = None) -> dict:
    """Counts of D+, D-, D-+, D+-, D+dual, D-dual and the pairs' mistake types per pair type
    (``mistake_types``): counted in ``data_dir/cots`` (sft.jsonl: D+, D-+; wrong.jsonl: D-, D+-;
    pairs.jsonl), or estimated from the teacher's accuracy and AHP/CCP success rates with the
    paper's mistake-type proportions (``source`` says which)."""
    d = Path(data_dir) / "cots" if data_dir is not None else None
    if d is not None and (d / "sft.jsonl").is_file() and (d / "pairs.jsonl").is_file():
        recs = list(read_jsonl(d / "sft.jsonl")) + (list(read_jsonl(d / "wrong.jsonl")) if (d / "wrong.jsonl").is_file()
                                                     else [])
        pairs = list(read_jsonl(d / "pairs.jsonl"))
        src = Counter(r.get("source") for r in recs)
        pt = Counter(p.get("pair_type") for p in pairs)
        mt: dict[str, Counter] = {"D+dual": Counter(), "D-dual": Counter()}
        for p in pairs:
            mt.setdefault(p.get("pair_type"), Counter())[str(p.get("mistake_type"))] += 1
        return {"D+": src["D+"], "D-": src["D-"], "D-+": src["D-+"], "D+-": src["D+-"],
                "D+dual": pt["D+dual"], "D-dual": pt["D-dual"],
                "mistake_types": {k: dict(sorted(v.items())) for k, v in mt.items()},
                "source": f"counted in {d}"}
    acc = float(plan["teacher_accuracy"])
    d_plus = round(n_train * acc)
    d_minus = n_train - d_plus
    d_mp = round(d_minus * float(plan["ahp_success"]))
    d_pm = round(d_plus * float(plan["ccp_success"]))
    total = sum(PAPER_MISTAKE_TYPES.values())
    mt = {k: {g: round(n * c / total) for g, c in PAPER_MISTAKE_TYPES.items()} for k, n in (("D+dual", d_pm), ("D-dual", d_mp))}
    return {"D+": d_plus, "D-": d_minus, "D-+": d_mp, "D+-": d_pm, "D+dual": d_pm, "D-dual": d_mp,
            "mistake_types": mt,
            "source": f"estimated: teacher accuracy {acc:.4f} on {n_train} train questions, AHP success "
                      f"{plan['ahp_success']}, CCP success {plan['ccp_success']}"}


# ----------------------------------------------------------------------------------------------
# the plan
def build_plan(params: dict, data_dir: str | Path | None = None, root: str | Path = ".",
               mirror: str | Path | None = None, grid: bool = False) -> dict:
    """Everything a run of ``params`` would do, counted (see the module doc). ``mirror`` overrides
    ``runtime.data_mirror`` / ``EDIT_DATA_MIRROR``; ``grid`` adds ``grid_methods``."""
    plan = assumptions(params)
    bench = Benchmarks(params, root, data_dir, mirror)
    mirror_dir = bench.files.mirror
    splits = questions(params, bench)
    train_questions = splits["train"]
    per_task, qsum = question_counts(params, splits, bench)
    counts = dual_counts(len(train_questions), plan, data_dir)
    acc = accelerate_plan(params, root)
    student = student_plan(params["student"])
    rows = (row_tokens(train_questions, PromptBuilder(mirror_dir), float(plan["chars_per_token"]))
            if mirror_dir is not None else None)
    answer_rows = answer_row_tokens(train_questions, float(plan["chars_per_token"])) if rows is not None else None
    seeds = list(params["seeds"] or [0])
    base = list(params["methods"])
    grid_only = [m for m in params["grid_methods"] if m not in base] if grid else []
    methods = base + grid_only
    # runs per method: the default methods for every seed, the grid's for every grid seed
    n_seeds = {**{m: len(seeds) for m in base}, **{m: len(params["grid_seeds"] or seeds) for m in grid_only}}
    train, untuned = training_plan(params, methods, counts, acc["num_processes"], rows or 0.0, student["n_params"],
                                   bool(student["lora"]), answer_rows)
    total_flops = sum((r["train_flops"] or 0) * n_seeds[r["method"]] for r in train)
    device_hours = None
    if plan["effective_tflops_per_device"] and total_flops:
        device_hours = total_flops / (float(plan["effective_tflops_per_device"]) * 1e12) / 3600
    n_runs = sum(n_seeds.values())
    out = {
        "profile": params["profile"],
        "bbh_split": bbh_split_summary(bench),
        "questions": {**qsum, "per_task": per_task},
        "dual": counts,
        "student": student,
        "accelerate": acc,
        "row_tokens": rows,
        "answer_row_tokens": answer_rows,
        "methods": methods,
        "grid_only": grid_only,
        "untuned_methods": untuned,
        "training": train,
        "seeds": seeds,
        "grid_seeds": list(params["grid_seeds"] or seeds) if grid_only else [],
        "training_total": {"runs": n_runs,
                           "optimizer_steps": sum(r["optimizer_steps"] * n_seeds[r["method"]] for r in train),
                           "train_tokens": sum(r["train_tokens"] * n_seeds[r["method"]] for r in train),
                           "train_flops": total_flops or None, "device_hours_at_assumed_tflops": device_hours,
                           "wall_hours_at_assumed_tflops": device_hours / acc["num_processes"] if device_hours else None},
        "teacher": teacher_plan(params, mirror_dir, train_questions, counts, plan),
        "evaluation": evaluation_plan(params, bench, splits, data_dir, n_runs),
        "assumptions": plan,
    }
    out["time"] = predict_times(params, out)  # None without plan.throughput for this student (edit.plan_time)
    return out


# ----------------------------------------------------------------------------------------------
# printing
def _fmt(v) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if v and (abs(v) >= 1e7 or abs(v) < 1e-2):
            return f"{v:.3g}"
        return f"{v:,.2f}".rstrip("0").rstrip(".")
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def _table(rows: list[dict], cols: list[str]) -> str:
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(x[i]) for x in cells]) for i, c in enumerate(cols)]
    line = lambda xs: "  ".join(x.rjust(w) for x, w in zip(xs, widths))  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(x) for x in cells])


def format_plan(p: dict) -> str:
    """The plan as plain-text tables."""
    out = [f"# Plan of profile {p['profile']!r} (dry run: nothing trained, called or downloaded)", ""]
    s = p["bbh_split"]
    out.append(f"BBH split (seed {s['seed']}, test fraction {s['test_fraction']}, round(n x fraction) test items per "
               f"task): {s['tasks']} tasks, {s['items']:,} items -> train {s['train']:,} / test {s['test']:,} "
               f"[{s['origin']}]")
    q = p["questions"]
    out.append(f"Training questions: {q['source']}: {q['tasks']} tasks, train {q['train']:,}, validation {q['val']:,}")
    cols = ["task"] + [c for c in ("split_train", "split_test", "val", "train") if any(c in v for v in q["per_task"].values())]
    totals = {c: sum(v.get(c, 0) for v in q["per_task"].values()) for c in cols[1:]}
    out.append(_table([{"task": t, **c} for t, c in q["per_task"].items()] + [{"task": "total", **totals}], cols))
    d = p["dual"]
    out += ["", f"Dual data ({d['source']}):",
            _table([{k: d[k] for k in ("D+", "D-", "D-+", "D+-", "D+dual", "D-dual")}],
                   ["D+", "D-", "D-+", "D+-", "D+dual", "D-dual"])]
    st, a = p["student"], p["accelerate"]
    size = _fmt(st["n_params"]) + f" (from {st['size_from']})" if st["n_params"] else "unknown (set student.n_params)"
    out += ["", f"Student: {st['kind']} {st['path'] or ''} {st['gguf_file'] or ''} dtype {st['dtype']}, "
            f"max_length {st['max_length']}, parameters {size}"
            + (f", weights {st['weights_gib']:.2f} GiB" if st.get("weights_gib") else ""),
            f"LoRA: {st['lora']}" + (f" -> {st['lora_trainable_params']:,} trainable parameters"
                                     if st.get("lora_trainable_params") else
                                     (" -> trainable parameters unknown (set student.arch)" if st["lora"] else "")),
            f"Accelerate: {a['config']} ({a['distributed_type']}), {a['num_processes']} processes, "
            f"mixed precision {a['mixed_precision']}",
            f"Estimated student row: {_fmt(p['row_tokens'])} tokens (prompt + BBH-exemplar-length CoT + EOS, "
            f"chars/{p['assumptions']['chars_per_token']}); answer-only row: {_fmt(p.get('answer_row_tokens'))} tokens"]
    out += ["", f"Training (per seed; seeds {p['seeds']}; records: CoTs or pairs; examples: what a batch counts, "
                f"SFT rows (records x the format's templates) or pairs; global_batch = train.<loss>.batch_size):",
            _table(p["training"], ["method", "step", "loss", "data", "records", "examples", "sequences", "lr", "epochs",
                                   "global_batch", "per_device_batch", "steps_per_epoch", "optimizer_steps",
                                   "warmup_steps", "train_tokens", "train_flops"])]
    if p["untuned_methods"]:
        out.append(f"Untuned (prompting only, no training): {', '.join(p['untuned_methods'])}")
    t = p["training_total"]
    n_grid = len(p.get("grid_only") or [])
    runs = (f"{len(p['methods']) - n_grid} methods x {len(p['seeds'])} seeds"
            + (f" + {n_grid} grid methods x {len(p['grid_seeds'])} grid seeds" if n_grid else ""))
    out.append(f"All runs ({t['runs']} = {runs}): "
               f"{t['optimizer_steps']:,} optimizer steps, {t['train_tokens']:,} tokens"
               + (f", {t['train_flops']:.3g} FLOPs" if t["train_flops"] else "")
               + (f", ~{t['device_hours_at_assumed_tflops']:.1f} device hours (~{t['wall_hours_at_assumed_tflops']:.1f} h "
                  f"on {p['accelerate']['num_processes']}) at an ASSUMED {p['assumptions']['effective_tflops_per_device']} "
                  f"TFLOP/s per device" if t["device_hours_at_assumed_tflops"] else ""))
    te = p["teacher"]
    out += ["", f"Teacher: {te['backend']} {te['model'] or ''} (prompts: {te['prompt_source']}, "
            f"max_resamples {te['max_resamples']}, price {te['price']})",
            _table(te["per_prompt"] + [{"prompt": "total", **te["total"]}],
                   ["prompt", "calls", "expected_calls", "worst_calls", "max_tokens", "mean_prompt_tokens",
                    "mean_completion_tokens", "prompt_tokens", "completion_tokens", "dollars", "worst_dollars"]),
            f"(tokens: {te['token_rule']}; worst case: every resample used, every completion max_tokens long)"]
    if te["note"]:
        out.append(te["note"])
    e = p["evaluation"]
    out += ["", "Evaluation (per run):",
            _table([{"suite": k, "items": v, "tasks": e["suite_tasks"][k]} for k, v in e["suites"].items()],
                   ["suite", "items", "tasks"])]
    if e["off"]:
        out.append(f"switched off (null): {', '.join(e['off'])}")
    for w in e["warnings"]:
        out.append(f"WARNING: {w}")
    out.append(f"{e['generations_per_run']:,} generations per run ({e['samples_per_item']} per item), "
               f"{e['generations_total']:,} in all (max_new_tokens {e['max_new_tokens']})")
    out += format_times(p.get("time"))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edit.plan", description="Dry run of a profile: configs, counts, cost.")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--profile", default=None, help="profile of params.yaml (default: its `profile` key)")
    ap.add_argument("--data", default=None, help="the data folder of THIS profile's pipeline (benchmarks/, "
                                                   "questions/, cots/ are counted when present)")
    ap.add_argument("--mirror", default=None, help="benchmark mirror (default EDIT_DATA_MIRROR / runtime.data_mirror)")
    ap.add_argument("--grid", action="store_true", help="also plan the experiment grid's methods (grid_methods)")
    ap.add_argument("--json", default=None, help="also write the plan as JSON here")
    a = ap.parse_args(argv)
    params = load_params(a.params, profile=a.profile)
    root = Path(a.params).resolve().parent
    plan = build_plan(params, a.data, root, a.mirror, a.grid)
    print(f"(params {a.params}, profile {params['profile']!r})")
    print(format_plan(plan))
    if a.json:
        Path(a.json).write_text(json.dumps(plan, indent=2, sort_keys=True, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
