"""The ledger's tables, and the guards that make them append-only (SQLite and PostgreSQL).

Five tables: the events (exact bytes, their leaf hash, and indexed copies of header fields that
verification binds to the bytes), the stored tree nodes, the tree head after each commit, the
signed checkpoints seen, and a little metadata (the log's origin). Nothing here is trusted by a
verifier: every row is checked against the event bytes and the signed checkpoints.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)

metadata = MetaData()

events = Table(
    "ledger_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("key", Text, nullable=False, unique=True),
    Column("time_ns", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    # "" stands for none, as in the event bytes, so every column has one exact spelling.
    Column("subject", Text, nullable=False, server_default=""),
    Column("agreement", Text, nullable=False, server_default=""),
    Column("actor", Text, nullable=False, server_default=""),
    Column("body", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary, nullable=False),
    Index("ix_ledger_events_agreement_time", "agreement", "time_ns"),
    Index("ix_ledger_events_actor_time", "actor", "time_ns"),
    Index("ix_ledger_events_kind_time", "kind", "time_ns"),
    Index("ix_ledger_events_subject", "subject", "seq"),
    Index("ix_ledger_events_time", "time_ns"),
)

# Interior nodes at levels 8, 16, 24, … (audit.tiles): (level, index) → hash.
nodes = Table(
    "ledger_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
)

# The frontier after each commit, so a writer resumes in O(log n); verified like the rest.
heads = Table(
    "ledger_heads",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("frontier", LargeBinary, nullable=False),
    Column("time_ns", BigInteger, nullable=False),
)

# Signed checkpoints (C2SP signed notes), exactly as signed. Copies also live outside.
checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("size", BigInteger, nullable=False, index=True),
    Column("time_ns", BigInteger, nullable=False),
    Column("note", Text, nullable=False),
)

meta = Table(
    "ledger_meta",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

TABLES: Final = (events, nodes, heads, checkpoints, meta)
APPEND_ONLY_MESSAGE: Final = "the ledger is append-only"

SQLITE_GUARDS: Final = tuple(
    f"CREATE TRIGGER IF NOT EXISTS {t.name}_no_{op.lower()} BEFORE {op} ON {t.name} "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
    for t in TABLES
    for op in ("UPDATE", "DELETE")
)

# PostgreSQL (run by a later issue): row triggers refuse UPDATE and DELETE, a statement
# trigger refuses TRUNCATE. The gateway's role should also lack UPDATE/DELETE/TRUNCATE grants.
POSTGRES_GUARDS: Final = (
    "CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END $$",
    *(
        f"CREATE OR REPLACE TRIGGER {t.name}_append_only BEFORE UPDATE OR DELETE ON {t.name} "
        "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
        for t in TABLES
    ),
    *(
        f"CREATE OR REPLACE TRIGGER {t.name}_no_truncate BEFORE TRUNCATE ON {t.name} "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
        for t in TABLES
    ),
)

# One writer at a time on PostgreSQL: a transaction-scoped advisory lock ("tachiai" in ASCII).
POSTGRES_WRITER_LOCK: Final = "SELECT pg_advisory_xact_lock(128047082170729)"
