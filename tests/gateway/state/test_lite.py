"""The short commands' path to a SQLite state database (gateway.state.lite, audit.lite) against
the Store and the Ledger, on one database: the same rows read, the same rows and ledger events
written by an approval, the same errors for a signature over other bytes and for a replayed one.

The two are written apart (sqlite3 statements there, SQLAlchemy Core here), so a column added to
a table, or a rule added to one path, must fail here rather than in an operator's approval.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audit.ledger import Ledger
from audit.lite import LiteLedger
from gateway.config.settings import load_settings
from gateway.errors import TachiaiError
from gateway.identity import sshsig
from gateway.identity.sshkeys import load_private_key
from gateway.outbound import approvals
from gateway.runtime import Runtime, event
from gateway.state import clock, fanouts, links, lite, migrate, schema
from gateway.state.fanouts import Child, Fanout
from gateway.state.lifecycles import State
from gateway.state.lite import LiteStore
from gateway.state.rows import Transfer, TransferLink
from gateway.state.store import Store
from tests.conftest import AGREEMENT, FLOW, Demo

SHA = "ab" * 32


def test_every_table_and_column_the_lite_path_names_is_in_the_schema() -> None:
    for table, columns in lite.COLUMNS.items():
        assert table in schema.METADATA.tables, table
        known = set(schema.METADATA.tables[table].c.keys())
        assert set(columns) <= known, (table, set(columns) - known)
    # A row is read whole: every column of the tables whose rows it builds.
    for table in ("transfers", "approvals", "transfer_links", "fanouts", "fanout_children"):
        assert set(lite.COLUMNS[table]) == set(schema.METADATA.tables[table].c.keys()), table


def test_it_opens_only_a_database_at_this_release(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    assert LiteStore.open(path, 1.0) is None  # none yet: the Store creates it
    Store(path)
    found = LiteStore.open(path, 1.0)
    assert found is not None
    found.close()
    with Store(path).transaction() as conn:
        conn.exec_driver_sql(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '0006'")
    assert LiteStore.open(path, 1.0) is None  # an older revision: the Store migrates it


def _transfer(transfer_id: str, *, created_ns: int, state: State = State.AWAITING_APPROVAL,
              sha256: str = SHA) -> Transfer:
    return Transfer(id=transfer_id, agreement=AGREEMENT, flow=FLOW, recipient="nhi-central",
                    state=state.value, file_name=f"{transfer_id}.csv",
                    source_path=f"/outbox/{transfer_id}.csv", created_ns=created_ns,
                    updated_ns=created_ns, provider="isa", sender="sato", size=123,
                    sha256=sha256, encoding="cp932", rows=2)


@pytest.fixture
def both(demo: Demo) -> tuple[Runtime, Runtime]:
    """(the Store's runtime, the lite one) on the demo gateway's one state database."""
    settings = load_settings(demo.config)
    full = Runtime.open(settings)
    assert isinstance(full.store, Store) and isinstance(full.ledger, Ledger)
    short = Runtime.open(settings, lite=True)
    assert isinstance(short.store, LiteStore) and isinstance(short.ledger, LiteLedger)
    return full, short


def test_reads_agree_row_for_row(both: tuple[Runtime, Runtime]) -> None:
    full, short = both
    now = clock.now_ns()
    states = [State.AWAITING_APPROVAL, State.DELIVERED, State.FAILED, State.AWAITING_APPROVAL]
    for i, state in enumerate(states * 3):
        # Two at a time created in the same nanosecond: the id orders them.
        t = _transfer(f"t-{i:012x}", created_ns=now + (i // 2) * 1000, state=state)
        full.store.create(t, [event("transfer.checked", t)])
    with full.store.transaction() as conn:
        full.store.add_approval(schema.Approval(transfer_id="t-000000000001", witness="suzuki",
                                                fingerprint="SHA256:x", sha256=SHA,
                                                signature="sig", created_ns=now), conn)
        links.add(conn, TransferLink(transfer="t-000000000003", relation="replies_to",
                                     ref="h-1", remote="t-remote", ref_flow=FLOW,
                                     operator="sato", created_ns=now))
        fanouts.record(conn, Fanout(id="f-1", holding="h-2", agreement=AGREEMENT, flow=FLOW,
                                    group="g", split_by="code", parent_sha256=SHA, rows=3,
                                    withheld={"unknown": 1}, created_by="sato", created_ns=now,
                                    children=(Child("t-000000000005", "131041", 2, SHA, 10),
                                              Child("t-000000000000", "141003", 1, SHA, 5))))

    def same(read: Callable[[Any], Any]) -> None:
        assert read(short.store) == read(full.store)

    same(lambda s: s.get("t-000000000004"))
    for state in (None, State.AWAITING_APPROVAL, State.FAILED):
        for since in (None, now + 5000):
            for limit in (None, 1, 3, 100):
                same(lambda s, st=state, si=since, li=limit:
                     s.latest_transfers(st, since_ns=si, limit=li))
    same(lambda s: s.witnesses_of(["t-000000000001", "t-000000000002", "t-none"]))
    same(lambda s: s.approvals("t-000000000001"))
    with full.store.transaction() as conn:
        full.store.set_aside_approvals(conn, "t-000000000001", "approval.duplicate-appeared",
                                       "t-000000000002", now + 1)
    assert full.store.approvals("t-000000000001") == []
    same(lambda s: s.approvals_set_aside("t-000000000001"))
    same(lambda s: s.approvals_set_aside("t-none"))
    assert [a["witness"] for a in short.store.approvals_set_aside("t-000000000001")] == ["suzuki"]
    same(lambda s: s.in_states([State.DELIVERED, State.FAILED]))
    for sha, flow in ((SHA, FLOW), ("0" * 64, FLOW), (SHA, "other-flow")):
        same(lambda s, h=sha, f=flow: s.same_bytes(h, AGREEMENT, f, [State.DELIVERED,
                                                                   State.FAILED]))
    assert len(full.store.same_bytes(SHA, AGREEMENT, FLOW, [State.DELIVERED])) == 3
    same(lambda s: s.pending())
    same(lambda s: links.link_of(s, "t-000000000003"))
    same(lambda s: links.link_of(s, "t-000000000002"))
    same(lambda s: fanouts.of_transfer(s, "t-000000000000"))
    same(lambda s: fanouts.get(s, "f-1"))
    same(lambda s: fanouts.get(s, "f-none"))
    for store in (full.store, short.store):
        with pytest.raises(TachiaiError) as missing:
            store.get("t-none")
        assert missing.value.exit_code == 65 and "no transfer 't-none'" in str(missing.value)


def _outcome(rt: Runtime, transfer_id: str, try_it: Callable[[], Any]) -> dict[str, Any]:
    """What approving did, with this transfer's id written as ID (the two runs use two)."""
    try:
        result: Any = try_it()
        error = None
    except TachiaiError as exc:
        result, error = None, (type(exc).__name__, exc.exit_code, str(exc), exc.hint)
    rt.flush()
    reader = Ledger.open(rt.settings.ledger_path, read_only=True)
    try:
        events = [(e.kind, e.actor, {k: v for k, v in e.data.items()
                                     if k not in ("statement", "signature", "fingerprint")})
                  for e in reader.events() if e.subject == transfer_id]
    finally:
        reader.close()
    store = Store(rt.settings.database_path)  # the rows as the daemon will read them
    t = store.get(transfer_id)
    found = {
        "result": None if result is None else (result.witness, result.approvals, result.needed,
                                               result.approved, result.transfer.state),
        "error": error,
        "state": t.state, "updated_after_created": t.updated_ns >= t.created_ns,
        "approvals": [(a.witness, a.sha256, a.fingerprint.startswith("SHA256:"))
                      for a in store.approvals(transfer_id)],
        "events": events,
        "pending": len(store.pending()),
    }
    return _as_id(found, transfer_id)


def _as_id(value: Any, transfer_id: str) -> Any:
    return re.sub(re.escape(transfer_id), "ID", repr(value))


def test_an_approval_writes_the_same_rows_events_and_errors_on_both(
    both: tuple[Runtime, Runtime], demo: Demo
) -> None:
    full, short = both
    now = clock.now_ns()
    key = load_private_key(demo.key("suzuki"))
    ids = {}
    for name, offset in (("full", 0), ("lite", 10)):
        ids[name] = [f"t-{offset + i:012x}" for i in range(3)]
        for i, transfer_id in enumerate(ids[name]):
            t = _transfer(transfer_id, created_ns=now + offset + i, sha256=f"{i:02x}" * 32)
            full.store.create(t, [event("transfer.checked", t)])
            full.flush()

    results: dict[str, list[Any]] = {}
    for name, rt in (("full", full), ("lite", short)):
        good, other, changed = ids[name]
        signature = sshsig.sign(approvals.statement(rt, rt.store.get(good)), key,
                                approvals.APPROVAL_NAMESPACE)
        # A file changed after its statement was signed: the stored digest is another now.
        stale = sshsig.sign(approvals.statement(rt, rt.store.get(changed)), key,
                            approvals.APPROVAL_NAMESPACE)
        with full.store.transaction() as conn:
            conn.execute(schema.TRANSFERS.update().where(schema.TRANSFERS.c.id == changed)
                         .values(sha256="ff" * 32))
        results[name] = [
            _outcome(rt, good, lambda rt=rt, g=good, s=signature: approvals.approve(rt, g, s)),
            # replayed: the same signature once more
            _outcome(rt, good, lambda rt=rt, g=good, s=signature: approvals.approve(rt, g, s)),
            # a signature over another transfer's statement
            _outcome(rt, other, lambda rt=rt, o=other, s=signature: approvals.approve(rt, o, s)),
            _outcome(rt, changed, lambda rt=rt, c=changed, s=stale: approvals.approve(rt, c, s)),
            # signed now with the key, for the other transfer, after the refusal above
            _outcome(rt, other, lambda rt=rt, o=other: approvals.approve_with_key(rt, o, key)),
        ]
    assert results["lite"] == results["full"]
    first, replayed, wrong, stale_one, later = results["full"]
    assert "approved" in first and "'error': None" in first
    assert "StateError" in replayed and "approval.refused" in replayed
    assert "SignatureError" in wrong and "SignatureError" in stale_one
    assert "approval.accepted" in later and "transfer.approved" in later
