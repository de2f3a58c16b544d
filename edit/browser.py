"""Static pages in a real browser: headless Chromium's screenshots and a DOM check.

:func:`page_check` loads a copy of a page with one inline script appended that, on the ``load``
event, records in the DOM which images did not load (``naturalWidth == 0``) and how many tables
there are; ``--dump-dom`` returns that DOM. :func:`screenshot` writes a PNG of the page's first
screen. Both run ``chromium`` with a throwaway profile and no network services (no sandbox: it runs
as root in CI containers). :func:`colour_pixels` counts pixels of a colour in a screenshot.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars")

CHECK_SCRIPT = """<script>
window.addEventListener("load", function () {
  var broken = [];
  document.querySelectorAll("img").forEach(function (img) {
    if (!img.complete || img.naturalWidth === 0) { broken.push(img.getAttribute("src").slice(0, 200)); }
  });
  var out = document.createElement("pre");
  out.id = "edit-page-check";
  out.textContent = JSON.stringify({images: document.images.length, broken: broken,
                                    tables: document.querySelectorAll("table").length});
  document.body.appendChild(out);
});
</script>"""


def chromium(path: str | None = None) -> str | None:
    """The Chromium binary (``path``, else /usr/bin/chromium, else ``chromium`` on PATH), or None."""
    for p in (path, CHROMIUM, shutil.which("chromium")):
        if p and Path(p).is_file():
            return str(p)
    return None


def _run(args: list[str], timeout: int) -> str:
    binary = chromium()
    if binary is None:
        raise FileNotFoundError(f"no chromium at {CHROMIUM} or on PATH")
    with tempfile.TemporaryDirectory(prefix="edit-chromium-") as profile:
        proc = subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


def page_check(page: str | Path, timeout: int = 120) -> dict:
    """``{"images": n, "broken": [src of images that did not load], "tables": n}`` of ``page`` as
    Chromium renders it. The checked copy sits beside ``page`` (so relative links resolve) and is
    removed afterwards."""
    page = Path(page).resolve()
    probe = page.with_name(f".check-{page.name}")
    text = page.read_text(encoding="utf-8")
    probe.write_text(text.replace("</body>", CHECK_SCRIPT + "</body>") if "</body>" in text else text + CHECK_SCRIPT,
                     encoding="utf-8")
    try:
        dom = _run(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], timeout)
    finally:
        probe.unlink()
    m = re.search(r'<pre id="edit-page-check">(.*?)</pre>', dom, re.S)
    if not m:
        raise RuntimeError("the page check did not run (no load event?)")
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


def screenshot(page: str | Path, out: str | Path, width: int = 1100, height: int = 800, timeout: int = 120) -> Path:
    """A PNG of the first ``width`` x ``height`` pixels of ``page``."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--window-size={width},{height}", f"--screenshot={out}", Path(page).resolve().as_uri()], timeout)
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {out}")
    return out


def colour_pixels(png: str | Path, rgb: tuple[int, int, int], tolerance: int = 6) -> int:
    """How many pixels of ``png`` are within ``tolerance`` of ``rgb`` on every channel."""
    img = Image.open(png).convert("RGB")
    r0, g0, b0 = rgb
    return sum(1 for r, g, b in img.get_flattened_data()
               if abs(r - r0) <= tolerance and abs(g - g0) <= tolerance and abs(b - b0) <= tolerance)
