"""The receiving side's steps are claimed before their side effects: two workers (two runtimes
on one state, as two daemons' workers would be) racing for one inbox delivery make one
holding, never a phantom refusal; an arrival or an erasure another worker holds a live claim on
is left alone until the claim is given back or its lease runs out; and a partner's pickup
account is polled by one node at a time (a session lock on PostgreSQL).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config.settings import load_settings
from gateway.inbound import arrivals, holdings, inbox
from gateway.inbound.holdings import HoldingState
from gateway.runtime import Runtime
from gateway.state import claims
from gateway.state.store import Store
from tests.gateway.inbound.test_holdings_pair import ROWS, Pair, csv_bytes, pair
from tests.pg import PostgresServer, needs_postgres

__all__ = ["pair"]

OTHER = "node-b:1:inbound"  # a worker of another node, alive (its lease is in the future)


def _arrival(pair: Pair) -> inbox.Arrival:
    (manifest,) = pair.recipient.inbox.glob("*.manifest.json")
    sealed = manifest.with_name(manifest.name.removesuffix(".manifest.json"))
    return inbox.Arrival(sealed.name, manifest, sealed,
                         pair.recipient.passwords / f"{sealed.name}.password")


def _intent(rt: Runtime, arrival: inbox.Arrival) -> holdings.Holding:
    """An intake intent recorded by a worker that has not moved any part yet."""
    h = holdings.Holding(
        id=holdings.new_holding_id(), state="arriving", delivered_name=arrival.name,
        created_ns=1, updated_ns=1,
        inbox=holdings.dumps({"manifest": str(arrival.manifest), "sealed": str(arrival.sealed),
                              "password": str(arrival.password)}),
    )
    holdings.create(rt, h)
    return h


@pytest.fixture
def second(pair: Pair) -> Iterator[Runtime]:
    """A second runtime on the recipient's state: another worker of the receiving side."""
    rt = Runtime.open(load_settings(pair.recipient.root / "tachiai.toml"))
    yield rt
    rt.store.engine.dispose()


def test_two_workers_racing_for_one_delivery_make_one_holding(
    pair: Pair, second: Runtime
) -> None:
    pair.send(csv_bytes(ROWS))
    arrival = _arrival(pair)
    start = threading.Barrier(2)
    taken: list[holdings.Holding | None] = []

    def take(rt: Runtime, worker: str) -> None:
        start.wait()
        try:
            taken.append(arrivals.take(rt, arrival, owner=claims.owner_id("gw", worker)))
        except Exception as exc:  # a lost race must not be an error either
            taken.append(None)
            raise AssertionError(f"{worker}: {exc!r}") from exc

    threads = [threading.Thread(target=take, args=(rt, f"inbound-{n}"))
               for n, rt in enumerate((pair.recipient.rt, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    (h,) = holdings.find(pair.recipient.rt)
    assert h.status is HoldingState.RECEIVED, h.reason_list()
    assert [t.id for t in taken if t is not None] == [h.id]
    assert h.claimed_by is None, "the claim is given back after the step"
    assert os.listdir(pair.recipient.inbox) == []


def test_an_arrival_another_worker_holds_is_left_alone_until_its_claim_ends(
    pair: Pair, second: Runtime
) -> None:
    pair.send(csv_bytes(ROWS))
    arrival = _arrival(pair)
    h = _intent(second, arrival)
    assert second.store.claim("holding", h.id, "arriving", OTHER, 60)
    # Another node's worker is about to move the parts in: this pass must not touch them.
    assert arrivals.poll_inbound(pair.recipient.rt) == 0
    (still,) = holdings.find(pair.recipient.rt)
    assert (still.id, still.status, still.claimed_by) == (h.id, HoldingState.ARRIVING, OTHER)
    assert arrival.sealed.exists() and arrival.manifest.exists(), "parts not moved"
    assert not holdings.folder_of(pair.recipient.rt, h.id).exists()

    # The other node died: once its lease has run out, the next pass finishes the intake.
    with second.store.transaction() as conn:
        past = claims.now_ns() - 120 * 10**9
        assert claims.claim(conn, "holding", h.id, "arriving", OTHER, 1, at_ns=past)
    arrivals.poll_inbound(pair.recipient.rt)
    (done,) = holdings.find(pair.recipient.rt)
    assert (done.id, done.status, done.claimed_by) == (h.id, HoldingState.RECEIVED, None)


def test_a_holding_moved_by_its_claimant_refuses_a_stale_writer(
    pair: Pair, second: Runtime
) -> None:
    pair.send(csv_bytes(ROWS))
    h = _intent(second, _arrival(pair))
    with holdings.claimed(second, h, OTHER) as mine:
        assert mine is not None
        # Another worker that read the holding before the claim cannot claim nor move it.
        with holdings.claimed(pair.recipient.rt, h, "gw:2:inbound") as theirs:
            assert theirs is None
        stale = h.model_copy(update={"claimed_by": "gw:2:inbound"})
        with pytest.raises(Exception, match="changed while being processed"):
            holdings.update(pair.recipient.rt, stale, [], reasons="[]")
    assert holdings.get(second, h.id).claimed_by is None


def test_sqlite_has_one_daemon_so_every_exclusive_is_its_own(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    with store.exclusive("pickup:nhi") as one, store.exclusive("pickup:nhi") as two:
        assert one and two
    store.engine.dispose()


@needs_postgres
def test_one_node_at_a_time_polls_a_pickup_account(postgres: PostgresServer) -> None:
    url = postgres.url(postgres.create_database())
    a, b = Store(url=url), Store(url=url)
    try:
        with a.exclusive("pickup:nhi") as held:
            assert held
            with b.exclusive("pickup:nhi") as other:
                assert not other, "another node is polling this account"
            with b.exclusive("pickup:other-account") as free:
                assert free, "another account is free"
        with b.exclusive("pickup:nhi") as after:
            assert after, "given back at the end of the poll"
    finally:
        a.engine.dispose()
        b.engine.dispose()
