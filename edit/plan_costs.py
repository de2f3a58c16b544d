"""The cost side of the dry run (:mod:`edit.plan`): per training step the examples, batches,
optimizer steps, tokens and FLOPs; the student's size without loading it (one parameter count,
:func:`llama_param_count`); the accelerate config; the teacher's calls, tokens and dollars from the
real prompts.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from accelerate.commands.config.config_args import load_config_from_file
from gguf import GGUFReader

from edit.formats import CORRECT_SOURCES, answer_sentence, get_format, student_prompt
from edit.llm.base import ChatRequest
from edit.llm.cache import call_dollars, check_price_table, estimate_prompt_tokens
from edit.llm.prompts import ContrastiveExample, PromptBuilder
from edit.llm.teacher import sampling_per_kind
from edit.methods import get_method
from edit.params import deep_merge, resolve_model_path


def _approx_tokens(text: str) -> int:
    """Tokens of a completion by the rule of :func:`edit.llm.cache.estimate_prompt_tokens`."""
    return math.ceil(len(text) / 4)



# ----------------------------------------------------------------------------------------------
# training
def _as_format(fmt):
    """``fmt`` as a :class:`edit.formats.Format` (a name, or None for "cot", or a Format)."""
    return get_format(fmt or "cot") if isinstance(fmt, (str, type(None))) else fmt


def _templates(fmt, source: str):
    """The templates that turn one record of ``source`` into training rows (correct or wrong CoTs)."""
    return fmt.correct if source in CORRECT_SOURCES else fmt.wrong


def step_examples(step: dict, counts: dict, fmt=None) -> tuple[int, int, int]:
    """(records, examples, sequences) of one validated step (:func:`edit.methods.parse_method`).
    SFT: the CoT records of its sources, or exactly the ``repeat_to`` volume (records of its
    ``data`` + pairs of its ``pairs``, :func:`edit.methods.step_records`); each record gives one
    training row per template of the format ``fmt`` (:meth:`edit.formats.Format.examples`: 2 for
    mt_cot and sbs), and rows are what a batch counts. KRSL / DPO: the pairs of its pair types, or
    with ``mistake_type`` the size of the smallest of ``mistake_groups`` among those pairs
    (:func:`edit.methods.mistake_subset`); a batch counts pairs, each pair is 2 sequences."""
    fmt = _as_format(fmt)
    loss = step["loss"]
    if loss == "sft":
        n_src = {s: int(counts[s]) for s in step["data"]}
        per = {s: len(_templates(fmt, s)) for s in n_src}
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


def answer_share(step: dict, counts: dict, fmt=None) -> float:
    """The share of an SFT step's rows whose response is an answer sentence only (the ``answer``
    templates of ``fmt``: answer-only SFT, MT-CoT's and step-by-step's answer task); 0 for a
    KRSL / DPO step (both CoTs of a pair are full CoTs)."""
    fmt = _as_format(fmt)
    if step["loss"] != "sft":
        return 0.0
    rows = answers = 0
    for s in step["data"]:
        templates = _templates(fmt, s)
        rows += int(counts[s]) * len(templates)
        answers += int(counts[s]) * sum(t.kind == "answer" for t in templates)
    return answers / rows if rows else 0.0


def training_plan(params: dict, methods: list[str], counts: dict, n_processes: int, row_tokens: float,
                  n_params: float | None, lora: bool,
                  answer_row_tokens: float | None = None) -> tuple[list[dict], list[str]]:
    """One row per (method, step) of ``methods`` (:func:`edit.methods.get_method`): examples,
    hyper-parameters (``train.<loss>`` with the step's ``hp``), batches, optimizer steps; and the
    untuned methods (no steps). ``batch_size`` is the GLOBAL batch of SFT / KRSL (divided over the
    processes, as :func:`edit.launch.per_device_batch`); :func:`edit.training.train_dpo` uses it per
    device, so a DPO step's global batch is ``batch_size x processes``. Tokens: ``row_tokens`` per
    CoT row, ``answer_row_tokens`` (default ``row_tokens``) per answer-sentence row
    (:func:`answer_share`)."""
    out, untuned = [], []
    for name in methods:
        method = get_method(params, name)
        if not method.steps:
            untuned.append(name)
        for k, step in enumerate(method.steps, 1):
            loss = step["loss"]
            hp = deep_merge(params["train"][loss], step["hp"])
            records, examples, seqs = step_examples(step, counts, method.fmt)
            batch = int(hp["batch_size"])
            epochs = float(hp["epochs"])
            if loss == "dpo":
                per_device, global_batch = batch, batch * n_processes
            else:
                if batch % n_processes:
                    raise ValueError(f"method {name!r} step {k}: train.{loss}.batch_size={batch} (global) is not a "
                                     f"multiple of the {n_processes} processes")
                per_device, global_batch = batch // n_processes, batch
            per_epoch = math.ceil(examples / global_batch)
            steps = math.ceil(per_epoch * epochs)
            share = answer_share(step, counts, method.fmt)
            answer_row = row_tokens if answer_row_tokens is None else answer_row_tokens
            tokens = seqs * epochs * ((1 - share) * row_tokens + share * answer_row)
            flops = (4 if lora else 6) * n_params * tokens if n_params else None
            out.append({"method": name, "step": k, "loss": loss,
                        "data": ",".join(step.get("data") or step.get("pairs") or [])
                                + (f" [{step['mistake_type']}]" if step.get("mistake_type") else "")
                                + (" [repeat_to]" if step.get("repeat_to") else ""),
                        "records": records, "examples": examples, "sequences": seqs, "lr": hp["lr"], "epochs": epochs,
                        "global_batch": global_batch, "per_device_batch": per_device,
                        "steps_per_epoch": per_epoch, "optimizer_steps": steps,
                        "warmup_steps": int(float(hp["warmup_ratio"]) * per_epoch * epochs),
                        "train_tokens": round(tokens), "train_flops": flops,
                        "extra": {k2: hp[k2] for k2 in ("alpha", "beta", "scheduler", "select") if k2 in hp}})
    return out, untuned


# ----------------------------------------------------------------------------------------------
# accelerate and the student
def accelerate_plan(params: dict, root: str | Path = ".") -> dict:
    """The accelerate config of the run (``runtime.accelerate_config``), loaded and checked with
    accelerate's own loader; processes from ``runtime.num_processes``."""
    rt = params["runtime"]
    path = rt["accelerate_config"]
    if not path:
        return {"config": None, "distributed_type": "NO (plain python)", "num_processes": int(rt["num_processes"]),
                "mixed_precision": "no"}
    full = Path(root, path)
    if not full.is_file():
        raise FileNotFoundError(f"runtime.accelerate_config: {full} not found")
    cfg = load_config_from_file(str(full))
    return {"config": str(path), "distributed_type": cfg.distributed_type.value, "num_processes": int(rt["num_processes"]),
            "mixed_precision": cfg.mixed_precision, "fsdp": cfg.fsdp_config or None,
            "deepspeed": cfg.deepspeed_config or None}


def _local_model_dir(path: str | None) -> Path | None:
    """A student's local folder (:func:`edit.params.resolve_model_path`, which resolves
    ``pkg://<package>`` without importing the package), or None for a hub id or a missing package."""
    if not path:
        return None
    try:
        folder = Path(resolve_model_path(path))
    except FileNotFoundError:
        return None
    return folder if folder.is_dir() else None


def llama_param_count(vocab: int, hidden: int, layers: int, intermediate: int, kv: int, tied: bool) -> int:
    """Parameters of a Llama-style decoder: the input embeddings (and an untied output layer), per
    layer q/o projections ``h x h``, k/v projections ``h x kv``, a gated MLP ``3 x h x intermediate``
    and two norms, then the final norm. The one count of the plan and the report's size figure."""
    embeddings = vocab * hidden * (1 if tied else 2)
    return embeddings + layers * (2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * intermediate + 2 * hidden) + hidden


def describe_local_model(folder: Path | None, gguf_file: str | None) -> tuple[float | None, dict, str | None]:
    """(parameters, arch, where) of a local model without loading it: from the GGUF header
    (tensor shapes and ``<arch>.*`` keys; the ``gguf`` package reads metadata only) or from
    ``config.json`` (Llama-style count). ``(None, {}, None)`` when neither is there."""
    if folder is None:
        return None, {}, None
    if gguf_file and (folder / gguf_file).is_file():
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
        n = llama_param_count(vocab, h, layers, inter, kv, bool(c.get("tie_word_embeddings")))
        return float(n), {"hidden_size": h, "num_layers": layers, "kv_size": kv}, f"{cfg_path} (Llama-style count)"
    return None, {}, None


def student_plan(student: dict) -> dict:
    """What the student is, without loading it: size from ``n_params`` (else a local GGUF header /
    ``config.json``, else unknown), LoRA trainable parameters from ``arch`` (``hidden_size``,
    ``num_layers``, ``kv_size``: the k/v projection width; else derived the same way)."""
    out = {"kind": student["kind"], "path": student["path"], "gguf_file": student["gguf_file"],
           "dtype": student["dtype"], "max_length": student["max_length"],
           "n_params": float(student["n_params"]) if student["n_params"] else None, "size_from": None}
    arch = dict(student["arch"] or {})
    if out["kind"] == "tiny_llama":
        h, i, layers = int(student["hidden_size"]), int(student["intermediate_size"]), int(student["num_layers"])
        v = int(student["vocab_size"])
        out["n_params"] = float(llama_param_count(v, h, layers, i, h, bool(student["tie_embeddings"])))
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
    lora = student["lora"]
    out["lora"] = dict(lora) if lora["enabled"] else None
    out["lora_trainable_params"] = None
    if lora["enabled"] and arch:
        # student.arch.kv_size may be left out (null): the k/v projections are as wide as the hidden size
        h, layers, kv = int(arch["hidden_size"]), int(arch["num_layers"]), int(arch["kv_size"] or arch["hidden_size"])
        shapes = {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h)}
        r = int(lora["r"])
        unknown = [t for t in lora["target_modules"] if t not in shapes]
        out["lora_trainable_params"] = (None if unknown else
                                        layers * sum(r * sum(shapes[t]) for t in lora["target_modules"]))
    dtype_bytes = {"float32": 4, "bfloat16": 2, "float16": 2}.get(out["dtype"], 4)
    out["weights_gib"] = out["n_params"] * dtype_bytes / 2 ** 30 if out["n_params"] else None
    return out


def row_tokens(questions: list, builder, chars_per_token: float) -> float:
    """Mean student row length (tokens: the student prompt + a BBH-exemplar-length CoT + EOS) over
    the train questions."""
    cot = {}
    total = 0.0
    for q in questions:
        if q.task not in cot:
            ex = builder.task_prompt(q.task).exemplars
            cot[q.task] = sum(len(e.cot) for e in ex) / len(ex)
        total += (len(student_prompt(q.input)) + cot[q.task]) / chars_per_token + 1
    return total / max(len(questions), 1)


def answer_row_tokens(questions: list, chars_per_token: float) -> float:
    """Mean answer-only row length (tokens: the answer template's prompt + the answer sentence +
    EOS) over the train questions."""
    answer = get_format("answer").correct[0]
    total = sum((len(answer.prompt(q.input)) + len(answer_sentence(q.target))) / chars_per_token + 1
                for q in questions)
    return total / max(len(questions), 1)


# ----------------------------------------------------------------------------------------------
# the teacher
def teacher_model(teacher: dict) -> str | None:
    """The model the teacher's calls are keyed and priced by: ``teacher.openai.model`` (openai),
    ``teacher.hf.path`` (hf), None (oracle)."""
    backend = teacher["backend"]
    if backend == "openai":
        return teacher["openai"]["model"]
    if backend == "hf":
        return teacher["hf"]["path"]
    return None


def teacher_plan(params: dict, mirror: str | Path | None, questions: list, counts: dict, plan: dict) -> dict:
    """Calls, tokens and dollars per prompt (CEP, AHP, CCP), expected and worst case, from the real
    prompts of every train question (:class:`edit.llm.prompts.PromptBuilder`) counted as the cache
    ledger's dry run does (:func:`edit.llm.cache.estimate_prompt_tokens`). AHP is sent for the D-
    share of each task's questions, CCP for the rest; CCP's correct CoT (and, for ``ours``, its
    ``teacher.ccp_examples`` exemplar pairs) are stood in for by the task's BBH exemplar CoTs."""
    teacher = params["teacher"]
    backend = teacher["backend"]
    model = teacher_model(teacher)
    table = check_price_table(teacher["cache"]["price_table"])
    price = table.get(model) if model else None
    sampling = sampling_per_kind(teacher["sampling"])
    max_resamples = int(teacher["max_resamples"])
    source = teacher["prompt_source"]
    n_train = len(questions)
    share_wrong = counts["D-"] / max(counts["D-"] + counts["D+"], 1)
    share = {"cep": 1.0, "ahp": share_wrong, "ccp": 1.0 - share_wrong}
    prompt_sum = {k: 0.0 for k in share}
    completion_sum = {k: 0.0 for k in share}
    note = None
    if mirror is None:
        note = "no benchmark mirror: prompt tokens not estimated"
    else:
        builder = PromptBuilder(mirror, source, teacher["system_prompt"])
        k_ex = int(teacher["ccp_examples"])
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
