"""Work claims (gateway.state.claims): who acts on a transfer or holding now, and until when.

A worker claims a row before any side effect and finishes with a transition only it may make;
an expired lease is taken over. Both columns are nullable, so every existing row is unclaimed.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TABLES = ("transfers", "holdings")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("claimed_by", sa.String(), nullable=True))
        op.add_column(table, sa.Column("lease_until_ns", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        op.drop_column(table, "lease_until_ns")
        op.drop_column(table, "claimed_by")
