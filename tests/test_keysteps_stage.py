"""The keysteps stage: the tokenizer-corpus rule, the key-step figures, and one run of the stage on a
tiny oracle data set (tokenizer, marked pairs, tables, figures)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from conftest import ROOT
from edit import dual
from edit.formats import student_prompt
from edit.io import read_jsonl, write_jsonl
from edit.keystep_figures import plot_key_share, plot_localisation
from edit.params import load_params
from edit.stages import keysteps as keysteps_stage
from edit.teachers import make_teacher

PNG = b"\x89PNG\r\n\x1a\n"


def test_tokenizer_corpus_prompts_then_responses():
    train = [{"id": "a", "input": "1 + 1?"}, {"id": "b", "input": "not True?"}]
    cots = [{"response": "right CoT"}, {"response": "wrong CoT"}]
    corpus = keysteps_stage.tokenizer_corpus(train, cots)
    assert corpus == [student_prompt("1 + 1?"), student_prompt("not True?"), "right CoT", "wrong CoT"]
    assert keysteps_stage.tokenizer_corpus([], []) == []


def test_key_step_figures_written_and_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    ks = pd.DataFrame({"task": rng.choice(["date_understanding", "navigate", "object_counting"], 60),
                       "pair_type": rng.choice(["D+-", "D-+"], 60), "key_share": rng.uniform(0, 0.4, 60)})
    loc = pd.DataFrame({"mistake_type": rng.choice(["logical", "calculation", "knowledge"], 30),
                        "precision": rng.uniform(0.3, 1, 30), "recall": rng.uniform(0.3, 1, 30)})
    paths = [plot_key_share(ks, tmp_path / "key_share.png"), plot_localisation(loc, tmp_path / "loc.png")]
    for p in paths:
        assert p.exists() and 1000 < p.stat().st_size < 300_000 and p.read_bytes()[:8] == PNG
    assert plot_key_share(ks, tmp_path / "again.png").read_bytes() == paths[0].read_bytes()


def test_keysteps_stage_run(tmp_path):
    p = load_params(ROOT / "params.yaml", profile="smoke")
    p["data"].update(n_train_per_task=3, n_val_per_task=1, n_test_per_task=1)
    data = tmp_path / "data"
    train = dual.question_splits(p["data"])["train"]
    write_jsonl(data / "questions" / "train.jsonl", (q.to_dict() for q in train))
    cots = dual.build_dual_cots(train, make_teacher(p["teacher"]))
    for name, recs in (("sft", cots.sft), ("wrong", cots.wrong), ("pairs", cots.pairs)):
        write_jsonl(data / "cots" / f"{name}.jsonl", recs)
    out = keysteps_stage.run(p, data, tmp_path / "tables", tmp_path / "figures")
    marked = list(read_jsonl(data / "keysteps" / "pairs.jsonl"))
    assert len(marked) == len(cots.pairs) > 0
    assert {m["tokenizer"] for m in marked} == {out["fingerprint"]}
    assert json.loads((data / "tokenizer" / "tokenizer_config.json").read_text())
    for by in keysteps_stage.GROUPS:
        table = pd.read_csv(tmp_path / "tables" / f"by_{by}.csv")
        assert table[by].iloc[-1] == "ALL" and table["pairs"].iloc[-1] == len(marked)
    assert list(out["summaries"]) == list(keysteps_stage.GROUPS)
    assert [f.name for f in out["figures"]] == ["key_share.png", "localisation.png"]  # the oracle's spans
    assert all(f.read_bytes()[:8] == PNG for f in out["figures"])
