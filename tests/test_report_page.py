"""reports/index.html (edit/report/page.py) as a file, and in a real browser (headless Chromium)
together with the explorer's export, both built from small fixtures."""
import importlib
import importlib.util
import shutil
from pathlib import Path

import pytest

from conftest import ROOT
from edit import browser
from pair_fixture import build_pair_data
from test_explorer import export_explorer


def _page_module():
    try:
        return importlib.import_module("edit.report.page")
    except ImportError:  # before edit/report.py became the edit.report package
        spec = importlib.util.spec_from_file_location("edit_report_page", ROOT / "edit" / "report" / "page.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod


page = _page_module()
needs_chromium = pytest.mark.skipif(browser.chromium() is None,
                                    reason=f"no Chromium at {browser.CHROMIUM} (apt-get install -y chromium)")


def _reports(dst: Path) -> Path:
    """A small reports folder: the committed tables, figures and key-step statistics."""
    for sub in ("tables", "figures", "keysteps"):
        shutil.copytree(ROOT / "reports" / sub, dst / sub)
    return dst


def _tables(reports: Path) -> list[str]:
    return sorted(f.stem for f in (reports / "tables").glob("*.md") if f.name != "notes.md")


def test_markdown_subset():
    out = page.markdown_html("# T\n\nTable: cap `x` <b>\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n- one\n- two\n")
    assert "<h1>T</h1>" in out and '<p class="caption">Table: cap <code>x</code> &lt;b&gt;</p>' in out
    assert "<tr><th>a</th><th>b</th></tr>" in out and "<tr><td>1</td><td>2</td></tr>" in out
    assert "<ul><li>one</li><li>two</li></ul>" in out


def test_index_has_every_table_figure_note_and_keystep_csv(tmp_path):
    reports = _reports(tmp_path / "reports")
    (reports / "explore.html").write_text("<html></html>")
    text = page.write_index(reports).read_text()
    for name in _tables(reports):
        assert f'id="tables/{name}"' in text
    for fig in (reports / "figures").glob("*.png"):
        assert f'src="figures/{fig.name}"' in text
    assert "Within noise?" in text and "by_mistake_type" in text and 'href="explore.html"' in text
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert page.write_index(reports).read_text() == text  # byte-stable
    embedded = page.page_html(reports, embed_figures=True)
    assert 'src="data:image/png;base64,' in embedded and 'src="figures/' not in embedded


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The fixture reports folder with the explorer export and index.html."""
    root = tmp_path_factory.mktemp("site")
    reports = _reports(root / "reports")
    export_explorer(build_pair_data(root / "data"), reports / "explore.html")
    page.write_index(reports)
    return reports


@needs_chromium
def test_browser_sees_every_table_and_figure(site, tmp_path):
    check = browser.page_check(site / "index.html")
    n_tables = len(_tables(site)) + len(list((site / "keysteps").glob("*.csv")))
    assert check["tables"] == n_tables
    assert check["images"] == len(list((site / "figures").glob("*.png"))) and check["broken"] == []
    shot = browser.screenshot(site / "index.html", tmp_path / "index.png")
    assert shot.stat().st_size > 10_000


@needs_chromium
def test_browser_check_catches_a_broken_figure(site, tmp_path):
    broken = tmp_path / "reports"
    shutil.copytree(site, broken)  # index.html links every figure; then one goes missing, one is corrupt
    (broken / "figures" / "accuracy.png").unlink()
    (broken / "figures" / "key_share.png").write_bytes(b"not a png")
    check = browser.page_check(broken / "index.html")
    assert sorted(check["broken"]) == ["figures/accuracy.png", "figures/key_share.png"]


@needs_chromium
def test_browser_shows_green_and_red_highlights_in_the_explorer(site, tmp_path):
    shot = browser.screenshot(site / "explore.html", tmp_path / "explore.png")
    assert browser.colour_pixels(shot, (0xB7, 0xF0, 0xB1)) > 200  # chosen-side key tokens
    assert browser.colour_pixels(shot, (0xF5, 0xB5, 0xB5)) > 200  # rejected-side key tokens
    assert browser.page_check(site / "explore.html")["broken"] == []
