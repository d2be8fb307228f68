"""What a benchmark returns: named figures with units, the parameters, and notes for readers.

Values are plain numbers; units are spelled out ("MB/s" is 10^6 bytes per second). Files a run
leaves behind (e.g. delivered ZIPs) are kept as artifacts for tests, never written to JSON.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

MB = 1_000_000


@dataclass(frozen=True)
class Figure:
    """One measured or derived number: a stable key for JSON, a label for people, a unit."""

    key: str
    label: str
    value: float
    unit: str
    group: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "group": self.group,
        }


@dataclass(frozen=True)
class Params:
    """What every benchmark is told: how many files, how large, in which encoding, whether the
    run is the full one (benchmarks with a scale of their own, such as the ledger's events or the
    sealed file's size, take their small quick scale otherwise), and an empty PostgreSQL database
    for the benchmarks that also measure one ("" skips that part)."""

    files: int = 200
    size_bytes: int = 1 << 20
    encoding: str = "cp932"
    postgres_url: str = ""
    full: bool = True
    #: The daemon's `[gateway] check_processes` where a benchmark runs one (None: the default).
    check_processes: int | None = None

    def __post_init__(self) -> None:
        if self.files < 1:
            raise ValueError("files must be at least 1")
        if self.size_bytes < 4096:
            raise ValueError("size must be at least 4096 bytes")
        if self.encoding not in ("cp932", "utf-8"):
            raise ValueError("encoding must be cp932 or utf-8")
        if self.check_processes is not None and not 0 <= self.check_processes <= 64:
            raise ValueError("check processes must be in [0, 64]")


@dataclass(frozen=True)
class Result:
    """A benchmark's figures in the order they should be read."""

    name: str
    parameters: dict[str, Any]
    figures: tuple[Figure, ...]
    notes: tuple[str, ...] = ()
    artifacts: tuple[Path, ...] = field(default=(), compare=False)

    def figure(self, key: str) -> Figure:
        """Raises: KeyError when the benchmark produced no figure with this key."""
        for fig in self.figures:
            if fig.key == key:
                return fig
        raise KeyError(key)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parameters": self.parameters,
            "figures": [f.as_dict() for f in self.figures],
            "notes": list(self.notes),
        }


def merged(runs: Sequence[Result]) -> Result:
    """One result of several runs of one benchmark (`--repeat`): each figure the median of its
    runs, and beside each ratio (unit ×) its lowest and highest, so a reader sees how far one
    run may stray on a shared machine; the parameters, notes and artifacts of the first run."""
    first = runs[0]
    if len(runs) == 1:
        return first
    figures = []
    for fig in first.figures:
        values = [f.value for r in runs for f in r.figures if f.key == fig.key]
        figures.append(replace(fig, value=statistics.median(values)))
        if fig.unit == "×":
            indent = " " * (len(fig.label) - len(fig.label.lstrip()) + 2)
            figures += [Figure(f"{fig.key}.lowest", f"{indent}lowest of {len(values)} runs",
                               min(values), fig.unit, fig.group),
                        Figure(f"{fig.key}.highest", f"{indent}highest of {len(values)} runs",
                               max(values), fig.unit, fig.group)]
    return Result(
        name=first.name,
        parameters={**first.parameters, "runs": len(runs)},
        figures=tuple(figures),
        notes=(f"each figure is the median of {len(runs)} runs, one after the other; each "
               "ratio's lowest and highest follow it", *first.notes),
        artifacts=first.artifacts,
    )


def rate(amount: float, seconds: float) -> float:
    """amount per second; a zero duration (coarse clock) counts as one nanosecond."""
    return amount / max(seconds, 1e-9)


class BenchError(RuntimeError):
    """The run did not do what it measures (e.g. a transfer was rejected): no figures."""
