"""The keys of holdings' encrypted copies (`holding_keys`), and their destruction (暗号化消去):
deleted with `secure_delete` on, then the WAL checkpointed and truncated.

It stores and deletes keys it is given; making them and using them is `gateway.inbound.erasure`.
It never logs or records a key.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import delete, select

from gateway.state import schema
from gateway.state.dberrors import converted
from gateway.state.store import Store, Tx

_K = schema.KEYS


def put(store: Store, holding: str, key: bytes, now_ns: int) -> None:
    """Keep `key` for `holding`, replacing (and overwriting) one left by an interrupted intake.

    Raises:
        StorageError: the database cannot be written.
    """
    with store.transaction("write the key table") as conn:
        _secure_delete(conn)  # a replaced key is erased too
        conn.execute(delete(_K).where(_K.c.holding == holding))
        conn.execute(_K.insert().values(holding=holding, key=key, created_ns=now_ns))


def get(store: Store, holding: str) -> bytes | None:
    """The key of a holding's copy, or None once it was destroyed.

    Raises:
        StorageError: the database cannot be read.
    """
    with store.reading("read the key table") as conn:
        value = conn.execute(select(_K.c.key).where(_K.c.holding == holding)).scalar()
    return bytes(value) if value is not None else None


def destroy(store: Store, holding: str) -> bool:
    """Delete the key with `secure_delete` on; whether there was one.

    `secure_delete` makes SQLite overwrite the deleted row with zeros in the page it rewrites;
    `truncate_wal` then empties the WAL, which still holds the page as it was.

    Raises:
        StorageError: the database cannot be written.
    """
    with store.transaction("delete a key") as conn:
        _secure_delete(conn)
        return bool(conn.execute(delete(_K).where(_K.c.holding == holding)).rowcount == 1)


def truncate_wal(store: Store) -> bool:
    """PRAGMA wal_checkpoint(TRUNCATE) outside any transaction; False when readers held it.

    Raises:
        StorageError: the checkpoint failed (the key row is gone either way).
    """
    if store.engine.dialect.name != "sqlite":
        return True  # PostgreSQL: no WAL file of ours; see docs/receiving.md
    with converted("checkpoint the state database"):
        raw = store.engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            row = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            raw.close()
    return bool(row is not None and row[0] == 0)


def _secure_delete(conn: Tx) -> None:
    # SQLite only: PostgreSQL has no such setting (an old row version lasts until VACUUM; see
    # docs/receiving.md).
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete = ON")
