"""The one upgrade of an existing state database that `schema.create` cannot make: the
`transfers.last_error` column (the last failed delivery attempt, as JSON).

Idempotent and additive: it adds the column when it is missing and never changes a row. It is
the body of a future Alembic revision; nothing else here may alter a table.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect, text

from gateway.state import schema


def add_last_error(conn: Connection) -> None:
    """Add `transfers.last_error` (nullable text) to a database made before it existed."""
    table = schema.TRANSFERS.name
    columns = {c["name"] for c in inspect(conn).get_columns(table)}
    if "last_error" not in columns:
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN last_error TEXT"))
