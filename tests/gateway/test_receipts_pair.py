"""Delivery receipts (受領確認) between two gateways in one process (the `Pair` of the holdings
tests): the recipient signs a receipt when it takes a delivery in, the provider verifies it and
moves the transfer `delivered` → `acknowledged`; forged receipts are refused and kept.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.notes import NoteSigner
from gateway.config.settings import load_settings
from gateway.errors import ConfigError
from gateway.evidence.checkpointing import CheckpointSettings, public_key
from gateway.evidence.signing_key import load_or_create_key
from gateway.exchange.receipts import DeliveryReceipt, read
from gateway.outbound import receipts
from gateway.state.store import Transfer
from tests.gateway.inbound.test_holdings_pair import OTHER_ROWS, ROWS, Pair, csv_bytes, make_pair


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    """The pair, with isa expecting receipts from nhi-central, signed by its checkpoint key."""
    made = make_pair(tmp_path)
    key = public_key(CheckpointSettings.from_settings(made.recipient.rt.settings)).to_text()
    config = made.provider.root / "tachiai.toml"
    text = config.read_text(encoding="utf-8").replace(
        'password_channel = "../nhi-central/inbound/passwords"\n',
        'password_channel = "../nhi-central/inbound/passwords"\n'
        'receipts_dir = "../nhi-central/inbound/receipts"\n'
        f'receipt_key = "{key}"\n',
    )
    config.write_text(text, encoding="utf-8")
    made.provider.reopen()
    return made


def _folder(pair: Pair) -> Path:
    return pair.recipient.root / "inbound" / "receipts"


def _events(pair: Pair, kind: str) -> list[dict[str, object]]:
    return [dict(e.data, subject=e.subject) for e in pair.provider.rt.ledger.events()
            if e.kind == kind]


def _signer(pair: Pair) -> NoteSigner:
    keys = CheckpointSettings.from_settings(pair.recipient.rt.settings)
    return load_or_create_key(keys.key_path, keys.key_name)


def _receipt_for(pair: Pair, t: Transfer, **changes: object) -> DeliveryReceipt:
    return dataclasses.replace(DeliveryReceipt(
        transfer=t.id, agreement=t.agreement, flow=t.flow, provider="isa",
        recipient="nhi-central", sealed_sha256=t.sealed_sha256 or "",
        sealed_size=t.sealed_size or 0, holding="h-forged", received="2026-10-01T00:00:00+09:00",
    ), **changes)


def test_a_receipt_round_trip_ends_in_acknowledged(pair: Pair) -> None:
    t = pair.send(csv_bytes(ROWS))
    assert receipts.poll(pair.provider.rt) == 0  # nothing taken in yet
    assert [x.id for x in receipts.unacknowledged(pair.provider.rt, timedelta(0))] == [t.id]
    assert receipts.unacknowledged(pair.provider.rt) == []  # within receipt_within_hours

    (holding,) = pair.receive()
    path = _folder(pair) / f"{t.id}.receipt"
    note = path.read_text(encoding="utf-8")
    receipt = read(note, public_key(CheckpointSettings.from_settings(pair.recipient.rt.settings)))
    assert (receipt.transfer, receipt.holding, receipt.sealed_sha256, receipt.sealed_size) == (
        t.id, holding.id, t.sealed_sha256, t.sealed_size)
    issued = [e for e in pair.recipient.rt.ledger.events() if e.kind == "holding.receipt_issued"]
    assert [e.data["transfer"] for e in issued] == [t.id]

    assert receipts.poll(pair.provider.rt) == 1
    after = pair.provider.rt.store.get(t.id)
    assert after.state == "acknowledged" and after.updated_ns == t.updated_ns
    (acknowledged,) = _events(pair, "transfer.acknowledged")
    assert acknowledged["subject"] == t.id and acknowledged["holding"] == holding.id
    assert acknowledged["receipt"] == note  # the signed note itself, for an auditor
    assert not path.exists() and (_folder(pair) / "accepted" / path.name).read_text() == note
    assert receipts.unacknowledged(pair.provider.rt, timedelta(0)) == []
    assert receipts.poll(pair.provider.rt) == 0


def test_forged_and_replayed_receipts_are_refused_and_kept(pair: Pair) -> None:
    first = pair.send(csv_bytes(ROWS))
    pair.receive()
    assert receipts.poll(pair.provider.rt) == 1
    genuine = (_folder(pair) / "accepted" / f"{first.id}.receipt").read_text(encoding="utf-8")
    second = pair.send(csv_bytes(OTHER_ROWS), name="status-change-2026-11.csv")
    folder = _folder(pair)
    signer = _signer(pair)
    impostor = NoteSigner.generate(signer.name)  # same name, another key
    forged = {
        "receipt.signature": _receipt_for(pair, second).sign(impostor),
        "receipt.hash": _receipt_for(pair, second, sealed_sha256="0" * 64).sign(signer),
        "receipt.transfer": genuine,  # the first transfer's receipt, replayed for the second
        "receipt.party": _receipt_for(pair, second, provider="mhlw").sign(signer),
    }
    refused_rules = []
    for rule, note in forged.items():
        (folder / f"{second.id}.receipt").write_text(note, encoding="utf-8")
        assert receipts.poll(pair.provider.rt) == 0
        assert pair.provider.rt.store.get(second.id).state == "delivered", rule
        refused_rules.append(rule)
        assert [e["rule"] for e in _events(pair, "transfer.receipt_refused")] == refused_rules
    # A receipt for the first transfer again, although it is acknowledged: a replay.
    (folder / f"{first.id}.receipt").write_text(
        _receipt_for(pair, pair.provider.rt.store.get(first.id)).sign(signer), encoding="utf-8")
    assert receipts.poll(pair.provider.rt) == 0
    assert _events(pair, "transfer.receipt_refused")[-1]["rule"] == "receipt.state"
    kept = sorted(p.name.rsplit(".", 1)[0] for p in (folder / "refused").iterdir())
    assert kept == sorted([f"{second.id}.receipt"] * 4 + [f"{first.id}.receipt"])
    assert not list(folder.glob("*.receipt"))
    # A receipt for a transfer this gateway never sent belongs to another provider: left alone.
    (folder / "t-0123456789ab.receipt").write_text(genuine, encoding="utf-8")
    assert receipts.poll(pair.provider.rt) == 0
    assert (folder / "t-0123456789ab.receipt").exists()
    # The genuine receipt still acknowledges the second transfer afterwards.
    pair.receive()
    assert receipts.poll(pair.provider.rt) == 1
    assert pair.provider.rt.store.get(second.id).state == "acknowledged"
    data = json.loads(json.dumps(_events(pair, "transfer.receipt_refused")))
    assert all("receipt_sha256" in e and "message" in e for e in data)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda text: text.replace("receipt_key", "receipt_keys"), "did you mean 'receipt_key'"),
        (lambda text: text.replace("receipt_key = ", "# "), "receipt_key is missing"),
        (lambda text: text.replace('receipt_key = "', 'receipt_key = "x'),
         "receipt_key is not a verifier key"),
    ],
)
def test_receipt_settings_are_checked(pair: Pair, edit: Any, words: str) -> None:
    config = pair.provider.root / "tachiai.toml"
    config.write_text(edit(config.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert words in caught.value.diagnostics()
