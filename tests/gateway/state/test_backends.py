"""The same state code on both databases: SQLite (one node, the default) and a real PostgreSQL
(several nodes, `[database] url`). Transfers, the event outbox, approvals, holdings, keys, the
onward guard's fingerprints, links and node heartbeats behave alike; a constraint or a lock
held elsewhere becomes our own error on both.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from audit import schema as ledger_schema
from audit.events import Draft
from audit.ledger import Ledger
from gateway.errors import StateError, StorageError
from gateway.state import (
    fingerprint_store,
    holdings_store,
    keys_store,
    links,
    migrate,
    nodes,
    wakeups,
)
from gateway.state.fingerprint_store import Source
from gateway.state.lifecycles import HoldingState, State
from gateway.state.schema import Holding, TransferLink
from gateway.state.store import Approval, Store, Transfer
from tests.conftest import wait_for
from tests.pg import ROLE, PostgresServer, needs_postgres


def _open(backend: tuple[str, str], busy: float = 60.0) -> Store:
    kind, where = backend
    if kind == "sqlite":
        return Store(Path(where), busy_timeout_seconds=busy)
    return Store(url=where, busy_timeout_seconds=busy)


@pytest.fixture
def store(backend: tuple[str, str]) -> Iterator[Store]:
    opened = _open(backend)
    yield opened
    opened.engine.dispose()


def _transfer(tid: str = "t-000000000001") -> Transfer:
    return Transfer(id=tid, agreement="a1", flow="f1", recipient="kita", state="dropped",
                    provider="isa", file_name="x.csv", source_path="x.csv", size=5 << 30,
                    created_ns=1, updated_ns=1)


def _event(key: str, kind: str = "test.event") -> Draft:
    return Draft(key=key, kind=kind, time_ns=2, subject="t-000000000001", data={"n": 1})


def test_a_transfer_moves_on_by_compare_and_set_with_its_events(store: Store) -> None:
    store.create(_transfer(), [_event("t:dropped")])
    t = store.get("t-000000000001")
    assert t.size == 5 << 30  # a BIGINT on both
    moved = store.transition(t, State.QUARANTINED, [_event("t:quarantined")], sha256="ab")
    assert store.get(t.id).state == "quarantined" and moved.sha256 == "ab"
    with pytest.raises(StateError, match="changed state while being processed"):
        store.transition(t, State.QUARANTINED, [])  # read in "dropped": someone moved it
    assert [d.key for d in store.pending()] == ["t:dropped", "t:quarantined"]
    assert [x.id for x in store.in_states([State.QUARANTINED])] == [t.id]


def test_an_event_queued_twice_is_kept_once(store: Store) -> None:
    store.record([_event("same")])
    store.record([_event("same"), _event("other")])  # ON CONFLICT DO NOTHING on both
    assert [d.key for d in store.pending()] == ["same", "other"]
    store.forget_pending(["same"])
    assert [d.key for d in store.pending()] == ["other"]


def test_a_second_approval_by_one_witness_is_a_state_error(store: Store) -> None:
    approval = Approval(transfer_id="t-1", witness="suzuki", fingerprint="f", sha256="s",
                        signature="x", created_ns=1)
    with store.transaction() as conn:
        store.add_approval(approval, conn)
    with pytest.raises(StateError, match="already holds this record"), store.transaction() as conn:
        store.add_approval(approval, conn)
    assert [a.witness for a in store.approvals("t-1")] == ["suzuki"]


def test_approvals_set_aside_are_kept_with_why_and_the_witness_may_approve_again(
    store: Store,
) -> None:
    def approval(witness: str, signature: str) -> Approval:
        return Approval(transfer_id="t-1", witness=witness, fingerprint=f"fp-{witness}",
                        sha256="s", signature=signature, created_ns=5)

    with store.transaction() as conn:
        store.add_approval(approval("suzuki", "old"), conn)
        store.add_approval(approval("tanaka", "new"), conn)
        store.add_approval(approval("sato", "other transfer's"), conn)
    stays = next(a.id for a in store.approvals("t-1") if a.witness == "tanaka")
    with store.transaction() as conn:
        moved = store.set_aside_approvals(conn, "t-1", "approval.duplicate-appeared",
                                          "t-0", 9, keep={stays})
    assert [a.witness for a in moved] == ["suzuki", "sato"]
    assert [a.witness for a in store.approvals("t-1")] == ["tanaka"]
    kept = store.approvals_set_aside("t-1")
    assert [(k["witness"], k["signature"], k["created_ns"], k["set_aside_ns"], k["rule"],
             k["duplicate_of"]) for k in kept] == [
        ("suzuki", "old", 5, 9, "approval.duplicate-appeared", "t-0"),
        ("sato", "other transfer's", 5, 9, "approval.duplicate-appeared", "t-0")]
    with store.transaction() as conn:  # no longer one of its approvals: may approve again
        store.add_approval(approval("suzuki", "over the new statement"), conn)
    assert [a.witness for a in store.approvals("t-1")] == ["tanaka", "suzuki"]
    assert store.approvals_set_aside("t-2") == []


def test_holdings_keys_fingerprints_and_links(store: Store) -> None:
    h = Holding(id="h-1", state="arriving", delivered_name="d", created_ns=1, updated_ns=1)
    holdings_store.create(store, h, [_event("h:arriving")])
    h = holdings_store.update(store, h, {"state": "received", "sha256": "cd" * 32}, [])
    assert [x.id for x in holdings_store.find(store, states=[HoldingState.RECEIVED])] == ["h-1"]

    keys_store.put(store, "h-1", b"\x01" * 32, 3)
    keys_store.put(store, "h-1", b"\x02" * 32, 4)  # an interrupted intake's key is replaced
    assert keys_store.get(store, "h-1") == b"\x02" * 32
    assert keys_store.destroy(store, "h-1") and keys_store.get(store, "h-1") is None
    assert keys_store.truncate_wal(store)

    assert fingerprint_store.keep_key_check(store, "first", 1) == "first"
    assert fingerprint_store.keep_key_check(store, "second", 2) == "first"
    source = fingerprint_store.source_id(store, Source("h-1", "a1", "f1", "kita"), 5)
    fingerprint_store.add(store, source, [b"\x03" * 16, b"\x03" * 16, b"\x04" * 16])
    fingerprint_store.add(store, source, [b"\x03" * 16])  # seen again: skipped
    assert fingerprint_store.lookup(store, [b"\x03" * 16, b"\x05" * 16]) == {b"\x03" * 16: {source}}
    assert fingerprint_store.forget(store, "h-1") == 2

    link = TransferLink(transfer="t-1", relation="replies_to", ref="h-1", remote="t-9",
                        ref_flow="f1", operator="sato", created_ns=1)
    with store.transaction() as conn:
        links.add(conn, link)
    assert links.link_of(store, "t-1") == link


def test_the_reads_of_a_snapshot_share_one_transaction_and_writes_keep_their_own(
    store: Store,
) -> None:
    store.create(_transfer(), [_event("t:dropped")])
    begun: list[str] = []

    def began(conn: Any) -> None:
        begun.append("read" if conn is shared[0] else "other")

    shared: list[Any] = [None]
    event.listen(store.engine, "begin", began)
    try:
        with store.snapshot():
            with store.reading() as conn:
                shared[0] = conn
            t = store.get("t-000000000001")
            assert links.link_of(store, t.id) is None and store.approvals(t.id) == []
            with store.snapshot():  # inside one already: the same
                assert store.in_states([State.DROPPED]) == [t]
            # A write inside has its own transaction, committed at once.
            store.transition(t, State.QUARANTINED, [_event("t:quarantined")])
            seen_elsewhere = threading.Thread(target=lambda: begun.append(
                store.get(t.id).state))
            seen_elsewhere.start()
            seen_elsewhere.join()
        after = store.get(t.id)
    finally:
        event.remove(store.engine, "begin", began)
    # One read transaction for every read in the block; the write and the other thread's read
    # each had their own; nothing of the block's connection is used after it.
    assert begun == ["read", "other", "other", "quarantined", "other"]
    assert after.state == "quarantined"


def test_heartbeats_list_the_nodes_and_mark_the_silent_stale(store: Store) -> None:
    a, b = nodes.Node("gw-a", "0.1.0", 10), nodes.Node("gw-b", "0.1.0", 20)
    assert nodes.heartbeat(store, a) and nodes.heartbeat(store, b)
    assert not nodes.heartbeat(store, a)  # too soon: nothing written
    listed = nodes.list_nodes(store)
    assert {n.id for n in listed} == {"gw-a", "gw-b"} and not any(n.stale for n in listed)
    later = listed[0].heartbeat_ns + int(nodes.HEARTBEAT_SECONDS * nodes.STALE_AFTER_BEATS * 2e9)
    assert all(n.stale for n in nodes.list_nodes(store, now_ns=later))
    assert nodes.heartbeat(store, a, force=True)
    again = {n.id: n for n in nodes.list_nodes(store)}
    assert again["gw-a"].heartbeat_ns >= again["gw-b"].heartbeat_ns
    assert again["gw-a"].started_ns == 10


def test_a_second_store_sees_the_rows_another_wrote(backend: tuple[str, str]) -> None:
    first = _open(backend)
    first.create(_transfer(), [])
    second = _open(backend)  # as a second command, or a second node, opens it
    assert second.get("t-000000000001").recipient == "kita"
    first.engine.dispose()
    second.engine.dispose()


@needs_postgres
def test_a_row_locked_by_another_postgres_session_is_a_storage_error_that_says_so(
    pg_url: str,
) -> None:
    # SQLite's lock: test_store.py.
    store = _open(("postgres", pg_url), busy=0.3)
    store.create(_transfer(), [])
    t = store.get("t-000000000001")
    parsed = make_url(pg_url)
    dsn = f"host={parsed.host} port={parsed.port} dbname={parsed.database} user={parsed.username}"
    with contextlib.closing(psycopg.connect(dsn)) as other:
        other.execute("SELECT 1 FROM transfers WHERE id = %s FOR UPDATE", (t.id,))
        with pytest.raises(StorageError, match="locked by another process") as caught:
            store.transition(t, State.QUARANTINED, [])
        assert caught.value.exit_code == 74
        other.rollback()
    store.transition(t, State.QUARANTINED, [])  # and works again once it is free
    store.engine.dispose()


@needs_postgres
def test_the_daemons_role_after_the_grants_works_and_cannot_change_the_schema(
    postgres: PostgresServer, pg_database: str
) -> None:
    """docs/operations.md: an owner role migrates; the daemon's role only reads and writes."""
    daemon_role = f"d_{pg_database}"
    owner_url = postgres.url(pg_database)
    Store(url=owner_url).engine.dispose()  # the owner migrates (a command run as the owner)
    Ledger.connect(owner_url).close()
    with postgres.admin() as admin:
        admin.execute(f"CREATE ROLE {daemon_role} LOGIN")
    try:
        with psycopg.connect(postgres.dsn(pg_database, user=ROLE), autocommit=True) as owner:
            for sql in (*migrate.postgres_daemon_grants(daemon_role),
                        *ledger_schema.postgres_daemon_grants(daemon_role)):
                owner.execute(sql)
        url = postgres.url(pg_database, user=daemon_role)
        store = Store(url=url)  # opens: at HEAD, nothing to migrate
        store.create(_transfer(), [_event("t:dropped")])
        store.transition(store.get("t-000000000001"), State.QUARANTINED, [_event("t:q")])
        store.forget_pending(["t:dropped"])
        with store.transaction() as conn:
            store.add_approval(Approval(transfer_id="t-1", witness="suzuki", fingerprint="f",
                                        sha256="s", signature="x", created_ns=1), conn)
        keys_store.put(store, "h-1", b"\x01" * 32, 3)
        assert keys_store.destroy(store, "h-1")
        source = fingerprint_store.source_id(store, Source("h-1", "a1", "f1", "kita"), 5)
        fingerprint_store.add(store, source, [b"\x03" * 16])
        assert fingerprint_store.keep_key_check(store, "kcv", 1) == "kcv"
        assert nodes.heartbeat(store, nodes.this_node("gw-a"))
        store.engine.dispose()
        ledger = Ledger.connect(url)
        assert ledger.append([_event("t:dropped")]) == [0]
        ledger.close()
        with psycopg.connect(postgres.dsn(pg_database, user=daemon_role)) as conn:
            for sql in ("DROP TABLE transfers", "ALTER TABLE transfers ADD COLUMN x INTEGER",
                        "UPDATE alembic_version SET version_num = '0001'"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(sql)
                conn.rollback()
    finally:
        with postgres.admin(pg_database) as admin:
            admin.execute(f"DROP OWNED BY {daemon_role}")
        with postgres.admin() as admin:
            admin.execute(f"DROP ROLE {daemon_role}")


@needs_postgres
def test_a_state_change_on_another_node_wakes_a_listener_at_commit(pg_url: str) -> None:
    store, other = Store(url=pg_url), Store(url=pg_url)
    wake = threading.Event()
    listener = wakeups.Listener(store, wake)
    assert listener.start()
    try:
        # The listener may not be listening yet: keep changing until it is woken.
        def woken() -> bool:
            other.record([_event(f"k{time.monotonic_ns()}")])
            return wake.wait(0.5)

        wait_for(woken, 60, "a notification")
        # A notification of an earlier round may arrive late: let them all arrive first.
        while wake.wait(1.0):
            wake.clear()
        with pytest.raises(RuntimeError), other.transaction() as conn:
            other.record([_event("rolled-back")], conn)
            raise RuntimeError("rolled back: nothing is sent")
        assert not wake.wait(1.5)
    finally:
        listener.stop()
        store.engine.dispose()
        other.engine.dispose()


def test_on_sqlite_there_is_nothing_to_listen_to(tmp_path: Path) -> None:
    assert not wakeups.Listener(Store(tmp_path / "s.db"), threading.Event()).start()
