"""The declared schema of ``params.yaml``: every section, key, type, allowed value and default.

This module is THE place for defaults (:mod:`edit.config_check` validates a configuration against
it and fills them in). Types are strict: text where a number belongs, a float where an integer
belongs, a bool where a number belongs and unknown keys are all errors. A number field keeps an int
or a float as written.

A few keys are optional on purpose and absent from the result when not given (``exclude_if``):
their absence has a meaning that the code derives from other settings (``teacher.hf.seed``: the
teacher's ``seed``; ``plan.teacher_accuracy``: ``1 - teacher.error_rate`` for the oracle, else the
paper's share of correct CoTs; ``train.<loss>.val_max_new_tokens``: ``eval.max_new_tokens``).
``method_defs`` is kept as written; :mod:`edit.config_check` checks it with
:func:`edit.methods.parse_method` and each step's ``hp`` against :data:`LOSS_SECTIONS`.
:func:`section_defaults` and :func:`defaults` give one section, or a whole configuration, with
every default filled in (code indexes params directly: there are no ``.get(key, default)``
fallbacks elsewhere; tests build their params with these).

Over 400 lines on purpose: a declarative list of every key of the file, one class per section, so
that the whole configuration reads in one place. Pure Python (pydantic, no torch).
"""
from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, NonNegativeInt, PlainValidator, PositiveInt, Tag,
                      model_validator)
from pydantic_core import PydanticCustomError

from edit import tasks as task_world
from edit.benchmarks.suites import BBH_TASKS, SUITES
from edit.methods import LOSSES, MISTAKE_TYPES, SELECT

#: the sizes a student variant may change (``edit.params.with_student_variant``)
StudentSize = Literal["hidden_size", "intermediate_size", "num_layers", "num_heads"]
#: embedded question splits the data stage writes (``data/questions/<split>.jsonl``)
EMBEDDED_SPLITS = ("train", "val", "ind_test", "ood_test")
#: learning-rate schedules of transformers' ``TrainingArguments.lr_scheduler_type``
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay")


def number(gt: float | None = None, ge: float | None = None, lt: float | None = None, le: float | None = None):
    """A real number within bounds, an int or a float kept as written (``timeout_s: 120`` stays an
    int); text and booleans are errors."""
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PydanticCustomError("float_type", "Input should be a valid number")
        for bound, ok, word in ((gt, lambda b: value > b, "greater than"), (ge, lambda b: value >= b,
                                "greater than or equal to"), (lt, lambda b: value < b, "less than"),
                                (le, lambda b: value <= b, "less than or equal to")):
            if bound is not None and not ok(bound):
                raise PydanticCustomError("number_bound", f"Input should be {word} {bound}")
        return value
    return Annotated[int | float, PlainValidator(check)]


PositiveFloat = number(gt=0)
NonNegativeFloat = number(ge=0)
Share = number(ge=0, le=1)
UnitInterval = number(gt=0, lt=1)


def _absent_if_none(value) -> bool:
    return value is None


def _optional(**kw):
    """A key that may be left out: None when not given, and then absent from the result."""
    return Field(None, exclude_if=_absent_if_none, **kw)


class Section(BaseModel):
    """A params section: strict types, no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=False)


# ---------------------------------------------------------------------------------------- sections
class Runtime(Section):
    torch_threads: PositiveInt = 1
    data_mirror: str | None = "../shared/data"
    data_cache: str | None = "~/.cache/edit/benchmarks"
    accelerate_config: str | None = None
    num_processes: PositiveInt = 1
    autocast: Literal["bfloat16"] | None = _optional()   # training: null float32; bfloat16 torch.autocast (edit.runtime)
    eval_autocast: Literal["bfloat16"] | None = _optional()   # evaluation (generation), the same choice


class Benchmarks(Section):
    suites: list[Literal[SUITES]] = list(SUITES)
    bbh_split_seed: int = 0
    bbh_test_fraction: UnitInterval = 0.2
    bb_sub_max_per_task: PositiveInt = 100


Knobs = dict[str, int]


def _default_ind() -> dict:
    return {"boolean_expressions": {"n_tokens": 7, "max_depth": 2},
            "tracking_shuffled_objects_three_objects": {"n_swaps": 2},
            "navigate": {"min_instructions": 2, "max_instructions": 4, "max_steps": 5},
            "web_of_lies": {"n_people": 4}}


def _default_ood() -> dict:
    return {"boolean_expressions": {},
            "tracking_shuffled_objects_three_objects": {"n_swaps": 3},
            "navigate": {"min_instructions": 5, "max_instructions": 7, "max_steps": 8},
            "web_of_lies": {"n_people": 5}}


def _check_difficulty(section: str, value: dict[str, Knobs]) -> None:
    for task, knobs in value.items():
        if task not in task_world.TASKS:
            raise ValueError(f"{section}.{task}: unknown task; embedded tasks: {', '.join(task_world.TASKS)}")
        allowed = task_world.difficulty_knobs(task)
        for knob, v in knobs.items():
            if knob not in allowed:
                raise ValueError(f"{section}.{task}.{knob}: unknown knob; {task} has {', '.join(allowed)}")
            if v < 0:
                raise ValueError(f"{section}.{task}.{knob}: {v!r} is not allowed: a non-negative integer")


class Data(Section):
    source: Literal["embedded", "bbh"] = "embedded"
    bbh_tasks: list[Literal[BBH_TASKS]] = Field(default_factory=lambda: [
        "boolean_expressions", "tracking_shuffled_objects_three_objects", "navigate", "web_of_lies"])
    seed: int = 20250727
    n_train_per_task: PositiveInt = 240
    n_val_per_task: NonNegativeInt = 60
    n_test_per_task: PositiveInt = 60
    max_train_per_task: PositiveInt | None = None  # source bbh: at most this many training questions per task
    ind: dict[str, Knobs] = Field(default_factory=_default_ind)
    ood: dict[str, Knobs] = Field(default_factory=_default_ood)

    @model_validator(mode="after")
    def _tasks_and_knobs(self):
        _check_difficulty("ind", self.ind)
        _check_difficulty("ood", self.ood)
        if self.source == "embedded" and not self.ind:
            raise ValueError("ind: the embedded source needs at least one task")
        if self.source == "bbh" and not self.bbh_tasks:
            raise ValueError("bbh_tasks: the bbh source needs at least one task")
        return self


class Price(Section):
    prompt_per_1m: NonNegativeFloat
    completion_per_1m: NonNegativeFloat


class TeacherCache(Section):
    enabled: bool = True
    path: str = "data/teacher_cache/calls.jsonl"
    price_table: dict[str, Price] = Field(default_factory=lambda: {
        "gpt-3.5-turbo-0613": Price(prompt_per_1m=1.5, completion_per_1m=2.0)})
    fsync: bool = True


class OpenAI(Section):
    model: str = "gpt-3.5-turbo-0613"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    allow_missing_key: bool = False
    concurrency: PositiveInt = 16
    max_attempts: PositiveInt = 6
    timeout_s: PositiveFloat = 120.0
    backoff_base_s: PositiveFloat = 1.0      # retries: exponential backoff from this, capped at backoff_max_s
    backoff_max_s: PositiveFloat = 30.0
    max_retry_after_s: PositiveFloat = 120.0  # a 429's Retry-After is honoured up to this


class HF(Section):
    path: str | None = None
    gguf_file: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    batch_size: PositiveInt = 4
    device: str = "cpu"
    model_name: str | None = None
    seed: int | None = _optional()                       # absent: the teacher's seed
    sampling: dict[str, Any] | None = _optional()


class Judge(Section):
    enabled: bool = False
    sampling: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.0, "max_tokens": 64})


class Teacher(Section):
    backend: Literal["oracle", "openai", "hf"] = "oracle"
    error_rate: Share = 0.35
    mistake_types: list[Literal[MISTAKE_TYPES]] = Field(default_factory=lambda: list(MISTAKE_TYPES))
    rewrite_noise: Share = 0.15
    seed: int = 0
    prompt_source: Literal["ours", "edit_files"] = "ours"
    system_prompt: str | None = None
    sampling: dict[str, Any] = Field(default_factory=lambda: {"temperature": 0.2, "top_p": 1.0, "max_tokens": 2048})
    ccp_examples: NonNegativeInt = 3
    ccp_max_chars: PositiveInt | None = 4000
    max_resamples: NonNegativeInt = 2
    temperature_step: NonNegativeFloat = 0.3
    max_temperature: NonNegativeFloat = 1.0
    cache: TeacherCache = Field(default_factory=TeacherCache)
    ledger: str | None = "reports/teacher_ledger.json"
    openai: OpenAI = Field(default_factory=OpenAI)
    hf: HF = Field(default_factory=HF)
    judge: Judge = Field(default_factory=Judge)

    @model_validator(mode="after")
    def _backend_settings(self):
        for kind in ("cep", "ahp", "ccp"):
            if kind in self.sampling and not isinstance(self.sampling[kind], dict):
                raise ValueError(f"sampling.{kind}: {self.sampling[kind]!r} is not allowed: a mapping of "
                                 f"sampling parameters for that prompt")
        if self.backend == "hf" and not self.hf.path:
            raise ValueError("hf.path: required for backend hf (a hub id, a model folder, or the folder "
                             "of gguf_file)")
        return self


class Lora(Section):
    enabled: bool = False
    r: PositiveInt = 64
    lora_alpha: PositiveInt = 32
    lora_dropout: number(ge=0, lt=1) = 0.05
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])


class Arch(Section):
    hidden_size: PositiveInt
    num_layers: PositiveInt
    kv_size: PositiveInt | None = None


class Student(Section):
    kind: Literal["tiny_llama", "pretrained"] = "tiny_llama"
    vocab_size: PositiveInt = 1024
    hidden_size: PositiveInt = 96
    intermediate_size: PositiveInt = 288
    num_layers: PositiveInt = 3
    num_heads: PositiveInt = 4
    max_length: PositiveInt = 768
    tie_embeddings: bool = True
    lora: Lora = Field(default_factory=Lora)
    path: str | None = None                 # pretrained: hub id, folder or pkg://<package>
    gguf_file: str | None = None
    gguf_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")  # checked before gguf_file is read
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    n_params: PositiveFloat | None = None   # for the dry run's estimates only (edit.plan)
    arch: Arch | None = None                # for the dry run's LoRA estimate only

    @model_validator(mode="after")
    def _kind_settings(self):
        if self.kind == "pretrained" and not self.path:
            raise ValueError("path: required for kind pretrained (hub id, folder or pkg://<package>)")
        if self.gguf_sha256 and not self.gguf_file:
            raise ValueError("gguf_sha256: set without gguf_file (the hash pins that file)")
        if self.kind == "tiny_llama" and self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size: {self.hidden_size} is not a multiple of num_heads "
                             f"{self.num_heads}")
        return self


class TrainStep(Section):
    """Settings shared by every training step (``train.<loss>`` and a method step's ``hp``)."""

    epochs: PositiveInt
    batch_size: PositiveInt     # the GLOBAL batch
    lr: PositiveFloat
    warmup_ratio: Share = 0.0
    weight_decay: NonNegativeFloat = 0.0
    scheduler: Literal[SCHEDULERS]
    logging_steps: PositiveInt = 20
    select: Literal[SELECT] = "last"
    val_max_items: PositiveInt = 60
    val_max_new_tokens: PositiveInt | None = _optional()  # absent: eval.max_new_tokens


class SFT(TrainStep):
    epochs: PositiveInt = 8
    batch_size: PositiveInt = 16
    lr: PositiveFloat = 5.0e-3
    warmup_ratio: Share = 0.05
    scheduler: Literal[SCHEDULERS] = "cosine"
    group_by_length: bool = False


class KRSL(TrainStep):
    epochs: PositiveInt = 1
    batch_size: PositiveInt = 8
    lr: PositiveFloat = 1.0e-4
    scheduler: Literal[SCHEDULERS] = "constant"
    alpha: NonNegativeFloat = 1.0
    beta: NonNegativeFloat = 0.025
    nll_cap: PositiveFloat | None = None
    group_by_length: bool = False


class DPO(TrainStep):
    epochs: PositiveInt = 1
    batch_size: PositiveInt = 8
    lr: PositiveFloat = 1.0e-4
    beta: PositiveFloat = 0.1
    warmup_ratio: Share = 0.3
    scheduler: Literal[SCHEDULERS] = "cosine"


class Checkpoints(Section):
    dir: str = "checkpoints"
    save_steps: NonNegativeInt = 0          # 0: no checkpoints
    save_total_limit: PositiveInt = 2
    resume: bool = True
    keep: bool = False


class Train(Section):
    sft: SFT = Field(default_factory=SFT)
    krsl: KRSL = Field(default_factory=KRSL)
    dpo: DPO = Field(default_factory=DPO)
    checkpoints: Checkpoints = Field(default_factory=Checkpoints)

    @model_validator(mode="after")
    def _checkpoints_on_log_steps(self):
        save = self.checkpoints.save_steps
        for loss in ("sft", "krsl"):
            log = getattr(self, loss).logging_steps
            if save and save % log:
                raise ValueError(f"checkpoints.save_steps: {save} is not a multiple of train.{loss}."
                                 f"logging_steps {log} (a resumed run would log differently)")
        return self


#: the training section of each loss: the model a step's ``hp`` is checked against
LOSS_SECTIONS: dict[str, type[TrainStep]] = {"sft": SFT, "krsl": KRSL, "dpo": DPO}
assert set(LOSS_SECTIONS) == set(LOSSES)


class SelfConsistency(Section):
    k: PositiveInt = 1
    temperature: PositiveFloat = 0.7
    top_p: number(gt=0, le=1) = 0.95
    seed: int = 0


class BenchmarkSuite(Section):
    benchmark: Literal[SUITES]
    part: Literal["train", "test"] | None = None   # BBH only; filled with test
    tasks: list[str] | None = None                 # None: every task of the benchmark
    max_per_task: PositiveInt | None = None

    @model_validator(mode="after")
    def _part_and_tasks(self):
        if self.benchmark == "bbh":
            self.part = self.part or "test"
            bad = [t for t in self.tasks or [] if t not in BBH_TASKS]
            if bad:
                raise ValueError(f"tasks: {bad} are not BBH tasks; BBH has {', '.join(BBH_TASKS)}")
        elif self.part is not None:
            raise ValueError(f"part: {self.part!r} is not allowed: only BBH has train/test parts")
        return self


def _suite_kind(value) -> str:
    return "<split>" if isinstance(value, str) else "<benchmark>"


Suite = Annotated[Annotated[Literal[EMBEDDED_SPLITS], Tag("<split>")] | Annotated[BenchmarkSuite, Tag("<benchmark>")],
                  Discriminator(_suite_kind)]


def _default_suites() -> dict:
    return {"IND": "ind_test", "OOD": "ood_test",
            "BBH-test": BenchmarkSuite(benchmark="bbh", part="test", tasks=[
                "boolean_expressions", "tracking_shuffled_objects_three_objects", "navigate", "web_of_lies"])}


class Eval(Section):
    max_new_tokens: PositiveInt = 400
    max_new_tokens_direct: PositiveInt = 32   # methods that answer directly (a sentence, no CoT)
    batch_size: PositiveInt = 64
    stop_at_answer: bool = True
    cache: Literal["auto", "static", "dynamic"] = "auto"
    backend: Literal["hf", "vllm"] = "hf"
    self_consistency: SelfConsistency = Field(default_factory=SelfConsistency)
    suites: dict[str, Suite | None] = Field(default_factory=_default_suites)  # null: switched off


class Report(Section):
    """Report settings; ``tables`` and ``labels`` are merged over ``edit.report.spec.DEFAULT_TABLES``
    and ``DEFAULT_LABELS`` (:func:`edit.report.spec.report_config`, which checks the table rows)."""

    student: str | None = None
    average: Literal["macro", "micro"] = "macro"
    significance_level: UnitInterval = 0.05
    n_bootstrap: PositiveInt = 10000
    bootstrap_seed: int = 0
    noise_factor: PositiveFloat = 2.0
    decimals: NonNegativeInt = 1
    paper_columns: dict[str, str] = Field(default_factory=lambda: {
        "BBH-test": "BBH-test", "BB-sub": "BB-sub", "AGIEval": "AGIEval", "ARC-E": "ARC-E", "ARC-C": "ARC-C"})
    student_sizes: dict[str, PositiveFloat] = Field(default_factory=dict)
    other_students: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    tables: dict[str, dict[str, Any] | None] = Field(default_factory=dict)


class Throughput(Section):
    """Measured rates of one student at one precision (bench/smollm2_speed.py)."""

    train_tokens_per_s: PositiveFloat
    prefill_tokens_per_s: PositiveFloat
    new_tokens_per_s: PositiveFloat


class Plan(Section):
    """Assumptions of the dry run (``python -m edit.plan``)."""

    teacher_accuracy: number(gt=0, le=1) | None = _optional()
    ahp_success: Share = 1.0
    ccp_success: Share = 1.0
    resample_rate: Share = 0.02
    chars_per_token: PositiveFloat = 4.0
    effective_tflops_per_device: PositiveFloat | None = None
    # wall-time prediction (edit.plan_time): student name -> precision -> measured rates
    throughput: dict[str, dict[Literal["float32", "bfloat16"], Throughput]] | None = _optional()
    generation_fill: number(gt=0, le=1) | None = _optional()   # share of max_new_tokens decoded per item (1.0)
    eval_prompt_tokens: PositiveFloat | None = _optional()     # mean prompt tokens of an item, zero-shot (200)
    reuse_from: list[str] | None = _optional()                # methods whose shared steps others copy
    max_stage_hours: PositiveFloat | None = _optional()       # flag stages predicted longer (1.0)
    stage_overhead_s: number(ge=0) | None = _optional()       # seconds per stage to start and load the model (0)


class Params(Section):
    """One effective configuration (``edit.params.load_params``): the base sections with a
    profile's overlay merged in. ``data``, ``teacher``, ``student``, ``train``, ``eval`` and
    ``method_defs`` must be written out; every other key has its default here."""

    profile: str = "default"
    seeds: list[int] = Field(default_factory=list)
    methods: list[str] = Field(default_factory=list)
    untuned_seeds: list[int] | None = _optional()   # seeds of the untuned (prompting-only) methods; default: seeds
    grid_seeds: list[int] = Field(default_factory=list)
    grid_methods: list[str] = Field(default_factory=list)
    grid_students: list[str] = Field(default_factory=list)
    grid_student_methods: list[str] = Field(default_factory=list)
    student_variants: dict[str, dict[StudentSize, PositiveInt]] = Field(default_factory=dict)
    runtime: Runtime = Field(default_factory=Runtime)
    benchmarks: Benchmarks = Field(default_factory=Benchmarks)
    data: Data
    teacher: Teacher
    student: Student
    train: Train
    method_defs: dict[str, Any]
    eval: Eval
    report: Report = Field(default_factory=Report)
    plan: Plan = Field(default_factory=Plan)


# ---------------------------------------------------------------------------------------- defaults
def _plain(model: BaseModel) -> dict:
    """A validated model as the plain dict :func:`edit.params.load_params` returns (nothing shared
    with the caller's overrides)."""
    return copy.deepcopy(model.model_dump(mode="python"))


def section_defaults(section: str, **overrides) -> dict:
    """The ``section`` of params with every default of this schema filled in, ``overrides`` (keys
    of that section) validated as a params file's would be: a sub-section given as a mapping gets
    its own defaults too (``section_defaults("train", sft={"epochs": 1})``); anything the schema
    refuses is a pydantic ``ValidationError`` (a ValueError). For code and tests that need one
    fully-defaulted section, e.g. ``section_defaults("student", vocab_size=300)``."""
    field = Params.model_fields.get(section)
    model = _unwrap_model(field.annotation) if field is not None else None
    if model is None:
        raise ValueError(f"{section!r} is not a section of params; sections: "
                         f"{', '.join(n for n, f in Params.model_fields.items() if _unwrap_model(f.annotation))}")
    return _plain(model.model_validate(overrides))


def defaults(**overrides) -> dict:
    """A whole effective configuration with every default of this schema filled in, as
    :func:`edit.params.load_params` returns it, with ``overrides`` (top-level keys; a section given
    as a mapping gets its own defaults too) validated by this schema alone (the cross-section rules
    of :mod:`edit.config_check` are not applied). ``method_defs`` is empty unless given."""
    required = {name: {} for name, f in Params.model_fields.items() if f.is_required()}
    return _plain(Params.model_validate({**required, **overrides}))


def _unwrap_model(annotation) -> type[Section] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, Section) else None
