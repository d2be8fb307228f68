"""The state database's record of what the recorder moved into the ledger.

One row per event the gateway appended (key, seq, leaf hash) until a signed checkpoint covers
it, and one row saying from which ledger size the record is kept (`since`: the events before
it were written by a version that kept no record). `gateway.evidence.ledger_guard` compares the
ledger with it. Its tables are in `gateway.state.schema`; it never touches the ledger.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from gateway.state.lite import LiteStore

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from gateway.state.store import Store

_begun: weakref.WeakKeyDictionary[Store, int] = weakref.WeakKeyDictionary()


def begin(store: Store, ledger_size: Callable[[], int]) -> int:
    """The first time ever, note the ledger's size; return that size.

    Called before this process moves any event, so the first process of a new version notes
    the size before it appends: every later event is then one the record must explain.

    Raises:
        StorageError: the state database cannot be written.
    """
    if isinstance(store, LiteStore):
        return store.moved_begin(ledger_size)
    if store in _begun:
        return _begun[store]
    from sqlalchemy import select

    from gateway.state import schema
    from gateway.state.store import insert_ignoring

    _S = schema.LEDGER_MOVED_SINCE
    with store.transaction() as conn:
        size = conn.execute(select(_S.c.size).where(_S.c.id == 1)).scalar()
        if size is None:
            # Ignoring a clash: of two processes starting at once, the first to commit sets it.
            conn.execute(insert_ignoring(conn, _S), [{"id": 1, "size": ledger_size()}])
            size = conn.execute(select(_S.c.size).where(_S.c.id == 1)).scalar_one()
    _begun[store] = int(size)
    return int(size)


def record(conn: Connection | sqlite3.Connection, rows: Iterable[tuple[str, int, bytes]]) -> None:
    """Note moved events (key, seq, leaf hash) in the caller's transaction (a sqlite3
    connection of gateway.state.lite, or the Store's)."""
    if isinstance(conn, sqlite3.Connection):
        LiteStore.moved_record(conn, rows)
        return
    from gateway.state import schema
    from gateway.state.store import insert_ignoring

    values = [{"key": k, "seq": s, "leaf_hash": h} for k, s, h in rows]
    if values:
        conn.execute(insert_ignoring(conn, schema.LEDGER_MOVED), values)


def lookup(store: Store, keys: Sequence[str]) -> dict[str, tuple[int, bytes]]:
    """(seq, leaf hash) of each of these keys that the record holds.

    Raises:
        StorageError: the state database cannot be read.
    """
    from sqlalchemy import select

    from gateway.state import schema

    _M = schema.LEDGER_MOVED
    out: dict[str, tuple[int, bytes]] = {}
    # A read (it never takes the write lock the workers' steps wait for): its snapshot begins
    # at its first read, after whatever the caller read before, as the guard's order needs.
    with store.reading("read the record of moved events") as conn:
        for i in range(0, len(keys), 500):
            query = select(_M.c.key, _M.c.seq, _M.c.leaf_hash).where(
                _M.c.key.in_(keys[i : i + 500]))
            out.update({str(k): (int(s), bytes(h)) for k, s, h in conn.execute(query)})
    return out


def prune(store: Store, covered: int) -> None:
    """Forget the events a signed checkpoint of `covered` events covers.

    Raises:
        StorageError: the state database cannot be written.
    """
    from sqlalchemy import delete

    from gateway.state import schema

    with store.transaction() as conn:
        conn.execute(delete(schema.LEDGER_MOVED).where(schema.LEDGER_MOVED.c.seq < covered))
