"""The mechanism stage (edit.stages.mechanism) on a tiny run; the pretrained pipeline's run lists
(untuned_seeds in the report, the profile's params file)."""
import pandas as pd
import yaml

from edit.io import read_jsonl
from edit.params import load_params, profile_params_file
from edit.stages import mechanism
from edit.stages.report import report_runs
from edit.training.run import train_one

from conftest import ROOT
from tiny_data import tiny_params, write_tiny_data


def test_mechanism_stage_on_a_tiny_edit_run(tmp_path):
    p = tiny_params()
    for sec in ("sft", "krsl"):
        p["train"][sec].update(epochs=1, batch_size=4, progress=False)
    data, splits = write_tiny_data(p, tmp_path)
    train_one(p, "edit", 0, data, tmp_path / "models", tmp_path / "results", progress=False)
    out = mechanism.run(p, 0, "edit", data, tmp_path / "models", tmp_path / "mech", tmp_path / "figures")
    by_task = pd.read_csv(tmp_path / "mech" / "edit-0" / "by_task.csv")
    assert by_task["task"].iloc[-1] == "ALL" and out["pairs"] > 0
    assert {"mean_margin_step1", "mean_margin_krsl", "margin_change"} <= set(by_task.columns)
    step1 = list(read_jsonl(tmp_path / "mech" / "edit-0" / "pairs_step1.jsonl"))
    assert len(step1) == out["pairs"] and {r["id"] for r in step1} <= {q.id for q in splits["val"]}  # held out
    assert out["figure"].read_bytes()[:4] == b"\x89PNG"


def test_untuned_rows_have_their_own_seeds_in_the_report():
    p = load_params(ROOT / "params.yaml", profile="smollm2_bbh")
    runs = report_runs(p, "r")
    assert "r/untuned_zero_shot_cot-0" in runs and "r/untuned_zero_shot_cot-1" not in runs
    assert {f"r/edit-{s}" for s in (0, 1, 2)} <= set(runs)


def test_profile_params_file_reads_back_and_drops_run_lists(tmp_path):
    p = load_params(ROOT / "params.yaml", profile="smollm2_bbh")
    for keep in (False, True):
        path = tmp_path / f"p{keep}.yaml"
        path.write_text(yaml.safe_dump(profile_params_file(p, keep), sort_keys=False))
        back = load_params(path)
        assert back["student"] == p["student"] and back["eval"] == p["eval"]
        assert ("untuned_seeds" in back) == keep and (back["methods"] == p["methods"]) == keep
