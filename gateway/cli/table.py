"""Human tables for the terminal: a header, columns aligned by display width, so that names in
Japanese (two columns per character) line up with Latin ones.

Printing only. Widths come from `wcwidth` (Unicode East Asian Width); a control character, which
has no width, is shown escaped rather than allowed to move the cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from gateway.i18n import _

_UNITS = ("B", "kB", "MB", "GB", "TB")


def width(text: str) -> int:
    """The columns `text` takes on a terminal."""
    found = _wcswidth()(text)
    return found if found >= 0 else len(text)


@cache
def _wcswidth() -> Callable[[str], int]:
    # Imported when a table is first drawn: `wcwidth` is a tenth of a short command's start-up.
    from wcwidth import wcswidth

    return wcswidth


def cell(value: object) -> str:
    """A value as one printable line: "-" for nothing, control characters escaped."""
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    text = str(value)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def size(n: int | None) -> str:
    """Bytes for people: 950 B, 12.3 kB, 4.0 MB (powers of 1000, as file managers show)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in _UNITS:
        if value < 1000 or unit == _UNITS[-1]:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def when(iso: str | None) -> str:
    """An ISO 8601 time (JST) as "2026-12-03 22:10"."""
    return "-" if not iso else iso[:16].replace("T", " ")


def render(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "") -> str:
    """The table as text: the header, a rule, one line per row; every column padded to the
    widest cell by display width, the last one left ragged."""
    cells = [[cell(h) for h in headers], *[[cell(v) for v in row] for row in rows]]
    widths = [max(width(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        padded = [c + " " * (widths[i] - width(c)) for i, c in enumerate(row[:-1])]
        lines.append((indent + "  ".join([*padded, row[-1]])).rstrip())
        if n == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def transfer_row(r: Mapping[str, Any]) -> list[object]:
    """A line of `transfers list` from its JSON object: the first reason's rule and place."""
    reasons = r["reasons"]
    reason = "-"
    if reasons:
        first = reasons[0]
        words = {"row": _("row {row}"), "column": _("column {column}")}
        place = " ".join(words[k].format(**{k: first[k]}) for k in ("row", "column") if k in first)
        more = f" (+{len(reasons) - 1})" if len(reasons) > 1 else ""
        reason = f"{first['rule']}{_(' at {place}').format(place=place) if place else ''}{more}"
    return [r["id"], r["state"], f"{r['agreement']}/{r['flow']}", r["file_name"], size(r["size"]),
            r["sender"], r["approvals"], when(r["updated"]), reason]


def holding_row(r: Mapping[str, Any]) -> list[object]:
    """A line of `holdings list` from its JSON object, with its flags."""
    flags = [f for f, on in ((_("OVERDUE"), r["overdue"]), (_("superseded"), r["superseded_by"]),
                             (_("correction to apply"), r["correction_pending"])) if on]
    return [r["id"], r["state"], f"{r['agreement'] or '-'}/{r['flow'] or '-'}",
            r["file_name"] or r["delivered_name"], size(r["size"]), r["received_on"],
            r["deadline"], flags]
