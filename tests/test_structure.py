"""The shape of the package: no import circles, no imports inside functions (except optional heavy
dependencies), DVC deps that cannot go stale, notebooks stored without outputs, modules of a
readable size. Each check is also run on a copy of the package with a planted violation, to show
that it can fail."""
from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import ROOT
from edit import pipeline
from edit.import_graph import LAZY_ALLOWED, PACKAGE_DATA, PackageGraph, parse_imports

MAX_LINES = 400
#: how a module over MAX_LINES says why, in its docstring
REASON = re.compile(r"(?i)\b(over|longer than)\s+400\s+lines")


@pytest.fixture(scope="module")
def graph() -> PackageGraph:
    return PackageGraph(ROOT)


@pytest.fixture()
def planted(tmp_path) -> Path:
    """A copy of the package, the notebooks, params.yaml (pretrained/dvc.yaml's run lists) and the
    pipeline files, to plant violations in."""
    for d in ("edit", "notebooks", "grid"):
        shutil.copytree(ROOT / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__", "results", "students"))
    for f in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / f, tmp_path / f)
    return tmp_path


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


# ---------------------------------------------------------------- DVC deps


def test_pipeline_files_are_what_edit_pipeline_writes():
    stale = [p for p, text in pipeline.generate(ROOT).items() if (ROOT / p).read_text() != text]
    assert not stale, f"{stale} differ from `python -m edit.pipeline` (a stage's code deps changed?): rerun it"


def test_every_stage_lists_every_module_its_notebook_reaches(graph):
    import yaml

    for path in ("dvc.yaml", "grid/dvc.yaml"):
        for name, stage in yaml.safe_load((ROOT / path).read_text())["stages"].items():
            nbs = [d for d in stage["deps"] if d.startswith("notebooks/")]
            for nb in nbs:
                needed = set(graph.dep_paths(graph.notebook_modules(ROOT / nb)))
                assert needed <= set(stage["deps"]), f"{path}:{name} misses {sorted(needed - set(stage['deps']))}"


def test_a_new_import_makes_the_committed_deps_stale(planted):
    # scoring is reached by the evaluate stage; make it import a module the evaluate stage did not reach
    import yaml

    deps = set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["evaluate"]["deps"])
    graph = PackageGraph(ROOT)
    module = next(m for m in sorted(graph.files) if graph.rel(graph.files[m]) not in deps and m != "edit.pipeline")
    _append(planted / "edit" / "scoring.py", f"\nimport {module}  # planted\n")
    text = pipeline.generate(planted)["dvc.yaml"]
    assert text != (ROOT / "dvc.yaml").read_text()
    new_deps = set(yaml.safe_load(text)["stages"]["evaluate"]["deps"])
    assert graph.rel(graph.files[module]) in new_deps - deps


def test_package_data_files_are_claimed_by_a_module():
    claimed = [Path(p) for paths in PACKAGE_DATA.values() for p in paths]
    for path in (ROOT / "edit").rglob("*"):
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts:
            rel = path.relative_to(ROOT)
            assert any(rel == c or c in rel.parents for c in claimed), f"{rel}: which module reads it? (PACKAGE_DATA)"
    for module in PACKAGE_DATA:
        assert module in PackageGraph(ROOT).files, f"PACKAGE_DATA names {module}, which does not exist"


# ---------------------------------------------------------------- imports


def test_no_import_circles(graph):
    assert graph.cycles() == []


def test_a_planted_circle_is_found(planted):
    _append(planted / "edit" / "records.py", "\nimport edit.dual  # planted: dual imports records\n")
    assert any("edit.records" in c and "edit.dual" in c for c in PackageGraph(planted).cycles())


def test_no_imports_inside_functions(graph):
    found = [f"{i.file}:{i.line} {i.module}" for i in graph.function_level_imports()]
    assert found == [], f"move these to the top of their files (only {LAZY_ALLOWED} may be lazy): {found}"


def test_a_planted_function_level_import_is_found(planted):
    before = set(PackageGraph(planted).function_level_imports())
    _append(planted / "edit" / "io.py", "\n\ndef _planted():\n    import json\n    return json\n")
    found = set(PackageGraph(planted).function_level_imports()) - before
    assert [(i.file, i.module) for i in found] == [("edit/io.py", "json")]


def test_relative_imports_resolve():
    found = {i.module for i in parse_imports("from .base import ChatBackend\n", "edit/llm/cache.py", "edit.llm")}
    assert "edit.llm.base" in found


# ---------------------------------------------------------------- files


def test_notebooks_are_stored_without_outputs():
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [] and cell.get("execution_count") is None, nb_path.name
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb_path.name}: one `parameters` cell"


def test_modules_are_short_or_say_why(graph):
    long = []
    for name, path in graph.files.items():
        text = path.read_text()
        if text.count("\n") > MAX_LINES and not REASON.search(ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{graph.rel(path)} ({text.count(chr(10))} lines)")
    assert long == [], f"split these, or say at the top why they are over {MAX_LINES} lines: {long}"
