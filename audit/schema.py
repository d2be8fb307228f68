"""The ledger's tables, and the guards that make them append-only (SQLite and PostgreSQL).

Five tables: the events (exact bytes, their leaf hash, and indexed copies of header fields that
verification binds to the bytes), the stored tree nodes, the tree head after each commit, the
signed checkpoints seen, and a little metadata (the log's origin). Nothing here is trusted by a
verifier: every row is checked against the event bytes and the signed checkpoints. On PostgreSQL
it also owns the advisory lock keys every node agrees on (docs/ledger.md, "On PostgreSQL").
"""

from __future__ import annotations

import logging
from typing import Final

from sqlalchemy import (
    TEXT,
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)

log = logging.getLogger(__name__)

metadata = MetaData()

events = Table(
    "ledger_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("key", Text, nullable=False, unique=True),
    Column("time_ns", BigInteger, nullable=False),
    # Byte order on PostgreSQL too: a query by kind family is a range ("transfer." up to
    # "transfer/"), which a locale's collation (that may ignore punctuation) would break.
    # The generic TEXT is the one sqlalchemy.dialects.postgresql exports; naming that module
    # here would load it (and its drivers' modules) at every command's start-up.
    Column(
        "kind", Text().with_variant(TEXT(collation="C"), "postgresql"), nullable=False
    ),
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

# -- PostgreSQL ------------------------------------------------------------------------------
# Advisory lock keys, fixed so that every process and node agrees on them.
WRITER_LOCK_KEY: Final = 128047082170729  # appends: one total order (transaction lock)
SCHEMA_LOCK_KEY: Final = int.from_bytes(b"tcai:ddl")  # creating tables and guards
SIGNER_LOCK_KEY: Final = int.from_bytes(b"tcai:sig")  # the one checkpoint signer (session lock)

# One writer at a time: taken first in every append transaction, released at its end.
POSTGRES_WRITER_LOCK: Final = f"SELECT pg_advisory_xact_lock({WRITER_LOCK_KEY})"
# One creator at a time: `Ledger.create` from several processes at once would otherwise race on
# the catalog rows of the guard function and triggers ("tuple concurrently updated").
POSTGRES_SCHEMA_LOCK: Final = f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})"

POSTGRES_GUARD_FUNCTION: Final = (
    # No "%" placeholders: the driver would take them for parameters.
    "CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"RAISE EXCEPTION USING MESSAGE = '{APPEND_ONLY_MESSAGE}: ' || TG_OP || ' on ' || "
    "TG_TABLE_NAME || ' refused', ERRCODE = 'insufficient_privilege'; END $$"
)

# (table, trigger, DDL): row triggers refuse UPDATE and DELETE, a statement trigger TRUNCATE.
# Each is then set ENABLE ALWAYS, so it fires even with session_replication_role = replica.
POSTGRES_TRIGGERS: Final = tuple(
    (
        t.name,
        f"{t.name}_{suffix}",
        f"CREATE TRIGGER {t.name}_{suffix} BEFORE {ops} ON {t.name} "
        f"FOR EACH {each} EXECUTE FUNCTION ledger_append_only()",
    )
    for t in TABLES
    for suffix, ops, each in (
        ("append_only", "UPDATE OR DELETE", "ROW"),
        ("no_truncate", "TRUNCATE", "STATEMENT"),
    )
)


def create_postgres_guards(conn: Connection) -> None:
    """Create the missing append-only guards and make each fire always (schema lock held).

    Only what is missing is created, so a role that does not own the tables (the daemon's,
    after the REVOKE of docs/ledger.md) connects without needing to own them.
    """
    if conn.exec_driver_sql("SELECT to_regprocedure('ledger_append_only()')").scalar() is None:
        conn.exec_driver_sql(POSTGRES_GUARD_FUNCTION)
    state = {
        str(name): str(enabled)
        for name, enabled in conn.exec_driver_sql(
            "SELECT t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal AND pg_table_is_visible(c.oid) AND c.relname = ANY(%s)",
            ([t.name for t in TABLES],),
        )
    }
    for table, trigger, ddl in POSTGRES_TRIGGERS:
        if trigger not in state:
            conn.exec_driver_sql(ddl)
        elif state[trigger] == "D":
            log.warning("the append-only guard %s was disabled; enabling it again", trigger)
        if state.get(trigger) != "A":
            # ALWAYS: a guard that fires in every session_replication_role, not only "origin".
            conn.exec_driver_sql(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}")


def postgres_daemon_grants(role: str) -> tuple[str, ...]:
    """The grants for the daemon's role when another role owns the tables (docs/ledger.md).

    The owner can drop a trigger; a role that only reads and inserts cannot, nor update,
    delete or truncate a row. `role` must be a plain SQL identifier.

    Raises:
        ValueError: when `role` is not a plain identifier.
    """
    if not role.isidentifier() or not role.isascii():
        raise ValueError(f"{role!r} is not a plain SQL role name")
    names = ", ".join(t.name for t in TABLES)
    return (
        f"REVOKE ALL ON {names} FROM PUBLIC",
        f"REVOKE ALL ON {names} FROM {role}",
        f"GRANT SELECT, INSERT ON {names} TO {role}",
        f"GRANT USAGE ON SEQUENCE ledger_checkpoints_id_seq TO {role}",
    )
