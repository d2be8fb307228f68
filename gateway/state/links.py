"""Queries on reply links (疑義照会・回答, 訂正): what an outbound transfer answers or corrects.

Rows in, rows out; which links are allowed is decided in `gateway.outbound.replies`. A link,
once written, is never changed or removed here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from gateway.state.lite import LiteStore
from gateway.state.rows import TransferLink

if TYPE_CHECKING:
    from sqlalchemy import Select

    from gateway.state.store import Store, Tx


def link_of(store: Store, transfer_id: str) -> TransferLink | None:
    """The link fixed for an outbound transfer, or None. A read of its own: it may be called
    while another connection holds the write lock.

    Raises:
        StorageError: the state database cannot be read.
    """
    if isinstance(store, LiteStore):
        found = store.link_row(transfer_id)
        return TransferLink.model_validate(found) if found is not None else None
    with store.reading("read the reply links") as conn:
        row = conn.execute(_link_of(), {"transfer": transfer_id}).mappings().first()
    return TransferLink.model_validate(dict(row)) if row is not None else None


def links_to(store: Store, refs: Iterable[str]) -> list[TransferLink]:
    """Outbound links that name any of `refs` (a holding id or a transfer id), oldest first.

    Raises:
        StorageError: the state database cannot be read.
    """
    from sqlalchemy import select

    from gateway.state import schema

    _L = schema.LINKS
    wanted = list(refs)
    with store.reading("read the reply links") as conn:
        named = _L.c.ref.in_(wanted) | _L.c.remote.in_(wanted)
        rows = conn.execute(select(_L).where(named).order_by(_L.c.created_ns)).mappings()
        return [TransferLink.model_validate(dict(r)) for r in rows]


@functools.cache
def _link_of() -> Select[Any]:
    """`link_of`'s query, built once (the transfer as a parameter): every statement made reads
    it. Built at its first use, as the short commands never load the database layer."""
    from sqlalchemy import bindparam, select

    from gateway.state import schema

    return select(schema.LINKS).where(schema.LINKS.c.transfer == bindparam("transfer"))


def add(conn: Tx, link: TransferLink) -> None:
    """Write a link (a transfer already linked fails: StateError)."""
    from gateway.state import schema

    conn.execute(schema.LINKS.insert().values(**link.model_dump()))
