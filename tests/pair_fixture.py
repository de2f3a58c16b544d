"""A tiny data folder for the explorer and the report page: oracle dual pairs of two tasks, a
learned tokenizer and the key-token marks (``cots/pairs.jsonl``, ``keysteps/pairs.jsonl``,
``tokenizer/``), as the data and keysteps stages write them."""
from pathlib import Path

from edit.dual import build_dual_cots, make_questions
from edit.formats import student_prompt
from edit.io import write_jsonl
from edit.keysteps import mark_pairs
from edit.student import make_tokenizer
from edit.teachers import make_teacher

TASKS = {"boolean_expressions": {"n_tokens": 7, "max_depth": 2}, "web_of_lies": {"n_people": 4}}


def build_pair_data(data_dir: Path, n_per_task: int = 8) -> Path:
    data_dir = Path(data_dir)
    questions = make_questions(TASKS, n_per_task, "train", seed=1)
    teacher = make_teacher({"backend": "oracle", "error_rate": 0.5, "rewrite_noise": 0.0, "seed": 0})
    data = build_dual_cots(questions, teacher, progress=False)
    corpus = [student_prompt(q.input) for q in questions] + [r["response"] for r in data.sft + data.wrong]
    tokenizer = make_tokenizer({"kind": "tiny_llama", "vocab_size": 300}, corpus)
    tokenizer.save_pretrained(data_dir / "tokenizer")
    write_jsonl(data_dir / "cots" / "pairs.jsonl", data.pairs)
    write_jsonl(data_dir / "keysteps" / "pairs.jsonl", mark_pairs(data.pairs, tokenizer, progress=False))
    return data_dir
