"""Reasons: why a decision came out the way it did, in the agreement's own terms.

A reason names a stable rule id, the term of the agreement it applies (so the ledger and the
handling report can cite it), a place (row, column) and what to do next. It never holds the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reason:
    """One cause of a rejection or a refusal."""

    rule: str
    message: str
    term: str | None = None
    row: int | None = None
    column: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "message": self.message}
        if self.term is not None:
            out["term"] = self.term
        if self.row is not None:
            out["row"] = self.row
        if self.column is not None:
            out["column"] = self.column
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reason:
        return cls(
            rule=str(data["rule"]),
            message=str(data["message"]),
            term=data.get("term"),
            row=data.get("row"),
            column=data.get("column"),
        )

    def __str__(self) -> str:
        place = []
        if self.row is not None:
            place.append(f"row {self.row}")
        if self.column is not None:
            place.append(f"column {self.column}")
        where = f" at {', '.join(place)}" if place else ""
        cite = f" [term: {self.term}]" if self.term else ""
        return f"{self.rule}{where}: {self.message}{cite}"


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: accepted only when there is no reason against it."""

    reasons: tuple[Reason, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return not self.reasons
