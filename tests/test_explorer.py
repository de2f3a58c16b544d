"""The dual-pair explorer: filters, per-pair summary, widgets, the static view and its HTML export."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from edit import explorer
from edit.stages import explore
from pair_fixture import build_pair_data

GREEN, RED = "background:#b7f0b1", "background:#f5b5b5"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return build_pair_data(tmp_path_factory.mktemp("explorer") / "data")


@pytest.fixture(scope="module")
def data(data_dir):
    return explorer.load_pair_data(data_dir)


def test_filters_combine_and_search_is_case_insensitive(data):
    tasks = explorer.choices(data.marked)["task"]
    assert tasks[0] == "all" and set(tasks[1:]) == {"boolean_expressions", "web_of_lies"}
    web = explorer.filter_pairs(data, task="web_of_lies")
    assert web and all(m["task"] == "web_of_lies" for m in web)
    dminus = explorer.filter_pairs(data, task="web_of_lies", pair_type="D-dual")
    assert {m["pair_type"] for m in dminus} <= {"D-dual"} and len(dminus) <= len(web)
    word = data.text(web[0])["question"].split()[0]
    found = explorer.filter_pairs(data, search=word.upper())
    assert web[0] in found
    assert explorer.filter_pairs(data, search="no such text anywhere") == []


def test_pair_summary_counts_and_localisation(data):
    m = data.marked[0]
    s = explorer.pair_summary(m)
    assert (s["chosen_key"], s["rejected_key"]) == (len(m["chosen_key"]), len(m["rejected_key"]))
    assert s["chosen_tokens"] == len(m["chosen_ids"])
    assert 0 <= s["precision"] <= 1 and 0 <= s["recall"] <= 1  # the oracle gives ground truth
    no_truth = {k: v for k, v in m.items() if not k.endswith("true_key")}
    assert "precision" not in explorer.pair_summary(no_truth)
    assert "precision" in explorer.summary_html(s) and "precision" not in explorer.summary_html(explorer.pair_summary(no_truth))


def test_widget_redraws_on_filter_search_and_next(data):
    box = explorer.explorer_widget(data)
    (task, pair_type, mistake), (search, prev, nxt, where), view = box.children[0].children, box.children[1].children, box.children[2]
    n = len(data.marked)
    assert where.value == f"pair 1 of {n}" and GREEN in view.value and RED in view.value and prev.disabled
    first = view.value
    nxt.click()
    assert where.value == f"pair 2 of {n}" and view.value != first and not prev.disabled
    task.value = "web_of_lies"
    web = explorer.filter_pairs(data, task="web_of_lies")
    assert where.value == f"pair 1 of {len(web)}" and web[0]["id"] in view.value
    search.value = "no such text anywhere"
    assert where.value == "no pair matches" and view.value == "" and nxt.disabled


def test_stage_run_shows_the_first_n_pairs(data_dir, data):
    out = explore.run(data_dir, 2, task="boolean_expressions")
    first = explorer.filter_pairs(data, task="boolean_expressions")
    assert out["matched"] == len(first)
    assert out["html"].count('<div class="pair">') == 2
    assert first[0]["id"] in out["html"] and first[1]["id"] in out["html"] and GREEN in out["html"] and RED in out["html"]


def export_explorer(data_dir: Path, out: Path) -> Path:
    """Run the explorer notebook with papermill on ``data_dir`` and export it to ``out``."""
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    executed = out.with_suffix(".ipynb")
    subprocess.run([sys.executable, "-m", "papermill", "-k", "python3", "--log-level", "WARNING",
                    str(ROOT / "notebooks" / "explore_cot_diffs.ipynb"), str(executed), "-p", "data_dir", str(data_dir),
                    "-p", "n_show", "3"], check=True, env=env, capture_output=True, cwd=out.parent)
    return explore.export_html(executed, out)


def test_papermill_run_and_static_export_show_the_highlights(data_dir, tmp_path):
    page = export_explorer(data_dir, tmp_path / "explore.html").read_text()
    assert page.count('<div class="pair">') == 3
    assert GREEN in page and RED in page and "precision" in page
    assert "unpkg.com" not in page and 'src="http' not in page and 'href="http' not in page  # no network needed
    assert "explorer_widget" not in page  # no code, no widget cell
