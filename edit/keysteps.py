"""Key reasoning steps of dual pairs under the student's tokenizer.

Each pair's chosen and rejected responses are tokenized on their own (no prompt, no padding, no
EOS), aligned by minimum edit distance (:func:`edit.align.key_token_masks`), and stored with the
token ids the marks describe and the tokenizer's fingerprint, so training can check that its own
tokenization gives the very same ids before using the marks.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Iterable

import pandas as pd
from tqdm.auto import tqdm

from edit.align import key_token_masks, localisation_scores, spans_to_token_mask
from edit.io import DataError, read_jsonl
from edit.student import tokenizer_fingerprint

#: field -> type of the key-step records (data/keysteps/pairs.jsonl, written by :func:`mark_pairs`):
#: :func:`edit.io.read_jsonl` checks presence and type; :func:`read_keysteps` checks the rest.
#: Optional: ``mistake_type`` (str or null), ``chosen_true_key`` / ``rejected_true_key`` (lists).
KEYSTEP_FIELDS = {"id": str, "task": str, "pair_type": str, "tokenizer": str, "chosen_ids": list,
                  "rejected_ids": list, "chosen_key": list, "rejected_key": list}


def response_ids(tokenizer, text: str, offsets: bool = False):
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=offsets)
    return (enc["input_ids"], enc["offset_mapping"]) if offsets else enc["input_ids"]


def mark_pairs(pairs: list[dict], tokenizer, progress: bool = True) -> list[dict]:
    """One record per pair: the ids of both responses, the indices of their key tokens, and, where
    the teacher gave ground-truth key spans, the indices of the tokens those spans cover."""
    fp = tokenizer_fingerprint(tokenizer)
    out = []
    for p in tqdm(pairs, desc="key tokens", disable=not progress):
        c_ids, c_off = response_ids(tokenizer, p["chosen"], offsets=True)
        r_ids, r_off = response_ids(tokenizer, p["rejected"], offsets=True)
        c_mask, r_mask = key_token_masks(c_ids, r_ids)
        rec = {
            "id": p["id"],
            "task": p["task"],
            "pair_type": p["pair_type"],
            "mistake_type": p.get("mistake_type"),
            "tokenizer": fp,
            "chosen_ids": c_ids,
            "rejected_ids": r_ids,
            "chosen_key": [i for i, m in enumerate(c_mask) if m],
            "rejected_key": [i for i, m in enumerate(r_mask) if m],
        }
        if p.get("chosen_key_spans") or p.get("rejected_key_spans"):
            c_true = spans_to_token_mask(c_off, [tuple(s) for s in p.get("chosen_key_spans") or []])
            r_true = spans_to_token_mask(r_off, [tuple(s) for s in p.get("rejected_key_spans") or []])
            rec["chosen_true_key"] = [i for i, m in enumerate(c_true) if m]
            rec["rejected_true_key"] = [i for i, m in enumerate(r_true) if m]
        out.append(rec)
    return out


def keystep_defect(rec: dict) -> str | None:
    """Why a key-step record's marks cannot describe its tokens (a token id that is not an integer,
    a key index that is not an integer in ``range(len(ids))`` of its side), or None when they can.
    A negative index would silently mark a token counted from the end."""
    for side in ("chosen", "rejected"):
        ids = rec[f"{side}_ids"]
        if not all(type(i) is int for i in ids):
            return f"{side}_ids holds a value that is not a token id"
        for name in (f"{side}_key", f"{side}_true_key"):
            if name not in rec:
                continue
            if not isinstance(rec[name], list):
                return f"field {name!r} must be a list of token indices"
            for i in rec[name]:
                if type(i) is not int or not 0 <= i < len(ids):
                    return f"{name} index {i!r} is out of range for its {len(ids)} token ids"
    return None


def read_keysteps(path: str | Path, pairs: Iterable[dict] | None = None,
                  pairs_path: str | Path = "the dual pairs") -> list[dict]:
    """The key-step records of ``path`` (data/keysteps/pairs.jsonl) for training: every record must
    have :data:`KEYSTEP_FIELDS` with their types and no :func:`keystep_defect`; with ``pairs`` (the
    dual pairs of ``pairs_path``), the records and the pairs must match one to one by (id,
    pair_type), as :func:`mark_pairs` writes them. Anything else is a DataError naming the file, the
    record's number, its id and pair type (a mark without its pair, or a pair without marks, would
    otherwise fail deep in training or leave the pair out of KRSL without a word)."""
    known = None if pairs is None else {(p["id"], p["pair_type"]) for p in pairs}
    out, seen = [], set()
    for n, rec in enumerate(read_jsonl(path, required=KEYSTEP_FIELDS), 1):
        key = (rec["id"], rec["pair_type"])
        why = keystep_defect(rec)
        if why is None and key in seen:
            why = "a second record for this pair"
        if why is None and known is not None and key not in known:
            why = f"no dual pair of {pairs_path} has this id and pair type"
        if why:
            raise DataError(f"{path}: record {n} (id {rec['id']}, {rec['pair_type']}): {why} "
                            "(remake the key steps: dvc repro keysteps)")
        seen.add(key)
        out.append(rec)
    if known is not None and known - seen:
        missing = sorted(known - seen)
        raise DataError(f"{path}: {len(missing)} dual pair(s) of {pairs_path} have no key-step record, e.g. id "
                        f"{missing[0][0]}, {missing[0][1]} (remake the key steps: dvc repro keysteps)")
    return out


def _mask(n: int, idx: list[int]) -> list[bool]:
    m = [False] * n
    for i in idx:
        m[i] = True
    return m


def pair_stats(marked: list[dict]) -> pd.DataFrame:
    """Per pair: key-token share (key tokens of both sides over all tokens of both sides) and,
    where ground truth exists, true/false positives and negatives of the marks over both sides."""
    rows = []
    for r in marked:
        n_c, n_r = len(r["chosen_ids"]), len(r["rejected_ids"])
        n_key = len(r["chosen_key"]) + len(r["rejected_key"])
        row = {
            "id": r["id"],
            "task": r["task"],
            "pair_type": r["pair_type"],
            "mistake_type": r.get("mistake_type") or "none",
            "tokens": n_c + n_r,
            "key_tokens": n_key,
            "key_share": n_key / max(n_c + n_r, 1),
        }
        if "chosen_true_key" in r:
            pred = _mask(n_c, r["chosen_key"]) + _mask(n_r, r["rejected_key"])
            truth = _mask(n_c, r["chosen_true_key"]) + _mask(n_r, r["rejected_true_key"])
            s = localisation_scores(pred, truth)
            row.update(tp=s["tp"], fp=s["fp"], fn=s["fn"])
        rows.append(row)
    return pd.DataFrame(rows)


def summarise(stats: pd.DataFrame, by: str) -> pd.DataFrame:
    """Key-token share (pooled over tokens, and mean over pairs) and pooled precision/recall of the
    marks against the ground truth, grouped by ``by`` (task, pair_type or mistake_type) plus ALL."""
    frames = []
    for name, g in list(stats.groupby(by, sort=True)) + [("ALL", stats)]:
        row = {
            by: name,
            "pairs": len(g),
            "key_share_pooled": g["key_tokens"].sum() / max(g["tokens"].sum(), 1),
            "key_share_mean": g["key_share"].mean(),
        }
        if "tp" in g:
            tp, fp, fn = g["tp"].sum(), g["fp"].sum(), g["fn"].sum()
            row["precision"] = tp / (tp + fp) if tp + fp else float("nan")
            row["recall"] = tp / (tp + fn) if tp + fn else float("nan")
        frames.append(row)
    return pd.DataFrame(frames)


def _side_html(text: str, offsets, key: set[int], truth: set[int] | None, colour: str) -> str:
    parts, last = [], 0
    for i, (s, e) in enumerate(offsets):
        if s > last:
            parts.append(html.escape(text[last:s]))
        piece = html.escape(text[s:e])
        style = []
        if i in key:
            style.append(f"background:{colour}")
        if truth is not None and i in truth:
            style.append("text-decoration:underline")
        parts.append(f'<span style="{";".join(style)}">{piece}</span>' if style else piece)
        last = max(last, e)
    parts.append(html.escape(text[last:]))
    return "".join(parts)


def pair_html(marked: dict, pair: dict, tokenizer) -> str:
    """An HTML view of one pair: key tokens on green (chosen) and red (rejected) backgrounds,
    ground-truth key tokens (where known) underlined."""
    cells = []
    for side, colour in (("chosen", "#b7f0b1"), ("rejected", "#f5b5b5")):
        ids, offsets = response_ids(tokenizer, pair[side], offsets=True)
        if ids != marked[f"{side}_ids"]:
            raise ValueError(f"pair {marked['id']}: the tokenizer gives other ids than the marked ones ({side})")
        truth = set(marked[f"{side}_true_key"]) if f"{side}_true_key" in marked else None
        body = _side_html(pair[side], offsets, set(marked[f"{side}_key"]), truth, colour)
        cells.append(f'<td style="vertical-align:top;white-space:pre-wrap;font-family:monospace">{body}</td>')
    head = html.escape(f"{marked['id']} | {marked['pair_type']} | mistake: {marked.get('mistake_type')}")
    question = html.escape(pair["question"])
    return (f"<h4>{head}</h4><pre>{question}</pre>"
            f"<table><tr><th>chosen (correct)</th><th>rejected (wrong)</th></tr><tr>{''.join(cells)}</tr></table>")
