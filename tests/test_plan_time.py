"""Wall-time prediction of a profile (edit.plan_time) from plan.throughput."""
import pytest

from edit.params import load_params
from edit.plan_time import format_times, predict_times, rates_for, reused_steps

from conftest import ROOT


def test_smollm2_bbh_plan_prediction_by_hand():
    params = load_params(ROOT / "params.yaml", profile="smollm2_bbh")
    table = params["plan"]["throughput"]["SmolLM2-135M"]
    params["plan"]["stage_overhead_s"] = 0.0
    params["runtime"].pop("eval_autocast")  # evaluation in float32, training in bfloat16
    rates = rates_for(params)
    assert rates["train_tokens_per_s"] == table["bfloat16"]["train_tokens_per_s"]
    assert rates["new_tokens_per_s"] == table["float32"]["new_tokens_per_s"]
    assert reused_steps(params, "edit_random_tokens", ["edit", "std_cot"]) == 1
    assert reused_steps(params, "answer_sft", ["edit", "std_cot"]) == 0  # another format
    plan = {"assumptions": params["plan"], "seeds": [0, 1, 2], "methods": ["edit", "edit_random_tokens", "untuned_zero_shot_cot"],
            "training": [{"method": "edit", "step": 1, "train_tokens": 1000}, {"method": "edit", "step": 2, "train_tokens": 500},
                         {"method": "edit_random_tokens", "step": 1, "train_tokens": 1000},
                         {"method": "edit_random_tokens", "step": 2, "train_tokens": 500}],
            "evaluation": {"suites": {"A": 10, "B": 5}, "samples_per_item": 1}, "row_tokens": 100.0}
    t = predict_times(params, plan)
    r = t["rates"]
    train = {s["method"]: s for s in t["stages"] if s["kind"] == "train"}
    assert train["edit"]["seconds"] == pytest.approx(1500 / r["train_tokens_per_s"])
    assert train["edit_random_tokens"]["seconds"] == pytest.approx(500 / r["train_tokens_per_s"])
    ev = {s["method"]: s for s in t["stages"] if s["kind"] == "evaluate"}
    per_item = 200 / r["prefill_tokens_per_s"] + 300 / r["new_tokens_per_s"]
    assert ev["edit"]["seconds"] == pytest.approx(15 * per_item)
    assert ev["untuned_zero_shot_cot"]["runs"] == 1 and ev["edit"]["runs"] == 3
    assert t["total_hours"] == pytest.approx(sum(s["hours"] * s["runs"] for s in t["stages"]))


def test_no_rates_no_prediction():
    params = load_params(ROOT / "params.yaml", profile="smoke")
    assert rates_for(params) is None


def test_no_runs_is_said_not_a_crash():
    params = load_params(ROOT / "params.yaml", profile="smollm2_bbh")
    plan = {"assumptions": params["plan"], "seeds": [], "methods": [], "training": [],
            "evaluation": {"suites": {"A": 10}, "samples_per_item": 1}, "row_tokens": 100.0}
    lines = format_times(predict_times(params, plan))
    assert lines[-1].startswith("  no runs")
