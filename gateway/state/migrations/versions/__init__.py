"""Alembic revisions of the state database, oldest first (0001 is release 0.1's schema)."""
