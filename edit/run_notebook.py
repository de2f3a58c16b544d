"""Run a stage notebook with papermill and store the executed copy without volatile content, so that
a rerun that computes the same results writes the same bytes (and `git status` stays clean after a
`dvc repro` that reproduces the committed results).

Dropped from the executed copy: papermill's and Jupyter's timestamps and durations, widget state,
progress bars (tqdm widgets, the Trainer's notebook progress table, which hold timings and random
widget ids), the random id of papermill's injected-parameters cell, and the stderr stream (warnings and progress logs: where they mention a machine path or a
speed, they differ from machine to machine). Everything a cell prints to stdout or displays as a
result (tables, figures, text) is kept.

    python -m edit.run_notebook notebooks/03_train.ipynb reports/notebooks/03_train-edit-0.ipynb -p method edit -p seed 0
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import nbformat
import papermill

VOLATILE_TIMES = ("start_time", "end_time", "duration")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _volatile_output(out: dict) -> bool:
    if out.get("output_type") == "stream":
        return out.get("name") == "stderr"
    data = out.get("data") or {}
    if WIDGET_MIME in data:
        return True
    html = data.get("text/html", "")
    html = "".join(html) if isinstance(html, list) else html
    return "<progress" in html


def strip_volatile(nb: dict) -> dict:
    """``nb`` (a notebook as a dict) without timestamps, durations, execution metadata, widget state,
    progress bars and stderr; changed in place and returned."""
    meta = nb.get("metadata", {})
    meta.pop("widgets", None)
    for key in VOLATILE_TIMES:
        meta.get("papermill", {}).pop(key, None)
    for cell in nb.get("cells", []):
        cmeta = cell.get("metadata", {})
        if "injected-parameters" in cmeta.get("tags", []):  # papermill gives it a random id
            cell["id"] = "injected-parameters"
        cmeta.pop("execution", None)
        for key in VOLATILE_TIMES:
            cmeta.get("papermill", {}).pop(key, None)
        if "outputs" in cell:
            cell["outputs"] = [o for o in cell["outputs"] if not _volatile_output(o)]
    return nb


def parse_value(text: str):
    """A ``-p name value`` value read as papermill's own command line reads it: True / False / None,
    an int, a float, else the text."""
    special = {"True": True, "False": False, "None": None}
    if text in special:
        return special[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def run(notebook: str | Path, executed: str | Path, parameters: dict | None = None) -> Path:
    """Execute ``notebook`` with ``parameters`` into ``executed`` (folders made), then strip it."""
    executed = Path(executed)
    executed.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(notebook), str(executed), parameters=parameters or {}, kernel_name="python3",
                               progress_bar=False, log_output=False, cwd=os.getcwd())
    nb = nbformat.read(executed, as_version=4)
    nbformat.write(nbformat.from_dict(strip_volatile(nb)), executed)
    return executed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edit.run_notebook", description=__doc__.splitlines()[0])
    ap.add_argument("notebook")
    ap.add_argument("executed")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = ap.parse_args(argv)
    run(args.notebook, args.executed, {k: parse_value(v) for k, v in args.parameter})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
