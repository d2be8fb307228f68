"""Handing a delivered ZIP's password to a receiving handler (受信担当) who proves who they are.

Owns the request statement (namespace `tachiai-password`), the decision of who may have a
password, the ledger events of a retrieval or a refusal, and erasing the password once handed
out. It never logs a password and never hands one out without recording it first.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.errors import CheckFailed, StateError, StorageError
from gateway.i18n import N_
from gateway.identity import sshsig
from gateway.outbound.delivery import delivered_name
from gateway.outbound.lifecycle import State
from gateway.outbound.sealing import suffix
from gateway.runtime import Runtime, event
from gateway.state import clock
from gateway.state.store import Transfer
from gateway.transports.password_channels import RETRIEVABLE, RETRIEVAL_MARK
from policies.receivers import receiver_refusal

PASSWORD_NAMESPACE = "tachiai-password"  # noqa: S105 - a signature namespace, not a secret

#: Receives (handler name, password document) and shows it to the person who asked.
HandOver = Callable[[str, bytes], None]


def request_statement(rt: Runtime, t: Transfer) -> bytes:
    """The exact bytes a receiving handler signs to ask for a transfer's password."""
    _agreement, flow = rt.agreement_flow(t.agreement, t.flow)
    lines = [
        "tachiai password request v1",
        f"transfer: {t.id}",
        f"agreement: {t.agreement}",
        f"flow: {t.flow}",
        f"recipient: {t.recipient}",
        f"file-name: {delivered_name(t.id, t.file_name, suffix(flow.encryption))}",
        f"sealed-sha256: {t.sealed_sha256}",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def hand_out(rt: Runtime, transfer_id: str, signature: str, hand_over: HandOver) -> str:
    """Check, record, hand over, then erase: a password is handed out once.

    The password is erased only after `hand_over` returns, so a failure to show it (a closed
    pipe) leaves it retrievable; the retrieval is recorded before it is shown. Returns the
    name of the handler who received it.

    Raises:
        StateError, SignatureError, CheckFailed: as for `retrieve_password`.
        StorageError: the password was handed over but cannot be erased.
    """
    name, document = retrieve_password(rt, transfer_id, signature)
    hand_over(name, document)
    erase(rt, transfer_id)
    return name


def retrieve_password(rt: Runtime, transfer_id: str, signature: str) -> tuple[str, bytes]:
    """Check the request's signature and signer; record the retrieval; return (name, password).

    The caller shows the password and then calls `erase` (`hand_out` does both, in order).

    Raises:
        StateError: not delivered, not a retrieval route, or already retrieved.
        SignatureError: the signature is malformed or over other bytes.
        CheckFailed: the signer is not a designated receiving handler of the recipient (recorded).
    """
    t = rt.store.get(transfer_id)
    if t.status not in (State.DELIVERED, State.ACKNOWLEDGED):
        raise StateError(
            N_("transfer {id} is {state}; a password is handed out only "
               "after delivery").format(id=t.id, state=t.state),
            hint=N_("wait until `tachiai transfers show ID` says delivered"),
        )
    path = rt.spool.folder(t.id) / RETRIEVABLE
    if t.password_path != RETRIEVAL_MARK:
        raise StateError(
            N_("the password of {id} was not kept for retrieval (its route: "
               "{value})").format(id=t.id, value=t.password_path or 'none')
        )
    if not path.exists():
        raise StateError(
            N_("the password of {id} was already retrieved and erased").format(
                id=t.id),
            hint=N_("see `tachiai audit log` for who retrieved it; if it is "
                    "lost, the sender must send the file again"),
        )
    statement = request_statement(rt, t)
    signed = sshsig.verify(statement, signature, PASSWORD_NAMESPACE)
    handler = rt.registry.by_key(signed.public_key)
    refusal = receiver_refusal(
        handler, t.recipient, t.agreement, clock.today(), key=signed.fingerprint
    )
    if refusal is not None:
        who = handler.name if handler else None
        rt.store.record(
            [
                event(
                    "password.refused",
                    t,
                    {
                        "fingerprint": signed.fingerprint,
                        "handler": who,
                        "reason": refusal.message,
                        "rule": refusal.rule,
                    },
                    actor=who,
                    key=f"{t.id}:password.refused:{clock.now_ns()}",
                )
            ]
        )
        rt.flush()
        raise CheckFailed(
            N_("refused: {message} [{rule}]; nothing was handed out "
               "(recorded)").format(message=refusal.message, rule=refusal.rule),
            hint=N_("ask the administrator to designate you with the receive role"),
        )
    assert handler is not None  # receiver_refusal refuses a key that is nobody's
    rt.store.record(
        [
            event(
                "password.retrieved",
                t,
                {
                    "handler": handler.name,
                    "fingerprint": signed.fingerprint,
                    "statement": statement.decode("utf-8"),
                    "signature": signature,
                    "namespace": PASSWORD_NAMESPACE,
                },
                actor=handler.name,
                key=f"{t.id}:password.retrieved",
            )
        ]
    )
    rt.flush()
    try:
        return handler.name, path.read_bytes()
    except OSError as exc:
        raise StateError(N_("the password of {id} cannot be read: {strerror}").format(
                             id=t.id, strerror=exc.strerror)) from exc


def erase(rt: Runtime, transfer_id: str) -> None:
    """Remove a handed-out password from the spool (a no-op when it is already gone).

    Raises:
        StorageError: the file cannot be removed.
    """
    try:
        (rt.spool.folder(transfer_id) / RETRIEVABLE).unlink(missing_ok=True)
    except OSError as exc:
        raise StorageError(
            N_("the password of {transfer_id} was handed out but cannot be "
               "erased: {strerror}").format(
                transfer_id=transfer_id, strerror=exc.strerror)
        ) from exc
