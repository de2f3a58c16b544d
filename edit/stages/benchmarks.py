"""The benchmarks stage (``notebooks/00_benchmarks.ipynb``): load every suite from its pinned,
verified files (:mod:`edit.benchmarks.sources`, :mod:`edit.benchmarks.parsers`), split BBH 4:1 per
task and write ``<suite>.jsonl``, ``bbh_split.json`` and ``counts.json``
(:func:`edit.benchmarks.suites.write_benchmarks`)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from edit.benchmarks.parsers import load_all
from edit.benchmarks.sources import files_from_params
from edit.benchmarks.suites import SUITES, BenchItem, bbh_split, counts, write_benchmarks


def run(params: dict, out_dir: str | Path, root: str | Path = ".", allow_download: bool = True) -> dict:
    """The stage: load every suite (``params["benchmarks"]``: ``suites``, ``bbh_split_seed``,
    ``bbh_test_fraction``, ``bb_sub_max_per_task``; files from ``runtime.data_mirror`` relative to
    ``root``, else the cache or a download), split BBH, write everything to ``out_dir``; returns the
    counts document of :func:`~edit.benchmarks.suites.write_benchmarks` plus (not written)
    ``"origin"`` (number of files taken from the mirror / cache / a download), the items under
    ``"_items"`` and the split under ``"_split"``."""
    cfg = params["benchmarks"]
    suites_wanted = tuple(cfg["suites"] or SUITES)  # an empty list: every suite
    files = files_from_params(params, root, allow_download)
    suites = load_all(files, cfg, suites_wanted)
    split = bbh_split(suites["bbh"], int(cfg["bbh_split_seed"]), float(cfg["bbh_test_fraction"])) if "bbh" in suites else None
    doc = write_benchmarks(out_dir, suites, split)
    # where the files came from varies by machine, so it is returned, never written
    return {**doc, "origin": dict(sorted(_count_values(files.origin).items())), "_items": suites, "_split": split}


def _count_values(d: Mapping[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in d.values():
        out[v] = out.get(v, 0) + 1
    return out


def count_table(suites: Mapping[str, Sequence[BenchItem]], split: dict | None = None):
    """A pandas frame, one row per (suite, task): n (and n_train / n_test for BBH when ``split``
    is given), plus one ``ALL`` row per suite."""
    rows = []
    for s, c in counts(suites).items():
        for task, n in c["tasks"].items():
            row = {"suite": s, "task": task, "n": n}
            if split is not None and s == "bbh":
                row["n_train"] = len(split["tasks"][task]["train"])
                row["n_test"] = len(split["tasks"][task]["test"])
            rows.append(row)
        row = {"suite": s, "task": "ALL", "n": c["total"]}
        if split is not None and s == "bbh":
            row["n_train"] = sum(len(t["train"]) for t in split["tasks"].values())
            row["n_test"] = sum(len(t["test"]) for t in split["tasks"].values())
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in ("n_train", "n_test"):
        if col in frame:
            frame[col] = frame[col].astype("Int64")
    return frame
