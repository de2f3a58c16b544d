"""The report's table specification as data: which tables exist, their rows (methods), labels and
reference rows. ``DEFAULT_TABLES`` and ``DEFAULT_LABELS`` hold the defaults; ``report.tables`` and
``report.labels`` of ``params.yaml`` override any part of them, and the report's other settings
are the ``report`` section itself (its defaults in :mod:`edit.config_schema`; ``report_config``).

Tables: 1 (methods), 2 (pair subsets), 4 (KRSL alpha/beta grid), 5 (data-matched baselines),
7 (mistake types) and 9 (KRSL vs DPO) of the EDIT paper.
"""
from __future__ import annotations

from edit.methods import parse_method
from edit.params import deep_merge

#: Display label of each method (``report.labels`` in params overrides single entries).
DEFAULT_LABELS: dict[str, str] = {
    "untuned_zero_shot": "Student Zero-shot",
    "untuned_few_shot": "Student Few-shot",
    "untuned_zero_shot_cot": "Student Zero-shot-CoT",
    "untuned_few_shot_cot": "Student Few-shot-CoT",
    "answer_sft": "Answer-only SFT",
    "mt_cot": "MT-CoT",
    "scott": "SCOTT",
    "std_cot": "Std-CoT",
    "sbs": "SBS (distilling step-by-step)",
    "std_cot_repeat": "Std-CoT w/ Repeat Sampling",
    "std_cot_dual": "Std-CoT w/ Dual CoTs",
    "edit": "EDIT (w/ RWC + KRSL on Ddual)",
    "edit_no_rwc_dplus": "w/o RWC + KRSL on D+dual",
    "edit_no_rwc_dminus": "w/o RWC + KRSL on D-dual",
    "edit_no_rwc": "w/o RWC + KRSL on Ddual",
    "edit_a0_b0": "w/ RWC + w/o KRSL (α=0, β=0)",
    "edit_dplus_only": "KRSL on D+dual",
    "edit_dminus_only": "KRSL on D-dual",
    "edit_a0_b0025": "α=0, β=0.025",
    "edit_a1_b0": "α=1, β=0",
    "edit_a1_b005": "α=1, β=0.05",
    "edit_logical": "KRSL on logical-error duals",
    "edit_calculation": "KRSL on calculation-error duals",
    "edit_knowledge": "KRSL on knowledge-error duals",
    "edit_dpo": "EDIT with DPO instead of KRSL",
    "edit_random_tokens": "control: KRSL on random tokens (same count)",
    "edit_all_diff_uniform": "control: KRSL on every response token",
}

_CONTROLS = ["edit_random_tokens", "edit_all_diff_uniform"]

#: The table specification. Each table: ``title``, ``paper_table`` (the
#: paper's table number for the side-by-side file, or null), ``reference`` (the row every other
#: row is tested against), ``min_rows`` (write the table only with at least this many rows that
#: have results), ``rows`` and ``controls`` (extra rows after a table's own). A row is a method
#: name, or a mapping with ``method`` and optional ``label``, ``reference`` and any further keys,
#: which become columns. ``krsl_weights: true`` adds the columns ``alpha`` and ``beta``: each row's
#: KRSL weights, read from its ``method_defs`` entry over ``train.krsl`` (``krsl_weights``), not
#: restated here (table 4; they are the alpha/beta heat map's axes).
DEFAULT_TABLES: dict = {
    "table1": {
        "title": "Methods: untuned student, baselines, EDIT and its ablations (paper Table 1)",
        "paper_table": 1, "reference": "std_cot", "min_rows": 1,
        "rows": ["untuned_zero_shot", "untuned_few_shot", "untuned_zero_shot_cot", "untuned_few_shot_cot",
                 "answer_sft", "mt_cot", "scott", "std_cot", "sbs", "edit_no_rwc_dplus", "edit_no_rwc",
                 "edit_a0_b0", "edit"],
        "controls": list(_CONTROLS),
    },
    "table2": {
        "title": "KRSL on subsets of the dual pairs, with and without rectified CoTs (paper Table 2)",
        "paper_table": 2, "reference": "edit", "min_rows": 2,
        "rows": [{"method": "edit_dplus_only", "pairs": "D+dual", "RWC": "yes"},
                 {"method": "edit_dminus_only", "pairs": "D-dual", "RWC": "yes"},
                 {"method": "edit", "pairs": "both", "RWC": "yes"},
                 {"method": "edit_no_rwc_dplus", "pairs": "D+dual", "RWC": "no"},
                 {"method": "edit_no_rwc_dminus", "pairs": "D-dual", "RWC": "no"},
                 {"method": "edit_no_rwc", "pairs": "both", "RWC": "no"}],
        "controls": [{"method": m, "pairs": "both", "RWC": "yes"} for m in _CONTROLS],
    },
    "table4": {
        "title": "KRSL weights: alpha on the correct CoT's key tokens, beta on the wrong CoT's (paper Table 4)",
        "paper_table": 4, "reference": "edit_a0_b0", "min_rows": 2, "krsl_weights": True,
        "rows": ["edit_a0_b0", "edit_a0_b0025", "edit_a1_b0", "edit", "edit_a1_b005"],
        "controls": [],
    },
    "table5": {
        "title": "Data-matched baselines: the same number of training CoTs (paper Table 5)",
        "paper_table": 5, "reference": "std_cot", "min_rows": 2,
        "rows": ["std_cot", "std_cot_repeat", "std_cot_dual", "edit"], "controls": [],
    },
    "table7": {
        "title": "KRSL on dual pairs of one mistake type, equal numbers (paper Table 7)",
        "paper_table": 7, "reference": "edit_a0_b0", "min_rows": 2,
        "rows": ["edit_a0_b0",
                 {"method": "edit_logical", "mistake": "logical"},
                 {"method": "edit_calculation", "mistake": "calculation"},
                 {"method": "edit_knowledge", "mistake": "knowledge"}],
        "controls": [],
    },
    "table9": {
        "title": "Step 2 with DPO instead of KRSL (paper Table 9)",
        "paper_table": 9, "reference": "edit", "min_rows": 2,
        "rows": ["edit_dpo", "edit"], "controls": [],
    },
}

_ROW_KEYS = ("method", "label", "reference")


def report_config(params: dict) -> dict:
    """The ``report`` section of ``params`` (its settings' defaults in :mod:`edit.config_schema`)
    with ``tables`` = ``DEFAULT_TABLES`` with ``report.tables`` merged over it (mappings merge key
    by key, so one table or one of its keys can be changed alone; lists replace) and ``labels`` =
    ``DEFAULT_LABELS`` then ``report.labels``. A table set to null is dropped. The rows of a table
    with ``krsl_weights`` get their methods' ``alpha`` and ``beta`` from ``params``
    (``krsl_weights``; a method that ``method_defs`` lacks gets none)."""
    cfg = deep_merge(params["report"], {})
    cfg["labels"] = {**DEFAULT_LABELS, **cfg["labels"]}
    cfg["tables"] = {k: v for k, v in deep_merge(DEFAULT_TABLES, cfg["tables"]).items() if v is not None}
    for name, spec in cfg["tables"].items():
        if not isinstance(spec, dict) or not isinstance(spec.get("rows"), list):
            raise ValueError(f"params 'report.tables.{name}': needs a 'rows' list")
        table_rows(spec, cfg["labels"], name=name)  # validates the rows
        if spec.get("krsl_weights"):
            cfg["tables"][name] = _with_krsl_weights(spec, params)
    return cfg


def table_rows(spec: dict, labels: dict[str, str] | None = None, name: str = "table") -> list[dict]:
    """A table spec's rows then controls, each normalised to a dict with ``method``, ``label``,
    ``reference``, ``control`` (bool) and its extra columns under ``extra`` (a dict)."""
    labels = labels or {}
    out, seen = [], set()
    for control, entries in ((False, spec.get("rows") or []), (True, spec.get("controls") or [])):
        for k, entry in enumerate(entries):
            row = {"method": entry} if isinstance(entry, str) else dict(entry or {})
            method = row.get("method")
            if not isinstance(method, str) or not method:
                where = "controls" if control else "rows"
                raise ValueError(f"report table {name!r}, {where}[{k}]: needs a method name, got {entry!r}")
            if method in seen:
                raise ValueError(f"report table {name!r}: method {method!r} listed twice")
            seen.add(method)
            out.append({"method": method, "label": row.get("label") or labels.get(method, method),
                        "reference": row.get("reference", spec.get("reference")), "control": control,
                        "extra": {k2: v for k2, v in row.items() if k2 not in _ROW_KEYS}})
    return out


def _plain_number(x) -> int | float:
    """A weight as the table shows it: a whole number as an int (1, not 1.0)."""
    x = float(x)
    return int(x) if x.is_integer() else x


def krsl_weights(params: dict, method: str) -> dict | None:
    """``{"alpha", "beta"}`` of ``method``'s KRSL step: ``train.krsl`` with the step's ``hp`` over it
    (as training reads them). None when ``method_defs`` lacks the method or it has no KRSL step;
    ValueError when it has several (which one would the table show?)."""
    defs = params["method_defs"]
    if method not in defs:
        return None
    steps = [s for s in parse_method(defs[method], method).steps if s["loss"] == "krsl"]
    if not steps:
        return None
    if len(steps) > 1:
        raise ValueError(f"method {method!r} has {len(steps)} KRSL steps: a table of KRSL weights cannot show it")
    hp = {**params["train"]["krsl"], **steps[0]["hp"]}
    return {k: _plain_number(hp[k]) for k in ("alpha", "beta")}


def _with_krsl_weights(spec: dict, params: dict) -> dict:
    """``spec`` with each row's and control's KRSL weights as extra columns (a row's own keys win)."""
    def row(entry):
        entry = {"method": entry} if isinstance(entry, str) else dict(entry)
        weights = krsl_weights(params, entry["method"]) or {}
        return {"method": entry["method"], **weights, **{k: v for k, v in entry.items() if k != "method"}}

    return {**spec, "rows": [row(e) for e in spec["rows"]], "controls": [row(e) for e in spec.get("controls") or []]}
