"""Every table of the state database, in one place: transfers and their approvals, events
waiting for the ledger, holdings (保有データ) with their links, terms, certificates, copies and
keys, and the onward guard's fingerprints (再提供の禁止).

Table and column names are those of release 0.1, whose databases must keep opening; the
Alembic revisions in gateway/state/migrations create and change them (gateway.state.migrate),
and must give exactly these tables. No query lives here.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from gateway.state.lifecycles import HoldingState, State

KEY_BYTES = 32  # a holding key: AES-256


# -- outbound: transfers and their witnesses (立会者) ----------------------------------------


class Transfer(SQLModel, table=True):
    """One outbound file from drop to delivery."""

    __tablename__ = "transfers"
    # The lists' order (`transfers list`: the latest first), overall and in one state.
    __table_args__ = (
        Index("ix_transfers_created", "created_ns", "id"),
        Index("ix_transfers_state_created", "state", "created_ns", "id"),
    )
    id: str = Field(primary_key=True)
    agreement: str = Field(index=True)
    flow: str
    recipient: str
    state: str = Field(index=True)
    provider: str = ""
    file_name: str
    source_path: str
    owner: str | None = None
    sender: str | None = None
    size: int | None = Field(default=None, sa_column=Column(BigInteger))
    sha256: str | None = None
    encoding: str | None = None
    rows: int | None = None
    reasons: str = "[]"
    sealed_sha256: str | None = None
    sealed_size: int | None = Field(default=None, sa_column=Column(BigInteger))
    delivered_path: str | None = None
    password_path: str | None = None
    attempts: int = 0
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    # JSON of the last failed delivery attempt (rule, message, hint, attempts, final); added to
    # older databases by Alembic revision 0004 (gateway/state/migrations).
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    # A worker's claim (gateway.state.claims): who acts on it now, and until when.
    claimed_by: str | None = None
    lease_until_ns: int | None = Field(default=None, sa_column=Column(BigInteger))

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


class Approval(SQLModel, table=True):
    """A witness's signature over a transfer's statement (立会者の承認)."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("transfer_id", "witness"),)
    id: int | None = Field(default=None, primary_key=True)
    transfer_id: str = Field(index=True)
    witness: str
    fingerprint: str
    sha256: str
    signature: str
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class TransferLink(SQLModel, table=True):
    """An outbound transfer's link to what it answers (疑義照会・回答) or corrects (訂正), fixed
    before approval."""

    __tablename__ = "transfer_links"
    transfer: str = Field(primary_key=True)
    relation: str  # "replies_to" or "corrects"
    ref: str  # what was named here: a holding id or one of our transfer ids
    remote: str  # the transfer id both gateways know it by
    ref_flow: str
    operator: str
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class PendingEvent(SQLModel, table=True):
    """An event committed with its state change, not yet appended to the ledger."""

    __tablename__ = "pending_events"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    kind: str
    time_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    subject: str | None = None
    agreement: str | None = None
    actor: str | None = None
    data: str = "{}"


# -- inbound: holdings (保有データ) until certified deleted or returned (消去・返却) ------------


class Holding(SQLModel, table=True):
    """One received file and the terms it is held under."""

    __tablename__ = "holdings"
    # The lists' order (`holdings list`: the latest first), overall and in one state.
    __table_args__ = (
        Index("ix_holdings_created", "created_ns", "id"),
        Index("ix_holdings_state_created", "state", "created_ns", "id"),
    )
    id: str = Field(primary_key=True)
    state: str = Field(index=True)
    agreement: str | None = Field(default=None, index=True)
    flow: str | None = None
    provider: str | None = None
    recipient: str | None = None
    transfer: str | None = Field(default=None, index=True)  # the provider's transfer id
    delivered_name: str
    file_name: str | None = None
    profile: str | None = None
    size: int | None = Field(default=None, sa_column=Column(BigInteger))
    sha256: str | None = None
    sealed_size: int | None = Field(default=None, sa_column=Column(BigInteger))
    sealed_sha256: str | None = None
    manifest_sha256: str | None = None
    sender: str | None = None
    witnesses: str = "[]"
    handlers: str = "[]"  # designated receiving handlers (受信担当) when it was received
    received_on: str | None = None
    deadline: str | None = None  # the last day it may be kept (policies.retention)
    replies_to: str | None = None  # the transfer id this one answers (疑義照会・回答)
    corrects: str | None = None  # the transfer id this one corrects (訂正)
    superseded_by: str | None = None  # the holding of a correction to this one
    applied_ns: int | None = Field(default=None, sa_column=Column(BigInteger))
    reasons: str = "[]"
    reminded: str = "[]"  # reminder days already recorded
    overdue_ns: int | None = Field(default=None, sa_column=Column(BigInteger))
    openings: int = 0
    erased_ns: int | None = Field(default=None, sa_column=Column(BigInteger))
    inbox: str = "{}"  # the names it arrived under: manifest, sealed, password
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    claimed_by: str | None = None  # a worker's claim, as on transfers
    lease_until_ns: int | None = Field(default=None, sa_column=Column(BigInteger))

    @property
    def status(self) -> HoldingState:
        return HoldingState(self.state)

    def names(self, column: str) -> list[str]:
        value = json.loads(getattr(self, column))
        return [str(v) for v in value] if isinstance(value, list) else []

    def reason_list(self) -> list[dict[str, Any]]:
        value = json.loads(self.reasons)
        return value if isinstance(value, list) else []


class TermsAcceptance(SQLModel, table=True):
    """A designated receiving handler's signature over the recipient's obligations."""

    __tablename__ = "terms_acceptances"
    __table_args__ = (UniqueConstraint("agreement", "handler", "terms_sha256"),)
    id: int | None = Field(default=None, primary_key=True)
    agreement: str = Field(index=True)
    handler: str
    terms_sha256: str
    statement: str
    signature: str
    fingerprint: str
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class Certificate(SQLModel, table=True):
    """A signed certificate of deletion, return or an applied correction (証明)."""

    __tablename__ = "holding_certificates"
    __table_args__ = (UniqueConstraint("holding", "kind"),)
    id: int | None = Field(default=None, primary_key=True)
    holding: str = Field(index=True)
    kind: str  # "deleted", "returned" or "applied"
    handler: str
    method: str
    signed_on: str
    statement: str
    signature: str
    fingerprint: str
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class HoldingCopy(SQLModel, table=True):
    """A plaintext copy the gateway wrote into a handler's folder (removed when certified)."""

    __tablename__ = "holding_copies"
    id: int | None = Field(default=None, primary_key=True)
    holding: str = Field(index=True)
    handler: str
    path: str
    request_sha256: str = Field(unique=True)  # a signed open request is used once
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    removed_ns: int | None = Field(default=None, sa_column=Column(BigInteger))


class HoldingKey(SQLModel, table=True):
    """The key of one holding's encrypted copy; deleting the row erases the copy (暗号化消去)."""

    __tablename__ = "holding_keys"
    holding: str = Field(primary_key=True)
    key: bytes = Field(sa_column=Column(LargeBinary(KEY_BYTES), nullable=False))
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


# -- the onward guard (再提供の禁止): keyed fingerprints of received rows ------------------------


class OnwardSource(SQLModel, table=True):
    """Received data whose rows were fingerprinted: a holding, the agreement and flow it came
    under, and the party holding it (保有者). Ids only; never a value from the file."""

    __tablename__ = "onward_sources"
    id: int | None = Field(default=None, primary_key=True)
    holding: str = Field(unique=True)
    agreement: str = Field(index=True)
    flow: str
    holder: str
    rows: int = 0
    skipped: int = 0
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


class RowFingerprint(SQLModel, table=True):
    """One keyed fingerprint (HMAC-SHA256/128) of a received row, and the source it came in.

    The primary key starts with the fingerprint, so it is the index lookups use; without rowid
    (SQLite) the table is that index, and a row seen twice in one holding is stored once.
    """

    __tablename__ = "onward_fingerprints"
    __table_args__ = {"sqlite_with_rowid": False}
    fp: bytes = Field(sa_column=Column(LargeBinary(16), primary_key=True))
    source: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))


class FingerprintKeyCheck(SQLModel, table=True):
    """The key check value of the key the stored fingerprints were made with (not the key)."""

    __tablename__ = "onward_key_check"
    id: int = Field(default=1, primary_key=True)
    check_value: str
    created_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


# -- several nodes: the daemons sharing one state database (revision 0002) --------------------


class GatewayNode(SQLModel, table=True):
    """A daemon (node) and its last heartbeat (the ledger's own tables, which may share the
    PostgreSQL database, are all named ledger_*)."""

    __tablename__ = "nodes"
    id: str = Field(primary_key=True)  # [gateway] node_name, or HOST:PID
    version: str
    started_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    heartbeat_ns: int = Field(sa_column=Column(BigInteger, nullable=False))


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


class MovedEvent(SQLModel, table=True):
    """An event the recorder appended and no signed checkpoint covers yet."""

    __tablename__ = "ledger_moved"
    key: str = Field(primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class MovedSince(SQLModel, table=True):
    """The ledger's size when this record began (one row, written once)."""

    __tablename__ = "ledger_moved_since"
    id: int = Field(default=1, primary_key=True)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))



TRANSFERS = _table(Transfer)
APPROVALS = _table(Approval)
LINKS = _table(TransferLink)
PENDING = _table(PendingEvent)
HOLDINGS = _table(Holding)
TERMS = _table(TermsAcceptance)
CERTIFICATES = _table(Certificate)
COPIES = _table(HoldingCopy)
KEYS = _table(HoldingKey)
ONWARD_SOURCES = _table(OnwardSource)
FINGERPRINTS = _table(RowFingerprint)
KEY_CHECK = _table(FingerprintKeyCheck)
LEDGER_MOVED = _table(MovedEvent)
LEDGER_MOVED_SINCE = _table(MovedSince)
NODES = _table(GatewayNode)

#: Release 0.1's tables (revision 0001).
TABLES: tuple[Table, ...] = (
    TRANSFERS,
    APPROVALS,
    LINKS,
    PENDING,
    HOLDINGS,
    TERMS,
    CERTIFICATES,
    COPIES,
    KEYS,
    ONWARD_SOURCES,
    FINGERPRINTS,
    KEY_CHECK,
)
#: Every table of this release: 0.1's, then those revisions 0002 and 0003 add.
ALL_TABLES: tuple[Table, ...] = (*TABLES, NODES, LEDGER_MOVED, LEDGER_MOVED_SINCE)
#: Indexes added after release 0.1 for the paged lists (Alembic revision 0006).
LATER_INDEXES: tuple[str, ...] = (
    "ix_transfers_created",
    "ix_transfers_state_created",
    "ix_holdings_created",
    "ix_holdings_state_created",
)


# -- fan-outs (revision 0007) ---------------------------------------------------------------------
# A received file split by 地方公共団体コード into one child transfer per member of a party group
# (gateway.forwarding): the parent holding, and each child with its member, rows and digest.
# Plain tables on the same metadata: rows hold ids, counts and hashes, never a row of data.

FANOUTS = Table(
    "fanouts",
    SQLModel.metadata,
    Column("id", Text, primary_key=True),
    Column("holding", Text, nullable=False, index=True),
    Column("agreement", Text, nullable=False),
    Column("flow", Text, nullable=False),
    Column("grp", Text, nullable=False),  # the party group split among
    Column("split_by", Text, nullable=False),  # the code column
    Column("parent_sha256", Text, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("withheld", Text, nullable=False),  # JSON: {reason: count}
    Column("created_by", Text, nullable=True),
    Column("created_ns", BigInteger, nullable=False),
)
FANOUT_CHILDREN = Table(
    "fanout_children",
    SQLModel.metadata,
    Column("transfer", Text, primary_key=True),
    Column("fanout", Text, nullable=False, index=True),
    Column("member", Text, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    UniqueConstraint("fanout", "member", name="uq_fanout_children_member"),
)
ALL_TABLES = (*ALL_TABLES, FANOUTS, FANOUT_CHILDREN)
