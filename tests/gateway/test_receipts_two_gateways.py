"""Delivery receipts (受領確認) between two running gateways, through the real daemons and CLI:
nhi-central takes a delivery in and signs a receipt; isa reads it and its transfer ends in
`acknowledged`. The provider's receipt_key is the recipient's `tachiai audit public-key`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.gateway.inbound.test_holdings_pair import ROWS, csv_bytes, make_pair
from tests.gateway.test_two_gateways import Gateway

pytestmark = pytest.mark.slow


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Any]:
    pair = make_pair(tmp_path)
    isa, nhi = Gateway(pair.provider.root), Gateway(pair.recipient.root)
    yield isa, nhi, pair
    isa.stop()
    nhi.stop()


def test_a_delivery_is_acknowledged_by_the_recipients_signed_receipt(gateways: Any) -> None:
    isa, nhi, pair = gateways
    key = nhi.ok("audit", "public-key").strip()
    config = isa.root / "tachiai.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'password_channel = "../nhi-central/inbound/passwords"\n',
            'password_channel = "../nhi-central/inbound/passwords"\n'
            'receipts_dir = "../nhi-central/inbound/receipts"\n'
            f'receipt_key = "{key}"\n',
        ),
        encoding="utf-8",
    )
    assert "all valid" in isa.ok("agreements", "check")
    isa.start()
    nhi.start()
    isa.drop_into("monthly", "status-change-2026-10.csv", csv_bytes(ROWS))
    t = isa.wait_transfer("status-change-2026-10.csv", "awaiting_approval")
    isa.ok("approve", t["id"], "--key", str(pair.key("suzuki")))
    done = isa.wait_transfer("status-change-2026-10.csv", "acknowledged")
    assert done["id"] == t["id"]
    assert isa.transfers("delivered") == []
    wait_for(lambda: "transfer.acknowledged" in isa.kinds(), 60, "the acknowledgement event")
    assert "holding.receipt_issued" in nhi.kinds()
    receipts = nhi.root / "inbound" / "receipts"
    assert [p.name for p in (receipts / "accepted").iterdir()] == [f"{t['id']}.receipt"]
    assert isa.ok("audit", "verify")
