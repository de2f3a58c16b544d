import pytest
import torch

from edit.io import DataError
from edit.keysteps import mark_pairs
from edit.params import load_params
from edit.student import build_student, load_student, train_tokenizer
from edit.training import PadToLongest, krsl_dataset, run_method, sft_dataset

from conftest import ROOT

QUESTIONS = ["not ( True ) and ( True ) is", "True or False and not True is", "not not ( False ) is"]


def _records():
    sft, pairs = [], []
    for i, q in enumerate(QUESTIONS):
        good = f"A = {q[:-3]}. Z = {'False' if i % 2 == 0 else 'True'}. Therefore, the answer is {'False' if i % 2 == 0 else 'True'}."
        bad = good.replace("False", "X").replace("True", "False").replace("X", "True")
        sft.append({"id": f"t/{i}", "task": "boolean_expressions", "question": q, "gold": "?", "response": good, "source": "D+"})
        pairs.append({"id": f"t/{i}", "task": "boolean_expressions", "question": q, "gold": "?", "pair_type": "D+dual",
                      "mistake_type": "logical", "chosen": good, "rejected": bad})
    return sft, pairs


@pytest.fixture(scope="module")
def tok():
    sft, pairs = _records()
    return train_tokenizer(QUESTIONS + [r["response"] for r in sft] + [p["rejected"] for p in pairs], 300)


STUDENT = {"kind": "tiny_llama", "hidden_size": 16, "intermediate_size": 32, "num_layers": 1, "num_heads": 2, "max_length": 256}


def _params():
    p = load_params(ROOT / "params.yaml", profile="smoke")
    p["student"] = dict(STUDENT)
    p["train"]["sft"].update(epochs=2, batch_size=2, progress=False)
    p["train"]["krsl"].update(epochs=2, batch_size=2, progress=False, lr=1e-2)
    return p


def test_rows_mask_the_prompt_and_end_with_eos(tok):
    sft, _ = _records()
    rows, info = sft_dataset(sft, tok, max_length=256)
    assert info == {"rows": 3, "skipped": {}}
    r = rows[0]
    n_prompt = sum(1 for x in r["labels"] if x == -100)
    assert n_prompt > 0 and r["labels"][n_prompt:] == r["input_ids"][n_prompt:]
    assert r["input_ids"][-1] == tok.eos_token_id


def test_too_long_rows_are_skipped_and_counted(tok):
    sft, _ = _records()
    rows, info = sft_dataset(sft, tok, max_length=20)
    assert rows == [] and info["skipped"] == {"too_long": 3}


def test_empty_response_is_an_error_naming_the_record(tok):
    sft, _ = _records()
    sft[1]["response"] = "  "
    with pytest.raises(DataError, match="t/1"):
        sft_dataset(sft, tok, max_length=256)


def test_collator_pads_pairs_to_the_longest_row(tok):
    _, pairs = _records()
    marked = mark_pairs(pairs, tok, progress=False)
    rows, _ = krsl_dataset(marked, {(p["id"], p["pair_type"]): p for p in pairs}, tok, 256, 1.0, 0.025)
    batch = PadToLongest(tok.pad_token_id)(rows[:2])
    assert batch["input_ids"].shape[0] == 4  # chosen, rejected, chosen, rejected
    width = max(len(r[s]["input_ids"]) for r in rows[:2] for s in ("chosen", "rejected"))
    assert batch["input_ids"].shape[1] == width
    assert (batch["weights"][batch["labels"] == -100] == 0).all()
    assert (batch["weights"][0] > 0).any() and (batch["weights"][1] < 0).any()


def test_marks_from_another_tokenizer_are_refused(tok):
    _, pairs = _records()
    marked = mark_pairs(pairs, tok, progress=False)
    other = train_tokenizer(QUESTIONS, 280)
    with pytest.raises(DataError, match="tokenizer"):
        krsl_dataset(marked, {(p["id"], p["pair_type"]): p for p in pairs}, other, 256, 1.0, 0.025)
    marked[0]["chosen_ids"] = marked[0]["chosen_ids"][1:]
    with pytest.raises(DataError, match="differ"):
        krsl_dataset(marked, {(p["id"], p["pair_type"]): p for p in pairs}, tok, 256, 1.0, 0.025)


def test_edit_method_trains_every_parameter_and_is_deterministic(tok, tmp_path):
    sft, pairs = _records()
    marked = mark_pairs(pairs, tok, progress=False)
    params = _params()
    steps = [{"loss": "sft", "data": ["D+"]}, {"loss": "krsl", "pairs": ["D+dual"]}]
    initial = build_student(params["student"], tok, seed=3).state_dict()
    reports = [run_method(steps, params, tok, sft, pairs, marked, tmp_path / f"run{i}", seed=3) for i in (0, 1)]
    assert [s["loss"] for s in reports[0]["steps"]] == ["sft", "krsl"]
    m1, _ = load_student(tmp_path / "run0" / "step1")
    m2, _ = load_student(tmp_path / "run0" / "step2")
    m2b, _ = load_student(tmp_path / "run1" / "step2")
    for name, w in m2.state_dict().items():
        assert torch.equal(w, m2b.state_dict()[name]), f"{name} differs between identical runs"
        if name in initial and "rotary" not in name:
            assert not torch.equal(w, initial[name]), f"{name} never changed"
    assert any(not torch.equal(w, m2.state_dict()[n]) for n, w in m1.state_dict().items()), "KRSL changed nothing"


def test_unknown_sources_and_losses_are_clear_errors(tok, tmp_path):
    sft, pairs = _records()
    with pytest.raises(ValueError, match="unknown SFT data source"):
        run_method([{"loss": "sft", "data": ["D*"]}], _params(), tok, sft, pairs, [], tmp_path, 0)
    with pytest.raises(ValueError, match="no counterfactual template"):  # wrong CoTs under the plain prompt
        run_method([{"loss": "sft", "data": ["D+-"]}], _params(), tok, sft, pairs, [], tmp_path, 0)
    with pytest.raises(ValueError, match="unknown loss"):
        run_method([{"loss": "ppo"}], _params(), tok, sft, pairs, [], tmp_path, 0)
    with pytest.raises(ValueError, match="unknown pair type"):
        run_method([{"loss": "dpo"}], _params(), tok, sft, pairs, [], tmp_path, 0)
    assert not any(tmp_path.iterdir()), "a refused method must not train or save anything"


def test_too_long_pairs_are_skipped_and_counted(tok):
    _, pairs = _records()
    marked = mark_pairs(pairs, tok, progress=False)
    rows, info = krsl_dataset(marked, {(p["id"], p["pair_type"]): p for p in pairs}, tok, 20, 1.0, 0.025)
    assert rows == [] and info == {"rows": 0, "skipped": {"too_long": 3}}


def test_lora_is_a_parameter_and_its_adapters_are_really_applied(tok, tmp_path):
    sft, pairs = _records()
    params = _params()
    params["student"]["lora"] = {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    params["train"]["sft"]["lr"] = 5e-2
    run_method([{"loss": "sft", "data": ["D+"]}], params, tok, sft, pairs, [], tmp_path, seed=2)
    assert (tmp_path / "step1" / "adapter_config.json").exists()
    tuned, _ = load_student(tmp_path / "step1", base=params["student"])
    base = build_student(dict(params["student"], lora={"enabled": False}), tok, seed=2)
    ids = torch.tensor([tok(sft[0]["question"])["input_ids"]])
    with torch.no_grad():
        tuned_logits, base_logits = tuned(ids).logits, base(ids).logits
        with tuned.disable_adapter():
            assert torch.allclose(tuned(ids).logits, base_logits, atol=1e-5)  # same base weights
    assert not torch.allclose(tuned_logits, base_logits, atol=1e-3)  # the adapters change the outputs
