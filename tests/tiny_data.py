"""A tiny data folder (questions, dual CoTs, key-step marks) from the smoke profile's oracle teacher,
for tests that train a run without the DVC pipeline."""
from __future__ import annotations

from pathlib import Path

from edit import dual
from edit.io import write_jsonl
from edit.params import load_params
from edit.stages import keysteps as keysteps_stage
from edit.teachers import make_teacher

ROOT = Path(__file__).resolve().parents[1]


def tiny_params() -> dict:
    """The smoke profile shrunk: 3 training and 2 validation questions per task, a 8-wide student."""
    p = load_params(ROOT / "params.yaml", profile="smoke")
    p["data"].update(n_train_per_task=3, n_val_per_task=2, n_test_per_task=1)
    p["student"].update(hidden_size=8, intermediate_size=16)
    return p


def write_tiny_data(p: dict, root: Path) -> tuple[Path, dict]:
    """Write ``root/data`` (train and val questions, CoTs, key steps; tables and figures beside it) for
    the params ``p``; returns the data folder and the question splits."""
    data = root / "data"
    splits = dual.question_splits(p["data"])
    for name in ("train", "val"):
        write_jsonl(data / "questions" / f"{name}.jsonl", (q.to_dict() for q in splits[name]))
    cots = dual.build_dual_cots(splits["train"], make_teacher(p["teacher"]), progress=False)
    for name, recs in (("sft", cots.sft), ("wrong", cots.wrong), ("pairs", cots.pairs)):
        write_jsonl(data / "cots" / f"{name}.jsonl", recs)
    keysteps_stage.run(p, data, root / "tables", root / "figures")
    return data, splits
