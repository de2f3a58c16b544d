import pytest
import yaml

from conftest import ROOT
from edit.params import deep_merge, load_params


def test_deep_merge_overlays_nested_keys_only():
    base = {"a": {"x": 1, "y": 2}, "b": [1, 2], "c": 3}
    out = deep_merge(base, {"a": {"y": 5}, "b": [9]})
    assert out == {"a": {"x": 1, "y": 5}, "b": [9], "c": 3}
    assert base["a"]["y"] == 2  # the base is not modified


def test_every_profile_loads_and_keeps_every_section(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name in raw["profiles"]:
        p = load_params(ROOT / "params.yaml", profile=name)
        assert p["profile"] == name
        for section in ("data", "teacher", "student", "train", "eval", "method_defs"):
            assert section in p
        for method in raw["methods"]:
            assert method in p["method_defs"], f"profile {name}: method {method} has no definition"


def test_smoke_profile_overrides_the_default():
    default = load_params(ROOT / "params.yaml", profile="default")
    smoke = load_params(ROOT / "params.yaml", profile="smoke")
    assert smoke["data"]["n_train_per_task"] < default["data"]["n_train_per_task"]
    assert smoke["data"]["ind"] == default["data"]["ind"]  # untouched keys are inherited


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        load_params(ROOT / "params.yaml", profile="nope")
