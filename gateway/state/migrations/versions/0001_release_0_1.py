"""Release 0.1's schema: every table and index as 0.1 created them.

Frozen here (not read from `gateway.state.schema`, which moves on with later revisions). Each
table is created only when missing: release 0.1 created some tables lazily, so one of its
databases may hold a few of them; `gateway.state.migrate` runs this revision on such a database
after checking that the tables it does hold are 0.1's.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_S = sa.String
_BIG = sa.BigInteger
_INT = sa.Integer


def _tables() -> sa.MetaData:
    meta = sa.MetaData()
    sa.Table(
        "transfers",
        meta,
        sa.Column("id", _S(), primary_key=True),
        sa.Column("agreement", _S(), nullable=False, index=True),
        sa.Column("flow", _S(), nullable=False),
        sa.Column("recipient", _S(), nullable=False),
        sa.Column("state", _S(), nullable=False, index=True),
        sa.Column("provider", _S(), nullable=False),
        sa.Column("file_name", _S(), nullable=False),
        sa.Column("source_path", _S(), nullable=False),
        sa.Column("owner", _S()),
        sa.Column("sender", _S()),
        sa.Column("size", _BIG()),
        sa.Column("sha256", _S()),
        sa.Column("encoding", _S()),
        sa.Column("rows", _INT()),
        sa.Column("reasons", _S(), nullable=False),
        sa.Column("sealed_sha256", _S()),
        sa.Column("sealed_size", _BIG()),
        sa.Column("delivered_path", _S()),
        sa.Column("password_path", _S()),
        sa.Column("attempts", _INT(), nullable=False),
        sa.Column("created_ns", _BIG(), nullable=False),
        sa.Column("updated_ns", _BIG(), nullable=False),
    )
    sa.Table(
        "approvals",
        meta,
        sa.Column("id", _INT(), primary_key=True),
        sa.Column("transfer_id", _S(), nullable=False, index=True),
        sa.Column("witness", _S(), nullable=False),
        sa.Column("fingerprint", _S(), nullable=False),
        sa.Column("sha256", _S(), nullable=False),
        sa.Column("signature", _S(), nullable=False),
        sa.Column("created_ns", _BIG(), nullable=False),
        sa.UniqueConstraint("transfer_id", "witness"),
    )
    sa.Table(
        "transfer_links",
        meta,
        sa.Column("transfer", _S(), primary_key=True),
        sa.Column("relation", _S(), nullable=False),
        sa.Column("ref", _S(), nullable=False),
        sa.Column("remote", _S(), nullable=False),
        sa.Column("ref_flow", _S(), nullable=False),
        sa.Column("operator", _S(), nullable=False),
        sa.Column("created_ns", _BIG(), nullable=False),
    )
    sa.Table(
        "pending_events",
        meta,
        sa.Column("id", _INT(), primary_key=True),
        sa.Column("key", _S(), nullable=False, unique=True),
        sa.Column("kind", _S(), nullable=False),
        sa.Column("time_ns", _BIG(), nullable=False),
        sa.Column("subject", _S()),
        sa.Column("agreement", _S()),
        sa.Column("actor", _S()),
        sa.Column("data", _S(), nullable=False),
    )
    sa.Table(
        "holdings",
        meta,
        sa.Column("id", _S(), primary_key=True),
        sa.Column("state", _S(), nullable=False, index=True),
        sa.Column("agreement", _S(), index=True),
        sa.Column("flow", _S()),
        sa.Column("provider", _S()),
        sa.Column("recipient", _S()),
        sa.Column("transfer", _S(), index=True),
        sa.Column("delivered_name", _S(), nullable=False),
        sa.Column("file_name", _S()),
        sa.Column("profile", _S()),
        sa.Column("size", _BIG()),
        sa.Column("sha256", _S()),
        sa.Column("sealed_size", _BIG()),
        sa.Column("sealed_sha256", _S()),
        sa.Column("manifest_sha256", _S()),
        sa.Column("sender", _S()),
        sa.Column("witnesses", _S(), nullable=False),
        sa.Column("handlers", _S(), nullable=False),
        sa.Column("received_on", _S()),
        sa.Column("deadline", _S()),
        sa.Column("replies_to", _S()),
        sa.Column("corrects", _S()),
        sa.Column("superseded_by", _S()),
        sa.Column("applied_ns", _BIG()),
        sa.Column("reasons", _S(), nullable=False),
        sa.Column("reminded", _S(), nullable=False),
        sa.Column("overdue_ns", _BIG()),
        sa.Column("openings", _INT(), nullable=False),
        sa.Column("erased_ns", _BIG()),
        sa.Column("inbox", _S(), nullable=False),
        sa.Column("created_ns", _BIG(), nullable=False),
        sa.Column("updated_ns", _BIG(), nullable=False),
    )
    sa.Table(
        "terms_acceptances",
        meta,
        sa.Column("id", _INT(), primary_key=True),
        sa.Column("agreement", _S(), nullable=False, index=True),
        sa.Column("handler", _S(), nullable=False),
        sa.Column("terms_sha256", _S(), nullable=False),
        sa.Column("statement", _S(), nullable=False),
        sa.Column("signature", _S(), nullable=False),
        sa.Column("fingerprint", _S(), nullable=False),
        sa.Column("created_ns", _BIG(), nullable=False),
        sa.UniqueConstraint("agreement", "handler", "terms_sha256"),
    )
    sa.Table(
        "holding_certificates",
        meta,
        sa.Column("id", _INT(), primary_key=True),
        sa.Column("holding", _S(), nullable=False, index=True),
        sa.Column("kind", _S(), nullable=False),
        sa.Column("handler", _S(), nullable=False),
        sa.Column("method", _S(), nullable=False),
        sa.Column("signed_on", _S(), nullable=False),
        sa.Column("statement", _S(), nullable=False),
        sa.Column("signature", _S(), nullable=False),
        sa.Column("fingerprint", _S(), nullable=False),
        sa.Column("created_ns", _BIG(), nullable=False),
        sa.UniqueConstraint("holding", "kind"),
    )
    sa.Table(
        "holding_copies",
        meta,
        sa.Column("id", _INT(), primary_key=True),
        sa.Column("holding", _S(), nullable=False, index=True),
        sa.Column("handler", _S(), nullable=False),
        sa.Column("path", _S(), nullable=False),
        sa.Column("request_sha256", _S(), nullable=False, unique=True),
        sa.Column("created_ns", _BIG(), nullable=False),
        sa.Column("removed_ns", _BIG()),
    )
    sa.Table(
        "holding_keys",
        meta,
        sa.Column("holding", _S(), primary_key=True),
        sa.Column("key", sa.LargeBinary(32), nullable=False),
        sa.Column("created_ns", _BIG(), nullable=False),
    )
    sa.Table(
        "onward_sources",
        meta,
        sa.Column("id", _INT(), primary_key=True),
        sa.Column("holding", _S(), nullable=False, unique=True),
        sa.Column("agreement", _S(), nullable=False, index=True),
        sa.Column("flow", _S(), nullable=False),
        sa.Column("holder", _S(), nullable=False),
        sa.Column("rows", _INT(), nullable=False),
        sa.Column("skipped", _INT(), nullable=False),
        sa.Column("created_ns", _BIG(), nullable=False),
    )
    sa.Table(
        "onward_fingerprints",
        meta,
        sa.Column("fp", sa.LargeBinary(16), primary_key=True),
        sa.Column("source", _INT(), primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    sa.Table(
        "onward_key_check",
        meta,
        sa.Column("id", _INT(), primary_key=True),
        sa.Column("check_value", _S(), nullable=False),
        sa.Column("created_ns", _BIG(), nullable=False),
    )
    return meta


#: Every table of release 0.1 and its columns, in order: what `gateway.state.migrate` compares
#: an unversioned database with before it accepts it as 0.1's.
RELEASE_0_1 = {name: [c.name for c in t.columns] for name, t in _tables().tables.items()}


def upgrade() -> None:
    # checkfirst: a table 0.1 already made is left as it is, rows and all.
    _tables().create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    raise NotImplementedError("release 0.1's schema is the first; there is nothing below it")
