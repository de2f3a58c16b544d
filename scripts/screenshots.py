"""README screenshots of the report page and the explorer export (headless Chromium), as small
palette PNGs in reports/screenshots/. Usage: python scripts/screenshots.py [reports_dir]"""
import sys
from pathlib import Path

from PIL import Image

from edit import browser


def shoot(page: Path, out: Path, width: int = 1000, height: int = 700) -> Path:
    browser.screenshot(page, out, width, height)
    Image.open(out).convert("RGB").quantize(colors=64).save(out, optimize=True)
    return out


if __name__ == "__main__":
    reports = Path(sys.argv[1] if len(sys.argv) > 1 else "reports")
    for name in ("index", "explore"):
        if (reports / f"{name}.html").is_file():
            print(shoot(reports / f"{name}.html", reports / "screenshots" / f"{name}.png"))
