"""Commands for delivery operations: `tachiai password ID` and `tachiai transfers retry ID`.

`password` hands a ZIP's password to a designated receiving handler (受信担当) of the
recipient party who asks with an SSH signature over a request statement (namespace
`tachiai-password`); the retrieval (or refusal) is a ledger event and the password is erased
once handed out. `transfers retry` puts a failed transfer back in line. Neither ever logs a
password; only `password` prints one, to the person who proved who they are.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from gateway.cli.common import runtime_of, signature_from
from gateway.errors import CheckFailed, StateError
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


def add_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: argparse.ArgumentParser,
) -> None:
    """Register `password` and `transfers retry` (call after `transfers` exists)."""
    p = sub.add_parser(
        "password",
        parents=[common],
        help="retrieve a delivered file's password as a receiving handler",
    )
    p.add_argument("id")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--key", type=Path, help="your SSH private key: sign the request and ask")
    how.add_argument(
        "--signature",
        type=Path,
        help="a signature over the request made with "
        f"`ssh-keygen -Y sign -n {PASSWORD_NAMESPACE} -f KEY REQUEST_FILE`",
    )
    how.add_argument(
        "--statement",
        action="store_true",
        help="print the request statement to sign with ssh-keygen, and stop",
    )
    p.set_defaults(handler=_password)

    transfers = sub.choices.get("transfers")
    if transfers is None:  # pragma: no cover - cli registers `transfers` first
        raise RuntimeError("register cli_transfers_ops after the transfers command")
    # argparse keeps a parser's subcommands in its one _SubParsersAction.
    actions = [a for a in transfers._actions if isinstance(a, argparse._SubParsersAction)]
    r = actions[0].add_parser(
        "retry", parents=[common], help="put a failed transfer back in line for delivery"
    )
    r.add_argument("id")
    r.set_defaults(handler=_retry)


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


def retrieve_password(rt: Runtime, transfer_id: str, signature: str) -> tuple[str, bytes]:
    """Check the request's signature and signer; record the retrieval; return (name, password).

    The password file is erased after this returns successfully (the caller prints first).

    Raises:
        StateError: not delivered, not a retrieval route, or already retrieved.
        SignatureError: the signature is malformed or over other bytes.
        CheckFailed: the signer is not a designated receiving handler of the recipient (recorded).
    """
    t = rt.store.get(transfer_id)
    if t.status not in (State.DELIVERED, State.ACKNOWLEDGED):
        raise StateError(
            f"transfer {t.id} is {t.state}; a password is handed out only after delivery",
            hint="wait until `tachiai transfers show ID` says delivered",
        )
    path = rt.spool.folder(t.id) / RETRIEVABLE
    if t.password_path != RETRIEVAL_MARK:
        raise StateError(
            f"the password of {t.id} was not kept for retrieval (its route: "
            f"{t.password_path or 'none'})"
        )
    if not path.exists():
        raise StateError(
            f"the password of {t.id} was already retrieved and erased",
            hint="see `tachiai audit log` for who retrieved it; if it is lost, the "
            "sender must send the file again",
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
            f"refused: {refusal.message} [{refusal.rule}]; nothing was handed out (recorded)",
            hint="ask the administrator to designate you with the receive role",
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
        raise StateError(f"the password of {t.id} cannot be read: {exc.strerror}") from exc


def retry(rt: Runtime, transfer_id: str, operator: str) -> Transfer:
    """failed → sealed, attempts reset, recorded with the operator's name.

    Raises:
        StateError: the transfer is not failed.
    """
    t = rt.store.get(transfer_id)
    if t.status is not State.FAILED:
        raise StateError(
            f"transfer {t.id} is {t.state}, not failed", hint="only failed transfers can be retried"
        )
    now = clock.now_ns()
    after = rt.store.transition(
        t,
        State.SEALED,
        [
            event(
                "transfer.retried",
                t,
                {"previous_attempts": t.attempts, "operator": operator},
                key=f"{t.id}:transfer.retried:{now}",
                time_ns=now,
            )
        ],
        attempts=0,
    )
    rt.flush()
    return after


def _password(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    t = rt.store.get(args.id)
    statement = request_statement(rt, t)
    if args.statement:
        sys.stdout.buffer.write(statement)
        sys.stdout.buffer.flush()
        return 0
    signature = signature_from(args, statement, PASSWORD_NAMESPACE)
    name, document = retrieve_password(rt, t.id, signature)
    sys.stdout.buffer.write(document)
    sys.stdout.buffer.flush()
    (rt.spool.folder(t.id) / RETRIEVABLE).unlink(missing_ok=True)  # handed out once
    print(
        f"password of {t.id} handed to {name} (recorded); it is now erased from the gateway",
        file=sys.stderr,
    )
    return 0


def _retry(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    after = retry(rt, args.id, getpass.getuser())
    print(f"transfer {after.id} is {after.state} again; the daemon delivers it next")
    return 0
