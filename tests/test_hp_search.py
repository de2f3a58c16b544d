"""The validation-only hyper-parameter search (edit/hp_search.py): grid parsing, overrides, the
choice rule, and one real search on the smoke profile's data."""
from __future__ import annotations

import json

import pytest
import yaml

from edit.hp_search import check_reuse, choose, grid_points, parse_grid, parse_value, search, with_overrides
from edit.methods import get_method
from edit.params import ParamsError, load_params, profile_params_file
from edit.training.run import step_hp
from conftest import ROOT
from tiny_data import tiny_params, write_tiny_data


def test_values_read_as_yaml_1_2_numbers():
    assert parse_value("5e-6") == 5e-6 and parse_value("2.0e-4") == 2e-4
    assert parse_value("4") == 4 and parse_value("true") is True and parse_value("null") is None
    assert parse_value("cosine") == "cosine"


def test_grid_is_the_product_in_written_order():
    grid = parse_grid(["train.sft.lr=2e-4,1e-3", "train.sft.epochs=2,4"])
    assert grid == {"train.sft.lr": [2e-4, 1e-3], "train.sft.epochs": [2, 4]}
    assert grid_points(grid) == [
        {"train.sft.lr": 2e-4, "train.sft.epochs": 2}, {"train.sft.lr": 2e-4, "train.sft.epochs": 4},
        {"train.sft.lr": 1e-3, "train.sft.epochs": 2}, {"train.sft.lr": 1e-3, "train.sft.epochs": 4}]


@pytest.mark.parametrize("item", ["train.sft.lr", "=1", "train.sft.lr="])
def test_a_malformed_axis_is_an_error(item):
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_grid([item])


def test_an_axis_given_twice_is_an_error():
    with pytest.raises(ValueError, match="given twice"):
        parse_grid(["train.sft.lr=1", "train.sft.lr=2"])


def test_overrides_copy_and_a_missing_section_is_an_error():
    raw = {"train": {"sft": {"lr": 1.0, "epochs": 2}}}
    out = with_overrides(raw, {"train.sft.lr": 3.0})
    assert out["train"]["sft"] == {"lr": 3.0, "epochs": 2} and raw["train"]["sft"]["lr"] == 1.0
    with pytest.raises(KeyError, match="train.sfx"):
        with_overrides(raw, {"train.sfx.lr": 3.0})


def test_choice_is_the_highest_and_ties_go_to_the_earliest_row():
    rows = [{"name": "a", "val_accuracy": 40.0}, {"name": "b", "val_accuracy": 55.0},
            {"name": "c", "val_accuracy": 55.0}, {"name": "d", "val_accuracy": 10.0}]
    assert choose(rows)["name"] == "b"
    with pytest.raises(ValueError, match="no validation results"):
        choose([])


@pytest.fixture
def tiny_run(tmp_path):
    """A tiny data folder and the params file it was made with (short generations)."""
    p = tiny_params()
    p["eval"].update(max_new_tokens=16)
    data, _ = write_tiny_data(p, tmp_path)
    pfile = tmp_path / "params.yaml"
    pfile.write_text(yaml.safe_dump(profile_params_file(p, True), sort_keys=False))
    return data, pfile


def test_a_search_on_a_tiny_run_writes_every_epoch_and_the_choice(tiny_run, tmp_path):
    data, pfile = tiny_run

    out = search(pfile, "std_cot", 0, parse_grid(["train.sft.lr=1e-3,1e-2", "train.sft.epochs=2"]), data,
                 tmp_path / "hp", tmp_path / "work", progress=False)
    assert [(r["point"]["train.sft.lr"], r["epoch"]) for r in out["rows"]] == [(1e-3, 1), (1e-3, 2), (1e-2, 1), (1e-2, 2)]
    assert out["choice"]["val_accuracy"] == max(r["val_accuracy"] for r in out["rows"])
    written = json.loads((tmp_path / "hp" / "std_cot.json").read_text())
    assert written["choice"] == out["choice"] and "**chosen**" in (tmp_path / "hp" / "std_cot.md").read_text()
    assert written["complete"] and written["points_done"] == 2
    samples = sorted((tmp_path / "hp" / "std_cot-samples").glob("*.jsonl"))
    assert len(samples) == 2
    first = [json.loads(line) for line in samples[0].read_text().splitlines()]
    assert first and {"id", "task", "target", "generation", "correct", "has_answer"} <= set(first[0])
    assert not list((tmp_path / "work").glob("*/models/*"))  # only the summaries are kept
    # the same command again reads every point back: no run is trained again, the rows are equal
    reports = sorted((tmp_path / "work").glob("*/results/std_cot-0/train.json"))
    stamps = [p.stat().st_mtime_ns for p in reports]
    again = search(pfile, "std_cot", 0, parse_grid(["train.sft.lr=1e-3,1e-2", "train.sft.epochs=2"]), data,
                   tmp_path / "hp", tmp_path / "work", progress=False)
    assert again["rows"] == out["rows"] and len(reports) == 2
    assert [p.stat().st_mtime_ns for p in reports] == stamps
    with pytest.raises(ParamsError, match="lr"):  # a bad value stops before any training
        search(pfile, "std_cot", 0, {"train.sft.lr": [-1.0]}, data, tmp_path / "hp2", tmp_path / "work2")


def test_a_krsl_grid_starts_every_point_from_the_same_saved_step_1(tiny_run, tmp_path):
    data, pfile = tiny_run
    # step 1 from a one-point search that keeps its models (the same forced selection as the grid's,
    # the params file's own step-1 lr, so that the KRSL grid's step 1 is the same)
    lr = yaml.safe_load(pfile.read_text())["train"]["sft"]["lr"]
    search(pfile, "std_cot", 0, {"train.sft.lr": [lr]}, data, tmp_path / "hp1", tmp_path / "work1",
           keep_models=True, progress=False, samples=0)
    step1, = (tmp_path / "work1").glob("p00-*")
    assert (step1 / "models" / "std_cot-0" / "step1").is_dir()
    out = search(pfile, "edit_no_rwc", 0, {"train.krsl.lr": [1e-4, 1e-3]}, data, tmp_path / "hp", tmp_path / "work",
                 reuse_from="std_cot", reuse_models_dir=step1 / "models", reuse_results_dir=step1 / "results",
                 progress=False, samples=2)
    assert [(r["point"]["train.krsl.lr"], r["step"]) for r in out["rows"]] == [(1e-4, 1), (1e-3, 1)]  # KRSL only
    for name in ("p00-lr0.0001", "p01-lr0.001"):
        steps = json.loads((tmp_path / "work" / name / "results" / "edit_no_rwc-0" / "train.json").read_text())["steps"]
        assert steps[0]["reused_from"].endswith("std_cot-0/step1") and "reused_from" not in steps[1]


@pytest.mark.bad_input("setting")
def test_reusing_a_step_trained_with_other_settings_is_an_error(tiny_run, tmp_path):
    data, pfile = tiny_run
    search(pfile, "std_cot", 0, {"train.sft.lr": [1e-3]}, data, tmp_path / "hp1", tmp_path / "work1",
           keep_models=True, progress=False, samples=0)
    step1 = tmp_path / "work1" / "p00-lr0.001"
    with pytest.raises(ValueError, match=r"lr: 0.001 saved, 0.01 here"):  # the params file's lr is not 1e-3
        search(pfile, "edit_no_rwc", 0, {"train.sft.lr": [1e-2], "train.krsl.lr": [1e-4]}, data, tmp_path / "hp",
               tmp_path / "work", reuse_from="std_cot", reuse_models_dir=step1 / "models",
               reuse_results_dir=step1 / "results", progress=False)
    with pytest.raises(ValueError, match="shares no leading step"):
        search(pfile, "answer_sft", 0, {"train.sft.lr": [1e-3]}, data, tmp_path / "hp", tmp_path / "work3",
               reuse_from="std_cot", reuse_models_dir=step1 / "models", reuse_results_dir=step1 / "results",
               progress=False)


def test_check_reuse_counts_runtime_autocast_as_the_trainers_see_it():
    params = load_params(ROOT / "params.yaml", profile="smollm2_bbh")  # bfloat16 autocast
    step = get_method(params, "edit").steps[0]
    saved = {"steps": [{"hp": {**step_hp(params, "sft", step), "autocast": "bfloat16", "progress": True}}]}
    assert check_reuse(params, "edit", "edit_a0_b0", saved) == 1
    saved["steps"][0]["hp"].pop("autocast")  # a float32 step 1 under a bfloat16 search
    with pytest.raises(ValueError, match="autocast: None saved, 'bfloat16' here"):
        check_reuse(params, "edit", "edit_a0_b0", saved)
