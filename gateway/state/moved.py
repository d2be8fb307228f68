"""The state database's record of what the recorder moved into the ledger.

One row per event the gateway appended (key, seq, leaf hash) until a signed checkpoint covers
it, and one row saying from which ledger size the record is kept (`since`: the events before
it were written by a version that kept no record). `gateway.evidence.ledger_guard` compares the
ledger with it. Its tables are in `gateway.state.schema`; it never touches the ledger.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import Connection, delete, select

from gateway.state import schema
from gateway.state.store import Store, insert_ignoring

_M = schema.LEDGER_MOVED
_S = schema.LEDGER_MOVED_SINCE
_begun: weakref.WeakKeyDictionary[Store, int] = weakref.WeakKeyDictionary()


def begin(store: Store, ledger_size: Callable[[], int]) -> int:
    """The first time ever, note the ledger's size; return that size.

    Called before this process moves any event, so the first process of a new version notes
    the size before it appends: every later event is then one the record must explain.

    Raises:
        StorageError: the state database cannot be written.
    """
    if store in _begun:
        return _begun[store]
    with store.transaction() as conn:
        size = conn.execute(select(_S.c.size).where(_S.c.id == 1)).scalar()
        if size is None:
            # Ignoring a clash: of two processes starting at once, the first to commit sets it.
            conn.execute(insert_ignoring(conn, _S), [{"id": 1, "size": ledger_size()}])
            size = conn.execute(select(_S.c.size).where(_S.c.id == 1)).scalar_one()
    _begun[store] = int(size)
    return int(size)


def record(conn: Connection, rows: Iterable[tuple[str, int, bytes]]) -> None:
    """Note moved events (key, seq, leaf hash) in the caller's transaction."""
    values = [{"key": k, "seq": s, "leaf_hash": h} for k, s, h in rows]
    if values:
        conn.execute(insert_ignoring(conn, _M), values)


def lookup(store: Store, keys: Sequence[str]) -> dict[str, tuple[int, bytes]]:
    """(seq, leaf hash) of each of these keys that the record holds.

    Raises:
        StorageError: the state database cannot be read.
    """
    out: dict[str, tuple[int, bytes]] = {}
    with store.transaction() as conn:
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
    with store.transaction() as conn:
        conn.execute(delete(_M).where(_M.c.seq < covered))
