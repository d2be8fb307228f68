"""The daemons (nodes) that share this state database and when each last said it was alive.

The ledger, which may live in the same PostgreSQL database, names its tables ledger_*, so its
ledger_nodes (the Merkle tree) and this table do not meet.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("started_ns", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_ns", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("nodes")
