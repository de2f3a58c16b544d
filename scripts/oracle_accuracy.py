"""Accuracy of the oracle teacher on the real BBH items of every covered task.

    python scripts/oracle_accuracy.py [--mirror PATH]

PATH is the data mirror (default: $EDIT_DATA_MIRROR, else <repo>/../shared/data), holding
bbh/bbh/<task>.json. Exits 1 if any task is below 99% accuracy, 2 if the data is missing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edit.oracle import bbh_file, default_mirror, real_bbh_accuracy  # noqa: E402
from edit.tasks import TASKS  # noqa: E402

THRESHOLD = 0.99


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", type=Path, default=None, help="data mirror (default: %(default)s)")
    args = ap.parse_args(argv)
    mirror = args.mirror or default_mirror()
    missing = [t for t in TASKS if bbh_file(mirror, t) is None]
    if missing:
        print(f"real BBH data missing under {mirror}: {', '.join(missing)}", file=sys.stderr)
        return 2
    res = real_bbh_accuracy(mirror)
    w = max(len(t) for t in res)
    print(f"{'task':<{w}}  {'n':>5}  {'correct':>7}  {'accuracy':>8}")
    for task, r in res.items():
        flag = "" if r["accuracy"] >= THRESHOLD else "  < 99%"
        print(f"{task:<{w}}  {r['n']:>5}  {r['correct']:>7}  {r['accuracy']:>8.2%}{flag}")
    return 0 if all(r["accuracy"] >= THRESHOLD for r in res.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
