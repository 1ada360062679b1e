"""The `make bench` summary: one table from the BENCH lines of every benchmark's output.

Usage: python benchmarks/summary.py LOG [LOG ...]   (or the output on stdin)

A benchmark ends with one machine-readable line per figure (format defined in
benchmarks/ring_throughput.py)::

    BENCH <name> <value> <unit> <anchor value|-> <ratio|-> <goal> <anchor, free text>

ratio is ours / anchor in the figure's unit; goal is ``-`` or a condition on it such as
``ratio>=1.0`` or ``ratio<=1.5``. Benchmarks without BENCH lines are listed as such.
"""

from __future__ import annotations

import operator
import re
import sys
from pathlib import Path

_GOAL = re.compile(r"^ratio(>=|<=|>|<)([0-9.]+)$")
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def parse(text: str) -> list[list[str]]:
    """The BENCH lines of ``text``, each as its 7 fields."""
    rows = []
    for line in text.splitlines():
        if line.startswith("BENCH "):
            fields = line.split(None, 7)[1:]
            if len(fields) == 7:
                rows.append(fields)
    return rows


def met(ratio: str, goal: str) -> str:
    match = _GOAL.match(goal)
    if not match or ratio == "-":
        return "-" if goal == "-" else "no anchor"
    return "yes" if _OPS[match.group(1)](float(ratio), float(match.group(2))) else "**no**"


def table(rows: list[list[str]]) -> str:
    out = ["| figure | ringpipe | anchor, same run | ratio | goal | met |",
           "|---|---|---|---|---|---|"]
    for name, value, unit, anchor, ratio, goal, label in rows:
        anchor_text = f"{label}: {anchor} {unit}" if anchor != "-" else label
        out.append(f"| {name} | {value} {unit} | {anchor_text} | {ratio} | {goal} | "
                   f"{met(ratio, goal)} |")
    return "\n".join(out)


def main() -> None:
    texts = [Path(p).read_text() for p in sys.argv[1:]] or [sys.stdin.read()]
    rows = [row for text in texts for row in parse(text)]
    silent = [p for p, text in zip(sys.argv[1:], texts, strict=False) if not parse(text)]
    print("\n" + table(rows))
    if silent:
        print("\nno BENCH lines yet: " + ", ".join(Path(p).stem for p in silent))


if __name__ == "__main__":
    main()
