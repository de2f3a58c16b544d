"""The dual-pair explorer: filtering, a per-pair summary, the highlighted view, the widgets.

A pair is shown as :func:`edit.keysteps.pair_html` draws it (key tokens green on the correct CoT,
red on the wrong one; the oracle's ground-truth key tokens underlined) under a one-line summary:
token and key-token counts per side and, where the teacher gave ground-truth key spans (the oracle),
the precision / recall / F1 of the marks against them (:func:`edit.align.localisation_scores`).

:func:`explorer_widget` wires ipywidgets (task, pair type, mistake type, a text search, previous /
next) to redraw the pair at once in JupyterLab; :func:`static_html` is the same view of the first
``n`` matching pairs, for papermill runs and static HTML exports (no kernel needed to read it).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets

from edit.align import localisation_scores
from edit.io import read_jsonl
from edit.keysteps import pair_html
from edit.student import load_tokenizer

ALL = "all"
#: left-aligned CoT cells (notebook front ends right-align table cells)
PAIR_STYLE = "<style>.pair td, .pair th { text-align: left !important; }</style>"


@dataclass
class PairData:
    """The marked pairs (``data/keysteps/pairs.jsonl``), the pairs' texts by (id, pair_type)
    (``data/cots/pairs.jsonl``) and the student's tokenizer (``data/tokenizer``)."""

    marked: list[dict]
    texts: dict
    tokenizer: object

    def text(self, m: dict) -> dict:
        return self.texts[(m["id"], m["pair_type"])]


def load_pair_data(data_dir: str | Path) -> PairData:
    data = Path(data_dir)
    texts = {(p["id"], p["pair_type"]): p for p in read_jsonl(data / "cots" / "pairs.jsonl")}
    return PairData(list(read_jsonl(data / "keysteps" / "pairs.jsonl")), texts, load_tokenizer(data / "tokenizer"))


def choices(marked: list[dict]) -> dict[str, list[str]]:
    """The values each filter can take ("all" first, then the sorted values present)."""
    def values(key):
        return [ALL] + sorted({str(m.get(key) or "none") for m in marked})

    return {"task": values("task"), "pair_type": values("pair_type"), "mistake_type": values("mistake_type")}


def matches(m: dict, text: dict, task: str = ALL, pair_type: str = ALL, mistake_type: str = ALL,
            search: str = "") -> bool:
    """Whether the marked pair ``m`` (texts ``text``) passes the filters; ``search`` is a
    case-insensitive substring of the question or either CoT."""
    if task != ALL and m["task"] != task:
        return False
    if pair_type != ALL and m["pair_type"] != pair_type:
        return False
    if mistake_type != ALL and str(m.get("mistake_type") or "none") != mistake_type:
        return False
    if search:
        needle = search.lower()
        return any(needle in str(text.get(k, "")).lower() for k in ("question", "chosen", "rejected"))
    return True


def filter_pairs(data: PairData, **filters) -> list[dict]:
    return [m for m in data.marked if matches(m, data.text(m), **filters)]


def pair_summary(m: dict) -> dict:
    """Token and key-token counts per side; with ground truth, precision / recall / F1 of the marks
    over both sides (None where undefined)."""
    n_c, n_r = len(m["chosen_ids"]), len(m["rejected_ids"])
    out = {"chosen_tokens": n_c, "chosen_key": len(m["chosen_key"]),
           "rejected_tokens": n_r, "rejected_key": len(m["rejected_key"]),
           "key_share": (len(m["chosen_key"]) + len(m["rejected_key"])) / max(n_c + n_r, 1)}
    if "chosen_true_key" in m:
        def mask(n, idx):
            s = set(idx)
            return [i in s for i in range(n)]

        pred = mask(n_c, m["chosen_key"]) + mask(n_r, m["rejected_key"])
        truth = mask(n_c, m["chosen_true_key"]) + mask(n_r, m["rejected_true_key"])
        s = localisation_scores(pred, truth)
        out.update(precision=s["precision"], recall=s["recall"], f1=s["f1"])
    return out


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def summary_html(s: dict) -> str:
    parts = [f"chosen: {s['chosen_key']} key of {s['chosen_tokens']} tokens",
             f"rejected: {s['rejected_key']} key of {s['rejected_tokens']} tokens",
             f"key share {100 * s['key_share']:.1f}%"]
    if "precision" in s:
        parts.append(f"vs the oracle's key spans: precision {_fmt(s['precision'])}, recall {_fmt(s['recall'])}, "
                     f"F1 {_fmt(s['f1'])}")
    return '<p class="pair-summary" style="font-family:sans-serif">' + html.escape(" | ".join(parts)) + "</p>"


def pair_view(data: PairData, m: dict) -> str:
    """One pair: the summary line above the highlighted CoTs."""
    return f'<div class="pair">{summary_html(pair_summary(m))}{pair_html(m, data.text(m), data.tokenizer)}</div>'


def static_html(data: PairData, n_show: int, **filters) -> tuple[str, int]:
    """The first ``n_show`` pairs passing ``filters`` as one HTML fragment, and how many pass."""
    chosen = filter_pairs(data, **filters)
    head = (PAIR_STYLE + f'<p style="font-family:sans-serif">{len(chosen)} of {len(data.marked)} pairs match '
            f'{html.escape(", ".join(f"{k}={v!r}" for k, v in filters.items()))}; the first '
            f'{min(n_show, len(chosen))} are shown.</p>')
    return head + "".join(pair_view(data, m) for m in chosen[:n_show]), len(chosen)


def explorer_widget(data: PairData, **initial) -> widgets.VBox:
    """Dropdowns (task, pair type, mistake type), a search box, previous / next buttons and the
    pair's view; every change redraws at once. ``initial`` sets the filters' starting values."""
    opts = choices(data.marked)
    drop = {k: widgets.Dropdown(options=opts[k], value=initial.get(k, ALL) if initial.get(k, ALL) in opts[k] else ALL,
                                description=k.replace("_", " "))
            for k in ("task", "pair_type", "mistake_type")}
    search = widgets.Text(value=initial.get("search", ""), description="search", continuous_update=True)
    prev, nxt = widgets.Button(description="previous"), widgets.Button(description="next")
    where = widgets.Label()
    view = widgets.HTML()
    state = {"pairs": [], "i": 0}

    def draw():
        pairs, i = state["pairs"], state["i"]
        where.value = f"pair {i + 1} of {len(pairs)}" if pairs else "no pair matches"
        view.value = PAIR_STYLE + pair_view(data, pairs[i]) if pairs else ""
        prev.disabled, nxt.disabled = i <= 0, i >= len(pairs) - 1

    def refilter(_=None):
        state["pairs"] = filter_pairs(data, search=search.value, **{k: d.value for k, d in drop.items()})
        state["i"] = 0
        draw()

    def step(delta):
        state["i"] = min(max(state["i"] + delta, 0), max(len(state["pairs"]) - 1, 0))
        draw()

    for d in drop.values():
        d.observe(refilter, names="value")
    search.observe(refilter, names="value")
    prev.on_click(lambda _: step(-1))
    nxt.on_click(lambda _: step(+1))
    refilter()
    box = widgets.VBox([widgets.HBox(list(drop.values())), widgets.HBox([search, prev, nxt, where]), view])
    box.step = step  # for tests and scripting: box.step(+1) is a click on "next"
    box.state = state
    return box
