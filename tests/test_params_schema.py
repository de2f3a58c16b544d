"""The declared schema of params.yaml (edit/config_schema.py) through edit.params: a bad setting
fails at load time naming its dotted key path, its value and what is allowed; every problem is
reported at once; defaults come from the schema and equal the file's explicit values."""
from __future__ import annotations

import copy

import pytest
import yaml

from conftest import ROOT
from edit.config_schema import Params, defaults, section_defaults
from edit.params import ParamsError, check_file, load_params, main

PARAMS = ROOT / "params.yaml"
RAW = yaml.safe_load(PARAMS.read_text())

# method_defs as written before repeated steps became YAML anchors: the resolved definitions
# must stay exactly these
OLD_METHOD_DEFS = yaml.safe_load("""
edit: [{loss: sft, data: [D+, D-+]}, {loss: krsl, pairs: [D+dual, D-dual]}]
std_cot: [{loss: sft, data: [D+]}]
answer_sft: {format: answer, steps: [{loss: sft, data: [D+, D-+]}]}
mt_cot: {format: mt_cot, infer: cot, steps: [{loss: sft, data: [D+]}]}
sbs: {format: sbs, steps: [{loss: sft, data: [D+]}]}
scott: {format: scott, steps: [{loss: sft, data: [D+, D+-]}]}
untuned_zero_shot: {format: zero_shot, steps: []}
untuned_zero_shot_cot: {format: zero_shot_cot, steps: []}
untuned_few_shot: {format: few_shot, shots: 3, steps: []}
untuned_few_shot_cot: {format: few_shot_cot, shots: 3, steps: []}
std_cot_repeat: [{loss: sft, data: [D+], repeat_to: {data: [D+, D-+], pairs: [D+dual, D-dual]}}]
std_cot_dual: {format: dual_cot, steps: [{loss: sft, data: [D+, D-+, D-, D+-]}]}
edit_no_rwc: [{loss: sft, data: [D+]}, {loss: krsl, pairs: [D+dual, D-dual]}]
edit_no_rwc_dplus: [{loss: sft, data: [D+]}, {loss: krsl, pairs: [D+dual]}]
edit_no_rwc_dminus: [{loss: sft, data: [D+]}, {loss: krsl, pairs: [D-dual]}]
edit_dplus_only: [{loss: sft, data: [D+, D-+]}, {loss: krsl, pairs: [D+dual]}]
edit_dminus_only: [{loss: sft, data: [D+, D-+]}, {loss: krsl, pairs: [D-dual]}]
edit_a0_b0: [{loss: sft, data: [D+, D-+]}, {loss: krsl, pairs: [D+dual, D-dual], hp: {alpha: 0.0, beta: 0.0}}]
edit_a0_b0025: [{loss: sft, data: [D+, D-+]}, {loss: krsl, pairs: [D+dual, D-dual], hp: {alpha: 0.0, beta: 0.025}}]
edit_a1_b0: [{loss: sft, data: [D+, D-+]}, {loss: krsl, pairs: [D+dual, D-dual], hp: {alpha: 1.0, beta: 0.0}}]
edit_a1_b005: [{loss: sft, data: [D+, D-+]}, {loss: krsl, pairs: [D+dual, D-dual], hp: {alpha: 1.0, beta: 0.05}}]
edit_logical: [{loss: sft, data: [D+, D-+]}, {loss: krsl, pairs: [D+dual, D-dual], mistake_type: logical}]
edit_calculation: [{loss: sft, data: [D+, D-+]}, {loss: krsl, pairs: [D+dual, D-dual], mistake_type: calculation}]
edit_knowledge: [{loss: sft, data: [D+, D-+]}, {loss: krsl, pairs: [D+dual, D-dual], mistake_type: knowledge}]
edit_random_tokens: [{loss: sft, data: [D+, D-+]}, {loss: krsl, pairs: [D+dual, D-dual], key_tokens: random_tokens}]
edit_all_diff_uniform: [{loss: sft, data: [D+, D-+]}, {loss: krsl, pairs: [D+dual, D-dual], key_tokens: all_diff_uniform}]
edit_dpo: [{loss: sft, data: [D+, D-+]}, {loss: dpo, pairs: [D+dual, D-dual]}]
""")


def _set(tree: dict, dotted: str, value) -> None:
    """Set ``a.b[1].c`` in ``tree`` (``[k]`` indexes a list)."""
    node, parts = tree, dotted.replace("[", ".[").split(".")
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node.setdefault(part, {})
    last = parts[-1]
    if last.startswith("["):
        node[int(last[1:-1])] = value
    else:
        node[last] = value


def _write(tmp_path, raw: dict):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _problems(tmp_path, changes: dict, profile: str | None = None) -> str:
    raw = copy.deepcopy(RAW)
    for dotted, value in changes.items():
        _set(raw, dotted, value)
    with pytest.raises(ParamsError) as e:
        load_params(_write(tmp_path, raw), profile=profile)
    return str(e.value)


# ------------------------------------------------------------------------------------- bad settings
@pytest.mark.bad_input("setting")
@pytest.mark.parametrize("dotted, value, allowed", [
    ("train.sft.lr", "fast", "valid number"),
    ("train.krsl.alpha", "one", "valid number"),
    ("teacher.openai.timeout_s", "fast", "valid number"),
    ("data.ind.navigate.max_steps", "five", "valid integer"),
    ("teacher.error_rate", "high", "valid number"),
    ("teacher.error_rate", 1.5, "less than or equal to 1"),
    ("train.sft.epochs", 0, "greater than 0"),
    ("train.sft.epochs", -1, "greater than 0"),
    ("train.dpo.epochs", 1.5, "valid integer"),
    ("train.sft.select", "bogus", "'last' or 'best_val_accuracy'"),
    ("train.sft.batch_size", 7.9, "valid integer"),
    ("teacher.openai.max_attempts", 2.5, "valid integer"),
    ("data.n_train_per_task", -5, "greater than 0"),
    ("student.max_length", -5, "greater than 0"),
    ("train.sft.lr", -0.1, "greater than 0"),
    ("train.sft.scheduler", "cosin", "'cosine'"),
    ("runtime.num_processes", True, "valid integer"),
    ("eval.max_new_tokens_direct", 0, "greater than 0"),
    ("eval.cache", "fast", "'auto', 'static' or 'dynamic'"),
    ("eval.suites.IND", "ind_tset", "'ind_test'"),
    ("eval.suites.BBH-test.max_per_task", -3, "greater than 0"),
    ("eval.suites.BBH-test.benchmark", "bbhh", "'bbh'"),
    ("teacher.backend", "gpt", "'oracle', 'openai' or 'hf'"),
    ("report.average", "mean", "'macro' or 'micro'"),
    ("report.significance_level", 5, "less than 1"),
    ("benchmarks.suites[1]", "mmlu", "'bbh'"),
    ("data.source", "web", "'embedded' or 'bbh'"),
    ("data.bbh_tasks[1]", "navigat", "'navigate'"),
    ("student.lora.lora_dropout", 1.0, "less than 1"),
    ("student.gguf_sha256", "B179C9", "should match pattern"),
])
def test_a_bad_value_names_its_path_its_value_and_what_is_allowed(tmp_path, dotted, value, allowed):
    msg = _problems(tmp_path, {dotted: value})
    line = next((ln for ln in msg.splitlines() if dotted in ln), None)
    assert line is not None, msg
    assert repr(value) in line and allowed in line, line


@pytest.mark.bad_input("setting")
@pytest.mark.parametrize("dotted, value, allowed", [
    ("train.sft.lrr", 0.1, "lr"),                               # a typo
    ("report.alpha", 0.05, "significance_level"),               # renamed
    ("student.lora.alpha", 32, "lora_alpha"),                   # renamed (peft's names)
    ("student.lora.dropout", 0.05, "lora_dropout"),
    ("eval.suites.BBH-test.bogus", 1, "max_per_task"),          # an unknown suite key
    ("teacher.openai.modle", "gpt-4", "model"),
    ("evals", {"batch_size": 2}, "eval"),                       # an unknown section
])
def test_an_unknown_key_is_an_error_listing_the_allowed_keys(tmp_path, dotted, value, allowed):
    msg = _problems(tmp_path, {dotted: value})
    line = next(ln for ln in msg.splitlines() if dotted in ln)
    assert "unknown key" in line and repr(value) in line and allowed in line, line


@pytest.mark.bad_input("setting")
@pytest.mark.parametrize("dotted, value, expected", [
    ("data.ind.navigate.max_stepz", 3, "data.ind.navigate.max_stepz: unknown knob; navigate has min_instructions"),
    ("data.ind.navigat", {}, "data.ind.navigat: unknown task"),
    ("data.ood.web_of_lies.n_people", -1, "data.ood.web_of_lies.n_people: -1 is not allowed: a non-negative"),
    ("student_variants.small.vocab_size", 99, "student_variants.small.vocab_size: 'vocab_size' is not allowed"),
    ("student.hidden_size", 50, "student.hidden_size: 50 is not a multiple of num_heads 4"),
    ("methods", ["std_cot", "nope"], "methods: 'nope' is not allowed: not in method_defs"),
    ("grid_students", ["small", "huge"], "grid_students: 'huge' is not allowed: not in student_variants"),
    ("train.checkpoints.save_steps", 30, "train.checkpoints.save_steps: 30 is not a multiple of train.sft.logging_steps 20"),
    ("teacher.sampling.ccp", 0.5, "teacher.sampling.ccp: 0.5 is not allowed"),
])
def test_rules_within_and_across_sections(tmp_path, dotted, value, expected):
    assert expected in _problems(tmp_path, {dotted: value})


@pytest.mark.bad_input("setting")
def test_a_missing_required_section_is_named(tmp_path):
    raw = copy.deepcopy(RAW)
    del raw["train"]
    with pytest.raises(ParamsError, match=r"  - train: required, but missing"):
        load_params(_write(tmp_path, raw))


@pytest.mark.bad_input("setting")
def test_pretrained_student_needs_a_path(tmp_path):
    assert "student.path: required for kind pretrained" in _problems(tmp_path, {"student.kind": "pretrained"})


# ------------------------------------------------------------------------------------- methods
@pytest.mark.bad_input("setting")
def test_unknown_method_step_key_names_the_method_the_step_and_the_key(tmp_path):
    msg = _problems(tmp_path, {"method_defs.edit[1].foo": 1})
    assert "method_defs.edit: method 'edit' step 2: unknown key(s) ['foo'] for a krsl step" in msg


@pytest.mark.bad_input("setting")
@pytest.mark.parametrize("dotted, value, expected", [
    ("method_defs.edit_a0_b0[1].hp.alpha", "zero", "method_defs.edit_a0_b0[1].hp.alpha: 'zero' is not allowed"),
    ("method_defs.edit_a0_b0[1].hp.alpah", 0.0, "method_defs.edit_a0_b0[1].hp.alpah: unknown key (value 0.0)"),
    ("method_defs.edit[0].hp", {"epochs": 0}, "method_defs.edit[0].hp.epochs: 0 is not allowed"),
    ("method_defs.answer_sft.steps[0].hp", {"lr": "fast"}, "method_defs.answer_sft.steps[0].hp.lr: 'fast'"),
    ("method_defs.edit_dpo[1].hp", {"group_by_length": True}, "method_defs.edit_dpo[1].hp.group_by_length: unknown key"),
    ("method_defs.edit[1].hp", {"select": "bogus"}, "hp.select 'bogus' unknown"),
    ("method_defs.edit[1].key_tokens", "all", "key_tokens 'all' unknown"),
    ("method_defs.edit[0].data", ["D+", "D++"], "unknown SFT data source(s) ['D++']"),
    ("method_defs.untuned_few_shot.shots", "three", "method_defs.untuned_few_shot.shots: 'three' is not allowed"),
])
def test_method_definitions_and_their_hp_are_checked(tmp_path, dotted, value, expected):
    assert expected in _problems(tmp_path, {dotted: value})


def test_method_defs_anchors_resolve_to_the_old_definitions():
    """Repeated steps are written once in params.yaml (YAML anchors); the loaded definitions equal
    the old, fully written ones, and no two steps share one object."""
    text = PARAMS.read_text()
    assert text.count("{loss: sft, data: [D+, D-+]}") == 1 and text.count("{loss: sft, data: [D+]}") == 1
    for profile in ("default", "smoke", "paper"):
        defs = load_params(PARAMS, profile=profile)["method_defs"]
        assert defs == OLD_METHOD_DEFS and list(defs) == list(OLD_METHOD_DEFS)
    defs = load_params(PARAMS)["method_defs"]
    defs["edit"][0]["data"].append("D-")
    assert defs["edit_dpo"][0]["data"] == ["D+", "D-+"] and defs["answer_sft"]["steps"][0]["data"] == ["D+", "D-+"]


# ------------------------------------------------------------------------------------- profiles and the check
@pytest.mark.bad_input("setting")
def test_every_problem_is_reported_at_once(tmp_path):
    msg = _problems(tmp_path, {"train.sft.lr": "fast", "teacher.error_rate": "high", "train.sft.lrr": 1.0,
                               "method_defs.edit[1].foo": 1, "data.n_train_per_task": -5})
    # edit[1] is the anchored step `&krsl`: edit_no_rwc uses it too, and its error is named there as well
    assert msg.splitlines()[0].endswith("(profile default): 6 problems:")
    for needle in ("train.sft.lr: 'fast'", "teacher.error_rate: 'high'", "train.sft.lrr: unknown key",
                   "method_defs.edit:", "method_defs.edit_no_rwc:", "data.n_train_per_task: -5"):
        assert needle in msg


@pytest.mark.bad_input("setting")
def test_profile_overlays_are_validated_after_merging(tmp_path):
    msg = _problems(tmp_path, {"profiles.smoke.train.sft.epochs": 0, "profiles.smoke.eval.suites.X": "nope"},
                    profile="smoke")
    assert "train.sft.epochs: 0 is not allowed" in msg and "eval.suites.X: 'nope' is not allowed" in msg
    raw = copy.deepcopy(RAW)
    _set(raw, "profiles.smoke.train.sft.epochs", 0)
    raw["profile"] = "nope"
    problems = check_file(_write(tmp_path, raw))
    assert "profile: 'nope' is not allowed: not in profiles (defined: default, smoke" in problems[0]
    assert any(p.startswith("profile smoke: train.sft.epochs: 0 is not allowed") for p in problems)
    assert not any(p.startswith("profile default:") for p in problems)  # the base is fine


@pytest.mark.bad_input("setting")
def test_an_unknown_profile_name_is_an_error(tmp_path):
    with pytest.raises(ParamsError, match=r"profile: unknown profile 'nope'; defined profiles: bbh, default"):
        load_params(PARAMS, profile="nope")
    raw = copy.deepcopy(RAW)
    raw["profiles"]["broken"] = ["not", "a", "mapping"]
    assert any("profiles.broken: ['not', 'a', 'mapping'] is not allowed" in p for p in check_file(_write(tmp_path, raw)))


def test_the_real_params_yaml_passes_in_every_profile(capsys):
    assert check_file(PARAMS) == []
    assert main(["--check", "--params", str(PARAMS)]) == 0
    assert capsys.readouterr().out.strip() == "ok"
    for name in RAW["profiles"]:
        assert load_params(PARAMS, profile=name)["profile"] == name


@pytest.mark.bad_input("setting")
def test_check_cli_prints_every_problem_and_fails(tmp_path, capsys):
    raw = copy.deepcopy(RAW)
    _set(raw, "train.sft.lr", "fast")
    _set(raw, "profiles.paper.train.krsl.alpha", "one")
    assert main(["--check", "--params", str(_write(tmp_path, raw))]) == 1
    out = capsys.readouterr().out
    assert "profile default: train.sft.lr: 'fast' is not allowed" in out
    assert "profile paper: train.krsl.alpha: 'one' is not allowed" in out
    assert "profile smoke: train.sft.lr: 'fast'" in out  # the base's error, in every profile that keeps it


# ------------------------------------------------------------------------------------- defaults
def _contains(full, part, path="") -> None:
    """Every explicit value of ``part`` is in ``full`` unchanged."""
    if isinstance(part, dict):
        for k, v in part.items():
            assert k in full, f"{path}.{k} dropped"
            _contains(full[k], v, f"{path}.{k}")
    else:
        assert full == part and type(full) is type(part), f"{path}: {full!r} != {part!r}"


def test_schema_defaults_equal_the_yaml_explicit_values(tmp_path):
    """Round trip: the default profile with every section emptied (defaults filled by the schema)
    loads to the same configuration as the file with everything written out; the file's explicit
    values come back unchanged, with their types."""
    full = load_params(PARAMS, profile="default")
    for section in ("runtime", "benchmarks", "data", "teacher", "student", "train", "eval", "report"):
        _contains(full[section], RAW[section], section)
    bare = {k: RAW[k] for k in ("profile", "seeds", "methods", "grid_seeds", "grid_methods", "grid_students",
                                "grid_student_methods", "student_variants", "method_defs")}
    bare.update({"data": {}, "teacher": {}, "student": {}, "train": {}, "eval": {}, "profiles": {"default": {}}})
    assert load_params(_write(tmp_path, bare)) == full


def test_defaults_are_filled_and_the_result_is_plain(tmp_path):
    p = load_params(PARAMS, profile="smoke")
    assert p["eval"]["max_new_tokens_direct"] == 32
    assert p["eval"]["suites"]["BBH-test"] == {"benchmark": "bbh", "part": "test", "tasks": ["boolean_expressions",
                                               "navigate"], "max_per_task": 3}
    assert p["plan"]["chars_per_token"] == 4.0 and "teacher_accuracy" not in p["plan"]  # derived when absent
    assert "seed" not in p["teacher"]["hf"]  # absent: the teacher's seed
    assert p["train"]["sft"]["logging_steps"] == 1 and p["train"]["krsl"]["nll_cap"] is None
    assert "profiles" not in p
    assert yaml.safe_load(yaml.safe_dump(p)) == p  # plain dicts, lists and scalars only
    assert set(Params.model_fields) - {"untuned_seeds"} == set(p)  # untuned_seeds: absent unless set


def test_defaults_for_code_and_tests_are_load_params_defaults():
    """config_schema.defaults / section_defaults give what load_params fills in: the default profile
    written out equals the schema's defaults with the file's explicit values given as overrides."""
    full = load_params(PARAMS, profile="default")
    assert defaults(**{k: v for k, v in full.items()}) == full
    bare = defaults()
    assert bare["method_defs"] == {} and bare["profile"] == "default" and bare["student"]["vocab_size"] == 1024
    for name in ("runtime", "benchmarks", "data", "teacher", "student", "train", "eval", "report", "plan"):
        assert section_defaults(name) == bare[name], name
    student = section_defaults("student", vocab_size=300, lora={"enabled": True})
    assert student["vocab_size"] == 300 and student["lora"] == {**bare["student"]["lora"], "enabled": True}
    assert section_defaults("train", sft={"epochs": 1})["sft"] == {**bare["train"]["sft"], "epochs": 1}
    assert defaults(report={"decimals": 2})["report"] == {**bare["report"], "decimals": 2}
    overrides = {"sampling": {"temperature": 0.5}}
    got = section_defaults("teacher", **overrides)
    got["sampling"]["temperature"] = 9
    assert overrides["sampling"]["temperature"] == 0.5  # nothing shared with the caller
    with pytest.raises(ValueError, match="vocab_size"):
        section_defaults("student", vocab_size="big")
    with pytest.raises(ValueError, match="tabels"):
        defaults(report={"tabels": {}})
    with pytest.raises(ValueError, match="not a section"):
        section_defaults("seeds")


def test_e_notation_without_a_dot_is_a_number_as_dvc_writes_it(tmp_path):
    """`dvc exp run -S train.krsl.lr=0.00005` writes `lr: 5e-05`; YAML 1.2 (and DVC) read a number,
    plain PyYAML text: the params loader reads a number."""
    from conftest import ROOT
    from edit.params import load_params

    text = (ROOT / "params.yaml").read_text().replace("lr: 1.0e-4, warmup_ratio: 0.0", "lr: 5e-05, warmup_ratio: 0.0", 1)
    assert "lr: 5e-05" in text
    (tmp_path / "params.yaml").write_text(text)
    assert load_params(tmp_path / "params.yaml")["train"]["krsl"]["lr"] == 5e-05
