"""``reports/index.html``: one self-contained page over the report's outputs.

Every table (``tables/*.md``, and ``grid/tables/*.md`` when the grid was reported), every figure
(``figures/*.png``, ``grid/figures/*.png``; relative links, or embedded as data URIs with
``embed_figures``), the verdicts (``tables/notes.md``, ``grid/tables/notes.md``), the key-step statistics (``keysteps/*.csv``)
and a link to the explorer's export (``explore.html``) when it exists. No script, no stylesheet or
font from the network: it opens in any browser with no kernel and no network. Sorted inputs and no
timestamps: the same reports give the same bytes.

The markdown the report writes is rendered by a deliberately small converter (:func:`markdown_html`):
headings, bullet lists, pipe tables, ``code`` and paragraphs; everything else is escaped text.
"""
from __future__ import annotations

import argparse
import base64
import html
import re
from pathlib import Path

import pandas as pd

KEYSTEPS_DIR = "keysteps"
EXPLORER = "explore.html"

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: left; }
th { background: #eee; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 560px; border: 1px solid #ddd; }
nav a { margin-right: 1em; }
p.caption, p.footnote { font-size: 0.85em; color: #444; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


def _inline(text: str) -> str:
    """Escape ``text``; `code` spans become <code>."""
    parts = re.split(r"`([^`]*)`", text)
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _pipe_table(lines: list[str]) -> str:
    rows = [_cells(line) for line in lines if not re.fullmatch(r"\|?[\s:|-]+\|?", line.strip())]
    head, body = rows[0], rows[1:]
    out = ["<table>", "<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body]
    return "\n".join(out + ["</table>"])


def markdown_html(text: str, heading_shift: int = 0) -> str:
    """The small subset of markdown the report writes, as HTML (headings shifted down by
    ``heading_shift`` levels)."""
    out, para, table, items = [], [], [], []

    def flush():
        if para:
            cls = ' class="caption"' if para[0].startswith("Table:") else ""
            out.append(f"<p{cls}>{_inline(' '.join(para))}</p>")
            para.clear()
        if table:
            out.append(_pipe_table(table))
            table.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        s = line.strip()
        if s.startswith("|"):
            if not table:
                flush()
            table.append(s)
        elif s.startswith("#"):
            flush()
            level = min(len(s) - len(s.lstrip("#")) + heading_shift, 6)
            out.append(f"<h{level}>{_inline(s.lstrip('#').strip())}</h{level}>")
        elif s.startswith(("- ", "* ")):
            if para or table:
                flush()
            items.append(s[2:])
        elif not s:
            flush()
        else:
            if table or items:
                flush()
            para.append(s)
    flush()
    return "\n".join(out)


def _figure(path: Path, reports: Path, embed: bool) -> str:
    if embed:
        src = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    else:
        src = path.relative_to(reports).as_posix()
    name = html.escape(path.relative_to(reports).as_posix())
    return f'<figure><img src="{html.escape(src)}" alt="{name}"><figcaption>{name}</figcaption></figure>'


def _csv_table(path: Path) -> str:
    frame = pd.read_csv(path)
    return frame.to_html(index=False, border=0, float_format=lambda x: f"{x:.4f}", na_rep="n/a")


def page_html(reports_dir: str | Path, title: str = "EDIT report", embed_figures: bool = False) -> str:
    """The page's HTML over the outputs found in ``reports_dir``."""
    reports = Path(reports_dir)
    sections: list[tuple[str, str, str]] = []  # (anchor, title, body)
    for prefix in ("", "grid/"):  # the default pipeline's report, then the grid's
        label = "Experiment grid: " if prefix else ""
        tables = sorted((reports / prefix / "tables").glob("*.md")) if (reports / prefix / "tables").is_dir() else []
        tables = [f for f in tables if f.name != "notes.md"]
        if tables:
            body = "\n".join(f'<section class="table" id="{prefix}tables/{html.escape(f.stem)}">'
                             f"<h3>{html.escape(f.stem)}</h3>\n{markdown_html(f.read_text(encoding='utf-8'), 3)}</section>"
                             for f in tables)
            sections.append((f"{prefix}tables".replace("/", "-"), f"{label}Tables", body))
        notes = reports / prefix / "tables" / "notes.md"
        if notes.is_file():
            sections.append((f"{prefix}verdicts".replace("/", "-"), f"{label}Verdicts and notes",
                             markdown_html(notes.read_text(encoding="utf-8"), 2)))
        figures = sorted((reports / prefix / "figures").glob("*.png")) if (reports / prefix / "figures").is_dir() else []
        if figures:
            sections.append((f"{prefix}figures".replace("/", "-"), f"{label}Figures",
                             "\n".join(_figure(f, reports, embed_figures) for f in figures)))
        if prefix:
            continue
        keysteps = sorted((reports / KEYSTEPS_DIR).glob("*.csv")) if (reports / KEYSTEPS_DIR).is_dir() else []
        if keysteps:
            body = "\n".join(f'<section class="keysteps"><h3>{html.escape(f.stem)}</h3>\n{_csv_table(f)}</section>'
                             for f in keysteps)
            sections.append(("keysteps", "Key reasoning steps: share and localisation", body))
        if (reports / EXPLORER).is_file():
            sections.append(("explorer", "Dual pairs explorer",
                             f'<p><a href="{EXPLORER}">The dual pairs with their key tokens highlighted</a> '
                             "(the executed explorer notebook; interactive in JupyterLab: "
                             "<code>notebooks/explore_cot_diffs.ipynb</code>).</p>"))
    nav = " ".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in sections)
    body = "\n".join(f'<h2 id="{a}">{html.escape(t)}</h2>\n{b}' for a, t, b in sections)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n<nav>{nav}</nav>\n{body}\n"
            "</body>\n</html>\n")


def write_index(reports_dir: str | Path, title: str = "EDIT report", embed_figures: bool = False) -> Path:
    """Write ``<reports_dir>/index.html`` (:func:`page_html`) and return its path."""
    path = Path(reports_dir) / "index.html"
    path.write_text(page_html(reports_dir, title, embed_figures), encoding="utf-8")
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="write <reports_dir>/index.html over the report's outputs")
    ap.add_argument("reports_dir", nargs="?", default="reports")
    ap.add_argument("--embed-figures", action="store_true", help="figures as data URIs instead of relative links")
    args = ap.parse_args()
    print(write_index(args.reports_dir, embed_figures=args.embed_figures))
