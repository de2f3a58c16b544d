"""Hyper-parameter choice on the validation split only.

``python -m edit.hp_search --params pretrained/params.yaml --method std_cot --set train.sft.lr=2e-4,1e-3
--set train.sft.epochs=4 --data pretrained/data --out pretrained/hp`` trains ``method`` once for every
point of the grid (the product of the ``--set`` lists; dotted keys of the params file), always with
``select: best_val_accuracy`` on every step of the grid's loss sections, so each run reports the greedy
validation accuracy after every epoch (the train stage's own checkpoint selection). The test suites
are never read. It writes ``<out>/<method>.json`` (the grid, every point's per-epoch validation
accuracies, final training loss and wall time, and the choice), ``<out>/<method>.md`` (a table) and
``<out>/<method>-samples/<point>.jsonl`` (the selected model's validation generations). With
``--reuse-from`` (e.g. a KRSL lr grid of ``edit`` on top of a saved ``edit_a0_b0`` run) every point
starts from that run's saved shared steps, and only the steps after them are trained and reported.

The choice is the point and epoch with the highest validation accuracy; ties go to the earlier point
of the grid, then the earlier epoch (the cheaper run when the lists are written cheapest first). A
point's per-epoch curve comes from one run of its longest schedule, so "epoch 2 of a 4-epoch cosine
run" is what the table shows, not a 2-epoch run: write the epochs into the grid to compare schedules.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import shutil
import time
from pathlib import Path

import yaml

from edit.benchmarks import suites as benchmarks
from edit.generation import generate
from edit.io import read_json, read_jsonl, write_json, write_jsonl, write_text_atomic
from edit.methods import get_method, inference_prompt
from edit.params import load_params
from edit.records import Question
from edit.runtime import autocast_context, autocast_setting, setup_runtime
from edit.scoring import score
from edit.student import load_student
from edit.training.checkpoints import CHECKPOINT_KEYS
from edit.training.run import shared_prefix, step_hp, train_one


def parse_value(text: str):
    """A ``--set`` value as YAML 1.2 reads it (numbers, booleans, null); anything else a string."""
    value = yaml.safe_load(text)
    if isinstance(value, str) and text.strip():
        try:
            return float(text)  # YAML 1.1 reads 5e-6 as a string
        except ValueError:
            return value
    return value


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["train.sft.lr=2e-4,1e-3", "train.sft.epochs=4"]`` -> ``{"train.sft.lr": [2e-4, 1e-3], ...}``."""
    grid: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ValueError(f"--set {item!r}: write KEY=VALUE[,VALUE...] with a dotted params key")
        if key in grid:
            raise ValueError(f"--set {key}: given twice")
        grid[key] = [parse_value(v) for v in values.split(",")]
    return grid


def grid_points(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, in the order the lists are written (last key fastest)."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def with_overrides(raw: dict, point: dict) -> dict:
    """A deep copy of the params mapping ``raw`` with every dotted key of ``point`` set; a key whose
    parent section does not exist is an error (a typo must not train the unchanged setting)."""
    out = copy.deepcopy(raw)
    for dotted, value in point.items():
        *parents, leaf = dotted.split(".")
        node = out
        for i, part in enumerate(parents):
            if not isinstance(node.get(part), dict):
                raise KeyError(f"--set {dotted}: {'.'.join(parents[:i + 1])} is not a section of the params file")
            node = node[part]
        node[leaf] = value
    return out


def point_name(index: int, point: dict) -> str:
    """A folder-safe name of a grid point: its index and its values."""
    return f"p{index:02d}-" + "-".join(f"{k.split('.')[-1]}{v}" for k, v in point.items()).replace("/", "_")


def choose(rows: list[dict]) -> dict:
    """The row (one point x one epoch) with the highest ``val_accuracy``; ties: the earliest row."""
    if not rows:
        raise ValueError("hp_search: no validation results to choose from")
    best = rows[0]
    for row in rows[1:]:
        if row["val_accuracy"] > best["val_accuracy"]:
            best = row
    return best


def table(rows: list[dict], choice: dict) -> str:
    """A markdown table of every point and epoch, the choice marked."""
    keys = [k for k in rows[0]["point"]] if rows else []
    head = "| point | " + " | ".join(keys) + " | epoch | val accuracy | final train loss | run minutes |"
    lines = [head, "|" + "---|" * (len(keys) + 5)]
    for r in rows:
        mark = " **chosen**" if r is choice else ""
        vals = " | ".join(str(r["point"][k]) for k in keys)
        loss = "" if r["final_loss"] is None else f"{r['final_loss']:.3f}"
        lines.append(f"| {r['name']} | {vals} | {r['epoch']} | {r['val_accuracy']:.1f}{mark} | {loss} | "
                     f"{r['minutes']:.1f} |")
    return "\n".join(lines) + "\n"


def final_loss(step: dict) -> float | None:
    losses = [e["loss"] for e in step.get("log", []) if "loss" in e]
    return losses[-1] if losses else None


def sample_generations(params: dict, method: str, model_dir: Path, data_dir: str | Path, n: int) -> list[dict]:
    """The greedy generations of the model in ``model_dir`` for the first ``n`` validation questions,
    with the method's inference prompt (zero-shot prompts only), scored like the evaluation: what the
    validation accuracy of a point is made of."""
    spec = get_method(params, method)
    if spec.shots or n < 1:
        return []
    questions = [Question(**r) for r in read_jsonl(Path(data_dir) / "questions" / "val.jsonl",
                                                   required=("id", "task", "input", "target"))][:n]
    model, tokenizer = load_student(model_dir, base=params["student"])
    model.eval()
    prompts = [inference_prompt(spec, q) for q in questions]
    with autocast_context(autocast_setting(params, "eval_autocast")):
        gens = generate(model, tokenizer, prompts, max_new_tokens=int(params["eval"]["max_new_tokens"]),
                        batch_size=int(params["eval"]["batch_size"]), show_progress=False)
    return [{"id": q.id, "task": q.task, "target": q.target, "generation": g,
             **score(g, q.target, benchmarks.answer_type(q.task))} for q, g in zip(questions, gens)]


def check_reuse(params: dict, method: str, reuse_from: str, report: dict) -> int:
    """The number of leading steps ``method`` takes from ``reuse_from``'s saved run (its ``train.json``
    ``report``); a ValueError when they share none, or when the saved run's hyper-parameters of a
    shared step differ from this search's (a model trained with other settings is not silently
    reused)."""
    mine = get_method(params, method)
    k = shared_prefix(mine, get_method(params, reuse_from), params)
    if k == 0:
        raise ValueError(f"--reuse-from {reuse_from}: {method} shares no leading step with it")
    autocast = autocast_setting(params)  # train_one hands runtime.autocast to the trainers as an hp
    for i, step in enumerate(mine.steps[:k]):
        want = {key: v for key, v in step_hp(params, step["loss"], step, method).items() if key not in CHECKPOINT_KEYS}
        if autocast is not None:
            want["autocast"] = autocast
        saved = report["steps"][i]["hp"] if i < len(report.get("steps", [])) else {}
        got = {key: v for key, v in saved.items() if key not in CHECKPOINT_KEYS}
        if got != want:
            diff = sorted(key for key in set(got) | set(want) if got.get(key) != want.get(key))
            raise ValueError(f"--reuse-from {reuse_from}: its saved step {i + 1} was trained with other settings "
                             f"({', '.join(f'{key}: {got.get(key)!r} saved, {want.get(key)!r} here' for key in diff)})")
    return k


def search(params_file: str | Path, method: str, seed: int, grid: dict[str, list], data_dir: str | Path,
           out_dir: str | Path, work_dir: str | Path, reuse_from: str | None = None,
           reuse_models_dir: str | Path | None = None, reuse_results_dir: str | Path | None = None,
           keep_models: bool = False,
           progress: bool = True, samples: int = 8) -> dict:
    """Train ``method`` with ``seed`` at every grid point (validation selection on) and write the
    summary after every point (a stopped search loses at most the point it was training); returns
    it. ``work_dir`` keeps each point's params file and ``train.json`` (its models are deleted after
    the run unless ``keep_models``: then ``<work_dir>/<point>/models`` and ``.../results`` can be a
    later search's ``reuse_models_dir`` / ``reuse_results_dir``) and, in
    ``<out>/<method>-samples/<point>.jsonl``, the selected model's generations for
    ``samples`` validation questions: a point whose params file is unchanged and whose ``train.json`` exists is read back,
    not trained again, so rerunning the same command resumes the search."""
    raw = yaml.safe_load(Path(params_file).read_text())
    out_dir, work_dir = Path(out_dir), Path(work_dir)
    rows, points = [], grid_points(grid)
    result = {"method": method, "seed": seed, "params_file": str(params_file), "grid": grid,
              "rule": "highest validation accuracy; ties: earlier grid point, then earlier epoch"}
    for i, point in enumerate(points):
        name = point_name(i, point)
        changed = with_overrides(raw, point)
        for loss in ("sft", "krsl", "dpo"):
            changed["train"][loss]["select"] = "best_val_accuracy"
        text = yaml.safe_dump(changed, sort_keys=False)
        run_dir = work_dir / name
        pfile, report = run_dir / "params.yaml", run_dir / "results" / f"{method}-{seed}" / "train.json"
        timing = run_dir / "minutes.json"
        if report.is_file() and timing.is_file() and pfile.is_file() and pfile.read_text() == text:
            summary, minutes = read_json(report), read_json(timing)["minutes"]
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            pfile.write_text(text)
            P = load_params(pfile)  # validates the changed settings
            setup_runtime(P, seed)
            models_dir = run_dir / "models"
            if reuse_from:  # the step this method shares with reuse_from's saved run
                check_reuse(P, method, reuse_from,
                            read_json(Path(reuse_results_dir) / f"{reuse_from}-{seed}" / "train.json"))
                src = Path(reuse_models_dir) / f"{reuse_from}-{seed}"
                shutil.copytree(src, models_dir / f"{reuse_from}-{seed}")
            t0 = time.time()
            summary = train_one(P, method, seed, data_dir=data_dir, models_dir=models_dir,
                                results_dir=run_dir / "results", reuse_from=reuse_from,
                                reuse_results_dir=reuse_results_dir, progress=progress)
            minutes = (time.time() - t0) / 60
            last = max(models_dir.glob(f"{method}-{seed}/step*"), key=lambda d: int(d.name[4:]), default=None)
            if last is not None:
                write_jsonl(out_dir / f"{method}-samples" / f"{name}.jsonl",
                            sample_generations(P, method, last, data_dir, samples))
            write_json(timing, {"minutes": minutes})
            if not keep_models:
                shutil.rmtree(models_dir, ignore_errors=True)
        for k, step in enumerate(summary["steps"]):
            if step.get("reused_from"):
                continue
            for h in step.get("selection", {}).get("per_epoch", []):
                rows.append({"name": name, "point": point, "step": k, "epoch": h["epoch"],
                             "val_accuracy": h["val_accuracy"], "final_loss": final_loss(step), "minutes": minutes})
        best = choose(rows)
        result.update(rows=rows, choice=best, complete=i + 1 == len(points),
                      points_done=i + 1, points=len(points))
        write_json(out_dir / f"{method}.json", result)
        write_text_atomic(out_dir / f"{method}.md", table(rows, best))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", required=True, help="the effective params file (e.g. pretrained/params.yaml)")
    ap.add_argument("--method", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2", help="a grid axis (repeatable)")
    ap.add_argument("--data", required=True, help="the data stage's folder")
    ap.add_argument("--out", required=True, help="where <method>.json and <method>.md go")
    ap.add_argument("--work", default=None, help="scratch folder for the runs (default <out>/work)")
    ap.add_argument("--reuse-from", default=None, help="a method whose saved run of this seed gives the shared step")
    ap.add_argument("--reuse-models", default=None)
    ap.add_argument("--reuse-results", default=None)
    ap.add_argument("--samples", type=int, default=8, help="validation generations kept per point (0: none)")
    ap.add_argument("--keep-models", action="store_true",
                    help="keep every point's models (<work>/<point>/models; with <work>/<point>/results, a later "
                         "search's --reuse-models / --reuse-results)")
    a = ap.parse_args(argv)
    grid = parse_grid(a.set)
    result = search(a.params, a.method, a.seed, grid, a.data, a.out, a.work or Path(a.out) / "work",
                    a.reuse_from, a.reuse_models, a.reuse_results, samples=a.samples, keep_models=a.keep_models)
    print(table(result["rows"], result["choice"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
