"""Approvals set aside: a witness's approval that stopped counting because the same bytes were
delivered on the flow after it was given (gateway.outbound.reapproval), kept with when and why.
Additive; no row changes.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvals_set_aside",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("transfer_id", sa.Text(), nullable=False),
        sa.Column("witness", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("set_aside_ns", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("duplicate_of", sa.Text(), nullable=True),
    )
    op.create_index("ix_approvals_set_aside_transfer_id", "approvals_set_aside",
                    ["transfer_id"])


def downgrade() -> None:
    op.drop_index("ix_approvals_set_aside_transfer_id", "approvals_set_aside")
    op.drop_table("approvals_set_aside")
