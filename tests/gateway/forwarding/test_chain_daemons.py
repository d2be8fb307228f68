"""The chain of seed 000 with three running daemons: 出入国在留管理庁 (isa) → 国保中央会
(nhi-central) → the 国保連合会 of Tokyo (nhi-federations-13) → municipalities, through the real
daemons and CLI. A national file with rows of three prefectures and one row whose code and
address disagree: every federation receives exactly its prefecture's rows (by code, count and
hash), the federation of Tokyo splits again per municipality, nobody receives another body's row,
the crafted row is withheld and counted, and every ledger verifies.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import needs_7zz, wait_for
from tests.gateway.forwarding.test_fanout import (
    CODE,
    FLOW,
    HOKKAIDO,
    KANAGAWA,
    MISMATCH,
    ROWS,
    TOKYO,
    TOWNS,
    Chain,
    _opened,
    chain,
)
from tests.gateway.inbound.test_holdings_pair import csv_bytes
from tests.gateway.test_two_gateways import Gateway

__all__ = ["chain"]

pytestmark = [pytest.mark.slow, needs_7zz]


@pytest.fixture
def daemons(chain: Chain) -> Iterator[tuple[Gateway, Gateway, Gateway]]:
    gateways = (Gateway(chain.pair.provider.root), Gateway(chain.pair.recipient.root),
                Gateway(chain.federation.root))
    yield gateways
    for g in gateways:
        g.stop()


def _delivered(folder: Path) -> bool:
    return any(p.name.endswith(".zip") for p in (folder / "inbox").iterdir())


def test_a_national_file_goes_down_the_chain_each_body_getting_only_its_rows(
    chain: Chain, daemons: tuple[Gateway, Gateway, Gateway], tmp_path: Path
) -> None:
    isa, central, tokyo = daemons
    for g in daemons:
        g.start()
    isa.drop_into("monthly", "national-2026-10.csv", csv_bytes(ROWS))
    t = isa.wait_transfer("national-2026-10.csv", "awaiting_approval")
    isa.ok("approve", t["id"], "--key", str(chain.pair.key("suzuki")))
    (h,) = central.wait_holding("monthly")

    # 国保中央会 → each 国保連合会: one file per prefecture, one decision for all.
    fanout = json.loads(central.ok("holdings", "forward", h["id"], "--flow", FLOW,
                                   "--split-by", CODE, "--json"))
    assert fanout["withheld"] == {"mismatch": 1} and fanout["rows"] == len(ROWS)
    central.ok("approve", fanout["fanout"], "--key", str(chain.pair.key("yamada")))
    elsewhere = chain.base / "elsewhere"
    wait_for(lambda: all(_delivered(elsewhere / m) for m in ("nhi-federations-01",
                                                             "nhi-federations-14")),
             60, "the federations of Hokkaido and Kanagawa to receive their parts")
    expected = {"nhi-federations-01": HOKKAIDO, "nhi-federations-14": KANAGAWA}
    for member, rows in expected.items():
        data = _opened(tmp_path / "opened", elsewhere / member / "inbox",
                       elsewhere / member / "passwords")
        assert data == csv_bytes(rows)
    (held,) = tokyo.wait_holding(FLOW)
    assert held["sha256"] == hashlib.sha256(csv_bytes(TOKYO)).hexdigest()
    shown = central.holding(h["id"])
    wait_for(lambda: central.holding(h["id"])["fanouts"][0]["undelivered"] == [], 60,
             "every part of the fan-out delivered")
    assert [(c["member"], c["rows"]) for c in shown["fanouts"][0]["children"]] == [
        ("nhi-federations-01", 1), ("nhi-federations-13", 2), ("nhi-federations-14", 2)]

    # 国保連合会 → each 市町村: the federation of Tokyo splits its part again.
    again = json.loads(tokyo.ok("holdings", "forward", held["id"], "--flow",
                                "to-municipalities", "--split-by", CODE, "--json"))
    assert [(c["member"], c["rows"]) for c in again["children"]] == [(TOWNS[0], 1),
                                                                      (TOWNS[1], 1)]
    tokyo.ok("approve", again["fanout"], "--key", str(chain.pair.key("abe")))
    towns = chain.base / "towns"
    wait_for(lambda: all(_delivered(towns / m) for m in TOWNS), 60,
             "both municipalities to receive their parts")
    for town, row in zip(TOWNS, (TOKYO[1], TOKYO[0]), strict=True):
        folder = towns / town
        data = _opened(tmp_path / "opened-towns", folder / "inbox", folder / "passwords")
        assert data == csv_bytes([row])
    # The crafted row (a Tokyo code, a Kanagawa address) reached nobody.
    crafted = MISMATCH.encode("cp932")
    for folder in (tmp_path / "opened", tmp_path / "opened-towns"):
        for path in folder.rglob("*"):
            assert not path.is_file() or crafted not in path.read_bytes()
    assert "fanout.created" in central.kinds() and "fanout.created" in tokyo.kinds()
    for g in daemons:
        assert g.stop() == 0
        verified = g.cli("audit", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
