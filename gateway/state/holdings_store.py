"""Queries on holdings (保有データ) and what hangs off them: the plaintext copies released to
handlers (開封), their signed terms (提供先の義務) and certificates (証明).

Rows in, rows out: what a holding may do is decided in `gateway.inbound`; this module only reads
and writes, compare-and-set on the state a holding was read in. It holds names, ids and hashes,
never personal data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy import update as sql_update

from audit.events import Draft
from gateway.errors import NotFound, StateError
from gateway.i18n import N_
from gateway.state import claims, schema
from gateway.state.lifecycles import HOLDINGS, HoldingState
from gateway.state.machine import compare_and_set
from gateway.state.schema import Holding
from gateway.state.store import Store, Tx

_H = schema.HOLDINGS
_COPIES = schema.COPIES
_CERTS = schema.CERTIFICATES
_TERMS = schema.TERMS


def get(store: Store, holding_id: str) -> Holding:
    """Raises: NotFound when there is no such holding; StorageError when unreadable."""
    with store.reading("read holdings") as conn:
        row = conn.execute(select(_H).where(_H.c.id == holding_id)).mappings().first()
    if row is None:
        raise NotFound(
            N_("no holding {id}").format(id=repr(holding_id)),
            hint=N_("list holdings with `tachiai holdings list`"),
        )
    return Holding.model_validate(dict(row))


def find(
    store: Store,
    *,
    states: Iterable[HoldingState] | None = None,
    transfer: str | None = None,
    unerased: bool = False,
) -> list[Holding]:
    """Holdings, oldest first, optionally in some states, of one provider transfer id, or
    (`unerased`) only those whose copies are not yet erased.

    Raises:
        StorageError: the state database cannot be read.
    """
    query = select(_H).order_by(_H.c.created_ns, _H.c.id)
    if states is not None:
        query = query.where(_H.c.state.in_([s.value for s in states]))
    if transfer is not None:
        query = query.where(_H.c.transfer == transfer)
    if unerased:
        query = query.where(_H.c.erased_ns.is_(None))
    with store.reading("read holdings") as conn:
        return [Holding.model_validate(dict(r)) for r in conn.execute(query).mappings()]


def latest(
    store: Store,
    *,
    states: Iterable[HoldingState] | None = None,
    since_ns: int | None = None,
    limit: int | None = None,
) -> tuple[list[Holding], int]:
    """The latest `limit` holdings (every one when None), optionally in some states and
    created at or after `since_ns`, oldest first; and how many earlier ones also match.

    Raises:
        StorageError: the state database cannot be read.
    """
    where: list[ColumnElement[bool]] = []
    if states is not None:
        where.append(_H.c.state.in_([s.value for s in states]))
    if since_ns is not None:
        where.append(_H.c.created_ns >= since_ns)
    query = select(_H).where(*where).order_by(_H.c.created_ns.desc(), _H.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with store.reading("read holdings") as conn:
        page = [Holding.model_validate(dict(r)) for r in conn.execute(query).mappings()]
        total = len(page)
        if limit is not None and total == limit:
            total = int(conn.execute(select(func.count()).select_from(_H).where(*where))
                        .scalar_one())
    page.reverse()
    return page, total - len(page)


def create(store: Store, holding: Holding, events: Sequence[Draft] = ()) -> None:
    """Insert a new holding with its events.

    Raises:
        StorageError: the state database cannot be written.
        StateError: a holding with this id exists.
    """
    with store.transaction("record a holding") as conn:
        conn.execute(_H.insert(), [holding.model_dump()])
        store.record(events, conn)


def create_arrival(store: Store, holding: Holding, still_there: Callable[[], bool]) -> bool:
    """Record the intake of one inbox delivery (`holding.delivered_name`), unless a worker or
    node took it in first; True when this one did (see `Store.create_intake`, its outbound
    twin: on PostgreSQL an advisory lock keyed on the delivery holds it for the transaction).

    Raises:
        StorageError: the state database cannot be written.
    """
    with store.transaction("record a holding") as conn:
        claims.entry_claim(conn, f"inbox:{holding.delivered_name}")
        taken = conn.execute(
            select(_H.c.id)
            .where(_H.c.delivered_name == holding.delivered_name,
                   _H.c.state == HoldingState.ARRIVING.value)
            .limit(1)
        ).first()
        if taken is not None or not still_there():
            return False
        conn.execute(_H.insert(), [holding.model_dump()])
    return True


def update(
    store: Store,
    h: Holding,
    values: Mapping[str, Any],
    events: Sequence[Draft],
    conn: Tx | None = None,
) -> Holding:
    """Write `values` to a holding still in the state it was read in (compare-and-set), with
    its events. A new `state` in `values` must be one `h`'s state may move to.

    Raises:
        StateError: the move is not allowed, or another process moved the holding meanwhile.
        StorageError: the state database cannot be written.
    """
    if "state" in values:
        HOLDINGS.require_transition(h.status, HoldingState(values["state"]))
    if conn is None:
        with store.transaction("update a holding") as own:
            return update(store, h, values, events, own)
    compare_and_set(
        conn,
        _H,
        h.id,
        h.state,
        values,
        StateError(
            N_("holding {id} changed while being processed").format(id=h.id),
            hint=N_("look again with `tachiai holdings show ID`"),
        ),
        claimant=h.claimed_by,  # a holding read with a claim moves only while it is ours
    )
    store.record(events, conn)
    return h.model_copy(update=dict(values))


def remove_arrival(store: Store, h: Holding, conn: Tx) -> None:
    """Delete a holding row still in the state it was read in (a repeated delivery's)."""
    conn.execute(_H.delete().where(_H.c.id == h.id, _H.c.state == h.state))


# -- plaintext copies released to handlers (開封) -------------------------------------------


def request_used(store: Store, request_sha256: str) -> bool:
    """Whether a signed open request (by its SHA-256) released a copy before.

    Raises:
        StorageError: the state database cannot be read.
    """
    with store.reading("read the opened copies") as conn:
        query = select(_COPIES.c.id).where(_COPIES.c.request_sha256 == request_sha256)
        return conn.execute(query).first() is not None


def add_copy(
    conn: Tx, holding: str, handler: str, path: str, request_sha256: str, now_ns: int
) -> None:
    """Record a plaintext copy before it is written (a reused request fails: StateError)."""
    conn.execute(
        _COPIES.insert().values(
            holding=holding,
            handler=handler,
            path=path,
            request_sha256=request_sha256,
            created_ns=now_ns,
        )
    )


def copies_left(store: Store, holding: str) -> list[str]:
    """The paths of a holding's copies not yet removed, each once, sorted.

    Raises:
        StorageError: the state database cannot be read.
    """
    with store.reading("read the opened copies") as conn:
        rows = conn.execute(
            select(_COPIES.c.path).where(
                _COPIES.c.holding == holding, _COPIES.c.removed_ns.is_(None)
            )
        )
        return sorted({str(r[0]) for r in rows})  # an opening again rewrote the same path


def mark_copies_removed(conn: Tx, holding: str, now_ns: int) -> None:
    conn.execute(
        sql_update(_COPIES)
        .where(_COPIES.c.holding == holding, _COPIES.c.removed_ns.is_(None))
        .values(removed_ns=now_ns)
    )


# -- terms (提供先の義務) and certificates (証明) ------------------------------------------------


def terms_signatures(store: Store, agreement: str, handler: str, terms_sha256: str) -> list[str]:
    """The kept signatures of a handler over one text of an agreement's terms.

    Raises:
        StorageError: the state database cannot be read.
    """
    with store.reading("read the signed terms") as conn:
        rows = conn.execute(
            select(_TERMS.c.signature).where(
                _TERMS.c.agreement == agreement,
                _TERMS.c.handler == handler,
                _TERMS.c.terms_sha256 == terms_sha256,
            )
        )
        return [str(r[0]) for r in rows]


def add_terms(
    conn: Tx,
    *,
    agreement: str,
    handler: str,
    terms_sha256: str,
    statement: str,
    signature: str,
    fingerprint: str,
    now_ns: int,
) -> bool:
    """Keep a handler's signature over the terms unless one is kept; whether it was added."""
    found = conn.execute(
        select(_TERMS.c.id).where(
            _TERMS.c.agreement == agreement,
            _TERMS.c.handler == handler,
            _TERMS.c.terms_sha256 == terms_sha256,
        )
    ).first()
    if found is not None:
        return False
    conn.execute(
        _TERMS.insert().values(
            agreement=agreement,
            handler=handler,
            terms_sha256=terms_sha256,
            statement=statement,
            signature=signature,
            fingerprint=fingerprint,
            created_ns=now_ns,
        )
    )
    return True


def add_certificate(conn: Tx, certificate: schema.Certificate) -> None:
    """Keep a signed certificate (one per holding and kind: a second is a StateError)."""
    conn.execute(_CERTS.insert(), [certificate.model_dump(exclude={"id"})])


def certificates(store: Store, holding: str) -> list[schema.Certificate]:
    """A holding's certificates, oldest first.

    Raises:
        StorageError: the state database cannot be read.
    """
    with store.reading("read the certificates") as conn:
        rows = conn.execute(select(_CERTS).where(_CERTS.c.holding == holding).order_by(_CERTS.c.id))
        return [schema.Certificate.model_validate(dict(r)) for r in rows.mappings()]

