"""The explore stage: the dual pairs' static view (the first ``n_show`` pairs passing the filters,
key tokens highlighted, with per-pair counts and localisation scores) for papermill runs, and the
executed notebook's static HTML export (``python -m edit.stages.explore <executed.ipynb>
reports/explore.html``); the notebook adds :func:`edit.explorer.explorer_widget` for JupyterLab."""
from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
from jinja2 import DictLoader
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

from edit.explorer import ALL, load_pair_data, static_html


def run(data_dir: str | Path = "data", n_show: int = 4, task: str = ALL, pair_type: str = ALL,
        mistake_type: str = ALL, search: str = "") -> dict:
    """``{"data": PairData, "filters": {...}, "html": the static view, "matched": pairs passing}``."""
    data = load_pair_data(data_dir)
    filters = {"task": task, "pair_type": pair_type, "mistake_type": mistake_type, "search": search}
    view, matched = static_html(data, int(n_show), **filters)
    return {"data": data, "filters": filters, "html": view, "matched": matched}


#: nbconvert's lab template without its CDN scripts (require.js, MathJax, mermaid, the widget manager): the export opens
#: with no network; the pairs' HTML needs no script.
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
"""
#: cells tagged so (the widgets) are left out of the export: they need a kernel
INTERACTIVE_TAG = "interactive"


def export_html(notebook: str | Path, out: str | Path) -> Path:
    """The executed notebook as a static HTML page (no code cells, no widget cells, no script from
    the network) at ``out``."""
    exporter = HTMLExporter(extra_loaders=[DictLoader({"offline.html.j2": OFFLINE_TEMPLATE})],
                            template_file="offline.html.j2", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags={INTERACTIVE_TAG}, enabled=True), True)
    body, _ = exporter.from_notebook_node(nbformat.read(str(notebook), as_version=4))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body, encoding="utf-8")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="export the executed explorer notebook to static HTML")
    ap.add_argument("notebook")
    ap.add_argument("out")
    args = ap.parse_args()
    print(export_html(args.notebook, args.out))
