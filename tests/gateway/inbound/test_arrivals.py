"""Inbound intake (受信): a delivery becomes a holding only if everything verifies, and the
attacks that must not work — a tampered or non-canonical manifest, a swapped file, a wrong
password, a signature by a key that is no designated witness, a file that decrypts to other
bytes, a planted link, a replay — are refused, kept in quarantine and recorded by rule.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from gateway.exchange.manifest import Manifest, SignedApproval
from gateway.identity import sshsig
from gateway.identity.sshkeys import load_private_key
from gateway.inbound import erasure, holdings, inbox, unsealing
from gateway.inbound.holdings import HoldingState
from gateway.outbound import sealing
from tests.gateway.inbound.test_holdings_pair import (
    AGREEMENT,
    OTHER_ROWS,
    ROWS,
    Pair,
    csv_bytes,
    pair,
)

__all__ = ["pair"]

SECRET_VALUES = ("TEST TARO", "SAMPLE HANAKO", "サンプル町", "1990/04/01")


def _arrived(pair: Pair) -> tuple[Path, Path, Path]:
    """(sealed file, manifest, password) of the one delivery in the recipient's inbox."""
    (manifest,) = pair.recipient.inbox.glob("*.manifest.json")
    sealed = manifest.with_name(manifest.name.removesuffix(".manifest.json"))
    return sealed, manifest, pair.recipient.passwords / f"{sealed.name}.password"


def _rewrite(manifest: Path, **changes: Any) -> Manifest:
    m = dataclasses.replace(Manifest.from_bytes(manifest.read_bytes()), **changes)
    manifest.write_bytes(m.to_bytes())
    return m


def _refused(pair: Pair) -> holdings.Holding:
    (h,) = pair.receive()
    assert h.status is HoldingState.REFUSED, h
    return h


def _rules(h: holdings.Holding) -> list[str]:
    return [r["rule"] for r in h.reason_list()]


def _ledger_text(pair: Pair) -> str:
    return "\n".join(
        json.dumps(dict(e.data), ensure_ascii=False) for e in pair.recipient.rt.ledger.events()
    )


def test_a_verified_delivery_becomes_a_holding_encrypted_at_rest(pair: Pair) -> None:
    data = csv_bytes(ROWS)
    t = pair.send(data)
    (h,) = pair.receive()
    assert h.status is HoldingState.RECEIVED
    assert (h.agreement, h.flow, h.provider, h.recipient, h.transfer) == (
        AGREEMENT,
        "monthly",
        "isa",
        "nhi-central",
        t.id,
    )
    assert (h.size, h.sha256, h.sender) == (len(data), t.sha256, "sato")
    assert h.names("witnesses") == ["suzuki"] and h.names("handlers") == ["takahashi"]
    assert h.received_on is not None and h.deadline is not None  # 30 days in the test agreement
    assert os.listdir(pair.recipient.inbox) == [] and os.listdir(pair.recipient.passwords) == []
    folder = holdings.folder_of(pair.recipient.rt, h.id)
    assert sorted(os.listdir(folder)) == ["data.enc", "manifest.json"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    stored = (folder / "data.enc").read_bytes()
    assert b"TEST TARO" not in stored and data not in stored, "only ciphertext at rest"
    with holdings.plaintext(pair.recipient.rt, h) as stream:
        assert stream.read() == data
    (received,) = [e for e in pair.recipient.rt.ledger.events() if e.kind == "holding.received"]
    assert received.subject == h.id and received.agreement == AGREEMENT
    for key in (
        "holding",
        "flow",
        "provider",
        "party",
        "transfer",
        "deadline",
        "handlers",
        "retention",
        "terms",
        "sha256",
        "witnesses",
    ):
        assert key in received.data, key
    ledger = _ledger_text(pair)
    for value in SECRET_VALUES:
        assert value not in ledger, "no personal data in the ledger"


def test_a_zip_waits_for_its_password_before_anything_is_taken(pair: Pair) -> None:
    pair.send(csv_bytes(ROWS))
    sealed, _manifest, password = _arrived(pair)
    kept = password.read_bytes()
    password.unlink()
    assert pair.receive() == []
    assert sealed.exists(), "nothing is moved while the password is missing"
    password.write_bytes(kept)
    (h,) = pair.receive()
    assert h.status is HoldingState.RECEIVED


def test_a_tampered_manifest_is_refused_kept_and_recorded(pair: Pair) -> None:
    pair.send(csv_bytes(ROWS))
    _sealed, manifest, _password = _arrived(pair)
    _rewrite(manifest, size=999)  # the witnesses approved another size
    h = _refused(pair)
    assert _rules(h) == ["manifest.statement"]
    folder = holdings.folder_of(pair.recipient.rt, h.id)
    assert sorted(os.listdir(folder)) == ["manifest.json", "password", "sealed"], "kept"
    assert erasure.key_of(pair.recipient.rt.store, h.id) is None
    (refused,) = [e for e in pair.recipient.rt.ledger.events() if e.kind == "holding.refused"]
    assert refused.data["reasons"][0]["rule"] == "manifest.statement"
    assert "change" in refused.data["reasons"][0]["message"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda raw: raw.replace(b'","', b'", "', 1),  # a space: not canonical
        lambda raw: raw[:-1] + b',"extra":1}',
        lambda raw: raw.replace(b'"format":"tachiai-manifest/1"', b'"format":"tachiai-manifest/9"'),
        lambda raw: b"\xff" + raw,
        lambda raw: raw[: len(raw) // 2],
    ],
    ids=["not-canonical", "extra-key", "other-format", "not-utf8", "truncated"],
)
def test_a_malformed_manifest_is_refused(pair: Pair, mutate: object) -> None:
    pair.send(csv_bytes(ROWS))
    _sealed, manifest, _password = _arrived(pair)
    manifest.write_bytes(mutate(manifest.read_bytes()))  # type: ignore[operator]
    assert _rules(_refused(pair))[0] in ("manifest.malformed", "manifest.format")


def test_a_swapped_sealed_file_is_refused(pair: Pair) -> None:
    pair.send(csv_bytes(ROWS))
    first = _arrived(pair)
    saved = [p.read_bytes() for p in first]
    for path in first:
        path.unlink()
    pair.send(csv_bytes(OTHER_ROWS), name="other.csv")
    second = _arrived(pair)
    other_sealed = second[0].read_bytes()
    for path in second:
        path.unlink()
    # The first transfer's manifest and password, beside the other transfer's sealed bytes.
    for path, data in zip(first, saved, strict=True):
        path.write_bytes(data)
    first[0].write_bytes(other_sealed)
    assert _rules(_refused(pair)) == ["inbound.sealed-hash"]


def test_a_wrong_password_is_refused(pair: Pair) -> None:
    pair.send(csv_bytes(ROWS))
    _sealed, _manifest, password = _arrived(pair)
    password.write_bytes(b"ThisIsNotThePassword1234\n")
    assert _rules(_refused(pair)) == ["inbound.decrypt"]


def test_a_signature_by_a_key_that_is_no_designated_witness_is_refused(pair: Pair) -> None:
    pair.send(csv_bytes(ROWS))
    _sealed, manifest, _password = _arrived(pair)
    m = Manifest.from_bytes(manifest.read_bytes())
    forged = []
    for name in ("watanabe", "takahashi", "sato"):  # another party; a receiver; the sender
        signature = sshsig.sign(
            m.statement.encode(), load_private_key(pair.key(name)), "tachiai-approval"
        )
        forged.append(SignedApproval("suzuki", "SHA256:x", signature))
    _rewrite(manifest, approvals=tuple(forged))
    h = _refused(pair)
    assert _rules(h) == ["inbound.witnesses"]
    message = h.reason_list()[0]["message"]
    assert "approval.wrong-party" in message and "approval.self" in message


def test_a_witness_unknown_to_the_recipients_registry_does_not_count(pair: Pair) -> None:
    registry = pair.recipient.root / "registry.toml"
    text = registry.read_text(encoding="utf-8")
    start = text.index('name = "suzuki"')
    block_start = text.rindex("[[handlers]]", 0, start)
    block_end = text.index("[[handlers]]", start)
    registry.write_text(text[:block_start] + text[block_end:], encoding="utf-8")
    pair.recipient.reopen()
    pair.send(csv_bytes(ROWS))
    assert _rules(_refused(pair)) == ["inbound.witnesses"]


def test_a_file_that_decrypts_to_other_bytes_is_refused(pair: Pair, tmp_path: Path) -> None:
    """The attacker controls the sealed file and the manifest's sealed hash, not the statement."""
    pair.send(csv_bytes(ROWS))
    sealed, manifest, password = _arrived(pair)
    m = Manifest.from_bytes(manifest.read_bytes())
    forged = tmp_path / "forged.zip"
    plain = tmp_path / "plain"
    plain.write_bytes(csv_bytes(OTHER_ROWS))
    pw = password.read_text().strip()
    done = sealing.seal_zip(plain, m.file_name, forged, pw, "deflate")
    sealed.write_bytes(forged.read_bytes())
    _rewrite(manifest, sealed_size=done.sealed_size, sealed_sha256=done.sealed_sha256)
    h = _refused(pair)
    assert _rules(h) == ["inbound.plain-hash"]
    assert not (holdings.folder_of(pair.recipient.rt, h.id) / "data.enc").exists()
    assert erasure.key_of(pair.recipient.rt.store, h.id) is None


def test_a_planted_link_in_the_inbox_is_never_followed(pair: Pair, tmp_path: Path) -> None:
    pair.send(csv_bytes(ROWS))
    sealed, _manifest, _password = _arrived(pair)
    secret = tmp_path / "secret"
    secret.write_bytes(b"not for partners")
    sealed.unlink()
    os.symlink(secret, sealed)
    h = _refused(pair)
    assert _rules(h) == ["inbound.not-a-file"]
    assert secret.read_bytes() == b"not for partners"
    assert os.path.islink(holdings.folder_of(pair.recipient.rt, h.id) / "sealed")


def test_a_repeat_delivery_is_dropped_and_recorded_against_the_first(pair: Pair) -> None:
    pair.send(csv_bytes(ROWS))
    parts = [p.read_bytes() for p in _arrived(pair)]
    paths = _arrived(pair)
    (first,) = pair.receive()
    for path, data in zip(paths, parts, strict=True):  # a replay of the same delivery
        path.write_bytes(data)
    assert pair.receive() == [first]
    assert os.listdir(pair.recipient.inbox) == []
    kinds = [e.kind for e in pair.recipient.rt.ledger.events()]
    assert kinds.count("holding.received") == 1 and kinds.count("holding.duplicate") == 1


def test_a_misdelivered_file_for_another_party_is_refused(pair: Pair) -> None:
    """An inquiry (nhi-central → isa) that lands at nhi-central is not ours to hold."""
    (h,) = (pair.send(csv_bytes(ROWS)), pair.receive())[1]
    t = pair.drop(pair.recipient, csv_bytes(ROWS[:1]), flow="inquiry")
    from gateway.outbound.replies import link_transfer

    link_transfer(pair.recipient.rt, t.id, "replies_to", h.id, "test")
    delivered = pair.approve(pair.recipient, t, "yamada")
    moved = []
    for path in (pair.provider.inbox, pair.provider.passwords):
        for item in path.iterdir():
            target = (
                pair.recipient.inbox if path == pair.provider.inbox else pair.recipient.passwords
            ) / item.name
            os.replace(item, target)
            moved.append(target)
    assert delivered.status.value == "delivered" and moved
    held = pair.receive()
    assert _rules(held[-1]) == ["inbound.not-ours"]


def test_an_unknown_agreement_id_never_reaches_a_ledger_header(pair: Pair) -> None:
    pair.send(csv_bytes(ROWS))
    _sealed, manifest, _password = _arrived(pair)
    _rewrite(manifest, agreement='evil"agreement\\x')
    h = _refused(pair)
    assert h.agreement is None and _rules(h) == ["inbound.agreement-unknown"]
    (refused,) = [e for e in pair.recipient.rt.ledger.events() if e.kind == "holding.refused"]
    assert refused.agreement is None
    assert refused.data["claimed_agreement"] == 'evil"agreement\\x'


def test_a_crash_after_the_intent_is_finished_by_the_next_pass(pair: Pair) -> None:
    pair.send(csv_bytes(ROWS))
    sealed, manifest, password = _arrived(pair)
    arrival = inbox.Arrival(sealed.name, manifest, sealed, password)
    now = 1
    h = holdings.Holding(
        id=holdings.new_holding_id(),
        state="arriving",
        delivered_name=sealed.name,
        created_ns=now,
        updated_ns=now,
        inbox=holdings.dumps(
            {
                "manifest": str(arrival.manifest),
                "sealed": str(arrival.sealed),
                "password": str(arrival.password),
            }
        ),
    )
    holdings.create(pair.recipient.rt, h)
    folder = holdings.folder_of(pair.recipient.rt, h.id)
    folder.mkdir(parents=True, mode=0o700)
    os.rename(sealed, folder / "sealed")  # killed after moving one part of three
    (after,) = pair.receive()
    assert after.id == h.id and after.status is HoldingState.RECEIVED
    assert os.listdir(pair.recipient.inbox) == []


def test_a_refusal_for_a_missing_handler_is_retried_after_the_fix(pair: Pair) -> None:
    registry = pair.recipient.root / "registry.toml"
    original = registry.read_text(encoding="utf-8")
    registry.write_text(
        original.replace('roles = ["receive"]\npublic_key', 'roles = ["audit"]\npublic_key', 1),
        encoding="utf-8",
    )
    pair.recipient.reopen()
    pair.send(csv_bytes(ROWS))
    h = _refused(pair)
    assert _rules(h) == ["inbound.no-handler"]
    registry.write_text(original, encoding="utf-8")
    pair.recipient.reopen()
    from gateway.inbound.retry import retry

    assert retry(pair.recipient.rt, h.id, "operator").status is HoldingState.ARRIVING
    (after,) = pair.receive()
    assert after.status is HoldingState.RECEIVED
    kinds = [e.kind for e in pair.recipient.rt.ledger.events()]
    assert kinds == ["holding.refused", "holding.retried", "holding.received",
                     "holding.remembered", "holding.receipt_issued"]


def test_an_age_sealed_delivery_opens_with_the_configured_identity(pair: Pair) -> None:
    data = csv_bytes(ROWS)
    t = pair.send(data, flow="monthly-age")
    assert (t.delivered_path or "").endswith(".age")
    (h,) = pair.receive()
    assert h.status is HoldingState.RECEIVED and h.profile == "age"
    with holdings.plaintext(pair.recipient.rt, h) as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == t.sha256


def test_a_password_protected_workbook_in_a_zip_is_opened_and_checked(
    pair: Pair, tmp_path: Path
) -> None:
    """seed 003: Excelシート・ZIPファイルの双方にパスワード — both are opened on receipt."""
    book = openpyxl.Workbook()
    book.active.append(["氏名(英字)", "回答"])
    book.active.append(["TEST TARO", "synthetic"])
    raw = io.BytesIO()
    book.save(raw)
    plain = tmp_path / "payload"
    plain.write_bytes(raw.getvalue())
    folder = tmp_path / "h"
    folder.mkdir()
    sealed = sealing.seal_workbook_zip(
        plain, "answer.xlsx", folder / "sealed", "Zip1234", "Book5678", "deflate"
    )
    (folder / "password").write_bytes(sealing.password_document("Zip1234", "Book5678"))
    m = Manifest(
        "t-000000000001",
        AGREEMENT,
        "answer",
        "isa",
        "nhi-central",
        "answer.xlsx",
        "answer.xlsx.t-000000000001.zip",
        sealed.plain_size,
        sealed.plain_sha256,
        sealed.sealed_size,
        sealed.sealed_sha256,
        "xlsx-password+zip-aes256",
        "sato",
        "-",
    )
    rt = pair.recipient.rt
    h = holdings.Holding(
        id="h-000000000001", state="arriving", delivered_name="x", created_ns=1, updated_ns=1
    )
    assert unsealing.store_at_rest(rt, h, m, folder) is None
    chunks = erasure.read_plain(folder / "data.enc", erasure.key_of(rt.store, h.id) or b"", h.id)
    assert b"".join(chunks) == raw.getvalue()
    (folder / "password").write_bytes(sealing.password_document("Zip1234", "Wrong000"))
    assert unsealing.store_at_rest(rt, h, m, folder).rule == "inbound.decrypt"  # type: ignore[union-attr]


def test_a_refused_delivery_never_stops_the_pass_for_the_others(pair: Pair) -> None:
    pair.send(csv_bytes(ROWS))
    _sealed, manifest, _password = _arrived(pair)
    manifest.write_bytes(b"{}")
    pair.send(csv_bytes(OTHER_ROWS), name="second.csv")
    states = sorted(h.state for h in pair.receive())
    assert states == ["received", "refused"]


def test_a_name_that_is_not_utf8_is_left_alone_and_never_breaks_the_pass(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    bad = os.fsencode(pair.recipient.inbox) + b"/\xff\xfe.zip"
    with open(bad, "wb") as fh:
        fh.write(b"x")
    with open(bad + b".manifest.json", "wb") as fh:
        fh.write(b"{}")
    pair.send(csv_bytes(ROWS))
    (h,) = pair.receive()
    assert h.status is HoldingState.RECEIVED
    assert sorted(os.listdir(os.fsencode(pair.recipient.inbox))) == [
        b"\xff\xfe.zip",
        b"\xff\xfe.zip.manifest.json",
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("not printable UTF-8" in r.getMessage() for r in caplog.records)
