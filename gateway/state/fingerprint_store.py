"""Queries on the onward guard's tables (再提供の禁止): received sources, keyed row fingerprints
and the check value of the key they were made with.

Fingerprints and ids in, fingerprints and ids out: it never sees a row, a value or the key;
deciding what a match means is `gateway.exchange.onward_guard`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select

from gateway.errors import InternalError
from gateway.state import schema
from gateway.state.store import Store, Tx

_S = schema.ONWARD_SOURCES
_F = schema.FINGERPRINTS
_K = schema.KEY_CHECK
_IN_CHUNK = 900  # bound parameters per IN (…): under every SQLite's limit of 999


@dataclass(frozen=True)
class Source:
    """Received data whose rows were fingerprinted, and who holds it (保有者)."""

    holding: str
    agreement: str
    flow: str
    holder: str


def key_check(store: Store) -> str | None:
    """The stored check value of the fingerprint key, or None before the first fingerprint.

    Raises:
        StorageError: the database cannot be read.
    """
    with store.reading("read the fingerprint key check") as conn:
        value = conn.execute(select(_K.c.check_value).where(_K.c.id == 1)).scalar()
    return None if value is None else str(value)


def keep_key_check(store: Store, check: str, now_ns: int) -> str:
    """Store `check` unless a check value is stored; return the one stored (the first wins
    when two processes get here at once).

    Raises:
        StorageError: the database cannot be written.
    """
    with store.transaction("write the fingerprint key check") as conn:
        mark = _placeholder(conn)
        conn.exec_driver_sql(
            f"INSERT INTO {_K.name} (id, check_value, created_ns) "  # noqa: S608
            f"VALUES (1, {mark}, {mark}) ON CONFLICT DO NOTHING",
            (check, now_ns),
        )
        return str(conn.execute(select(_K.c.check_value).where(_K.c.id == 1)).scalar())


def source_id(store: Store, source: Source, now_ns: int) -> int:
    """The id of a holding's source row, made on first use.

    Raises:
        InternalError: the holding was remembered under another agreement, flow or holder.
        StorageError: the database cannot be written.
    """
    with store.transaction("write the fingerprint tables") as conn:
        found = conn.execute(select(_S).where(_S.c.holding == source.holding)).mappings().first()
        if found is not None:
            was = Source(source.holding, found["agreement"], found["flow"], found["holder"])
            if was != source:
                raise InternalError(
                    f"holding {source.holding} was remembered under {was.agreement}/{was.flow} "
                    f"held by {was.holder}, not {source.agreement}/{source.flow} held by "
                    f"{source.holder}",
                    hint="a holding id names one received file; this is a bug, please report it",
                )
            return int(found["id"])
        result = conn.execute(
            _S.insert().values(
                holding=source.holding,
                agreement=source.agreement,
                flow=source.flow,
                holder=source.holder,
                created_ns=now_ns,
            )
        )
        primary = result.inserted_primary_key
        assert primary is not None
        return int(primary[0])


def add(store: Store, source: int, fps: Iterable[bytes]) -> None:
    """Store fingerprints of one source in one transaction (ones stored already are skipped).

    Raises:
        StorageError: the database cannot be written.
    """
    # Driver-level SQL on the hot path: SQLAlchemy's per-row parameter processing costs more
    # than SQLite's insert. ON CONFLICT DO NOTHING is the same in SQLite and PostgreSQL.
    with store.transaction("write the fingerprint tables") as conn:
        mark = _placeholder(conn)
        # Only our table name and the driver's marks are in the text; every value is bound.
        insert = f"INSERT INTO {_F.name} (fp, source) VALUES ({mark}, {mark})"  # noqa: S608
        conn.exec_driver_sql(insert + " ON CONFLICT DO NOTHING", [(fp, source) for fp in fps])


def set_counts(store: Store, source: int, rows: int, skipped: int) -> None:
    """Raises: StorageError when the database cannot be written."""
    with store.transaction("write the fingerprint tables") as conn:
        conn.execute(_S.update().where(_S.c.id == source).values(rows=rows, skipped=skipped))


def sources(store: Store) -> dict[int, Source]:
    """Every source, by id (one row per received file: hundreds over the years).

    Raises:
        StorageError: the database cannot be read.
    """
    with store.reading("read the fingerprint tables") as conn:
        found = conn.execute(select(_S.c.id, _S.c.holding, _S.c.agreement, _S.c.flow, _S.c.holder))
        return {int(r[0]): Source(*r[1:]) for r in found}


def lookup(store: Store, wanted: Iterable[bytes]) -> dict[bytes, set[int]]:
    """The sources of every fingerprint in `wanted` that is stored.

    Raises:
        StorageError: the database cannot be read.
    """
    ordered = sorted(set(wanted))
    found: dict[bytes, set[int]] = defaultdict(set)
    with store.reading("read the fingerprint tables") as conn:
        mark = _placeholder(conn)
        for i in range(0, len(ordered), _IN_CHUNK):
            chunk = tuple(ordered[i : i + _IN_CHUNK])
            marks = ",".join([mark] * len(chunk))
            query = f"SELECT fp, source FROM {_F.name} WHERE fp IN ({marks})"  # noqa: S608
            for fp, source in conn.exec_driver_sql(query, chunk):
                found[bytes(fp)].add(int(source))
    return found


def forget(store: Store, holding: str) -> int:
    """Drop a holding's source and fingerprints; how many fingerprints were dropped.

    Raises:
        StorageError: the database cannot be written.
    """
    with store.transaction("write the fingerprint tables") as conn:
        source = conn.execute(select(_S.c.id).where(_S.c.holding == holding)).scalar()
        if source is None:
            return 0
        dropped = conn.execute(delete(_F).where(_F.c.source == source)).rowcount
        conn.execute(delete(_S).where(_S.c.id == source))
    return int(dropped)


def _placeholder(conn: Tx) -> str:
    # The driver's own parameter mark: "?" for sqlite3, "%s" for the PostgreSQL drivers.
    return "?" if conn.dialect.paramstyle in ("qmark", "numeric") else "%s"
