"""Reasons: why a decision came out the way it did, in the agreement's own terms.

A reason names a stable rule id, the term of the agreement it applies (so the ledger and the
handling report (取扱状況の報告) can cite it), the clause of the 確認書 that term comes from, a
place (row, column) and what to do next. It never holds the data itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reason:
    """One cause of a decision: a rejection, a refusal, a withholding or a late provision.

    `term` is "AGREEMENT-ID/KEY" (e.g. "isa-nhi-status-loss/scope"), stable across versions of
    the file; `clause` is where the signed text says it (e.g. "記 1(3) 情報提供の条件").
    """

    rule: str
    message: str
    term: str | None = None
    row: int | None = None
    column: str | None = None
    clause: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "message": self.message}
        for key in ("term", "row", "column", "clause"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reason:
        return cls(
            rule=str(data["rule"]),
            message=str(data["message"]),
            term=data.get("term"),
            row=data.get("row"),
            column=data.get("column"),
            clause=data.get("clause"),
        )

    def __str__(self) -> str:
        place = []
        if self.row is not None:
            place.append(f"row {self.row}")
        if self.column is not None:
            place.append(f"column {self.column}")
        where = f" at {', '.join(place)}" if place else ""
        cite = ""
        if self.term:
            cite = f" [term: {self.term}{'; ' + self.clause if self.clause else ''}]"
        return f"{self.rule}{where}: {self.message}{cite}"


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: accepted only when there is no reason against it.

    `notices` are decisions that do not stop the transfer but must be recorded with their term
    (rows withheld under the delegation scope, a catch-up provision). `applied` lists the terms
    the acceptance relied on, so an accepted transfer cites its terms as a rejected one does.
    `facts` holds counts and the like, never values from the file.
    """

    reasons: tuple[Reason, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)
    notices: tuple[Reason, ...] = ()
    applied: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return not self.reasons

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary for the ledger: no cell value is in any part of it."""
        return {
            "accepted": self.accepted,
            "reasons": [r.as_dict() for r in self.reasons],
            "notices": [n.as_dict() for n in self.notices],
            "applied": list(self.applied),
            "facts": dict(self.facts),
        }
