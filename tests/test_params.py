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


from edit.params import RUN_LIST_KEYS, STUDENT_VARIANT_KEYS, main, variant_params_file, with_student_variant


def test_student_variant_overlays_sizes_only_and_names_the_results():
    p = load_params(ROOT / "params.yaml", profile="default")
    small = with_student_variant(p, "small")
    assert small["student"] == {**p["student"], **p["student_variants"]["small"]}
    assert small["report"]["student"] == "small"
    assert small["student"]["vocab_size"] == p["student"]["vocab_size"]  # same tokenizer
    assert small["train"] == p["train"] and p["report"].get("student") is None  # the input is not modified
    for name in p["grid_students"]:
        assert set(p["student_variants"][name]) <= set(STUDENT_VARIANT_KEYS)


@pytest.mark.parametrize("variants, name, match", [
    ({"small": {"hidden_size": 8}}, "tiny", "unknown student variant 'tiny'; student_variants defines: small"),
    ({"v": {"vocab_size": 99}}, "v", "'vocab_size' cannot vary"),
    ({"v": {"max_length": 99}}, "v", "'max_length' cannot vary"),
    ({"v": {"hidden_size": 0}}, "v", "must be a positive integer"),
    ({"v": {"hidden_size": 50, "num_heads": 4}}, "v", "not a multiple of num_heads"),
    ({"v": [48]}, "v", "must be a mapping"),
])
def test_student_variant_errors(variants, name, match):
    p = load_params(ROOT / "params.yaml", profile="default")
    with pytest.raises(ValueError, match=match):
        with_student_variant({**p, "student_variants": variants}, name)


def test_a_pretrained_student_has_no_size_variants():
    p = load_params(ROOT / "params.yaml", profile="smollm2")
    with pytest.raises(ValueError, match=r"only a code-built student.*grid_students: \[\]"):
        with_student_variant(p, "small")


def test_variant_params_file_reads_back_as_the_variant(tmp_path):
    """The file `python -m edit.params` writes loads (load_params) to exactly the variant's
    configuration, minus the run lists, for the default and the smoke profile."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for profile in ("default", "smoke"):
        src = tmp_path / f"params-{profile}.yaml"
        src.write_text(yaml.safe_dump({**raw, "profile": profile}, sort_keys=False))
        out = tmp_path / profile / "small.yaml"
        assert main(["--params", str(src), "--student-variant", "small", "--out", str(out)]) == 0
        back = load_params(out)
        expected = with_student_variant(load_params(src), "small")
        # the run lists are left out of the file: they load as the schema's defaults (empty)
        assert {k: v for k, v in back.items() if k not in RUN_LIST_KEYS} == \
            {k: v for k, v in expected.items() if k not in RUN_LIST_KEYS}
        assert all(back[k] in ([], {}) for k in RUN_LIST_KEYS)
        assert back["profile"] == profile and back["student"]["hidden_size"] == expected["student"]["hidden_size"]
        assert not set(RUN_LIST_KEYS) & set(yaml.safe_load(out.read_text()))
    smoke = load_params(tmp_path / "smoke" / "small.yaml")
    assert smoke["student"]["hidden_size"] == raw["profiles"]["smoke"]["student_variants"]["small"]["hidden_size"]
    assert variant_params_file(load_params(src), "small")["profiles"] == {"smoke": {}}
