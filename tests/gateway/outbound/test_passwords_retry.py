"""The password hand-out and the retry of a failed transfer, as domain calls (no CLI): who may
have a password, what is recorded, when it is erased; failed → sealed and nothing else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import bootstrap
from gateway.config.settings import load_settings
from gateway.errors import CheckFailed, StateError
from gateway.identity import sshsig
from gateway.identity.sshkeys import load_private_key
from gateway.outbound import passwords
from gateway.outbound.lifecycle import State
from gateway.outbound.retry import retry
from gateway.runtime import Runtime
from gateway.state import clock
from gateway.state.store import Transfer
from gateway.transports.password_channels import RETRIEVABLE, RETRIEVAL_MARK
from tests.conftest import AGREEMENT, FLOW

SECRET = b"Abcdefghijklmnopqrstuvwx\n"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    bootstrap.init(tmp_path / "gw", demo=True)
    yield Runtime.open(load_settings(tmp_path / "gw" / "tachiai.toml"))


def key(rt: Runtime, name: str) -> Path:
    return rt.settings.config_path.parent / "demo" / "keys" / name


def transfer(rt: Runtime, state: State, **fields: object) -> Transfer:
    now = clock.now_ns()
    t = Transfer(id=f"t-{state.value[:6]}", agreement=AGREEMENT, flow=FLOW,
                 recipient="nhi-central", provider="isa", state=state.value,
                 file_name="status-change-2026-10.csv", source_path="-",
                 sealed_sha256="0" * 64, created_ns=now, updated_ns=now, **fields)
    rt.store.create(t, [])
    return t


def delivered(rt: Runtime) -> Transfer:
    t = transfer(rt, State.DELIVERED, password_path=RETRIEVAL_MARK)
    rt.spool.folder(t.id).mkdir(parents=True)
    (rt.spool.folder(t.id) / RETRIEVABLE).write_bytes(SECRET)
    return t


def signed_by(rt: Runtime, t: Transfer, name: str) -> str:
    return sshsig.sign(passwords.request_statement(rt, t), load_private_key(key(rt, name)),
                       passwords.PASSWORD_NAMESPACE)


def kinds(rt: Runtime) -> list[str]:
    rt.flush()
    return [ev.kind for ev in rt.ledger.events()]


def test_a_receiving_handler_gets_the_password_once_then_it_is_erased(rt: Runtime) -> None:
    t = delivered(rt)
    shown: list[tuple[str, bytes]] = []
    name = passwords.hand_out(rt, t.id, signed_by(rt, t, "takahashi"),
                              lambda who, doc: shown.append((who, doc)))
    assert shown == [(name, SECRET)]
    assert not (rt.spool.folder(t.id) / RETRIEVABLE).exists()
    assert "password.retrieved" in kinds(rt)
    with pytest.raises(StateError, match="already retrieved"):
        passwords.hand_out(rt, t.id, signed_by(rt, t, "takahashi"), lambda *_: None)


def test_a_password_that_could_not_be_shown_is_not_erased(rt: Runtime) -> None:
    t = delivered(rt)

    def pipe_closed(_who: str, _doc: bytes) -> None:
        raise BrokenPipeError

    with pytest.raises(BrokenPipeError):
        passwords.hand_out(rt, t.id, signed_by(rt, t, "takahashi"), pipe_closed)
    assert (rt.spool.folder(t.id) / RETRIEVABLE).read_bytes() == SECRET
    assert "password.retrieved" in kinds(rt), "recorded before it is shown"


def test_a_witness_of_the_provider_is_refused_and_the_refusal_recorded(rt: Runtime) -> None:
    t = delivered(rt)
    with pytest.raises(CheckFailed, match="not a designated receiving handler"):
        passwords.hand_out(rt, t.id, signed_by(rt, t, "suzuki"), lambda *_: None)
    assert (rt.spool.folder(t.id) / RETRIEVABLE).read_bytes() == SECRET
    assert kinds(rt) == ["password.refused"]
    assert SECRET.strip().decode() not in json.dumps(
        [ev.as_dict() for ev in rt.ledger.events()])


def test_no_password_before_delivery(rt: Runtime) -> None:
    t = transfer(rt, State.SEALED, password_path=RETRIEVAL_MARK)
    with pytest.raises(StateError, match="only after delivery"):
        passwords.hand_out(rt, t.id, "not even a signature", lambda *_: None)


def test_retry_puts_a_failed_transfer_back_to_sealed_with_attempts_reset(rt: Runtime) -> None:
    t = transfer(rt, State.FAILED, attempts=3)
    after = retry(rt, t.id, "operator")
    assert (after.status, after.attempts) == (State.SEALED, 0)
    assert rt.store.get(t.id).state == State.SEALED.value
    assert kinds(rt) == ["transfer.retried"]
    with pytest.raises(StateError, match="not failed"):
        retry(rt, t.id, "operator")
