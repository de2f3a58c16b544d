"""Static import graph of the `edit` package and of the notebooks that drive it (read with `ast`,
nothing is imported): which modules a notebook reaches, import circles, imports inside functions.

It is what keeps the DVC dependencies honest: :mod:`edit.pipeline` lists as a stage's deps exactly
the files its notebook reaches, and tests/test_structure.py fails on a circle or on an import placed
inside a function (except for the optional heavy dependencies in :data:`LAZY_ALLOWED`).
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

#: Third-party packages that may be imported inside a function: optional, heavy, or only needed
#: on one code path (not installed on every machine, or slow to import).
LAZY_ALLOWED = ("vllm", "trl", "openai", "scipy")

#: Files of the package that are not Python but are read by a module (module -> paths relative to
#: the repository root). A module that reaches one of these modules depends on these files too.
PACKAGE_DATA = {
    "edit.benchmarks.sources": ("edit/sources.json",),
    "edit.llm.prompts": ("edit/llm/templates",),
}


@dataclass(frozen=True)
class Import:
    """One import statement's target: ``module`` (dotted, absolute), where it is, and whether it
    sits at the top level of its file (not inside a function or class body)."""

    module: str
    file: str
    line: int
    top_level: bool


class _Collector(ast.NodeVisitor):
    def __init__(self, package: str | None, file: str):
        self.package, self.file = package, file
        self.depth = 0
        self.found: list[Import] = []

    def _scoped(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _scoped

    def visit_If(self, node):  # `if TYPE_CHECKING:` blocks import nothing at run time
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node):
        for alias in node.names:
            self.found.append(Import(alias.name, self.file, node.lineno, self.depth == 0))

    def visit_ImportFrom(self, node):
        if node.level:  # relative: resolve against this module's package
            if self.package is None:
                raise ValueError(f"{self.file}:{node.lineno}: relative import outside a package")
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        # `from pkg import name`: name may be a submodule; record both, resolution keeps what exists
        self.found.append(Import(target, self.file, node.lineno, self.depth == 0))
        for alias in node.names:
            if alias.name != "*":
                self.found.append(Import(f"{target}.{alias.name}", self.file, node.lineno, self.depth == 0))


def parse_imports(source: str, file: str, package: str | None = None) -> list[Import]:
    """Every import in ``source`` (a module's text or a notebook's code), ``package`` being the
    dotted package the file belongs to (for relative imports)."""
    collector = _Collector(package, file)
    collector.visit(ast.parse(source, filename=file))
    return collector.found


def notebook_source(path: str | Path) -> str:
    """The code cells of a notebook as one Python text (IPython magics and shell lines dropped)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    lines = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        lines += [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    return "\n".join(lines) + "\n"


class PackageGraph:
    """The modules of one package under ``root`` (e.g. ``edit`` in the repository root) and their
    imports of each other."""

    def __init__(self, root: str | Path = ".", package: str = "edit"):
        self.root = Path(root)
        self.package = package
        self.files: dict[str, Path] = {}
        for path in sorted((self.root / package).rglob("*.py")):
            rel = path.relative_to(self.root).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            self.files[".".join(parts)] = path
        self.imports: dict[str, list[Import]] = {}
        for name, path in self.files.items():
            pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
            self.imports[name] = parse_imports(path.read_text(encoding="utf-8"), self.rel(path), pkg)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def resolve(self, imports: list[Import]) -> set[str]:
        """The package's modules named by ``imports``, with the packages above each (importing
        ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` first)."""
        out = set()
        for imp in imports:
            if imp.module in self.files:
                parts = imp.module.split(".")
                out.update(".".join(parts[:k]) for k in range(1, len(parts) + 1) if ".".join(parts[:k]) in self.files)
        return out

    def direct(self, module: str) -> set[str]:
        return self.resolve(self.imports[module]) - {module}

    def reach(self, start: set[str]) -> set[str]:
        """Every module of the package reached from ``start`` through imports (``start`` included)."""
        seen, todo = set(), list(start)
        while todo:
            m = todo.pop()
            if m in seen:
                continue
            seen.add(m)
            todo.extend(self.direct(m) - seen)
        return seen

    def notebook_modules(self, notebook: str | Path) -> set[str]:
        """The modules a notebook reaches (directly or through imports)."""
        nb = Path(notebook)
        return self.reach(self.resolve(parse_imports(notebook_source(nb), nb.as_posix())))

    def dep_paths(self, modules: set[str]) -> list[str]:
        """Files (relative to the root) of ``modules`` and the package data they read, sorted."""
        paths = {self.rel(self.files[m]) for m in modules}
        for m in modules:
            paths.update(PACKAGE_DATA.get(m, ()))
        return sorted(paths)

    def cycles(self) -> list[list[str]]:
        """Import circles among the package's own modules (each as a list of modules), counting
        imports inside functions too; a package's ``__init__`` importing its own submodules is not
        counted as a circle with them."""
        index, low, stack, on_stack, out = {}, {}, [], set(), []
        counter = [0]

        def edges(m):
            return {d for d in self.direct(m) if not m.startswith(d + ".")}

        def visit(m):  # Tarjan's strongly connected components
            index[m] = low[m] = counter[0]
            counter[0] += 1
            stack.append(m)
            on_stack.add(m)
            for d in sorted(edges(m)):
                if d not in index:
                    visit(d)
                    low[m] = min(low[m], low[d])
                elif d in on_stack:
                    low[m] = min(low[m], index[d])
            if low[m] == index[m]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == m:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))

        for m in sorted(self.files):
            if m not in index:
                visit(m)
        return out

    def function_level_imports(self) -> list[Import]:
        """Imports inside a function or class body (one per statement), except the optional heavy
        dependencies of :data:`LAZY_ALLOWED`."""
        out, seen = [], set()
        for imps in self.imports.values():
            for imp in imps:  # the first record of a statement names its module
                if imp.top_level or (imp.file, imp.line) in seen:
                    continue
                seen.add((imp.file, imp.line))
                if imp.module.split(".")[0] not in LAZY_ALLOWED:
                    out.append(imp)
        return out
