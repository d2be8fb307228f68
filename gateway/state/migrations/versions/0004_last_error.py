"""`transfers.last_error`: the last failed delivery attempt (rule, words, next step) as JSON,
shown by `transfers show` and `list --json`. Additive; no row changes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("transfers", sa.Column("last_error", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("transfers", "last_error")
