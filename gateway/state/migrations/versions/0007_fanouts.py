"""Fan-outs: a received file split by 地方公共団体コード into one child transfer per member of a
party group (gateway.forwarding), and each child's member, rows and digest.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fanouts",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("holding", sa.Text(), nullable=False),
        sa.Column("agreement", sa.Text(), nullable=False),
        sa.Column("flow", sa.Text(), nullable=False),
        sa.Column("grp", sa.Text(), nullable=False),
        sa.Column("split_by", sa.Text(), nullable=False),
        sa.Column("parent_sha256", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("withheld", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_fanouts_holding", "fanouts", ["holding"])
    op.create_table(
        "fanout_children",
        sa.Column("transfer", sa.Text(), primary_key=True),
        sa.Column("fanout", sa.Text(), nullable=False),
        sa.Column("member", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("fanout", "member", name="uq_fanout_children_member"),
    )
    op.create_index("ix_fanout_children_fanout", "fanout_children", ["fanout"])


def downgrade() -> None:
    op.drop_index("ix_fanout_children_fanout", "fanout_children")
    op.drop_table("fanout_children")
    op.drop_index("ix_fanouts_holding", "fanouts")
    op.drop_table("fanouts")
