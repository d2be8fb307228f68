"""Terms before data, opening, certified deletion or return, erasure, and deadlines.

Attacks as a person would try them: opening before signing the terms, a handler of another
party, a witness without the receive role, a replayed or stale open request, a signature kept
in the database that nobody made, certifying twice or on a future date, personal data in a
certificate. After a certified deletion the plaintext must not be recoverable from anything
under the state directory, and the key must not be in the database file or its WAL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import event, update

from gateway.cli import main
from gateway.errors import CheckFailed, StateError, UsageError
from gateway.identity import sshsig
from gateway.identity.sshkeys import load_private_key
from gateway.inbound import erasure, holdings
from gateway.inbound.certificates import CERTIFICATE_NAMESPACE, certificate_statement, certify
from gateway.inbound.holdings import Holding, HoldingState
from gateway.inbound.opening import OPEN_NAMESPACE, open_holding, open_request
from gateway.inbound.sweep import sweep_holdings
from gateway.inbound.terms import TERMS_NAMESPACE, sign_terms, terms_statement
from gateway.state import clock, schema
from policies.terms import Retention
from tests.gateway.inbound.test_holdings_pair import AGREEMENT, ROWS, Pair, csv_bytes, pair

__all__ = ["pair"]


def _held(pair: Pair) -> Holding:
    pair.send(csv_bytes(ROWS))
    (h,) = pair.receive()
    assert h.status is HoldingState.RECEIVED
    return h


def _sign(pair: Pair, who: str, message: bytes, namespace: str) -> str:
    return sshsig.sign(message, load_private_key(pair.key(who)), namespace)


def _terms(pair: Pair, h: Holding, who: str = "takahashi") -> str:
    rt = pair.recipient.rt
    statement = terms_statement(rt.agreements[AGREEMENT], rt.settings.party)
    return sign_terms(rt, h.id, _sign(pair, who, statement, TERMS_NAMESPACE))


def _open(pair: Pair, h: Holding, who: str = "takahashi", when: dt.datetime | None = None) -> Path:
    when = when or dt.datetime.now(clock.JST).replace(microsecond=0)
    statement = open_request(holdings.get(pair.recipient.rt, h.id), when.isoformat())
    return open_holding(
        pair.recipient.rt, h.id, statement, _sign(pair, who, statement, OPEN_NAMESPACE)
    )


def _certify(
    pair: Pair,
    h: Holding,
    kind: str = "deleted",
    who: str = "takahashi",
    method: str = "deleted from the processing server",
    on: dt.date | None = None,
) -> Holding:
    on = on or clock.today()
    statement = certificate_statement(holdings.get(pair.recipient.rt, h.id), kind, method, on)
    return certify(
        pair.recipient.rt,
        h.id,
        kind,
        method,
        on,
        _sign(pair, who, statement, CERTIFICATE_NAMESPACE),
    )


def _kinds(pair: Pair) -> list[str]:
    return [e.kind for e in pair.recipient.rt.ledger.events()]


# -- terms before data --------------------------------------------------------------------------


def test_the_terms_name_the_recipients_obligations(pair: Pair) -> None:
    rt = pair.recipient.rt
    text = terms_statement(rt.agreements[AGREEMENT], "nhi-central").decode()
    assert "purpose: 国民健康保険が適用されない在留資格" in text
    assert "onward: only to nhi-federations" in text
    assert "retention: delete-or-return" in text and "within 30 days" in text
    assert "corrections: accepted" in text
    for obligation in ("purpose-limit", "confidentiality", "deletion-or-return", "corrections"):
        assert f"obligation: {obligation}" in text


def test_nothing_is_released_before_the_terms_are_signed(pair: Pair) -> None:
    h = _held(pair)
    with pytest.raises(CheckFailed, match=r"terms\.unsigned"):
        _open(pair, h)
    assert not (pair.recipient.handlers / "takahashi").exists() or not os.listdir(
        pair.recipient.handlers / "takahashi"
    )
    assert holdings.get(pair.recipient.rt, h.id).status is HoldingState.RECEIVED
    assert _kinds(pair)[-1] == "holding.request_refused"


def test_a_designated_handler_signs_the_terms_then_opens_into_their_own_folder(pair: Pair) -> None:
    data = csv_bytes(ROWS)
    h = _held(pair)
    assert _terms(pair, h) == "takahashi"
    path = _open(pair, h)
    assert path.parent == pair.recipient.handlers / "takahashi"
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert holdings.get(pair.recipient.rt, h.id).status is HoldingState.OPENED
    _open(pair, h)
    assert holdings.get(pair.recipient.rt, h.id).status is HoldingState.IN_USE
    opened = [e for e in pair.recipient.rt.ledger.events() if e.kind == "holding.opened"]
    assert [e.actor for e in opened] == ["takahashi", "takahashi"]
    assert opened[0].data["sha256"] == h.sha256 and opened[0].data["path"] == str(path)
    assert "TEST TARO" not in json.dumps([dict(e.data) for e in opened], ensure_ascii=False)


def test_opening_tells_its_progress_in_bytes_decrypted(pair: Pair) -> None:
    h = _held(pair)
    _terms(pair, h)
    when = dt.datetime.now(clock.JST).replace(microsecond=0)
    statement = open_request(holdings.get(pair.recipient.rt, h.id), when.isoformat())
    told: list[int] = []
    path = open_holding(pair.recipient.rt, h.id, statement,
                        _sign(pair, "takahashi", statement, OPEN_NAMESPACE), progress=told.append)
    assert told and told == sorted(told) and told[-1] == h.size == path.stat().st_size


@pytest.mark.parametrize(
    "who",
    ["watanabe", "nakamura", "kobayashi", "suzuki"],
    ids=["other-party-receiver", "recipient-witness", "recipient-sender", "provider-witness"],
)
def test_only_a_designated_receiving_handler_of_our_party_may_sign_or_open(
    pair: Pair, who: str
) -> None:
    h = _held(pair)
    with pytest.raises(CheckFailed, match=r"terms\.not-designated"):
        _terms(pair, h, who)
    _terms(pair, h)  # even with takahashi's terms signed, the request is theirs
    with pytest.raises(CheckFailed, match=r"open\.not-designated"):
        _open(pair, h, who)
    assert not (pair.recipient.handlers / who).exists()
    refused = [e for e in pair.recipient.rt.ledger.events() if e.kind == "holding.request_refused"]
    assert [e.data["action"] for e in refused] == ["terms", "open"]


def test_a_replayed_or_stale_open_request_is_refused(pair: Pair) -> None:
    h = _held(pair)
    _terms(pair, h)
    rt = pair.recipient.rt
    when = dt.datetime.now(clock.JST).replace(microsecond=0)
    statement = open_request(h, when.isoformat())
    signature = _sign(pair, "takahashi", statement, OPEN_NAMESPACE)
    open_holding(rt, h.id, statement, signature)
    with pytest.raises(CheckFailed, match=r"open\.replayed"):
        open_holding(rt, h.id, statement, signature)  # the same signed bytes, again
    rewrapped = signature.replace("\n", "\n\n", 1)  # the same signature, other armor bytes
    assert sshsig.verify(statement, rewrapped, OPEN_NAMESPACE)
    with pytest.raises(CheckFailed, match=r"open\.replayed"):
        open_holding(rt, h.id, statement, rewrapped)
    with pytest.raises(CheckFailed, match=r"open\.stale"):
        _open(pair, h, when=when - dt.timedelta(minutes=20))
    other = open_request(h, when.isoformat()).replace(b"holding: ", b"holding: x")
    with pytest.raises(CheckFailed, match=r"open\.request"):
        open_holding(rt, h.id, other, _sign(pair, "takahashi", other, OPEN_NAMESPACE))


def test_a_terms_signature_written_into_the_database_by_someone_else_counts_for_nothing(
    pair: Pair,
) -> None:
    h = _held(pair)
    rt = pair.recipient.rt
    statement = terms_statement(rt.agreements[AGREEMENT], "nhi-central")
    forged = _sign(pair, "watanabe", statement, TERMS_NAMESPACE)  # not takahashi's key
    with rt.store.transaction() as conn:
        conn.execute(
            schema.TERMS.insert().values(
                agreement=AGREEMENT,
                handler="takahashi",
                terms_sha256=__import__("hashlib").sha256(statement).hexdigest(),
                statement=statement.decode(),
                signature=forged,
                fingerprint="x",
                created_ns=1,
            )
        )
    with pytest.raises(CheckFailed, match=r"terms\.unsigned"):
        _open(pair, h)


def test_changed_terms_must_be_signed_again(pair: Pair) -> None:
    h = _held(pair)
    _terms(pair, h)
    rt = pair.recipient.rt
    agreement = rt.agreements[AGREEMENT]
    rt.agreements = {AGREEMENT: dataclasses.replace(agreement, purpose=agreement.purpose + "等")}
    with pytest.raises(CheckFailed, match=r"terms\.unsigned"):
        _open(pair, h)
    _terms(pair, h)
    assert _open(pair, h).exists()


# -- certified deletion and erasure -------------------------------------------------------------


def test_a_certified_deletion_erases_every_copy_the_gateway_holds(pair: Pair) -> None:
    data = csv_bytes(ROWS)
    h = _held(pair)
    _terms(pair, h)
    opened = _open(pair, h)
    rt = pair.recipient.rt
    key = erasure.key_of(rt.store, h.id)
    assert key is not None
    after = _certify(pair, h)
    assert after.status is HoldingState.DELETED and after.erased_ns is not None
    assert erasure.key_of(rt.store, h.id) is None
    folder = holdings.folder_of(rt, h.id)
    assert os.listdir(folder) == ["manifest.json"], "the encrypted copy is gone"
    assert not opened.exists(), "the copy the gateway wrote for the handler is removed"
    # Nothing under the state directory or the inbound folders holds the plaintext or the key.
    for base in (rt.settings.state_dir, pair.recipient.root / "inbound"):
        for path in base.rglob("*"):
            if path.is_file() and not path.is_symlink():
                content = path.read_bytes()
                assert data not in content and b"TEST TARO" not in content, path
                assert key not in content, path
    events = {e.kind: e for e in rt.ledger.events()}
    cert = events["holding.certified"]
    assert cert.actor == "takahashi"
    assert {k: cert.data[k] for k in ("kind", "method", "handler", "certified_on")} == {
        "kind": "deleted",
        "method": "deleted from the processing server",
        "handler": "takahashi",
        "certified_on": clock.today().isoformat(),
    }
    signed = sshsig.verify(
        cert.data["statement"].encode(), cert.data["signature"], CERTIFICATE_NAMESPACE
    )
    assert rt.registry.by_key(signed.public_key).name == "takahashi"  # type: ignore[union-attr]
    erased = events["holding.erased"].data
    assert erased["key_destroyed"] is True and erased["spool_copy_removed"] is True
    assert erased["handler_copies_removed"] == 1 and erased["wal_truncated"] is True
    with pytest.raises(StateError):
        _open(pair, h)
    with pytest.raises(StateError):
        _certify(pair, h, "returned")


def test_the_key_is_overwritten_even_where_secure_delete_is_off_by_default(pair: Pair) -> None:
    rt = pair.recipient.rt
    store = rt.store

    @event.listens_for(store.engine, "connect")
    def _insecure(dbapi_conn: object, _record: object) -> None:
        dbapi_conn.execute("PRAGMA secure_delete = OFF")  # type: ignore[attr-defined]

    store.engine.dispose()
    key = erasure.new_key(store, "h-000000000009", 1)
    erasure.new_key(store, "h-00000000000a", 1)  # a neighbour keeps the page in use
    assert erasure.destroy_key(store, "h-000000000009").key_existed
    db = rt.settings.database_path
    for path in (db, db.with_name(db.name + "-wal")):
        if path.exists():
            assert key not in path.read_bytes(), path


def test_a_copy_that_was_altered_at_rest_is_never_released(pair: Pair) -> None:
    h = _held(pair)
    _terms(pair, h)
    path = holdings.folder_of(pair.recipient.rt, h.id) / "data.enc"
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(Exception, match="fails authentication"):
        _open(pair, h)
    assert not any((pair.recipient.handlers / "takahashi").iterdir())


def test_certificates_are_refused_by_others_in_the_future_or_with_personal_data(pair: Pair) -> None:
    h = _held(pair)
    with pytest.raises(CheckFailed, match=r"certify\.not-designated"):
        _certify(pair, h, who="nakamura")
    with pytest.raises(CheckFailed, match=r"certify\.not-designated"):
        _certify(pair, h, who="watanabe")
    with pytest.raises(CheckFailed, match=r"certificate\.date"):
        _certify(pair, h, on=clock.today() + dt.timedelta(days=1))
    with pytest.raises(UsageError):
        _certify(pair, h, method="deleted row of 1234-5678-9018")  # a valid My Number form
    with pytest.raises(StateError):
        _certify(pair, h, kind="applied")  # not a correction
    assert holdings.get(pair.recipient.rt, h.id).status is HoldingState.RECEIVED
    assert erasure.key_of(pair.recipient.rt.store, h.id) is not None


def test_a_return_where_the_agreement_requires_deletion_is_refused(pair: Pair) -> None:
    h = _held(pair)
    rt = pair.recipient.rt
    agreement = rt.agreements[AGREEMENT]
    rt.agreements = {
        AGREEMENT: dataclasses.replace(agreement, retention=Retention("delete", "use", True, 30))
    }
    with pytest.raises(CheckFailed, match=r"retention\.method"):
        _certify(pair, h, kind="returned", method="returned the media by hand")
    assert _certify(pair, h, kind="deleted").status is HoldingState.DELETED


def test_an_erasure_interrupted_after_the_certificate_is_finished_by_the_daemon(pair: Pair) -> None:
    h = _held(pair)
    rt = pair.recipient.rt
    with rt.store.transaction() as conn:  # certified, then killed before erasing
        table = schema.HOLDINGS
        conn.execute(update(table).where(table.c.id == h.id).values(state="returned"))
    pair.receive()
    after = holdings.get(rt, h.id)
    assert after.erased_ns is not None and erasure.key_of(rt.store, h.id) is None


# -- deadlines ----------------------------------------------------------------------------------


def test_reminders_before_and_at_the_deadline_then_overdue_each_recorded_once(
    pair: Pair, tmp_path: Path
) -> None:
    out = tmp_path / "notices.jsonl"
    script = tmp_path / "notify.py"
    script.write_text(
        f"import sys\nopen({str(out)!r}, 'ab').write(sys.stdin.buffer.read() + b'\\n')\n"
    )
    config = pair.recipient.root / "tachiai.toml"
    config.write_text(
        config.read_text().replace(
            "remind_days = [14, 3, 0]",
            f"remind_days = [14, 3, 0]\nnotify_command = [{json.dumps(sys.executable)}, "
            f"{json.dumps(str(script))}]",
        ),
        encoding="utf-8",
    )
    rt = pair.recipient.reopen()
    h = _held(pair)
    deadline = dt.date.fromisoformat(h.deadline or "")
    assert deadline == dt.date.fromisoformat(h.received_on or "") + dt.timedelta(days=30)
    seen = []
    for days_before in (20, 14, 14, 10, 3, 0, 0, -1, -2):
        notices = sweep_holdings(rt, deadline - dt.timedelta(days=days_before))
        seen.append([(n.kind, n.reminder_day) for n in notices])
    assert seen == [
        [],
        [("holding.reminder", 14)],
        [],
        [],
        [("holding.reminder", 3)],
        [("holding.reminder", 0)],
        [],
        [("holding.overdue", None)],
        [],
    ]
    kinds = [k for k in _kinds(pair) if k in ("holding.reminder", "holding.overdue")]
    assert kinds == ["holding.reminder"] * 3 + ["holding.overdue"]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [n["kind"] for n in lines] == kinds
    assert lines[-1]["holding"] == h.id and lines[-1]["handlers"] == ["takahashi"]
    assert "TEST TARO" not in out.read_text() and "status-change" not in out.read_text()
    overdue = next(e for e in rt.ledger.events() if e.kind == "holding.overdue")
    assert overdue.data["reason"]["rule"] == "retention.overdue"
    assert overdue.data["reason"]["term"] == f"{AGREEMENT}/retention"


def test_a_sweep_that_starts_late_records_only_the_nearest_reminder(pair: Pair) -> None:
    h = _held(pair)
    deadline = dt.date.fromisoformat(h.deadline or "")
    notices = sweep_holdings(pair.recipient.rt, deadline - dt.timedelta(days=2))
    assert [(n.kind, n.reminder_day) for n in notices] == [("holding.reminder", 3)]
    assert sweep_holdings(pair.recipient.rt, deadline - dt.timedelta(days=1)) == []


def test_a_failing_notification_command_never_stops_the_sweep(pair: Pair) -> None:
    config = pair.recipient.root / "tachiai.toml"
    config.write_text(
        config.read_text().replace(
            "remind_days = [14, 3, 0]", 'remind_days = [0]\nnotify_command = ["/nonexistent/x"]'
        ),
        encoding="utf-8",
    )
    rt = pair.recipient.reopen()
    h = _held(pair)
    deadline = dt.date.fromisoformat(h.deadline or "")
    assert len(sweep_holdings(rt, deadline + dt.timedelta(days=1))) == 1
    assert "holding.overdue" in _kinds(pair)


def test_holdings_list_overdue_and_show_through_the_cli(
    pair: Pair, capsys: pytest.CaptureFixture[str]
) -> None:
    h = _held(pair)
    deadline = dt.date.fromisoformat(h.deadline or "")
    config = str(pair.recipient.root / "tachiai.toml")
    assert main(["holdings", "list", "--overdue", "--json", "--config", config]) == 0
    assert json.loads(capsys.readouterr().out) == []
    yesterday = (clock.today() - dt.timedelta(days=1)).isoformat()
    with pair.recipient.rt.store.transaction() as conn:  # received 31 days ago
        conn.execute(
            update(schema.HOLDINGS)
            .where(schema.HOLDINGS.c.id == h.id)
            .values(deadline=yesterday)
        )
    assert main(["holdings", "list", "--overdue", "--json", "--config", config]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["id"] == h.id and row["overdue"] is True and row["days_left"] == -1
    assert main(["holdings", "show", h.id, "--config", config]) == 0
    shown = capsys.readouterr().out
    assert f"id: {h.id}" in shown and f"holdings terms {h.id}" in shown
    assert f"deadline: {yesterday}" in shown
    assert str(deadline) not in shown, "the stored deadline is what is shown"
    assert (
        main(["holdings", "open", h.id, "--key", str(pair.key("takahashi")), "--config", config])
        == 1
    )
    assert "terms.unsigned" in capsys.readouterr().err


def test_terms_and_certificate_signed_with_openssh_and_rechecked_by_an_auditor(
    pair: Pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real `ssh-keygen -Y sign` makes the signatures; real `ssh-keygen -Y verify` re-checks
    the certificate from the ledger event alone, as an auditor would."""
    h = _held(pair)
    config = str(pair.recipient.root / "tachiai.toml")
    key = str(pair.key("takahashi"))
    for command, namespace in (
        (["holdings", "terms", h.id], TERMS_NAMESPACE),
        (
            ["holdings", "certify", h.id, "--returned", "--method", "returned the media by hand"],
            CERTIFICATE_NAMESPACE,
        ),
    ):
        assert main([*command, "--statement", "--config", config]) == 0
        statement = tmp_path / f"{namespace}.txt"
        statement.write_text(capsys.readouterr().out, encoding="utf-8")
        subprocess.run(
            ["ssh-keygen", "-q", "-Y", "sign", "-n", namespace, "-f", key, str(statement)],
            check=True,
            capture_output=True,
        )
        signature = f"{statement}.sig"
        submitted = main([*command, "--signature", signature, "--config", config])
        assert submitted == 0, capsys.readouterr().err
        capsys.readouterr()  # what the command printed is not the next statement
    assert holdings.get(pair.recipient.rt, h.id).status is HoldingState.RETURNED
    cert = next(e for e in pair.recipient.rt.ledger.events() if e.kind == "holding.certified")
    signers = tmp_path / "allowed_signers"
    public = pair.key("takahashi").with_suffix(".pub").read_text().split()[:2]
    signers.write_text(f"takahashi {' '.join(public)}\n")
    (tmp_path / "cert.sig").write_text(cert.data["signature"])
    checked = subprocess.run(
        [
            "ssh-keygen",
            "-Y",
            "verify",
            "-f",
            str(signers),
            "-I",
            "takahashi",
            "-n",
            CERTIFICATE_NAMESPACE,
            "-s",
            str(tmp_path / "cert.sig"),
        ],
        input=cert.data["statement"].encode(),
        capture_output=True,
    )
    assert checked.returncode == 0, checked.stderr
