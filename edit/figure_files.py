"""Writing matplotlib figures so that their bytes depend only on their content (no timestamps, no
version strings, a fixed SVG hash salt): the same input gives the same file, run after run."""
from __future__ import annotations

from pathlib import Path

from matplotlib import rc_context
from matplotlib.figure import Figure

#: metadata fields that would carry a date or a version, per format (None: not written)
_NO_STAMPS = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
              "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}}


def save_figure(fig: Figure, path) -> Path:
    """Save ``fig`` to ``path`` (format from the suffix, default png; 100 dpi, tight bounding box),
    creating the folder. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower().lstrip(".") or "png"
    with rc_context({"svg.hashsalt": "edit", "svg.fonttype": "none", "pdf.compression": 6}):
        fig.savefig(path, format=ext, dpi=100, metadata=_NO_STAMPS.get(ext), bbox_inches="tight")
    return path


def plot_placeholder(path, text: str) -> Path:
    """A small figure that only says ``text``: written where a figure has nothing to show, so that
    the pipeline's declared outputs always exist. Returns ``path``."""
    fig = Figure(figsize=(5.0, 1.6))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True)
    return save_figure(fig, path)
