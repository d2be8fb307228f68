"""Bringing a state database of an earlier release up to the current tables, in place.

`upgrade` adds the columns a later release introduced (today: the claim columns of transfers
and holdings) to tables that already exist; it is idempotent and never drops or rewrites data.
It is the one place such steps live, so each can become a migration revision as it stands.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, inspect

from gateway.state import schema

log = logging.getLogger(__name__)

#: (table, column) added since release 0.1; every one nullable, so old rows stay valid. Types
#: come from `schema`, so an upgraded table reads exactly as a new one (SQLite keeps the text).
ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("transfers", "claimed_by"),
    ("transfers", "lease_until_ns"),
    ("holdings", "claimed_by"),
    ("holdings", "lease_until_ns"),
)
_TABLES = {t.name: t for t in schema.TABLES}


def upgrade(conn: Connection) -> int:
    """Add every column of ADDED_COLUMNS its table lacks; return how many were added.

    Run inside the transaction that creates the tables (under the write lock), so two processes
    opening one old database never both add a column.
    """
    inspector = inspect(conn)
    added = 0
    for table, column in ADDED_COLUMNS:
        if not inspector.has_table(table):
            continue  # created whole by schema.create, with the column
        present = {c["name"] for c in inspector.get_columns(table)}
        if column in present:
            continue
        type_sql = _TABLES[table].c[column].type.compile(dialect=conn.dialect)
        # Unquoted, as CREATE TABLE writes them: the names are ours, fixed above.
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {type_sql}")
        log.info("state database upgraded: %s.%s added", table, column)
        added += 1
    return added
