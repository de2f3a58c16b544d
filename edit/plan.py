"""Dry run of a profile: every configuration, count and cost of a run, without training, without
calling a teacher and without downloading anything (no network, no model loaded).

    python -m edit.plan --profile paper            # tables on stdout
    python -m edit.plan --profile paper --json plan.json
    python -m edit.plan --profile paper --grid     # also the experiment grid's methods (grid_methods)

The profile is read with :func:`edit.params.load_params` (``params.yaml``'s base sections with the
profile's overlay); everything is counted with the pipeline's own code, so the plan and the run agree:

* **BBH**: the benchmarks stage's split (:func:`edit.benchmarks.bbh_split` with
  ``benchmarks.bbh_split_seed`` / ``bbh_test_fraction``: ``round(n * 0.2)`` test items per task,
  5,209 train / 1,302 test over the 27 tasks), read from ``<data>/benchmarks`` when ``--data``
  holds the stage's outputs, else loaded from the mirror (:func:`edit.benchmarks.files_from_params`,
  downloads disabled).
* **training questions**: with ``data.source: bbh`` the BBH-train items of ``data.bbh_tasks`` less
  ``data.n_val_per_task`` per task held out for validation (:func:`edit.dual.bbh_train_questions`,
  as the data stage does); with ``embedded`` the generated questions of ``data.ind``
  (:func:`edit.dual.make_questions`).
* **dual data**: D+ / D- / D-+ / D+- and the pairs D+dual / D-dual, counted from ``<data>/cots``
  with ``--data``, else estimated: the teacher's accuracy defaults to the paper's 3,805 / 5,207
  (the oracle's is ``1 - teacher.error_rate``), AHP / CCP succeed with ``plan.ahp_success`` /
  ``plan.ccp_success``.
* **training**: the steps of every method of ``methods`` (and ``grid_methods`` with ``--grid``)
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
  benchmark spec ``{benchmark, part, tasks, max_per_task}`` filtered as
  :func:`edit.evaluate.load_suite` does; ``null`` switches a suite off).
* **student**: kind, path, size (``student.n_params``, else derived from a local ``config.json`` or
  GGUF header, else unknown), LoRA trainable parameters; **accelerate**: the config file
  ``runtime.accelerate_config`` checked with accelerate's own loader.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

#: the EDIT paper's dual-pair counts (D+dual from correct CoTs, D-dual from wrong ones)
PAPER_D_PLUS_DUAL, PAPER_D_MINUS_DUAL = 3805, 1402
#: the paper's Ddual mistake-type counts (gpt-3.5 classifier), for mistake-type subsets
PAPER_MISTAKE_TYPES = {"logical": 3695, "knowledge": 529, "calculation": 412, "other": 113, "mixed": 458}

PLAN_DEFAULTS = {
    "teacher_accuracy": PAPER_D_PLUS_DUAL / (PAPER_D_PLUS_DUAL + PAPER_D_MINUS_DUAL),
    "ahp_success": 1.0,
    "ccp_success": 1.0,
    "resample_rate": 0.02,      # expected share of replies without the answer phrase (resampled)
    "chars_per_token": 4.0,     # student rows only (the teacher's prompts use edit.llm.cache's rule)
    "effective_tflops_per_device": None,  # e.g. 150 on an H100 in bf16: gives rough device hours
}
#: keys of an ``eval.suites`` benchmark spec (edit.evaluate.load_suite)
#: embedded splits written by the data stage: split -> (count key of ``data``, task section)
EMBEDDED_SPLITS = {"train": ("n_train_per_task", "ind"), "val": ("n_val_per_task", "ind"),
                   "ind_test": ("n_test_per_task", "ind"), "ood_test": ("n_test_per_task", "ood")}


def _approx_tokens(text: str) -> int:
    """Tokens of a completion by the rule of :func:`edit.llm.cache.estimate_prompt_tokens`."""
    return math.ceil(len(text) / 4)


# ----------------------------------------------------------------------------------------------
# benchmarks
class Benchmarks:
    """The benchmark items the run will see: from the benchmarks stage's outputs
    (``<data_dir>/benchmarks``: ``bbh.jsonl`` + ``bbh_split.json`` and ``<suite>.jsonl``) when
    they are there, else loaded from the mirror / cache with :mod:`edit.benchmarks` and split
    with the ``benchmarks`` params (never downloading)."""

    def __init__(self, params: dict, root: str | Path = ".", data_dir: str | Path | None = None,
                 mirror: str | Path | None = None):
        from edit import benchmarks as B

        self.cfg = {**B.DEFAULTS, **(params.get("benchmarks") or {})}
        self.bench_dir = Path(data_dir) / "benchmarks" if data_dir else None
        if self.bench_dir is not None and not (self.bench_dir / "bbh_split.json").is_file():
            self.bench_dir = None
        if mirror is not None:
            self.files = B.BenchmarkFiles(mirror, B.default_cache_dir(params), allow_download=False)
        else:
            self.files = B.files_from_params(params, root, allow_download=False)
        self.origin = (f"benchmarks stage outputs in {self.bench_dir}" if self.bench_dir else
                       f"mirror {self.files.mirror} / cache {self.files.cache_dir} (edit.benchmarks loaders)")
        self._suites: dict[str, list] = {}
        self._split: dict | None = None

    def suite(self, name: str) -> list:
        """Every item of benchmark ``name`` (bbh: all 27 tasks), in the stage's order."""
        from edit import benchmarks as B

        if name not in B.SUITES:
            raise ValueError(f"unknown benchmark {name!r}; expected one of {B.SUITES}")
        if name not in self._suites:
            if self.bench_dir is not None:
                self._suites[name] = B.read_suite(self.bench_dir / f"{name}.jsonl")
            else:
                self._suites[name] = B.load_suite(self.files, name, self.cfg)
        return self._suites[name]

    def split(self) -> dict:
        """The BBH train/test split (the stage's ``bbh_split.json``, or recomputed)."""
        from edit import benchmarks as B

        if self._split is None:
            if self.bench_dir is not None:
                self._split = json.loads((self.bench_dir / "bbh_split.json").read_text(encoding="utf-8"))
            else:
                self._split = B.bbh_split(self.suite("bbh"), int(self.cfg["bbh_split_seed"]),
                                          float(self.cfg["bbh_test_fraction"]))
        return self._split

    def bbh_part(self, part: str) -> list:
        from edit import benchmarks as B

        return B.split_part(self.suite("bbh"), self.split(), part)


def bbh_split_summary(bench: Benchmarks) -> dict:
    """Totals of the BBH split: tasks, items, train, test, seed, test fraction and sha256."""
    from edit.benchmarks import split_sha256

    s = bench.split()
    tr = sum(len(t["train"]) for t in s["tasks"].values())
    te = sum(len(t["test"]) for t in s["tasks"].values())
    return {"tasks": len(s["tasks"]), "items": tr + te, "train": tr, "test": te, "seed": s["seed"],
            "test_fraction": s["test_fraction"], "sha256": split_sha256(s), "origin": bench.origin}


# ----------------------------------------------------------------------------------------------
# training questions
def training_questions(params: dict, bench: Benchmarks | None) -> tuple[list, dict, dict]:
    """The data stage's training questions: ``(train questions, per_task, summary)`` with
    ``per_task[task] = {"train", "val", ...}`` (for BBH also the task's split sizes)."""
    from edit import dual

    data = params.get("data") or {}
    source = data.get("source", "embedded")
    n_val = int(data.get("n_val_per_task", 0) or 0)
    if source == "bbh":
        if bench is None:
            raise ValueError("data.source is 'bbh' but no benchmark files are available")
        tasks = list(data.get("bbh_tasks") or [])
        if not tasks:
            raise ValueError("data.bbh_tasks names no task (data.source is 'bbh')")
        split = bench.split()["tasks"]
        unknown = [t for t in tasks if t not in split]
        if unknown:
            raise ValueError(f"data.bbh_tasks: unknown BBH task(s) {unknown}")
        train, val = dual.bbh_train_questions(bench.bbh_part("train"), tasks, n_val)
        tr, va = Counter(q.task for q in train), Counter(q.task for q in val)
        per_task = {t: {"split_train": len(split[t]["train"]), "split_test": len(split[t]["test"]),
                        "val": va[t], "train": tr[t]} for t in tasks}
        return train, per_task, {"source": "bbh (BBH-train items of data.bbh_tasks, edit.dual.bbh_train_questions)",
                                 "tasks": len(tasks), "train": len(train), "val": len(val)}
    if source != "embedded":
        raise ValueError(f"data.source must be 'embedded' or 'bbh', got {source!r}")
    ind = data.get("ind") or {}
    if not ind:
        raise ValueError("data.ind names no task (data.source is 'embedded')")
    train = dual.make_questions(ind, int(data["n_train_per_task"]), "train", data.get("seed", 0))
    tr = Counter(q.task for q in train)
    per_task = {t: {"val": n_val, "train": tr[t]} for t in ind}
    return train, per_task, {"source": "embedded task world (edit.dual.make_questions)", "tasks": len(ind),
                             "train": len(train), "val": n_val * len(ind)}


# ----------------------------------------------------------------------------------------------
# evaluation suites
def suite_items(spec, bench: Benchmarks | None, params: dict, data_dir: str | Path | None = None,
                name: str = "<suite>") -> tuple[int, int]:
    """(items, tasks) of one ``eval.suites`` entry, selected as :func:`edit.evaluate.load_suite`
    does: a string is an embedded split (``<data>/questions/<spec>.jsonl`` when there, else its
    size from the ``data`` params); a mapping is a benchmark, BBH's ``part`` (default test), then
    the ``tasks`` subset (a task without items is an error), then the first ``max_per_task`` per task."""
    if isinstance(spec, str):
        path = Path(data_dir, "questions", f"{spec}.jsonl") if data_dir else None
        if path is not None and path.is_file():
            tasks = [json.loads(line)["task"] for line in open(path, encoding="utf-8") if line.strip()]
            return len(tasks), len(set(tasks))
        data = params.get("data") or {}
        if spec not in EMBEDDED_SPLITS:
            raise ValueError(f"eval.suites.{name}: {spec!r} is not a split the data stage writes "
                             f"({sorted(EMBEDDED_SPLITS)})")
        if data.get("source", "embedded") != "embedded" and spec != "train" and spec != "val":
            raise ValueError(f"eval.suites.{name}: split {spec!r} exists only with data.source 'embedded' "
                             f"(this profile's is {data.get('source')!r}); set the suite to null")
        key, section = EMBEDDED_SPLITS[spec]
        tasks = data.get(section) or {}
        return int(data.get(key, 0) or 0) * len(tasks), len(tasks)
    if bench is None:
        raise ValueError(f"eval.suites.{name}: no benchmark files available")
    from edit.benchmarks import select_suite

    items = select_suite(spec, bench.bbh_part, bench.suite, name)
    return len(items), len({it.task for it in items})


def suite_warnings(params: dict) -> list[str]:
    """Suites that look unintended: with ``data.source: bbh``, a BBH test suite that leaves out some
    of the training tasks ``data.bbh_tasks`` (e.g. a ``tasks`` list inherited from the base section
    by a profile that meant all tasks: a profile must set ``tasks: null`` to drop it)."""
    data = params.get("data") or {}
    if data.get("source") != "bbh":
        return []
    from edit.benchmarks import BBH_TASKS

    trained = set(data.get("bbh_tasks") or [])
    out = []
    for name, spec in ((params.get("eval") or {}).get("suites") or {}).items():
        if isinstance(spec, dict) and spec.get("benchmark") == "bbh" and spec.get("part", "test") == "test":
            evaluated = set(spec.get("tasks") or BBH_TASKS)
            if not trained <= evaluated:
                out.append(f"eval.suites.{name} evaluates {len(evaluated)} BBH task(s) {sorted(evaluated)[:4]}"
                           f"{' ...' if len(evaluated) > 4 else ''} and misses {len(trained - evaluated)} of the "
                           f"{len(trained)} trained (data.bbh_tasks); if all are meant, set eval.suites.{name}.tasks "
                           f"to null (or list them)")
    return out


def evaluation_plan(params: dict, bench: Benchmarks | None, data_dir, n_runs: int) -> dict:
    ev = params.get("eval") or {}
    suites, tasks, off = {}, {}, []
    for name, spec in (ev.get("suites") or {}).items():
        if spec is None:
            off.append(name)
            continue
        suites[name], tasks[name] = suite_items(spec, bench, params, data_dir, name)
    k = int((ev.get("self_consistency") or {}).get("k", 1) or 1)
    per_run = sum(suites.values()) * k
    return {"suites": suites, "suite_tasks": tasks, "off": off, "samples_per_item": k,
            "warnings": suite_warnings(params),
            "generations_per_run": per_run, "generations_total": per_run * n_runs,
            "max_new_tokens": ev.get("max_new_tokens"), "batch_size": ev.get("batch_size")}


# ----------------------------------------------------------------------------------------------
# dual data
def _read_jsonl(path: Path) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as e:
                    raise ValueError(f"{path}:{lineno}: not JSON ({e})") from None
    return out


def dual_counts(n_train: int, plan: dict, data_dir: str | Path | None = None) -> dict:
    """Counts of D+, D-, D-+, D+-, D+dual, D-dual and the pairs' mistake types per pair type
    (``mistake_types``): counted in ``data_dir/cots`` (sft.jsonl: D+, D-+; wrong.jsonl: D-, D+-;
    pairs.jsonl), or estimated from the teacher's accuracy and AHP/CCP success rates with the
    paper's mistake-type proportions (``source`` says which)."""
    d = Path(data_dir) / "cots" if data_dir is not None else None
    if d is not None and (d / "sft.jsonl").is_file() and (d / "pairs.jsonl").is_file():
        recs = _read_jsonl(d / "sft.jsonl") + (_read_jsonl(d / "wrong.jsonl") if (d / "wrong.jsonl").is_file() else [])
        pairs = _read_jsonl(d / "pairs.jsonl")
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
# training
def step_examples(step: dict, counts: dict, fmt=None) -> tuple[int, int, int]:
    """(records, examples, sequences) of one validated step (:func:`edit.methods.parse_method`).
    SFT: the CoT records of its sources, or exactly the ``repeat_to`` volume (records of its
    ``data`` + pairs of its ``pairs``, :func:`edit.methods.step_records`); each record gives one
    training row per template of the format ``fmt`` (:meth:`edit.formats.Format.examples`: 2 for
    mt_cot and sbs), and rows are what a batch counts. KRSL / DPO: the pairs of its pair types, or
    with ``mistake_type`` the size of the smallest of ``mistake_groups`` among those pairs
    (:func:`edit.methods.mistake_subset`); a batch counts pairs, each pair is 2 sequences."""
    from edit.formats import CORRECT_SOURCES, get_format

    fmt = get_format(fmt or "cot") if isinstance(fmt, (str, type(None))) else fmt
    loss = step["loss"]
    if loss == "sft":
        n_src = {s: int(counts[s]) for s in step["data"]}
        per = {s: len(fmt.correct if s in CORRECT_SOURCES else fmt.wrong) for s in n_src}
        n = sum(n_src.values())
        rows = sum(n_src[s] * per[s] for s in n_src)
        rep = step.get("repeat_to")
        if rep:
            volume = sum(int(counts[s]) for s in rep.get("data") or []) + sum(int(counts[p]) for p in rep.get("pairs") or [])
            rows = round(volume * rows / n) if n else 0  # the repeated records keep their sources' mix
            n = volume
        return n, rows, rows
    if loss in ("krsl", "dpo"):
        n = sum(int(counts[p]) for p in step["pairs"])
        if step.get("mistake_type"):
            mt = counts.get("mistake_types") or {}
            n = min(sum(int((mt.get(p) or {}).get(g, 0)) for p in step["pairs"]) for g in step["mistake_groups"])
        return n, n, 2 * n
    raise ValueError(f"step {step!r}: unknown loss {loss!r}")


def training_plan(params: dict, methods: list[str], counts: dict, n_processes: int, row_tokens: float,
                  n_params: float | None, lora: bool) -> tuple[list[dict], list[str]]:
    """One row per (method, step) of ``methods`` (:func:`edit.methods.get_method`): examples,
    hyper-parameters (``train.<loss>`` with the step's ``hp``), batches, optimizer steps; and the
    untuned methods (no steps). ``batch_size`` is the GLOBAL batch of SFT / KRSL (divided over the
    processes, as :func:`edit.launch.per_device_batch`); :func:`edit.training.train_dpo` uses it per
    device, so a DPO step's global batch is ``batch_size x processes``."""
    from edit.methods import get_method
    from edit.params import deep_merge

    out, untuned = [], []
    for name in methods:
        method = get_method(params, name)
        if not method.steps:
            untuned.append(name)
        for k, step in enumerate(method.steps, 1):
            loss = step["loss"]
            base = (params.get("train") or {}).get(loss)
            if base is None:
                raise ValueError(f"method {name!r} step {k}: params.yaml has no train.{loss} section")
            hp = deep_merge(base, step.get("hp") or {})
            records, examples, seqs = step_examples(step, counts, method.fmt)
            batch = int(hp.get("batch_size", 0) or 0)
            epochs = float(hp.get("epochs", 1))
            if batch < 1:
                raise ValueError(f"method {name!r} step {k}: train.{loss}.batch_size is missing")
            if loss == "dpo":
                per_device, global_batch = batch, batch * n_processes
            else:
                if batch % n_processes:
                    raise ValueError(f"method {name!r} step {k}: train.{loss}.batch_size={batch} (global) is not a "
                                     f"multiple of the {n_processes} processes")
                per_device, global_batch = batch // n_processes, batch
            per_epoch = math.ceil(examples / global_batch)
            steps = math.ceil(per_epoch * epochs)
            tokens = seqs * row_tokens * epochs
            flops = (4 if lora else 6) * n_params * tokens if n_params else None
            out.append({"method": name, "step": k, "loss": loss,
                        "data": ",".join(step.get("data") or step.get("pairs") or [])
                                + (f" [{step['mistake_type']}]" if step.get("mistake_type") else "")
                                + (" [repeat_to]" if step.get("repeat_to") else ""),
                        "records": records, "examples": examples, "sequences": seqs, "lr": hp.get("lr"), "epochs": epochs,
                        "global_batch": global_batch, "per_device_batch": per_device,
                        "steps_per_epoch": per_epoch, "optimizer_steps": steps,
                        "warmup_steps": int(float(hp.get("warmup_ratio", 0.0)) * per_epoch * epochs),
                        "train_tokens": round(tokens), "train_flops": flops,
                        "extra": {k2: hp[k2] for k2 in ("alpha", "beta", "scheduler", "select") if k2 in hp}})
    return out, untuned


# ----------------------------------------------------------------------------------------------
# accelerate and the student
def accelerate_plan(params: dict, root: str | Path = ".") -> dict:
    """The accelerate config of the run (``runtime.accelerate_config``), loaded and checked with
    accelerate's own loader; processes from ``runtime.num_processes`` or the config."""
    rt = params.get("runtime") or {}
    path = rt.get("accelerate_config")
    if not path:
        return {"config": None, "distributed_type": "NO (plain python)", "num_processes": int(rt.get("num_processes", 1)),
                "mixed_precision": "no"}
    full = Path(root, path)
    if not full.is_file():
        raise FileNotFoundError(f"runtime.accelerate_config: {full} not found")
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(full))
    n = int(rt.get("num_processes") or cfg.num_processes)
    return {"config": str(path), "distributed_type": cfg.distributed_type.value, "num_processes": n,
            "mixed_precision": cfg.mixed_precision, "fsdp": cfg.fsdp_config or None,
            "deepspeed": cfg.deepspeed_config or None}


def _local_model_dir(path: str | None) -> Path | None:
    """A student's local folder (:func:`edit.params.resolve_model_path`, which resolves
    ``pkg://<package>`` without importing the package), or None for a hub id or a missing package."""
    from edit.params import resolve_model_path

    if not path:
        return None
    try:
        folder = Path(resolve_model_path(path))
    except FileNotFoundError:
        return None
    return folder if folder.is_dir() else None


def describe_local_model(folder: Path | None, gguf_file: str | None) -> tuple[float | None, dict, str | None]:
    """(parameters, arch, where) of a local model without loading it: from the GGUF header
    (tensor shapes and ``<arch>.*`` keys; the ``gguf`` package reads metadata only) or from
    ``config.json`` (Llama-style count). ``(None, {}, None)`` when neither is there."""
    if folder is None:
        return None, {}, None
    if gguf_file and (folder / gguf_file).is_file():
        try:
            from gguf import GGUFReader
        except ImportError:
            return None, {}, None
        r = GGUFReader(str(folder / gguf_file))

        def field(key):
            f = r.fields.get(key)
            return None if f is None else f.parts[f.data[0]].tolist()[0]

        arch_name = r.fields["general.architecture"].parts[r.fields["general.architecture"].data[0]].tobytes().decode()
        h, layers = field(f"{arch_name}.embedding_length"), field(f"{arch_name}.block_count")
        heads, kv_heads = field(f"{arch_name}.attention.head_count"), field(f"{arch_name}.attention.head_count_kv")
        n = float(sum(math.prod(int(x) for x in t.shape) for t in r.tensors))
        arch = {"hidden_size": int(h), "num_layers": int(layers),
                "kv_size": int(h) // int(heads) * int(kv_heads or heads)} if h and layers and heads else {}
        return n, arch, f"GGUF header of {folder / gguf_file}"
    cfg_path = folder / "config.json"
    if cfg_path.is_file():
        c = json.loads(cfg_path.read_text(encoding="utf-8"))
        try:
            h, layers, inter, vocab = (int(c[k]) for k in ("hidden_size", "num_hidden_layers", "intermediate_size",
                                                            "vocab_size"))
        except KeyError:
            return None, {}, None
        heads = int(c.get("num_attention_heads", 1))
        kv = h // heads * int(c.get("num_key_value_heads", heads))
        n = vocab * h * (1 if c.get("tie_word_embeddings") else 2) + layers * (2 * h * h + 2 * h * kv + 3 * h * inter + 2 * h) + h
        return float(n), {"hidden_size": h, "num_layers": layers, "kv_size": kv}, f"{cfg_path} (Llama-style count)"
    return None, {}, None


def student_plan(student: dict) -> dict:
    """What the student is, without loading it: size from ``n_params`` (else a local GGUF header /
    ``config.json``, else unknown), LoRA trainable parameters from ``arch`` (``hidden_size``,
    ``num_layers``, ``kv_size``: the k/v projection width; else derived the same way)."""
    out = {"kind": student.get("kind", "tiny_llama"), "path": student.get("path"), "gguf_file": student.get("gguf_file"),
           "dtype": student.get("dtype", "float32"), "max_length": student.get("max_length"),
           "n_params": float(student["n_params"]) if student.get("n_params") else None, "size_from": None}
    arch = dict(student.get("arch") or {})
    if out["kind"] == "tiny_llama":
        h, i, layers = int(student["hidden_size"]), int(student["intermediate_size"]), int(student["num_layers"])
        v = int(student.get("vocab_size", 1024))
        embeddings = v * h * (1 if student.get("tie_embeddings", True) else 2)  # input (and untied output)
        out["n_params"] = float(embeddings + layers * (4 * h * h + 3 * h * i + 2 * h) + h)
        out["size_from"] = "student.* (tiny_llama)"
        arch = {"hidden_size": h, "num_layers": layers, "kv_size": h}
    elif out["n_params"] is None or not arch:
        n, derived, where = describe_local_model(_local_model_dir(out["path"]), out["gguf_file"])
        if out["n_params"] is None and n:
            out["n_params"], out["size_from"] = n, where
        arch = arch or derived
    if out["n_params"] is not None and out["size_from"] is None:
        out["size_from"] = "student.n_params"
    out["arch"] = arch or None
    lora = student.get("lora") or {}
    out["lora"] = dict(lora) if lora.get("enabled") else None
    out["lora_trainable_params"] = None
    if lora.get("enabled") and arch:
        h, layers, kv = int(arch["hidden_size"]), int(arch["num_layers"]), int(arch.get("kv_size", arch["hidden_size"]))
        shapes = {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h)}
        r = int(lora.get("r", 64))
        unknown = [t for t in lora.get("target_modules", []) if t not in shapes]
        out["lora_trainable_params"] = (None if unknown else
                                        layers * sum(r * sum(shapes[t]) for t in lora.get("target_modules", [])))
    dtype_bytes = {"float32": 4, "bfloat16": 2, "float16": 2}.get(out["dtype"], 4)
    out["weights_gib"] = out["n_params"] * dtype_bytes / 2 ** 30 if out["n_params"] else None
    return out


def row_tokens(questions: list, builder, chars_per_token: float) -> float:
    """Mean student row length (tokens: the student prompt + a BBH-exemplar-length CoT + EOS) over
    the train questions."""
    from edit.formats import student_prompt

    cot = {}
    total = 0.0
    for q in questions:
        if q.task not in cot:
            ex = builder.task_prompt(q.task).exemplars
            cot[q.task] = sum(len(e.cot) for e in ex) / len(ex)
        total += (len(student_prompt(q.input)) + cot[q.task]) / chars_per_token + 1
    return total / max(len(questions), 1)


# ----------------------------------------------------------------------------------------------
# the teacher
def teacher_model(teacher: dict) -> str | None:
    """The model the teacher's calls are keyed and priced by: ``teacher.openai.model`` (openai),
    ``teacher.hf.path`` (hf), None (oracle)."""
    backend = teacher.get("backend", "oracle")
    if backend == "openai":
        return (teacher.get("openai") or {}).get("model")
    if backend == "hf":
        return (teacher.get("hf") or {}).get("path")
    return None


def teacher_plan(params: dict, mirror: str | Path | None, questions: list, counts: dict, plan: dict) -> dict:
    """Calls, tokens and dollars per prompt (CEP, AHP, CCP), expected and worst case, from the real
    prompts of every train question (:class:`edit.llm.prompts.PromptBuilder`) counted as the cache
    ledger's dry run does (:func:`edit.llm.cache.estimate_prompt_tokens`). AHP is sent for the D-
    share of each task's questions, CCP for the rest; CCP's correct CoT (and, for ``ours``, its
    ``teacher.ccp_examples`` exemplar pairs) are stood in for by the task's BBH exemplar CoTs."""
    from edit.llm.base import ChatRequest
    from edit.llm.cache import call_dollars, check_price_table, estimate_prompt_tokens
    from edit.llm.prompts import ContrastiveExample, PromptBuilder
    from edit.llm.teacher import sampling_per_kind

    teacher = params.get("teacher") or {}
    backend = teacher.get("backend", "oracle")
    model = teacher_model(teacher)
    table = check_price_table((teacher.get("cache") or {}).get("price_table"))
    price = table.get(model) if model else None
    sampling = sampling_per_kind(teacher.get("sampling"))
    max_resamples = int(teacher.get("max_resamples", 0) or 0)
    source = teacher.get("prompt_source", "ours")
    n_train = len(questions)
    share_wrong = counts["D-"] / max(counts["D-"] + counts["D+"], 1)
    share = {"cep": 1.0, "ahp": share_wrong, "ccp": 1.0 - share_wrong}
    prompt_sum = {k: 0.0 for k in share}
    completion_sum = {k: 0.0 for k in share}
    note = None
    if mirror is None:
        note = "no benchmark mirror: prompt tokens not estimated"
    else:
        builder = PromptBuilder(mirror, source, teacher.get("system_prompt"))
        k_ex = int(teacher.get("ccp_examples", 3) or 0)
        per_task: dict[str, tuple] = {}
        for i, q in enumerate(questions):
            if q.task not in per_task:
                ex = builder.task_prompt(q.task).exemplars
                stand_ins = [ContrastiveExample(f"exemplar/{j}", q.task, ex[j % len(ex)].question, ex[j % len(ex)].cot,
                                                ex[j % len(ex)].cot) for j in range(k_ex)]
                per_task[q.task] = (ex, stand_ins, sum(_approx_tokens(e.cot) for e in ex) / len(ex))
            ex, stand_ins, completion = per_task[q.task]
            msgs = {"cep": builder.cep_messages(q), "ahp": builder.ahp_messages(q),
                    "ccp": builder.ccp_messages(q, ex[i % len(ex)].cot, stand_ins)}
            for kind, m in msgs.items():
                prompt_sum[kind] += share[kind] * estimate_prompt_tokens(ChatRequest.make(m, sampling[kind], 0, tag=kind))
                completion_sum[kind] += share[kind] * completion
    rate = float(plan["resample_rate"])
    rows = []
    for kind in ("cep", "ahp", "ccp"):
        calls = {"cep": n_train, "ahp": counts["D-"], "ccp": counts["D+"]}[kind]
        max_tokens = int(sampling[kind]["max_tokens"])
        # the sums cover the teacher's shares of the train questions; scale to the counted calls
        scale = calls / max(share[kind] * n_train, 1e-9)
        mean_p = prompt_sum[kind] / max(share[kind] * n_train, 1e-9) if mirror is not None else None
        mean_c = completion_sum[kind] / max(share[kind] * n_train, 1e-9) if mirror is not None else None
        row = {"prompt": kind.upper(), "calls": int(calls), "expected_calls": round(calls * (1 + rate)),
               "worst_calls": int(calls) * (1 + max_resamples), "max_tokens": max_tokens,
               "mean_prompt_tokens": mean_p, "mean_completion_tokens": mean_c,
               "prompt_tokens": None, "completion_tokens": None, "worst_prompt_tokens": None,
               "worst_completion_tokens": int(calls) * (1 + max_resamples) * max_tokens}
        if mirror is not None:
            row["prompt_tokens"] = round(prompt_sum[kind] * scale * (1 + rate))
            row["completion_tokens"] = round(completion_sum[kind] * scale * (1 + rate))
            row["worst_prompt_tokens"] = round(prompt_sum[kind] * scale * (1 + max_resamples))
        row["dollars"] = (call_dollars(price, row["prompt_tokens"], row["completion_tokens"])
                          if row["prompt_tokens"] is not None else None)
        row["worst_dollars"] = (call_dollars(price, row["worst_prompt_tokens"], row["worst_completion_tokens"])
                                if row["worst_prompt_tokens"] is not None else None)
        rows.append(row)
    total = {}
    for k in ("calls", "expected_calls", "worst_calls", "prompt_tokens", "completion_tokens", "worst_prompt_tokens",
              "worst_completion_tokens", "dollars", "worst_dollars"):
        vals = [r[k] for r in rows]
        total[k] = None if any(v is None for v in vals) else sum(vals)
    if backend == "oracle":
        note = "the oracle teacher is code: these are function calls, at no cost (tokens: if an LLM were asked)"
    elif price is None and note is None:
        note = (f"no price for model {model!r} in teacher.cache.price_table: dollars not estimated")
    return {"backend": backend, "model": model, "price": price, "max_resamples": max_resamples, "prompt_source": source,
            "sampling": sampling, "per_prompt": rows, "total": total, "note": note,
            "token_rule": "edit.llm.cache.estimate_prompt_tokens (chars/4 + chat framing); completions: "
                          "the task's BBH exemplar CoT length, chars/4"}


# ----------------------------------------------------------------------------------------------
# the plan
def build_plan(params: dict, data_dir: str | Path | None = None, root: str | Path = ".",
               mirror: str | Path | None = None, grid: bool = False) -> dict:
    """Everything a run of ``params`` would do, counted (see the module doc). ``mirror`` overrides
    ``runtime.data_mirror`` / ``EDIT_DATA_MIRROR``; ``grid`` adds ``grid_methods``."""
    from edit.llm.prompts import PromptBuilder

    plan = {**PLAN_DEFAULTS, **(params.get("plan") or {})}
    teacher = params.get("teacher") or {}
    if "teacher_accuracy" not in (params.get("plan") or {}) and teacher.get("backend", "oracle") == "oracle" \
            and teacher.get("error_rate") is not None:
        plan["teacher_accuracy"] = 1.0 - float(teacher["error_rate"])  # the oracle's wrong-CoT share is a setting
    bench = Benchmarks(params, root, data_dir, mirror)
    mirror_dir = bench.files.mirror
    questions, per_task, qsum = training_questions(params, bench)
    counts = dual_counts(len(questions), plan, data_dir)
    acc = accelerate_plan(params, root)
    student = student_plan(params.get("student") or {})
    rows = (row_tokens(questions, PromptBuilder(mirror_dir), float(plan["chars_per_token"]))
            if mirror_dir is not None else None)
    seeds = list(params.get("seeds") or [0])
    base = list(params.get("methods") or [])
    grid_only = [m for m in params.get("grid_methods") or [] if m not in base] if grid else []
    methods = base + grid_only
    # runs per method: the default methods for every seed, the grid's for every grid seed
    n_seeds = {**{m: len(seeds) for m in base}, **{m: len(params.get("grid_seeds") or seeds) for m in grid_only}}
    train, untuned = training_plan(params, methods, counts, acc["num_processes"], rows or 0.0, student["n_params"],
                                   bool(student["lora"]))
    total_flops = sum((r["train_flops"] or 0) * n_seeds[r["method"]] for r in train)
    device_hours = None
    if plan.get("effective_tflops_per_device") and total_flops:
        device_hours = total_flops / (float(plan["effective_tflops_per_device"]) * 1e12) / 3600
    n_runs = sum(n_seeds.values())
    return {
        "profile": params.get("profile"),
        "bbh_split": bbh_split_summary(bench),
        "questions": {**qsum, "per_task": per_task},
        "dual": counts,
        "student": student,
        "accelerate": acc,
        "row_tokens": rows,
        "methods": methods,
        "grid_only": grid_only,
        "untuned_methods": untuned,
        "training": train,
        "seeds": seeds,
        "grid_seeds": list(params.get("grid_seeds") or seeds) if grid_only else [],
        "training_total": {"runs": n_runs,
                           "optimizer_steps": sum(r["optimizer_steps"] * n_seeds[r["method"]] for r in train),
                           "train_tokens": sum(r["train_tokens"] * n_seeds[r["method"]] for r in train),
                           "train_flops": total_flops or None, "device_hours_at_assumed_tflops": device_hours,
                           "wall_hours_at_assumed_tflops": device_hours / acc["num_processes"] if device_hours else None},
        "teacher": teacher_plan(params, mirror_dir, questions, counts, plan),
        "evaluation": evaluation_plan(params, bench, data_dir, n_runs),
        "assumptions": plan,
    }


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
            f"chars/{p['assumptions']['chars_per_token']})"]
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
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    from edit.params import load_params

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
