"""`transfers list` and `holdings list` show a page: the latest 50 unless told otherwise, oldest
first, with a footer saying how many more exist and how to see them; `--limit`, `--since` and
`--all` choose the page. The JSON stays one array of the same objects."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from gateway.state import clock
from gateway.state.holdings_store import create as create_holding
from gateway.state.schema import Holding
from gateway.state.store import Store, Transfer
from tests.conftest import Demo

COUNT = 120
START = dt.datetime(2026, 10, 1, 9, 0, tzinfo=clock.JST)


def _ns(i: int) -> int:
    """The i-th row's creation time: one a minute from START."""
    return int((START + dt.timedelta(minutes=i)).timestamp()) * 1_000_000_000


@pytest.fixture
def filled(demo: Demo) -> Demo:
    demo.cli("transfers", "list", check=True)  # creates the database as a command does
    store = Store(demo.state_db)
    for i in range(COUNT):
        store.create(Transfer(
            id=f"t-{i:012d}", agreement="isa-nhi-status-loss", flow="monthly",
            recipient="nhi-central", state="delivered" if i % 2 else "rejected",
            file_name=f"f{i}.csv", source_path=f"/x/f{i}.csv", created_ns=_ns(i),
            updated_ns=_ns(i)), [])
        create_holding(store, Holding(id=f"h-{i:012d}", state="received", delivered_name=f"d{i}",
                                      created_ns=_ns(i), updated_ns=_ns(i)))
    store.engine.dispose()
    return demo


def _ids(demo: Demo, group: str, *args: str) -> list[str]:
    result = demo.cli(group, "list", "--json", *args, check=True)
    return [row["id"] for row in json.loads(result.stdout)]


def test_the_default_is_the_latest_50_oldest_first_with_a_footer(filled: Demo) -> None:
    assert _ids(filled, "transfers") == [f"t-{i:012d}" for i in range(70, 120)]
    text = filled.cli("transfers", "list", check=True).stdout.splitlines()
    # A header and its rule (gateway.cli.table), the 50 rows, the footer.
    assert text[0].split()[:2] == ["id", "state"] and set(text[1]) <= {"-", " "}
    assert len(text) == 53 and text[2].startswith("t-000000000070 ")
    assert text[-1] == ("… 70 earlier transfer(s) not shown (the latest 50 are); see them with "
                        "--limit 120, --since TIME or --all")
    as_json = filled.cli("transfers", "list", "--json", check=True)
    assert "70 earlier transfer(s) not shown" in as_json.stderr  # the JSON stays an array
    row = json.loads(as_json.stdout)[0]
    assert set(row) == {"id", "agreement", "flow", "recipient", "state", "file_name", "size",
                        "sha256", "name_hmac", "last_error", "sender", "owner", "approvals",
                        "reasons", "rows", "encoding",
                        "sealed_sha256", "delivered_path", "password_path", "created",
                        "updated"}


def test_limit_since_all_and_state(filled: Demo) -> None:
    assert _ids(filled, "transfers", "--limit", "3") == [f"t-{i:012d}" for i in (117, 118, 119)]
    since = (START + dt.timedelta(minutes=100)).strftime("%Y-%m-%dT%H:%M")  # JST: no zone
    assert _ids(filled, "transfers", "--since", since) == [f"t-{i:012d}"
                                                           for i in range(100, 120)]
    assert _ids(filled, "transfers", "--since", "2026-10-01", "--limit", "5")[0] == \
        "t-000000000115"
    assert _ids(filled, "transfers", "--all") == [f"t-{i:012d}" for i in range(COUNT)]
    assert _ids(filled, "transfers", "--state", "rejected", "--limit", "2") == \
        ["t-000000000116", "t-000000000118"]
    everything = filled.cli("transfers", "list", "--all", check=True).stdout
    assert "not shown" not in everything
    bad = filled.cli("transfers", "list", "--since", "yesterday")
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_holdings_list_pages_the_same_way(filled: Demo) -> None:
    assert _ids(filled, "holdings") == [f"h-{i:012d}" for i in range(70, 120)]
    assert _ids(filled, "holdings", "--limit", "1") == ["h-000000000119"]
    assert len(_ids(filled, "holdings", "--all")) == COUNT
    text = filled.cli("holdings", "list", check=True).stdout
    assert "70 earlier holding(s) not shown" in text


def test_an_earlier_database_gains_the_list_indexes(filled: Demo) -> None:
    db = Path(filled.state_db)
    # A database of the release before the list indexes: at revision 0005, without them.
    with sqlite3.connect(db) as conn:
        for name in ("ix_transfers_created", "ix_transfers_state_created",
                     "ix_holdings_created", "ix_holdings_state_created",
                     "ix_transfers_sha256"):  # 0009
            conn.execute(f"DROP INDEX {name}")
        for table in ("fanout_children", "fanouts", "approvals_set_aside"):  # 0007, 0008
            conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE alembic_version SET version_num = '0005'")
    filled.cli("transfers", "list", check=True)  # opening it migrates: revision 0006 adds them
    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        plan = " ".join(str(r) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM transfers ORDER BY created_ns DESC, id DESC "
            "LIMIT 50"))
    assert {"ix_transfers_created", "ix_holdings_state_created"} <= names
    assert "ix_transfers_created" in plan
    # Revision 0009: the duplicate notice's lookup reads the deliveries of one SHA-256 only.
    with sqlite3.connect(db) as conn:
        plan = " ".join(str(r) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM transfers WHERE sha256 = ? AND agreement = ? "
            "AND flow = ? AND state IN ('delivered', 'acknowledged') ORDER BY created_ns, id",
            ["0" * 64, "a", "f"]))
    assert "ix_transfers_sha256" in plan
