"""Claims on transfers: two Store objects on one database (a SQLite file, or a real PostgreSQL
server) stand for two processes or nodes. A claim is taken only from a free row in the state
read, renewed and released only by its owner, taken over once its lease expired, and a
claimant's transition succeeds only for the claimant. On PostgreSQL a row another node holds
locked is skipped at once (FOR UPDATE SKIP LOCKED), many racing claimers get one claim, and one
outbox entry is recorded as one intake however many nodes race to take it in."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from gateway.errors import StateError
from gateway.state import claims, migrate
from gateway.state.lifecycles import State
from gateway.state.schema import TRANSFERS
from gateway.state.store import Store, Transfer

DUMP = Path(__file__).with_name("data") / "state-0.1.sql"
A, B = "node-a:1:w0", "node-b:2:w0"


@pytest.fixture
def stores(backend: tuple[str, str]) -> Iterator[tuple[Store, Store]]:
    """Two stores on one fresh database, as two workers or two nodes hold them."""
    kind, where = backend
    if kind == "sqlite":
        first, second = Store(Path(where)), Store(Path(where))
    else:
        first, second = Store(url=where), Store(url=where)
    yield first, second
    first.engine.dispose()
    second.engine.dispose()


def _transfer(store: Store, tid: str = "t-1", state: State = State.SEALED) -> Transfer:
    t = Transfer(id=tid, agreement="a", flow="f", recipient="r", state=state.value,
                 file_name="x.csv", source_path="/x", created_ns=1, updated_ns=1)
    store.create(t, [])
    return t


def test_a_claim_is_exclusive_until_released(stores: tuple[Store, Store]) -> None:
    one, two = stores
    _transfer(one)
    assert one.claim("transfer", "t-1", "sealed", A, 60)
    assert not two.claim("transfer", "t-1", "sealed", B, 60)
    assert one.claim("transfer", "t-1", "sealed", A, 60)  # already ours: held again
    assert not two.release("transfer", "t-1", B)  # not B's to release
    assert [c.id for c in two.claimable([State.SEALED], B)] == []
    assert [c.id for c in one.claimable([State.SEALED], A)] == ["t-1"]
    assert one.release("transfer", "t-1", A)
    assert two.claim("transfer", "t-1", "sealed", B, 60)
    assert two.get("t-1").claimed_by == B


def test_a_claim_needs_the_state_it_was_read_in(stores: tuple[Store, Store]) -> None:
    one, _two = stores
    _transfer(one)
    assert not one.claim("transfer", "t-1", "approved", A, 60)
    assert one.get("t-1").claimed_by is None


def test_an_expired_lease_is_taken_over_and_the_old_owner_cannot_renew(
    stores: tuple[Store, Store],
) -> None:
    one, two = stores
    _transfer(one)
    with one.transaction() as conn:
        past = claims.now_ns() - 10**9
        assert claims.claim(conn, "transfer", "t-1", "sealed", A, 0.5, at_ns=past - 10**9)
    assert [c.id for c in two.claimable([State.SEALED], B)] == ["t-1"]
    assert two.claim("transfer", "t-1", "sealed", B, 60)
    assert not one.renew("transfer", "t-1", A, 60)
    assert two.renew("transfer", "t-1", B, 60)
    assert [h.owner for h in one.holders()] == [B]


def test_only_the_claimant_moves_a_claimed_transfer_and_the_move_ends_the_claim(
    stores: tuple[Store, Store],
) -> None:
    one, two = stores
    _transfer(one)
    assert one.claim("transfer", "t-1", "sealed", A, 60)
    as_a = one.get("t-1")
    with one.transaction() as conn:  # A's lease expires; B takes the transfer over
        claims.release(conn, "transfer", "t-1", A)
    assert two.claim("transfer", "t-1", "sealed", B, 60)
    with pytest.raises(StateError):
        one.transition(as_a, State.DELIVERED, [])
    with pytest.raises(StateError):
        one.update(as_a, [], delivered_path="/elsewhere")
    as_b = two.get("t-1")
    kept = two.update(as_b, [], delivered_path="/there")
    assert two.get("t-1").claimed_by == B  # an update keeps the claim
    after = two.transition(kept, State.DELIVERED, [])
    assert after.claimed_by is None
    stored = one.get("t-1")
    assert (stored.state, stored.claimed_by, stored.lease_until_ns) == ("delivered", None, None)


def test_release_owners_frees_every_claim_of_a_dead_process(stores: tuple[Store, Store]) -> None:
    one, _two = stores
    _transfer(one, "t-1")
    _transfer(one, "t-2", State.APPROVED)
    assert one.claim("transfer", "t-1", "sealed", A, 60)
    assert one.claim("transfer", "t-2", "approved", A, 60)
    assert one.release_owners([A]) == 2
    assert one.holders() == []


def test_many_racing_claimers_get_exactly_one_claim(stores: tuple[Store, Store]) -> None:
    one, two = stores
    for n in range(20):
        _transfer(one, f"t-{n}")
    won: dict[str, list[str]] = {f"t-{n}": [] for n in range(20)}
    start = threading.Barrier(8)

    def race(store: Store, owner: str) -> None:
        start.wait()
        for row in store.claimable([State.SEALED], owner, limit=100):
            if store.claim("transfer", row.id, "sealed", owner, 60):
                won[row.id].append(owner)

    threads = [threading.Thread(target=race, args=(one if i % 2 else two, f"n{i}:{i}:w"))
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(len(owners) == 1 for owners in won.values()), won
    holders = {h.owner: h.claims for h in one.holders()}
    assert sum(holders.values()) == 20


def test_a_row_another_node_holds_locked_is_skipped_not_waited_for(
    stores: tuple[Store, Store],
) -> None:
    one, two = stores
    if one.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no row locks: one daemon per database, its write lock serialises")
    _transfer(one)
    with one.transaction() as conn:  # another node is moving the row right now …
        conn.execute(select(TRANSFERS.c.id).where(TRANSFERS.c.id == "t-1").with_for_update())
        assert not two.claim("transfer", "t-1", "sealed", B, 60)  # … so it is skipped at once
        conn.execute(update(TRANSFERS).where(TRANSFERS.c.id == "t-1").values(state="delivered"))
    assert not two.claim("transfer", "t-1", "sealed", B, 60)  # and once moved, it is not ours
    assert two.get("t-1").claimed_by is None


def test_one_outbox_entry_is_one_intake_however_many_race_for_it(
    stores: tuple[Store, Store], tmp_path: Path
) -> None:
    one, two = stores
    entry = tmp_path / "outbox" / "x.csv"
    entry.parent.mkdir()
    entry.write_bytes(b"synthetic")
    recorded: list[str] = []
    start = threading.Barrier(6)

    def take(store: Store, n: int) -> None:
        t = Transfer(id=f"t-{n}", agreement="a", flow="f", recipient="r",
                     state=State.DROPPED.value, file_name="", source_path=str(entry),
                     created_ns=1, updated_ns=1)
        start.wait()
        if store.create_intake(t, [], still_there=entry.exists):
            recorded.append(t.id)

    threads = [threading.Thread(target=take, args=(one if n % 2 else two, n)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(recorded) == 1, recorded
    assert [t.id for t in one.list_transfers()] == recorded

    # The first taker moves the entry into its spool and on: a late node finds it gone.
    (taken,) = one.in_states([State.DROPPED])
    one.transition(taken, State.QUARANTINED, [])
    entry.rename(tmp_path / "spooled")
    late = taken.model_copy(update={"id": "t-late", "state": State.DROPPED.value})
    assert not two.create_intake(late, [], still_there=entry.exists)
    # A new file dropped under the same name later is a new intake.
    entry.write_bytes(b"synthetic, again")
    assert two.create_intake(late, [], still_there=entry.exists)


def test_an_old_database_gets_the_claim_columns_once(tmp_path: Path) -> None:
    path = tmp_path / "tachiai.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(DUMP.read_text(encoding="utf-8"))
    store = Store(path)  # upgrades on open (Alembic revision 0005)
    with store.engine.connect() as conn:
        assert migrate.current(conn) == migrate.HEAD
    Store(path).engine.dispose()  # idempotent: a second opening finds nothing to do
    with contextlib.closing(sqlite3.connect(path)) as db:
        cols = {r[1] for r in db.execute("PRAGMA table_info(transfers)")}
        hcols = {r[1] for r in db.execute("PRAGMA table_info(holdings)")}
    assert {"claimed_by", "lease_until_ns"} <= cols & hcols
    assert store.claim("transfer", "t-0000000000a1", "delivered", A, 60)
    store.engine.dispose()


def test_owner_ids_name_node_pid_and_worker() -> None:
    owner = claims.owner_id("gw1", "seal-0")
    node, pid, worker = claims.split_owner(owner)
    assert (node, worker) == ("gw1", "seal-0") and pid is not None
