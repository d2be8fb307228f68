"""Who may sign a request about a holding: the designated receiving handler (受信担当) of our
party, checked on each statement they sign, and the ledger event when they may not.

Shared by the terms, opening and certificate actions. It never writes a holding's data and
never trusts a signer it has not verified itself: each refusal is recorded before it is raised.
"""

from __future__ import annotations

from typing import NoReturn

from gateway.errors import CheckFailed, StateError
from gateway.i18n import N_
from gateway.identity import sshsig
from gateway.inbound import holdings
from gateway.inbound.holdings import Holding, HoldingState
from gateway.runtime import Runtime
from gateway.state import clock
from policies.agreement import Agreement
from policies.handlers import Handler
from policies.reasons import Reason
from policies.receivers import receiver_refusal


def holding_statement(head: str, h: Holding, extra: list[str]) -> bytes:
    """The lines naming a holding that every signed request about it starts with."""
    lines = [
        head,
        f"holding: {h.id}",
        f"agreement: {h.agreement}",
        f"flow: {h.flow}",
        f"provider: {h.provider}",
        f"recipient: {h.recipient}",
        f"transfer: {h.transfer}",
        f"file-name: {h.file_name}",
        f"size: {h.size}",
        f"sha256: {h.sha256}",
        *extra,
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def one_line(text: str) -> str:
    """`text` with every run of whitespace (newlines included) made one space."""
    return " ".join(text.split())


def agreement_of(rt: Runtime, h: Holding) -> Agreement:
    """The loaded agreement a holding was received under.

    Raises:
        StateError: the holding names no agreement loaded here (a refused delivery).
    """
    agreement = rt.agreements.get(h.agreement or "")
    if agreement is None:
        refuse_state(
            rt, h, "use", "holding.no-agreement",
            f"holding {h.id} is under no loaded agreement ({h.state})",
            hint="a refused delivery is never released; see `tachiai holdings show ID`",
        )
    assert agreement is not None
    return agreement


def held(rt: Runtime, holding_id: str, doing: str, action: str) -> Holding:
    """The holding, if we still hold its data (received, opened or in use).

    Raises:
        NotFound: no such holding.
        StateError: it was refused, is still arriving, or was disposed of (`doing` names what
            was asked, for the message; `action` for the recorded refusal).
    """
    h = holdings.get(rt, holding_id)
    if h.status not in holdings.HELD:
        hint = (
            N_("it did not verify and is never released")
            if h.status is HoldingState.REFUSED
            else N_("it was certified and the gateway's copies are erased")
            if h.status in holdings.DISPOSED
            else N_("it is still being checked")
        )
        refuse_state(rt, h, action, f"{action}.state",
                     f"holding {h.id} is {h.state} and cannot be {doing}: {hint}")
    return h


def signer(
    rt: Runtime, h: Holding, statement: bytes, signature: str, namespace: str, action: str
) -> tuple[Handler, sshsig.Signed]:
    """The designated receiving handler (受信担当) of the holding's party who signed, or a
    recorded refusal.

    Raises:
        SignatureError: the signature is malformed or over other bytes (recorded).
        CheckFailed: the signer is not designated to receive under the holding's agreement
            today (recorded).
    """
    try:
        signed = sshsig.verify(statement, signature, namespace)
    except CheckFailed as exc:
        record_refusal(rt, h, action, Reason(f"{action}.signature", str(exc)), None, None)
        raise
    handler = rt.registry.by_key(signed.public_key)
    # A holding belongs to one party: ours, or on a gateway of partitions (区画) the member it
    # was delivered for; only that party's receiving handlers may sign about it.
    refusal = receiver_refusal(
        handler, h.recipient or rt.settings.party, h.agreement, clock.today(), action=action,
        key=signed.fingerprint, partitions=(rt.settings.party, *rt.settings.partitions),
    )
    if refusal is not None:
        refuse(rt, h, action, refusal, signed, handler)
    assert handler is not None
    return handler, signed


def refuse(
    rt: Runtime,
    h: Holding,
    action: str,
    reason: Reason,
    signed: sshsig.Signed | None,
    handler: Handler | None,
) -> None:
    """Record a refused request about a holding, then raise it.

    Raises:
        CheckFailed: always, with the reason's message and rule.
    """
    record_refusal(
        rt,
        h,
        action,
        reason,
        signed.fingerprint if signed else None,
        handler.name if handler else None,
    )
    raise CheckFailed(N_("refused: {message} [{rule}] (recorded)").format(
                          message=reason.message, rule=reason.rule))


def refuse_state(
    rt: Runtime, h: Holding, action: str, rule: str, message: str, hint: str | None = None
) -> NoReturn:
    """Record a request refused for the holding's state (every refusal leaves an event), then
    raise it.

    Raises:
        StateError: always, with the message and hint.
    """
    record_refusal(rt, h, action, Reason(rule, message), None, None)
    raise StateError(message, hint=hint)


def record_refusal(
    rt: Runtime,
    h: Holding,
    action: str,
    reason: Reason,
    fingerprint: str | None,
    who: str | None,
) -> None:
    """A `holding.request_refused` event naming the action, the reason and who signed.

    Raises:
        StorageError: the state database or the ledger cannot be written.
    """
    now = clock.now_ns()
    rt.store.record(
        [
            holdings.event(
                "holding.request_refused",
                h,
                {
                    "action": action,
                    "reason": reason.as_dict(),
                    "fingerprint": fingerprint,
                    "signer": who,
                },
                actor=who,
                key=f"{h.id}:request-refused:{now}",
                time_ns=now,
            )
        ]
    )
    rt.flush()
