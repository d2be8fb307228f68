"""The state database's rows as plain values: a transfer, its approvals, its reply link and an
event waiting for the ledger.

Apart from their tables (gateway.state.schema) so that what reads and writes them without the
database layer (gateway.state.lite, for the short commands) shares them with what does.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.errors import StateError
from gateway.i18n import N_
from gateway.state.lifecycles import TRANSFERS, State

if TYPE_CHECKING:
    from audit.events import Draft

__all__ = ["Approval", "Candidate", "PendingEvent", "Row", "Transfer", "TransferLink"]

_R = TypeVar("_R", bound="Row")


class Row:
    """A row of one table as a plain value: built from a query's mapping, written back whole.

    The three methods are all the state code needs of a row: `model_validate` (from a result
    mapping), `model_dump` (the values to insert) and `model_copy` (a changed copy).
    """

    @classmethod
    def model_validate(cls: type[_R], values: Mapping[str, Any]) -> _R:
        return cls(**values)

    def model_dump(self, *, exclude: Collection[str] = ()) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if f.name not in exclude}

    def model_copy(self: _R, *, update: Mapping[str, Any] | None = None) -> _R:
        return dataclasses.replace(self, **(update or {}))  # type: ignore[type-var]


@dataclass(eq=True)
class Transfer(Row):
    """One outbound file from drop to delivery."""

    id: str
    agreement: str
    flow: str
    recipient: str
    state: str
    file_name: str
    source_path: str
    created_ns: int
    updated_ns: int
    provider: str = ""
    owner: str | None = None
    sender: str | None = None
    size: int | None = None
    sha256: str | None = None
    encoding: str | None = None
    rows: int | None = None
    reasons: str = "[]"
    sealed_sha256: str | None = None
    sealed_size: int | None = None
    delivered_path: str | None = None
    password_path: str | None = None
    attempts: int = 0
    last_error: str | None = None
    claimed_by: str | None = None
    lease_until_ns: int | None = None

    @property
    def status(self) -> State:
        return State(self.state)

    def reason_list(self) -> list[dict[str, Any]]:
        value = json.loads(self.reasons)
        return value if isinstance(value, list) else []

    def last_error_dict(self) -> dict[str, Any] | None:
        """The last failed delivery attempt, or None when no attempt failed."""
        value = json.loads(self.last_error) if self.last_error else None
        return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class Candidate:
    """What the dispatcher needs of a transfer it could claim: which lane its next step is on
    (state, recipient) and whether that step is due (attempts, updated_ns). The worker reads the
    whole row when it takes the step."""

    id: str
    state: str
    recipient: str
    attempts: int
    updated_ns: int

    COLUMNS = ("id", "state", "recipient", "attempts", "updated_ns")

    @property
    def status(self) -> State:
        return State(self.state)


@dataclass(eq=True)
class Approval(Row):
    """A witness's signature over a transfer's statement (立会者の承認)."""

    transfer_id: str
    witness: str
    fingerprint: str
    sha256: str
    signature: str
    created_ns: int
    id: int | None = None


@dataclass(eq=True)
class TransferLink(Row):
    """An outbound transfer's link to what it answers (疑義照会・回答) or corrects (訂正), fixed
    before approval."""

    transfer: str
    relation: str  # "replies_to" or "corrects"
    ref: str  # what was named here: a holding id or one of our transfer ids
    remote: str  # the transfer id both gateways know it by
    ref_flow: str
    operator: str
    created_ns: int


@dataclass(eq=True)
class PendingEvent(Row):
    """An event committed with its state change, not yet appended to the ledger."""

    key: str
    kind: str
    time_ns: int
    id: int | None = None
    subject: str | None = None
    agreement: str | None = None
    actor: str | None = None
    data: str = "{}"


# -- what a move of a transfer writes: one answer for the Store and the sqlite3 path ----------

def transition_values(transfer: Transfer, target: State, events: Sequence[Draft],
                      changes: Mapping[str, Any], *, keep_claim: bool) -> dict[str, Any]:
    """The columns a transition of `transfer` to `target` writes: the changes, the state, the
    claim ended unless kept, and the time of its latest event.

    Raises:
        StateError: when the lifecycle does not allow the move.
    """
    TRANSFERS.require_transition(transfer.status, target)
    values = {**changes, "state": target.value}
    if transfer.claimed_by is not None and not keep_claim:
        values.update(claimed_by=None, lease_until_ns=None)
    if "updated_ns" not in values:
        values["updated_ns"] = max((e.time_ns for e in events), default=transfer.updated_ns)
    return values


def update_values(transfer: Transfer, events: Sequence[Draft],
                  changes: Mapping[str, Any]) -> dict[str, Any]:
    """The columns an update of `transfer`'s fields (not its state) writes."""
    return {**changes,
            "updated_ns": max((e.time_ns for e in events), default=transfer.updated_ns)}


def moved_meanwhile(transfer: Transfer) -> StateError:
    """Another process moved `transfer` after it was read."""
    return StateError(
        N_("transfer {id} changed state while being processed").format(id=transfer.id),
        hint=N_("look again with `tachiai transfers show ID`"),
    )
