"""Indexes for the paged lists (`transfers list`, `holdings list`: the latest first, overall
and in one state), so a list reads only the rows it shows.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_transfers_created", "transfers", ["created_ns", "id"]),
    ("ix_transfers_state_created", "transfers", ["state", "created_ns", "id"]),
    ("ix_holdings_created", "holdings", ["created_ns", "id"]),
    ("ix_holdings_state_created", "holdings", ["state", "created_ns", "id"]),
)


def upgrade() -> None:
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(_INDEXES):
        op.drop_index(name, table)
