"""The key-token margin (edit.mechanism): hand values, and the student's margin on a marked pair
recomputed independently with a tiny Llama."""
import math

import pytest
import torch

from edit.figure_files import save_figure
from edit.formats import get_format
from edit.keysteps import mark_pairs
from edit.mechanism import key_margin, margin_figure, margins_by_task, pair_margins
from edit.student import build_student

from test_training import STUDENT, _records, tok  # noqa: F401  (the module's tokenizer fixture)


def test_key_margin_by_hand():
    r = key_margin([-1.0, -2.0, -3.0], [True, False, True], [-0.5, -4.0], [False, True])
    assert r["chosen_key_logprob"] == pytest.approx(-2.0)     # mean(-1, -3)
    assert r["rejected_key_logprob"] == pytest.approx(-4.0)
    assert r["margin"] == pytest.approx(2.0)
    assert (r["n_chosen_key"], r["n_rejected_key"]) == (2, 1)
    assert key_margin([-1.0], [False], [-1.0], [True])["margin"] is None
    with pytest.raises(ValueError):
        key_margin([-1.0, -2.0], [True], [-1.0], [True])


def test_margins_by_task_means_and_left_out_pairs():
    recs = [{"task": "a", "margin": 1.0}, {"task": "a", "margin": 3.0}, {"task": "b", "margin": None},
            {"task": "b", "margin": -1.0}]
    t = margins_by_task(recs).set_index("task")
    assert t.loc["a", "mean_margin"] == 2.0 and t.loc["a", "std_margin"] == pytest.approx(math.sqrt(2))
    assert t.loc["b", "n"] == 1 and t.loc["b", "no_margin"] == 1
    assert t.loc["ALL", "n"] == 3 and t.loc["ALL", "mean_margin"] == pytest.approx(1.0)


def test_pair_margin_equals_an_independent_computation(tok, tmp_path):  # noqa: F811
    _, pairs = _records()
    marked = mark_pairs(pairs, tok, progress=False)
    by_id = {(p["id"], p["pair_type"]): p for p in pairs}
    model = build_student(STUDENT, tok, seed=2)
    recs = pair_margins(model, tok, marked, by_id, max_length=256)
    assert [r["id"] for r in recs] == [m["id"] for m in marked]
    # by hand: pair prompt + response ids + EOS, log-softmax at the positions before each key token
    m, p = marked[0], by_id[(marked[0]["id"], marked[0]["pair_type"])]
    prompt = tok(get_format("cot").pair.prompt(p["question"]), add_special_tokens=False)["input_ids"]

    def mean_key(ids, key):
        full = torch.tensor([prompt + ids + [tok.eos_token_id]])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=full).logits[0].float(), -1)
        return sum(logp[len(prompt) + i - 1, ids[i]].item() for i in key) / len(key)

    want = mean_key(m["chosen_ids"], m["chosen_key"]) - mean_key(m["rejected_ids"], m["rejected_key"])
    assert recs[0]["margin"] == pytest.approx(want, abs=1e-5)
    assert recs[0]["n_chosen_key"] == len(m["chosen_key"])
    table = margins_by_task(recs)
    path = save_figure(margin_figure(table, table), tmp_path / "margin.png")
    assert path.stat().st_size > 0
