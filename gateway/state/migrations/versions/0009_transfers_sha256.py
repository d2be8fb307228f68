"""An index on a transfer's SHA-256, so the duplicate notice (gateway.outbound.duplicates) finds
the deliveries of the same bytes without reading every delivered transfer. Additive.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_transfers_sha256", "transfers", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_transfers_sha256", "transfers")
