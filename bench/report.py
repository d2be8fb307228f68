"""Renders results: a table for people (figure, value, unit, grouped) and JSON for programs.

The table and the JSON carry the same figures, the machine, the date and the parameters, so a
figure copied from either can be traced back to what produced it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.machine import Machine
from bench.results import Figure, Result

SCHEMA = "tachiai-bench/1"
_WIDTH = 58


def table(machine: Machine, results: Sequence[Result]) -> str:
    lines = ["tachiai benchmarks", *("  " + m for m in machine.lines())]
    for result in results:
        params = ", ".join(f"{k}={v}" for k, v in result.parameters.items())
        lines += ["", f"benchmark {result.name}: {params}", ""]
        lines.append(f"  {'figure':<{_WIDTH}} {'value':>12}  unit")
        group = None
        for fig in result.figures:
            if fig.group != group:
                group = fig.group
                lines.append(f"  [{group}]")
            lines.append(f"    {fig.label:<{_WIDTH - 2}} {_number(fig):>12}  {fig.unit}")
        if result.notes:
            lines += ["", "  notes:"]
            lines += [f"  - {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def as_json(machine: Machine, results: Sequence[Result]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "machine": machine.as_dict(),
        "benchmarks": [r.as_dict() for r in results],
    }


def write_json(path: Path, machine: Machine, results: Sequence[Result]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(
        json.dumps(as_json(machine, results), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    tmp.replace(path)


def _number(fig: Figure) -> str:
    value = fig.value
    if fig.unit == "×":
        return f"{value:.4f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3g}"
