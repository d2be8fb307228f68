"""The daemons that share this state database and when each last said it was alive.

Named gateway_nodes: the ledger, which may live in the same PostgreSQL database, already has a
table called nodes (its Merkle tree).

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
        "gateway_nodes",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("started_ns", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_ns", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_nodes")
