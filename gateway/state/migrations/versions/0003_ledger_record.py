"""The record of what the recorder moved into the ledger (gateway.state.moved): one row per
event appended and not yet covered by a signed checkpoint, and the ledger size when the record
began. The daemon refuses to start on a ledger event this record cannot explain.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_moved",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_index("ix_ledger_moved_seq", "ledger_moved", ["seq"])
    op.create_table(
        "ledger_moved_since",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_moved_since")
    op.drop_index("ix_ledger_moved_seq", "ledger_moved")
    op.drop_table("ledger_moved")
