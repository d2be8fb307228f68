"""Every table of the state database, in one place: transfers and their approvals, events
waiting for the ledger, holdings (保有データ) with their links, terms, certificates, copies and
keys, and the onward guard's fingerprints (再提供の禁止).

Table and column names are those of release 0.1, whose databases must keep opening; the
Alembic revisions in gateway/state/migrations create and change them (gateway.state.migrate),
and must give exactly these tables. No query lives here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from gateway.state.lifecycles import HoldingState
from gateway.state.rows import Approval as Approval
from gateway.state.rows import PendingEvent as PendingEvent
from gateway.state.rows import Row
from gateway.state.rows import Transfer as Transfer
from gateway.state.rows import TransferLink as TransferLink

KEY_BYTES = 32  # a holding key: AES-256

METADATA = MetaData()

def _s(name: str, *, nullable: bool = False, **kw: Any) -> Column[Any]:
    """A text column as release 0.1 made it (VARCHAR without a length)."""
    return Column(name, String(), nullable=nullable, **kw)


def _big(name: str, *, nullable: bool = True, **kw: Any) -> Column[Any]:
    return Column(name, BigInteger(), nullable=nullable, **kw)


def _int(name: str, *, nullable: bool = False, **kw: Any) -> Column[Any]:
    return Column(name, Integer(), nullable=nullable, **kw)


# -- outbound: transfers and their witnesses (立会者) ----------------------------------------


TRANSFERS = Table(
    "transfers", METADATA,
    _s("id", primary_key=True),
    _s("agreement", index=True),
    _s("flow"),
    _s("recipient"),
    _s("state", index=True),
    _s("provider", default=""),
    _s("file_name"),
    _s("source_path"),
    _s("owner", nullable=True),
    _s("sender", nullable=True),
    _big("size"),
    _s("sha256", nullable=True),
    _s("encoding", nullable=True),
    _int("rows", nullable=True),
    _s("reasons", default="[]"),
    _s("sealed_sha256", nullable=True),
    _big("sealed_size"),
    _s("delivered_path", nullable=True),
    _s("password_path", nullable=True),
    _int("attempts", default=0),
    _big("created_ns", nullable=False),
    _big("updated_ns", nullable=False),
    # JSON of the last failed delivery attempt (rule, message, hint, attempts, final); added to
    # older databases by Alembic revision 0004 (gateway/state/migrations).
    Column("last_error", Text()),
    # A worker's claim (gateway.state.claims): who acts on it now, and until when.
    _s("claimed_by", nullable=True),
    _big("lease_until_ns"),
    # The lists' order (`transfers list`: the latest first), overall and in one state.
    Index("ix_transfers_created", "created_ns", "id"),
    Index("ix_transfers_state_created", "state", "created_ns", "id"),
    # The duplicate notice: the deliveries of the same bytes (revision 0009).
    Index("ix_transfers_sha256", "sha256"),
)


APPROVALS = Table(
    "approvals", METADATA,
    _int("id", primary_key=True),
    _s("transfer_id", index=True),
    _s("witness"),
    _s("fingerprint"),
    _s("sha256"),
    _s("signature"),
    _big("created_ns", nullable=False),
    UniqueConstraint("transfer_id", "witness"),
)


LINKS = Table(
    "transfer_links", METADATA,
    _s("transfer", primary_key=True),
    _s("relation"),
    _s("ref"),
    _s("remote"),
    _s("ref_flow"),
    _s("operator"),
    _big("created_ns", nullable=False),
)


PENDING = Table(
    "pending_events", METADATA,
    _int("id", primary_key=True),
    _s("key", unique=True),
    _s("kind"),
    _big("time_ns", nullable=False),
    _s("subject", nullable=True),
    _s("agreement", nullable=True),
    _s("actor", nullable=True),
    _s("data", default="{}"),
)


# -- inbound: holdings (保有データ) until certified deleted or returned (消去・返却) ------------


HOLDINGS = Table(
    "holdings", METADATA,
    _s("id", primary_key=True),
    _s("state", index=True),
    _s("agreement", nullable=True, index=True),
    _s("flow", nullable=True),
    _s("provider", nullable=True),
    _s("recipient", nullable=True),
    _s("transfer", nullable=True, index=True),
    _s("delivered_name"),
    _s("file_name", nullable=True),
    _s("profile", nullable=True),
    _big("size"),
    _s("sha256", nullable=True),
    _big("sealed_size"),
    _s("sealed_sha256", nullable=True),
    _s("manifest_sha256", nullable=True),
    _s("sender", nullable=True),
    _s("witnesses", default="[]"),
    _s("handlers", default="[]"),
    _s("received_on", nullable=True),
    _s("deadline", nullable=True),
    _s("replies_to", nullable=True),
    _s("corrects", nullable=True),
    _s("superseded_by", nullable=True),
    _big("applied_ns"),
    _s("reasons", default="[]"),
    _s("reminded", default="[]"),
    _big("overdue_ns"),
    _int("openings", default=0),
    _big("erased_ns"),
    _s("inbox", default="{}"),
    _big("created_ns", nullable=False),
    _big("updated_ns", nullable=False),
    _s("claimed_by", nullable=True),
    _big("lease_until_ns"),
    # The lists' order (`holdings list`: the latest first), overall and in one state.
    Index("ix_holdings_created", "created_ns", "id"),
    Index("ix_holdings_state_created", "state", "created_ns", "id"),
)


@dataclass(eq=True)
class Holding(Row):
    """One received file and the terms it is held under."""

    __table__: ClassVar[Table] = HOLDINGS
    id: str
    state: str
    delivered_name: str
    created_ns: int
    updated_ns: int
    agreement: str | None = None
    flow: str | None = None
    provider: str | None = None
    recipient: str | None = None
    transfer: str | None = None  # the provider's transfer id
    file_name: str | None = None
    profile: str | None = None
    size: int | None = None
    sha256: str | None = None
    sealed_size: int | None = None
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
    applied_ns: int | None = None
    reasons: str = "[]"
    reminded: str = "[]"  # reminder days already recorded
    overdue_ns: int | None = None
    openings: int = 0
    erased_ns: int | None = None
    inbox: str = "{}"  # the names it arrived under: manifest, sealed, password
    claimed_by: str | None = None  # a worker's claim, as on transfers
    lease_until_ns: int | None = None

    @property
    def status(self) -> HoldingState:
        return HoldingState(self.state)

    def names(self, column: str) -> list[str]:
        value = json.loads(getattr(self, column))
        return [str(v) for v in value] if isinstance(value, list) else []

    def reason_list(self) -> list[dict[str, Any]]:
        value = json.loads(self.reasons)
        return value if isinstance(value, list) else []


TERMS = Table(
    "terms_acceptances", METADATA,
    _int("id", primary_key=True),
    _s("agreement", index=True),
    _s("handler"),
    _s("terms_sha256"),
    _s("statement"),
    _s("signature"),
    _s("fingerprint"),
    _big("created_ns", nullable=False),
    UniqueConstraint("agreement", "handler", "terms_sha256"),
)



CERTIFICATES = Table(
    "holding_certificates", METADATA,
    _int("id", primary_key=True),
    _s("holding", index=True),
    _s("kind"),
    _s("handler"),
    _s("method"),
    _s("signed_on"),
    _s("statement"),
    _s("signature"),
    _s("fingerprint"),
    _big("created_ns", nullable=False),
    UniqueConstraint("holding", "kind"),
)


@dataclass(eq=True)
class Certificate(Row):
    """A signed certificate of deletion, return or an applied correction (証明)."""

    __table__: ClassVar[Table] = CERTIFICATES
    holding: str
    kind: str  # "deleted", "returned" or "applied"
    handler: str
    method: str
    signed_on: str
    statement: str
    signature: str
    fingerprint: str
    created_ns: int
    id: int | None = None


COPIES = Table(
    "holding_copies", METADATA,
    _int("id", primary_key=True),
    _s("holding", index=True),
    _s("handler"),
    _s("path"),
    _s("request_sha256", unique=True),  # a signed open request is used once
    _big("created_ns", nullable=False),
    _big("removed_ns"),
)



KEYS = Table(
    "holding_keys", METADATA,
    _s("holding", primary_key=True),
    Column("key", LargeBinary(KEY_BYTES), nullable=False),
    _big("created_ns", nullable=False),
)



# -- the onward guard (再提供の禁止): keyed fingerprints of received rows ------------------------


ONWARD_SOURCES = Table(
    "onward_sources", METADATA,
    _int("id", primary_key=True),
    _s("holding", unique=True),
    _s("agreement", index=True),
    _s("flow"),
    _s("holder"),
    _int("rows", default=0),
    _int("skipped", default=0),
    _big("created_ns", nullable=False),
)



# One keyed fingerprint (HMAC-SHA256/128) of a received row, and the source it came in. The
# primary key starts with the fingerprint, so it is the index lookups use; without rowid
# (SQLite) the table is that index, and a row seen twice in one holding is stored once.
FINGERPRINTS = Table(
    "onward_fingerprints", METADATA,
    Column("fp", LargeBinary(16), primary_key=True),
    Column("source", Integer, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)

# The key check value of the key the stored fingerprints were made with (not the key).
KEY_CHECK = Table(
    "onward_key_check", METADATA,
    _int("id", primary_key=True, default=1),
    _s("check_value"),
    _big("created_ns", nullable=False),
)


# -- several nodes: the daemons sharing one state database (revision 0002) --------------------

# A daemon (node) and its last heartbeat (the ledger's own tables, which may share the
# PostgreSQL database, are all named ledger_*).
NODES = Table(
    "nodes", METADATA,
    _s("id", primary_key=True),  # [gateway] node_name, or HOST:PID
    _s("version"),
    _big("started_ns", nullable=False),
    _big("heartbeat_ns", nullable=False),
)

# An event the recorder appended and no signed checkpoint covers yet.
LEDGER_MOVED = Table(
    "ledger_moved", METADATA,
    _s("key", primary_key=True),
    _big("seq", nullable=False, index=True),
    Column("leaf_hash", LargeBinary(32), nullable=False),
)

# The ledger's size when this record began (one row, written once).
LEDGER_MOVED_SINCE = Table(
    "ledger_moved_since", METADATA,
    _int("id", primary_key=True, default=1),
    _big("size", nullable=False),
)

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
    METADATA,
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
    METADATA,
    Column("transfer", Text, primary_key=True),
    Column("fanout", Text, nullable=False, index=True),
    Column("member", Text, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    UniqueConstraint("fanout", "member", name="uq_fanout_children_member"),
)
ALL_TABLES = (*ALL_TABLES, FANOUTS, FANOUT_CHILDREN)  # revision 0007


# -- approvals set aside (revision 0008) -------------------------------------------------------
# A witness's approval that stopped counting because a transfer with the same bytes was delivered
# after it was given (its statement gained a duplicate-of line: gateway.outbound.reapproval).
# Moved here from `approvals`, never deleted: the witness may approve the new statement, and an
# auditor sees what was given, when, and why it no longer counts.

APPROVALS_SET_ASIDE = Table(
    "approvals_set_aside",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("transfer_id", Text, nullable=False, index=True),
    Column("witness", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("signature", Text, nullable=False),
    Column("created_ns", BigInteger, nullable=False),  # when it was given
    Column("set_aside_ns", BigInteger, nullable=False),
    Column("rule", Text, nullable=False),  # why it stopped counting
    Column("duplicate_of", Text, nullable=True),  # the transfer delivered meanwhile
)
ALL_TABLES = (*ALL_TABLES, APPROVALS_SET_ASIDE)  # revision 0008
