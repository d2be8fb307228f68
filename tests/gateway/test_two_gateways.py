"""Two gateways on one machine, each with its own config, folders, state and ledger: isa (the
provider, 提供元) and nhi-central (the recipient, 提供先), both running the real daemon and
driven through the real CLI. The provider's recipient inbox is the recipient's inbound inbox
(local transport) and its password folder the recipient's inbound password folder.

Covered: send, receive, terms signed, open, deletion certified with the spool copy erased, an
inquiry answered, a correction applied, an onward send to a forbidden party refused and one
along the permitted chain allowed, and holdings going overdue under a shifted clock.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Demo, wait_for
from tests.gateway.inbound.test_holdings_pair import (
    AGREEMENT,
    HEADER,
    OTHER_ROWS,
    ROWS,
    csv_bytes,
    make_pair,
)

pytestmark = pytest.mark.slow

DAY = 86_400


class Gateway(Demo):
    """A Demo driver for either side: the daemon, the CLI, and drops into any flow."""

    def drop_into(self, flow: str, name: str, data: bytes) -> None:
        staging = self.root / "staging"
        staging.mkdir(exist_ok=True)
        (staging / name).write_bytes(data)
        os.replace(staging / name, self.root / "outbox" / AGREEMENT / flow / name)

    def holdings(self, *extra: str) -> list[dict[str, Any]]:
        return list(self.json("holdings", "list", *extra))

    def holding(self, holding_id: str) -> dict[str, Any]:
        return dict(self.json("holdings", "show", holding_id))

    def ok(self, *args: str) -> str:
        return self.cli(*args, check=True).stdout

    def wait_transfer(self, name: str, state: str) -> dict[str, Any]:
        return dict(
            wait_for(
                lambda: next((t for t in self.transfers(state) if t["file_name"] == name), None),
                120,
                f"{name} to be {state}",
            )
        )

    def wait_holding(self, flow: str, count: int = 1) -> list[dict[str, Any]]:
        return list(
            wait_for(
                lambda: (lambda hs: hs if len(hs) >= count else None)(
                    [h for h in self.holdings() if h["flow"] == flow]
                ),
                120,
                f"{count} holding(s) of flow {flow}",
            )
        )

    def kinds(self) -> list[str]:
        self.wait_ledger()  # what the daemon committed last may still be on its way
        return [
            json.loads(line)["kind"]
            for line in self.ok("audit", "log", "--json").splitlines()
            if line
        ]


@pytest.fixture
def gateways(tmp_path: Path) -> Any:
    pair = make_pair(tmp_path)
    isa, nhi = Gateway(pair.provider.root), Gateway(pair.recipient.root)
    yield isa, nhi, pair
    isa.stop()
    nhi.stop()


def test_send_receive_open_certify_reply_correct_and_overdue(gateways: Any) -> None:
    isa, nhi, pair = gateways
    key = pair.key
    isa.start()
    nhi.start()

    # 1. isa sends; nhi-central receives a verified holding.
    data = csv_bytes(ROWS)
    isa.drop_into("monthly", "status-change-2026-10.csv", data)
    t1 = isa.wait_transfer("status-change-2026-10.csv", "awaiting_approval")
    isa.ok("approve", t1["id"], "--key", str(key("suzuki")))
    isa.wait_transfer("status-change-2026-10.csv", "delivered")
    (h1,) = nhi.wait_holding("monthly")
    assert (h1["state"], h1["transfer"], h1["handlers"]) == ("received", t1["id"], ["takahashi"])

    # 2. Terms before data: no opening before takahashi signs the recipient's obligations.
    refused = nhi.cli("holdings", "open", h1["id"], "--key", str(key("takahashi")))
    assert refused.returncode == 1 and "terms.unsigned" in refused.stderr
    terms = nhi.ok("holdings", "terms", h1["id"], "--key", str(key("takahashi")))
    assert "obligation: deletion-or-return" in terms and "signed by takahashi" in terms
    other_party = nhi.cli("holdings", "open", h1["id"], "--key", str(key("watanabe")))
    assert other_party.returncode == 1 and "open.not-designated" in other_party.stderr
    opened = nhi.ok("holdings", "open", h1["id"], "--key", str(key("takahashi")))
    path = Path(opened.split(" into ", 1)[1].split(" (", 1)[0])
    assert path.read_bytes() == data and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.parent == nhi.root / "inbound" / "handlers" / "takahashi"

    # 3. Deletion certified; the gateway's copies are erased and unrecoverable from the spool.
    not_receiver = nhi.cli(
        "holdings", "certify", h1["id"], "--deleted", "--method", "x", "--key", str(key("nakamura"))
    )
    assert not_receiver.returncode == 1 and "certify.not-designated" in not_receiver.stderr
    nhi.ok(
        "holdings",
        "certify",
        h1["id"],
        "--deleted",
        "--method",
        "deleted from the processing server",
        "--key",
        str(key("takahashi")),
    )
    shown = nhi.holding(h1["id"])
    assert shown["state"] == "deleted" and shown["erased"]
    assert [c["kind"] for c in shown["certificates"]] == ["deleted"]
    state = nhi.root / "state"
    assert not (state / "holdings" / h1["id"] / "data.enc").exists() and not path.exists()
    with sqlite3.connect(state / "tachiai.db") as db:
        assert db.execute(
            "select count(*) from holding_keys where holding = ?", (h1["id"],)
        ).fetchone() == (0,)
    for found in state.rglob("*"):
        if found.is_file():
            assert b"TEST TARO" not in found.read_bytes(), found

    # 4. An inquiry (疑義照会) from nhi-central about a second holding, answered (回答) by isa.
    isa.drop_into("monthly", "status-change-2026-11.csv", data)
    t2 = isa.wait_transfer("status-change-2026-11.csv", "awaiting_approval")
    # The same bytes as the first month's file: the witness says so (the duplicate notice).
    isa.ok("approve", t2["id"], "--key", str(key("tanaka")), "--duplicate-ok")
    h2 = nhi.wait_holding("monthly", 2)[-1]
    nhi.drop_into("inquiry", "inquiry.csv", csv_bytes(ROWS[:1]))
    inquiry = nhi.wait_transfer("inquiry.csv", "awaiting_approval")
    assert inquiry["sender"] == "kobayashi"
    nhi.ok("transfers", "link", inquiry["id"], "--replies-to", h2["id"])
    assert f"replies-to: {t2['id']}" in nhi.ok("transfers", "statement", inquiry["id"])
    nhi.ok("approve", inquiry["id"], "--key", str(key("yamada")))
    (asked,) = isa.wait_holding("inquiry")
    assert asked["replies_to"] == t2["id"] and asked["provider"] == "nhi-central"
    isa.drop_into("answer", "answer.csv", csv_bytes(ROWS[:1]))
    answer = isa.wait_transfer("answer.csv", "awaiting_approval")
    isa.ok("transfers", "link", answer["id"], "--replies-to", asked["id"])
    isa.ok("approve", answer["id"], "--key", str(key("suzuki")))
    (answered,) = nhi.wait_holding("answer")
    assert answered["replies_to"] == inquiry["id"]
    thread = nhi.holding(h2["id"])["thread"]
    assert {
        "relation": "answered by",
        "id": inquiry["id"],
        "what": "our transfer, delivered",
    } in thread

    # 5. A correction (訂正) of the second provision supersedes it; takahashi certifies it applied.
    isa.drop_into("monthly", "status-change-2026-11-fixed.csv", csv_bytes(OTHER_ROWS))
    t3 = isa.wait_transfer("status-change-2026-11-fixed.csv", "awaiting_approval")
    isa.ok("transfers", "link", t3["id"], "--corrects", t2["id"])
    isa.ok("approve", t3["id"], "--key", str(key("suzuki")))
    h3 = nhi.wait_holding("monthly", 3)[-1]
    assert h3["corrects"] == t2["id"] and h3["correction_pending"] is True
    assert nhi.holding(h2["id"])["superseded_by"] == h3["id"]
    nhi.ok(
        "holdings",
        "certify",
        h3["id"],
        "--applied",
        "--method",
        "applied to the eligibility records",
        "--key",
        str(key("takahashi")),
    )
    assert nhi.holding(h3["id"])["correction_pending"] is False

    # 6. 再提供の禁止: nhi-central passes the rows it received on. Re-encoded (cp932 → UTF-8)
    #    to a party outside the onward chain: refused, naming the source agreement and the
    #    count, never a row. To the prefectural federations (the chain of seed 000): allowed.
    copy = ("\r\n".join([HEADER, *ROWS]) + "\r\n").encode("utf-8")
    nhi.drop_into("elsewhere", "copy.csv", copy)
    forbidden = nhi.wait_transfer("copy.csv", "rejected")
    (reason,) = forbidden["reasons"]
    assert reason["rule"] == "onward.forbidden"
    assert AGREEMENT in reason["message"] and "2 of the 2 rows" in reason["message"]
    assert "TEST TARO" not in json.dumps(forbidden)
    nhi.drop_into("onward", "federation.csv", copy)
    permitted = nhi.wait_transfer("federation.csv", "awaiting_approval")
    nhi.ok("approve", permitted["id"], "--key", str(key("yamada")))
    nhi.wait_transfer("federation.csv", "delivered")
    # Never received here (OTHER_ROWS came with the correction): same columns, other people.
    unrelated = csv_bytes(
        ["EXAMPLE SABURO,131016,東京都千代田区サンプル町9-9,2,1999/09/09,2026/10/05"])
    nhi.drop_into("elsewhere", "unrelated.csv", unrelated)
    nhi.wait_transfer("unrelated.csv", "awaiting_approval")

    # 7. Overdue: the recipient's daemon, 31 days on, records every held holding overdue.
    assert nhi.holdings("--overdue") == []
    assert nhi.stop() == 0
    nhi.start(env={"TACHIAI_CLOCK_OFFSET_SECONDS": str(31 * DAY)})
    overdue = wait_for(
        lambda: (lambda hs: hs if len(hs) >= 3 else None)(nhi.holdings("--overdue")),
        120,
        "three overdue holdings",
    )
    assert sorted(h["id"] for h in overdue) == sorted([h2["id"], h3["id"], answered["id"]])
    kinds = nhi.kinds()
    assert kinds.count("holding.overdue") == 3
    for kind in (
        "holding.received",
        "holding.terms_signed",
        "holding.opened",
        "holding.certified",
        "holding.erased",
        "holding.superseded",
        "holding.request_refused",
    ):
        assert kind in kinds, kind
    assert h1["id"] not in [h["id"] for h in overdue], "a deleted holding is never overdue"


    for side in (isa, nhi):
        assert side.cli("audit", "verify").returncode == 0
    ledger = nhi.ok("audit", "log", "--json")
    assert "TEST TARO" not in ledger and "サンプル町" not in ledger
    assert nhi.daemon is not None and nhi.daemon.poll() is None
