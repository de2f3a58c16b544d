"""The keysteps stage (notebooks/02_keysteps.ipynb): the student's tokenizer (learnt for the
code-built student, loaded for a pretrained one), the key tokens of every dual pair by minimum edit
distance under it, the key-token share and, where the teacher gave ground-truth key spans, the
precision and recall of the marks; written under ``data_dir``, ``tables_dir`` and ``figures_dir``.
"""
from __future__ import annotations

from pathlib import Path

from edit import keysteps
from edit.formats import student_prompt
from edit.figure_files import plot_placeholder
from edit.io import read_jsonl, require, write_jsonl
from edit.keystep_figures import plot_key_share, plot_localisation
from edit.records import SFT_SOURCES, WRONG_SOURCES, read_cots, read_pairs
from edit.runtime import setup_runtime
from edit.student import make_tokenizer, tokenizer_fingerprint

#: the groupings of the per-pair statistics, one table ``by_<group>.csv`` each
GROUPS = ("task", "pair_type", "mistake_type")


def tokenizer_corpus(train_questions: list[dict], cot_records: list[dict]) -> list[str]:
    """The texts the code-built student's tokenizer learns from: the student prompt of every
    training question (``edit.formats.student_prompt``), then the response of every CoT record
    (D+ and D-+ of cots/sft.jsonl, then D- and D+- of cots/wrong.jsonl), in that order."""
    return [student_prompt(q["input"]) for q in train_questions] + [r["response"] for r in cot_records]


def run(params: dict, data_dir="data", tables_dir="reports/keysteps", figures_dir="reports/figures") -> dict:
    """Read ``data_dir``'s training questions, CoTs and dual pairs; write ``data_dir/tokenizer``,
    ``data_dir/keysteps/pairs.jsonl``, ``tables_dir/by_{task,pair_type,mistake_type}.csv``,
    ``figures_dir/key_share.png`` and, when the pairs carry ground-truth key spans,
    ``figures_dir/localisation.png``.

    Returns ``{"tokenizer", "fingerprint", "stats" (one row per pair), "summaries" ({group: table}),
    "figures" ([paths])}``."""
    setup_runtime(params)
    data, tables_dir, figures_dir = Path(data_dir), Path(tables_dir), Path(figures_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    made_by = "the data stage (dvc repro data)"
    train = list(read_jsonl(require(data / "questions" / "train.jsonl", made_by), required=("id", "input")))
    # an unknown source, a blank response or a pair with a blank side is an error naming file and record
    sft = read_cots(require(data / "cots" / "sft.jsonl", made_by), SFT_SOURCES)
    wrong = read_cots(require(data / "cots" / "wrong.jsonl", made_by), WRONG_SOURCES)
    pairs = read_pairs(require(data / "cots" / "pairs.jsonl", made_by))
    tokenizer = make_tokenizer(params["student"], tokenizer_corpus(train, sft + wrong))
    tokenizer.save_pretrained(data / "tokenizer")
    marked = keysteps.mark_pairs(pairs, tokenizer)
    write_jsonl(data / "keysteps" / "pairs.jsonl", marked)
    stats = keysteps.pair_stats(marked)
    summaries = {by: keysteps.summarise(stats, by) for by in GROUPS}
    for by, table in summaries.items():
        table.to_csv(tables_dir / f"by_{by}.csv", index=False, float_format="%.4f")
    figures = [plot_key_share(stats, figures_dir / "key_share.png")]
    if "tp" in stats:  # ground-truth key spans (the oracle teacher)
        figures.append(plot_localisation(summaries["task"], figures_dir / "localisation.png"))
    else:  # an LLM teacher marks no true key steps; the figure is a declared output all the same
        figures.append(plot_placeholder(figures_dir / "localisation.png", "no ground-truth key steps (LLM teacher)"))
    return {"tokenizer": tokenizer, "fingerprint": tokenizer_fingerprint(tokenizer), "stats": stats,
            "summaries": summaries, "figures": figures}
