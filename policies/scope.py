"""The delegation scope (委任状による提供範囲) applied to rows: covered, or not provided.

Seed 000 記1(3): only rows of municipalities that filed a 委任状, from the day they filed it.
Given an agreement, a flow and one row's cells, decide whether the row may go; the caller
rejects the file or withholds the row as the agreement says. Pure: it reads cells it is given,
keeps nothing, and its reasons carry counts and row numbers, never a value.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass

from policies.agreement import Agreement, Dataset, Flow
from policies.dates import parse_date
from policies.delegations import DelegationRegistry
from policies.reasons import Reason
from policies.terms import Scope
from policies.wording import R_

__all__ = ["ScopeRule", "scope_rule"]


@dataclass(frozen=True)
class ScopeRule:
    """The scope of one flow, ready to apply to rows of its dataset."""

    agreement: Agreement
    scope: Scope
    registry: DelegationRegistry
    code_index: int
    date_index: int | None

    @property
    def split(self) -> bool:
        return self.scope.outside == "split"

    def covered(self, cells: tuple[str, ...], on: dt.date) -> bool:
        """Whether the row's municipality is covered; a row whose code or date cannot be read
        is not (fail closed — its value check has already said why)."""
        code = unicodedata.normalize("NFKC", cells[self.code_index]).strip()
        day = on
        if self.date_index is not None:
            try:
                day = parse_date(cells[self.date_index])
            except ValueError:
                return False
        return self.registry.covers(code, day)

    def outside_reason(self, row: int) -> Reason:
        """The rejection of one uncovered row (outside = "reject")."""
        return self.agreement.reason(
            "scope.not-delegated",
            (R_("this row is for a municipality that had not filed a 委任状 (delegation) on the "
                "date of the row; the agreement covers only municipalities in the delegation "
                "registry — remove the row") if self.date_index is not None else
             R_("this row is for a municipality that had not filed a 委任状 (delegation) on the "
                "day of provision; the agreement covers only municipalities in the delegation "
                "registry — remove the row")),
            "scope",
            row=row,
            column=self.scope.column,
        )

    def withheld_notice(self, withheld: int, rows: int) -> Reason:
        """The record of rows withheld (outside = "split"): a count, never the rows."""
        return self.agreement.reason(
            "scope.withheld",
            R_("{withheld} of {rows} rows are for municipalities outside the delegation "
               "registry (委任状) and were withheld; only covered rows are provided",
               withheld=withheld, rows=rows),
            "scope",
            column=self.scope.column,
        )


def scope_rule(agreement: Agreement, flow: Flow, dataset: Dataset) -> ScopeRule | Reason | None:
    """The scope rule for this flow: None when no scope applies to it, a Reason when one
    applies but cannot be judged (no registry loaded, or the dataset lacks the column)."""
    scope = agreement.scope
    if scope is None or flow.id not in scope.flows:
        return None
    if agreement.delegations is None:
        # Fail closed: without the registry no row can be shown to be covered.
        return agreement.reason(
            "scope.no-registry",
            R_("the delegation registry ({registry}) is not loaded, "
               "so no row can be shown to be covered; the administrator must install it beside "
               "the agreement", registry=scope.registry),
            "scope",
        )
    names = [unicodedata.normalize("NFKC", c).strip() for c in dataset.header]
    try:
        code_index = names.index(unicodedata.normalize("NFKC", scope.column).strip())
        date_index = (
            names.index(unicodedata.normalize("NFKC", scope.date_column).strip())
            if scope.date_column
            else None
        )
    except ValueError:
        return agreement.reason(
            "scope.column",
            R_("the dataset has no column the scope names; correct the agreement file"),
            "scope.column",
        )
    return ScopeRule(agreement, scope, agreement.delegations, code_index, date_index)
