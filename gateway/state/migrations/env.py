"""Alembic's environment for the state database: runs the revisions on the connection that
`gateway.state.migrate` opened and locked, inside its transaction.

It never opens a connection of its own and never commits: the caller's transaction (holding
the migration lock) commits every revision at once, or none.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("the state migrations run only through gateway.state.migrate")
# transactional_ddl: SQLite and PostgreSQL both roll DDL back with the transaction, so a
# failed upgrade leaves the database as it was.
context.configure(connection=connection, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
