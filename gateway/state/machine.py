"""The one state-machine helper: a table of allowed transitions, and a compare-and-set move of a
row's `state` column, used alike by transfers and holdings (保有データ).

It knows no particular lifecycle (those are in `gateway.state.lifecycles`) and never moves a
row that another process moved since it was read.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from gateway.errors import StateError
from gateway.i18n import N_

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table, Update

S = TypeVar("S", bound=StrEnum)


class Machine(Generic[S]):
    """The allowed transitions of one kind of thing (`what`: "transfer", "holding")."""

    def __init__(self, what: str, allowed: Mapping[S, frozenset[S]], hint: str) -> None:
        missing = [s for s in allowed for t in allowed[s] if t not in allowed]
        if missing:
            raise ValueError(f"the {what} lifecycle names states it does not list: {missing}")
        self.what = what
        self.allowed: Mapping[S, frozenset[S]] = dict(allowed)
        self.hint = hint
        self.terminal: frozenset[S] = frozenset(s for s, nxt in allowed.items() if not nxt)

    def require_transition(self, current: S, target: S) -> None:
        """Raises: StateError when `target` cannot follow `current`."""
        if target not in self.allowed[current]:
            raise StateError(
                N_("a {what} in state {value} cannot become {value2}").format(
                    what=self.what, value=current.value, value2=target.value),
                hint=self.hint,
            )


def compare_and_set(
    conn: Connection,
    table: Table,
    row_id: str,
    read_state: str,
    values: Mapping[str, Any],
    conflict: StateError,
    *,
    claimant: str | None = None,
) -> None:
    """Write `values` to the row `row_id` only if it is still in `read_state` (and, given a
    `claimant`, still claimed by it: a worker whose lease was taken over moves nothing).

    Raises:
        StateError: `conflict`, when another process moved or removed the row meanwhile.
    """
    params = {"w_id": row_id, "w_state": read_state,
              **{f"v_{name}": value for name, value in values.items()}}
    if claimant is not None:
        params["w_claimant"] = claimant
    result = conn.execute(_update(table, tuple(values), claimant is not None), params)
    if result.rowcount != 1:
        raise conflict


@functools.lru_cache(maxsize=256)
def _update(table: Table, columns: tuple[str, ...], claimed: bool) -> Update:
    """`compare_and_set`'s UPDATE of `columns`, built once per table, set of columns and
    claimant or none (a step's move writes the same columns each time), its values parameters.
    """
    # Imported here: the lifecycles (and so every row) import this module, and the short
    # commands on SQLite read and write without the database layer (gateway.state.lite).
    from sqlalchemy import bindparam, update

    where = [table.c.id == bindparam("w_id"), table.c.state == bindparam("w_state")]
    if claimed:
        where.append(table.c.claimed_by == bindparam("w_claimant"))
    return update(table).where(*where).values({name: bindparam(f"v_{name}") for name in columns})
