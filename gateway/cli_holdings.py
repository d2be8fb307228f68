"""`tachiai holdings …` and `tachiai transfers link`: the recipient's duties, done and proven.

A designated receiving handler (受信担当) signs the recipient's obligations before any release,
opens into their own folder only (0600) and certifies deletion, return or an applied correction,
each with an SSH signature; every step and refusal is a ledger event.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import hashlib
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from gateway import clock, erasure, holdings, sshsig
from gateway.cli_common import print_json, runtime_of, signature_from
from gateway.errors import (
    CheckFailed,
    InputError,
    StateError,
    StorageError,
    UsageError,
)
from gateway.holdings import Holding, HoldingState
from gateway.lifecycle import State
from gateway.runtime import Runtime
from gateway.runtime import event as transfer_event
from gateway.sshkeys import load_private_key
from gateway.store import Approval, Transfer
from policies.admission import check_reply
from policies.agreement import Agreement, Flow
from policies.checkdigits import contains_my_number
from policies.handlers import Handler
from policies.reasons import Reason
from policies.retention import disposal_refusal
from policies.terms import OBLIGATIONS, RETENTION_AFTER, RETENTION_THEN

TERMS_NAMESPACE = "tachiai-terms"
OPEN_NAMESPACE = "tachiai-open"
CERTIFICATE_NAMESPACE = "tachiai-certificate"
KINDS = {
    "deleted": "消去 (deleted)",
    "returned": "返却 (returned)",
    "applied": "訂正の反映 (correction applied)",
}
OPEN_WINDOW_SECONDS = 600  # a signed open request is good for ten minutes, and only once
MAX_METHOD = 500


def add_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: argparse.ArgumentParser,
) -> None:
    """Register `holdings …` and `transfers link` (call after `transfers` exists)."""
    top = sub.add_parser("holdings", parents=[common], help="received data (保有データ)")
    hsub = top.add_subparsers(metavar="ACTION")
    p = hsub.add_parser("list", parents=[common], help="holdings, oldest first")
    p.add_argument("--overdue", action="store_true", help="only those past their deadline")
    p.add_argument("--state", choices=[s.value for s in HoldingState])
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list)
    p = hsub.add_parser("show", parents=[common], help="one holding, its thread and certificates")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_show)
    p = hsub.add_parser(
        "terms", parents=[common], help="sign the recipient's obligations before opening data"
    )
    p.add_argument("id", help="a holding under the agreement whose terms you sign")
    _signing(p, TERMS_NAMESPACE)
    p.set_defaults(handler=_terms)
    p = hsub.add_parser("open", parents=[common], help="release a holding into your own folder")
    p.add_argument("id")
    p.add_argument("--key", type=Path, required=True, help="your SSH private key")
    p.set_defaults(handler=_open)
    p = hsub.add_parser(
        "certify", parents=[common], help="certify deletion, return or an applied correction"
    )
    p.add_argument("id")
    kind = p.add_mutually_exclusive_group(required=True)
    for name in KINDS:
        kind.add_argument(f"--{name}", dest="kind", action="store_const", const=name)
    p.add_argument("--method", required=True, help="how it was done, in one line")
    _signing(p, CERTIFICATE_NAMESPACE)
    p.set_defaults(handler=_certify)
    p = hsub.add_parser(
        "retry", parents=[common], help="check a refused delivery again after fixing the cause"
    )
    p.add_argument("id")
    p.set_defaults(handler=_retry)

    transfers = sub.choices.get("transfers")
    if transfers is None:  # pragma: no cover - cli registers `transfers` first
        raise RuntimeError("register cli_holdings after the transfers command")
    actions = [a for a in transfers._actions if isinstance(a, argparse._SubParsersAction)]
    p = actions[0].add_parser(
        "link", parents=[common], help="name what a transfer answers or corrects, before approval"
    )
    p.add_argument("id")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--replies-to",
        metavar="HOLDING_OR_TRANSFER",
        help="the holding (or our transfer) this one answers (疑義照会・回答)",
    )
    how.add_argument(
        "--corrects", metavar="TRANSFER", help="our delivered transfer this one corrects (訂正)"
    )
    p.set_defaults(handler=_link)


# -- statements ---------------------------------------------------------------------------------


def terms_statement(agreement: Agreement, party: str) -> bytes:
    """The recipient's obligations under `agreement`, the exact bytes a handler signs."""
    chain = agreement.onward_chain.get(party, ())
    retention = agreement.retention
    lines = [
        "tachiai recipient terms v1",
        f"agreement: {agreement.id}",
        f"title: {_line(agreement.title)}",
        f"party: {party}",
        f"purpose: {_line(agreement.purpose)}",
        f"legal-basis: {_line(agreement.legal_basis_text or agreement.legal_basis)}",
        "onward: "
        + (f"only to {', '.join(chain)}" if chain else "to nobody (第三者への再提供の禁止)")
        + ("; contractors (委託事業者) allowed" if party in agreement.contractors else ""),
        "retention: "
        + (
            "no term"
            if retention is None
            else f"{retention.then} ({RETENTION_THEN[retention.then]}) "
            f"{RETENTION_AFTER[retention.after]}"
            + (f", within {retention.max_days} days" if retention.max_days else "")
            + (", certified by signature" if retention.certificate else "")
        ),
        "report: "
        + (f"{agreement.report.every} to {agreement.report.to}" if agreement.report else "none"),
        "corrections: "
        + ("accepted and applied (訂正に応じる)" if agreement.corrections else "none agreed"),
    ]
    for ob in agreement.obligations:
        if ob.party == party:
            lines.append(f"obligation: {ob.id} {OBLIGATIONS[ob.id]}: {_line(ob.text)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def open_request(h: Holding, when: str, nonce: str | None = None) -> bytes:
    """What a handler signs to have a holding released to them, at `when` (ISO 8601).

    The nonce makes each request unique (an Ed25519 signature of the same bytes is the same
    bytes, so two openings in one second would otherwise look like a replay).
    """
    nonce = nonce or secrets.token_hex(8)
    return _statement("tachiai open request v1", h, [f"time: {when}", f"nonce: {nonce}"])


def certificate_statement(h: Holding, kind: str, method: str, signed_on: dt.date) -> bytes:
    """The certificate a handler signs: what, how and when (who is the signing key)."""
    return _statement(
        "tachiai certificate v1",
        h,
        [f"kind: {kind}", f"method: {_line(method)}", f"date: {signed_on.isoformat()}"],
    )


# -- actions ------------------------------------------------------------------------------------


def sign_terms(rt: Runtime, holding_id: str, signature: str) -> str:
    """Check and keep a handler's signature over the recipient's obligations; return who.

    Raises:
        SignatureError: the signature is malformed or over other bytes.
        CheckFailed: the signer is not a designated receiving handler (recorded).
    """
    h = holdings.get(rt, holding_id)
    agreement = _agreement(rt, h)
    statement = terms_statement(agreement, rt.settings.party)
    handler, signed = _signer(rt, h, statement, signature, TERMS_NAMESPACE, "terms")
    digest = hashlib.sha256(statement).hexdigest()
    now = clock.now_ns()
    with rt.store.transaction() as conn:
        found = conn.execute(
            select(holdings.TERMS.c.id).where(
                holdings.TERMS.c.agreement == agreement.id,
                holdings.TERMS.c.handler == handler.name,
                holdings.TERMS.c.terms_sha256 == digest,
            )
        ).first()
        if found is None:
            conn.execute(
                insert(holdings.TERMS).values(
                    agreement=agreement.id,
                    handler=handler.name,
                    terms_sha256=digest,
                    statement=statement.decode("utf-8"),
                    signature=signature,
                    fingerprint=signed.fingerprint,
                    created_ns=now,
                )
            )
            rt.store.record(
                [
                    holdings.event(
                        "holding.terms_signed",
                        h,
                        {
                            "handler": handler.name,
                            "fingerprint": signed.fingerprint,
                            "terms_sha256": digest,
                            "statement": statement.decode("utf-8"),
                            "signature": signature,
                            "namespace": TERMS_NAMESPACE,
                        },
                        actor=handler.name,
                        key=f"terms:{agreement.id}:{handler.name}:{digest}",
                        time_ns=now,
                    )
                ],
                conn,
            )
    rt.flush()
    return handler.name


def open_holding(rt: Runtime, holding_id: str, statement: bytes, signature: str) -> Path:
    """Release a holding into the signer's own folder (0600); return the file's path.

    Raises:
        StateError: the holding is not held (refused, or erased after its certificate).
        SignatureError: the request's signature is malformed or over other bytes.
        CheckFailed: not a designated receiving handler, terms not signed, a stale or reused
            request (each refusal recorded).
        StorageError: the copy fails authentication or the folder cannot be written.
    """
    h = _held(rt, holding_id, "opened")
    handler, signed = _signer(rt, h, statement, signature, OPEN_NAMESPACE, "open")
    when, nonce = _request_time(statement)
    if when is None or statement != open_request(h, when.isoformat(), nonce):
        _refused(
            rt,
            h,
            "open",
            Reason(
                "open.request",
                "the request is not an open request for "
                "this holding; sign the one `tachiai holdings open ID --key KEY` makes",
            ),
            signed,
            handler,
        )
    assert when is not None
    if abs(clock.now_ns() / 1e9 - when.timestamp()) > OPEN_WINDOW_SECONDS:
        _refused(
            rt,
            h,
            "open",
            Reason(
                "open.stale",
                "the signed request is older than ten minutes (or from the future); sign a new one",
            ),
            signed,
            handler,
        )
    # The request (its nonce) is what is used once: a re-wrapped armor of the same signature
    # is still the same request.
    request_sha = hashlib.sha256(statement).hexdigest()
    with rt.store.engine.connect() as conn:
        used = conn.execute(
            select(holdings.COPIES.c.id).where(holdings.COPIES.c.request_sha256 == request_sha)
        ).first()
    if used is not None:
        _refused(
            rt,
            h,
            "open",
            Reason(
                "open.replayed",
                "this signed request was used before; each opening needs a request of its own",
            ),
            signed,
            handler,
        )
    agreement = _agreement(rt, h)
    if not _terms_signed(rt, agreement, handler):
        _refused(
            rt,
            h,
            "open",
            agreement.reason(
                "terms.unsigned",
                f"{handler.name} has not signed the recipient's obligations under "
                f"{agreement.id}; read and sign them first: `tachiai holdings terms {h.id} --key "
                "KEY`",
                "obligations",
            ),
            signed,
            handler,
        )
    target = _handler_folder(rt, handler) / _safe_name(h)
    now = clock.now_ns()
    # Recorded before any plaintext is written: a crash never leaves an unrecorded copy.
    target_state = HoldingState.OPENED if h.status is HoldingState.RECEIVED else HoldingState.IN_USE
    with rt.store.transaction() as conn:
        conn.execute(
            insert(holdings.COPIES).values(
                holding=h.id,
                handler=handler.name,
                path=str(target),
                request_sha256=request_sha,
                created_ns=now,
            )
        )
        events = [
            holdings.event(
                "holding.opened",
                h,
                {
                    "handler": handler.name,
                    "fingerprint": signed.fingerprint,
                    "sha256": h.sha256,
                    "size": h.size,
                    "path": str(target),
                    "opening": h.openings + 1,
                    "statement": statement.decode("utf-8"),
                    "signature": signature,
                    "namespace": OPEN_NAMESPACE,
                },
                actor=handler.name,
                key=f"{h.id}:holding.opened:{request_sha[:16]}",
                time_ns=now,
            )
        ]
        if target_state is h.status:
            h = holdings.update(rt, h, events, conn, openings=h.openings + 1)
        else:
            h = holdings.transition(rt, h, target_state, events, conn, openings=h.openings + 1)
    rt.flush()
    _write_plain(rt, h, target, handler)
    return target


def certify(
    rt: Runtime, holding_id: str, kind: str, method: str, signed_on: dt.date, signature: str
) -> Holding:
    """Check a handler's signed certificate, record it, and for a disposal erase our copies.

    Raises:
        UsageError: the method is empty, too long or holds what looks like a My Number.
        StateError: the holding cannot be certified so (already disposed, not a correction).
        SignatureError: the signature is malformed or over other bytes.
        CheckFailed: not a designated receiving handler, a date out of range, or a disposal
            the agreement does not allow (each refusal recorded).
    """
    method = _line(method)
    if not method or len(method) > MAX_METHOD or contains_my_number(method):
        raise UsageError(
            f"--method must be one line of 1 to {MAX_METHOD} characters without personal data",
            hint='e.g. --method "shredded the DVD; deleted the files from the processing server"',
        )
    h = holdings.get(rt, holding_id)
    if kind == "applied":
        if h.corrects is None or h.status not in (*holdings.HELD, *holdings.DISPOSED):
            raise StateError(
                f"holding {h.id} is not a received correction (訂正); nothing to apply"
            )
        if h.applied_ns is not None:
            raise StateError(f"the correction {h.id} was already certified applied")
    elif h.status not in holdings.HELD:
        raise StateError(f"holding {h.id} is {h.state}; only held data is deleted or returned")
    statement = certificate_statement(h, kind, method, signed_on)
    handler, signed = _signer(rt, h, statement, signature, CERTIFICATE_NAMESPACE, "certify")
    agreement = _agreement(rt, h)
    received = dt.date.fromisoformat(h.received_on or signed_on.isoformat())
    if not received <= signed_on <= clock.today():
        _refused(
            rt,
            h,
            "certify",
            Reason(
                "certificate.date",
                "the certificate's date must be between the day of receipt and today",
            ),
            signed,
            handler,
        )
    if kind != "applied":
        refusal = disposal_refusal(agreement, "delete" if kind == "deleted" else "return", True)
        if refusal is not None:
            _refused(rt, h, "certify", refusal, signed, handler)
    now = clock.now_ns()
    data = {
        "kind": kind,
        "method": method,
        "handler": handler.name,
        "certified_on": signed_on.isoformat(),
        "fingerprint": signed.fingerprint,
        "statement": statement.decode("utf-8"),
        "signature": signature,
        "namespace": CERTIFICATE_NAMESPACE,
    }
    with rt.store.transaction() as conn:
        conn.execute(
            insert(holdings.CERTS).values(
                holding=h.id,
                kind=kind,
                handler=handler.name,
                method=method,
                signed_on=signed_on.isoformat(),
                statement=statement.decode("utf-8"),
                signature=signature,
                fingerprint=signed.fingerprint,
                created_ns=now,
            )
        )
        events = [
            holdings.event(
                "holding.certified",
                h,
                data,
                actor=handler.name,
                key=f"{h.id}:holding.certified:{kind}",
                time_ns=now,
            )
        ]
        if kind == "applied":
            h = holdings.update(rt, h, events, conn, applied_ns=now)
        else:
            h = holdings.transition(rt, h, HoldingState(kind), events, conn)
    rt.flush()
    if kind != "applied":
        h = holdings.erase(rt, h)
    return h


def retry(rt: Runtime, holding_id: str, operator: str) -> Holding:
    """refused → arriving: the daemon checks the kept delivery again at its next pass.

    Raises:
        StateError: the holding was not refused.
    """
    h = holdings.get(rt, holding_id)
    if h.status is not HoldingState.REFUSED:
        raise StateError(
            f"holding {h.id} is {h.state}, not refused",
            hint="only a refused delivery is checked again",
        )
    now = clock.now_ns()
    after = holdings.transition(
        rt,
        h,
        HoldingState.ARRIVING,
        [
            holdings.event(
                "holding.retried",
                h,
                {"operator": operator, "previous": h.reason_list()},
                key=f"{h.id}:holding.retried:{now}",
                time_ns=now,
            )
        ],
    )
    rt.flush()
    return after


def link_transfer(
    rt: Runtime, transfer_id: str, relation: str, ref: str, operator: str
) -> holdings.TransferLink:
    """Fix what an outbound transfer answers or corrects, before any witness approves it.

    Raises:
        StateError: the transfer is not awaiting approval, already has approvals or a link.
        NotFound: no such holding or transfer.
        CheckFailed: the agreement does not allow this link (the rule is in the message).
    """
    holdings.ensure_tables(rt)
    t = rt.store.get(transfer_id)
    if t.status is not State.AWAITING_APPROVAL or rt.store.approvals(t.id):
        raise StateError(
            f"transfer {t.id} is {t.state}; a link is fixed before any witness approves it",
            hint="drop the file again to link it",
        )
    if holdings.link_of(rt, t.id) is not None:
        raise StateError(f"transfer {t.id} is already linked")
    agreement, flow = rt.agreement_flow(t.agreement, t.flow)
    remote, ref_flow, party = _resolve(rt, ref, agreement)
    if relation == "replies_to":
        refusal = check_reply(agreement, flow, ref_flow)
        if refusal is None and flow.recipient != party:
            refusal = agreement.reason(
                "reply.party",
                f"{ref} came from or went to {party}, but flow {flow.id} goes to {flow.recipient}",
                f"flows.{flow.id}.to",
            )
    else:
        refusal = correction_refusal(agreement, flow, ref_flow, ref)
    if refusal is not None:
        raise CheckFailed(f"refused: {refusal.message} [{refusal.rule}]")
    link = holdings.TransferLink(
        transfer=t.id,
        relation=relation,
        ref=ref,
        remote=remote,
        ref_flow=ref_flow.id,
        operator=operator,
        created_ns=clock.now_ns(),
    )
    with rt.store.transaction() as conn:
        # Checked again under the write lock: a witness approving meanwhile signed a statement
        # without the link (it would not count at sealing, but the link must not move under it).
        approvals = Approval.__table__  # type: ignore[attr-defined]
        transfers = Transfer.__table__  # type: ignore[attr-defined]
        if (
            conn.execute(select(approvals.c.id).where(approvals.c.transfer_id == t.id)).first()
            or conn.execute(select(transfers.c.state).where(transfers.c.id == t.id)).scalar()
            != State.AWAITING_APPROVAL.value
        ):
            raise StateError(f"transfer {t.id} was approved or moved on meanwhile; not linked")
        conn.execute(insert(holdings.L).values(**link.model_dump()))
        rt.store.record(
            [
                transfer_event(
                    "transfer.linked",
                    t,
                    {
                        "relation": relation,
                        "ref": ref,
                        "remote_transfer": remote,
                        "ref_flow": ref_flow.id,
                        "operator": operator,
                    },
                    key=f"{t.id}:transfer.linked",
                )
            ],
            conn,
        )
    rt.flush()
    return link


def correction_refusal(
    agreement: Agreement, flow: Flow, corrected: Flow, ref: str
) -> Reason | None:
    """訂正: only under an agreement with `corrections = true`, only of our own delivered
    transfer, on its flow (or a correction flow to the same party). A pure decision, to move
    to `policies.admission` (check_correction) with its tests."""
    if not agreement.corrections:
        return agreement.reason(
            "correction.not-agreed",
            "the agreement provides for no corrections (訂正); send the data anew instead",
            "corrections",
        )
    if not ref.startswith("t-"):
        return agreement.reason(
            "correction.not-ours",
            "a correction names the delivered transfer of ours it corrects",
            "corrections",
        )
    if flow.recipient != corrected.recipient or (
        flow.id != corrected.id and flow.kind != "correction"
    ):
        return agreement.reason(
            "correction.flow",
            f"a correction of flow {corrected.id} goes "
            "on that flow (or a correction flow) to the same party",
            f"flows.{flow.id}",
        )
    return None


# -- handlers -----------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    today = clock.today()
    rows = [
        _json(rt, h, today)
        for h in holdings.find(rt, states=[HoldingState(args.state)] if args.state else None)
    ]
    if args.overdue:
        rows = [r for r in rows if r["overdue"]]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no holdings")
    for r in rows:
        flags = [
            f
            for f, on in (
                ("OVERDUE", r["overdue"]),
                ("superseded", r["superseded_by"]),
                ("correction to apply", r["correction_pending"]),
            )
            if on
        ]
        print(
            f"{r['id']}  {r['state']:<9} {r['agreement'] or '-'}/{r['flow'] or '-'}  "
            f"{r['file_name'] or r['delivered_name']}  deadline: {r['deadline'] or '-'}"
            + (f"  [{', '.join(flags)}]" if flags else "")
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    h = holdings.get(rt, args.id)
    data = _json(rt, h, clock.today())
    data["certificates"] = _certificates(rt, h.id)
    data["thread"] = _thread(rt, h)
    if args.json:
        print_json(data)
        return 0
    for key, value in data.items():
        if key in ("reasons", "certificates", "thread"):
            continue
        print(f"{key:>18}: {value if value not in (None, []) else '-'}")
    for reason in data["reasons"]:
        print(f"            reason: {reason['rule']}: {reason['message']}")
    for c in data["certificates"]:
        print(
            f"       certificate: {c['kind']} by {c['handler']} on {c['signed_on']}: {c['method']}"
        )
    for item in data["thread"]:
        print(f"            thread: {item['relation']} {item['id']} ({item['what']})")
    if h.status is HoldingState.RECEIVED:
        print(
            f"\nnext: a designated receiving handler signs the terms (`tachiai holdings terms "
            f"{h.id} --key KEY`, once per agreement), then `tachiai holdings open {h.id} --key "
            "KEY`"
        )
    return 0


def _terms(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    h = holdings.get(rt, args.id)
    statement = terms_statement(_agreement(rt, h), rt.settings.party)
    if args.statement:
        sys.stdout.buffer.write(statement)
        return 0
    sys.stdout.buffer.write(statement)  # the handler sees what they sign
    sys.stdout.flush()
    name = sign_terms(rt, h.id, signature_from(args, statement, TERMS_NAMESPACE))
    print(f"\nthe recipient's obligations under {h.agreement} are signed by {name} (recorded)")
    return 0


def _open(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    h = holdings.get(rt, args.id)
    now = dt.datetime.fromtimestamp(clock.now_ns() // 1_000_000_000, clock.JST)
    statement = open_request(h, now.isoformat())
    signature = sshsig.sign(statement, load_private_key(args.key), OPEN_NAMESPACE)
    path = open_holding(rt, h.id, statement, signature)
    print(f"holding {h.id} opened into {path} (mode 0600; recorded)")
    if h.superseded_by:
        print(f"note: it was corrected by {h.superseded_by}; use that one for new work")
    return 0


def _certify(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    h = holdings.get(rt, args.id)
    today = clock.today()
    statement = certificate_statement(h, args.kind, args.method, today)
    if args.statement:
        sys.stdout.buffer.write(statement)
        return 0
    signature = signature_from(args, statement, CERTIFICATE_NAMESPACE)
    after = certify(rt, h.id, args.kind, args.method, today, signature)
    print(f"holding {h.id}: {KINDS[args.kind]} certified (recorded)")
    if after.erased_ns is not None:
        print(
            "the gateway's own copies are erased: the key is destroyed and the encrypted "
            "copy removed"
        )
    return 0


def _retry(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    after = retry(rt, args.id, getpass.getuser())
    print(f"holding {after.id} is {after.state}; the daemon checks it again next")
    return 0


def _link(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    relation, ref = (
        ("replies_to", args.replies_to) if args.replies_to else ("corrects", args.corrects)
    )
    link = link_transfer(rt, args.id, relation, ref, getpass.getuser())
    print(
        f"transfer {link.transfer} {relation.replace('_', ' ')} {ref} (transfer "
        f"{link.remote}); the witnesses' statement now names it"
    )
    return 0


# -- private ------------------------------------------------------------------------------------


def _signing(p: argparse.ArgumentParser, namespace: str) -> None:
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--key", type=Path, help="your SSH private key: sign and submit")
    how.add_argument(
        "--signature",
        type=Path,
        help=f"a signature made with `ssh-keygen -Y sign -n {namespace} -f KEY STATEMENT_FILE`",
    )
    how.add_argument(
        "--statement",
        action="store_true",
        help="print the statement to sign with ssh-keygen, and stop",
    )


def _statement(head: str, h: Holding, extra: list[str]) -> bytes:
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


def _line(text: str) -> str:
    return " ".join(text.split())


def _agreement(rt: Runtime, h: Holding) -> Agreement:
    agreement = rt.agreements.get(h.agreement or "")
    if agreement is None:
        raise StateError(
            f"holding {h.id} is under no loaded agreement ({h.state})",
            hint="a refused delivery is never released; see `tachiai holdings show ID`",
        )
    return agreement


def _held(rt: Runtime, holding_id: str, doing: str) -> Holding:
    h = holdings.get(rt, holding_id)
    if h.status not in holdings.HELD:
        hint = (
            "it did not verify and is never released"
            if h.status is HoldingState.REFUSED
            else "it was certified and the gateway's copies are erased"
            if h.status in holdings.DISPOSED
            else "it is still being checked"
        )
        raise StateError(f"holding {h.id} is {h.state} and cannot be {doing}: {hint}")
    return h


def _signer(
    rt: Runtime, h: Holding, statement: bytes, signature: str, namespace: str, action: str
) -> tuple[Handler, sshsig.Signed]:
    """The designated receiving handler (受信担当) of our party who signed, or a recorded
    refusal."""
    try:
        signed = sshsig.verify(statement, signature, namespace)
    except CheckFailed as exc:
        _record_refusal(rt, h, action, Reason(f"{action}.signature", str(exc)), None, None)
        raise
    handler = rt.registry.by_key(signed.public_key)
    if (
        handler is None
        or handler.party != rt.settings.party
        or h.agreement is None
        or not handler.designated(h.agreement, "receive", clock.today())
    ):
        _refused(
            rt,
            h,
            action,
            Reason(
                f"{action}.not-designated",
                f"the key {signed.fingerprint} is not a designated "
                f"receiving handler (受信担当) of {rt.settings.party} for {h.agreement} today; "
                "ask the administrator to designate you with the receive role",
                f"{h.agreement}/parties",
            ),
            signed,
            handler,
        )
    assert handler is not None
    return handler, signed


def _refused(
    rt: Runtime,
    h: Holding,
    action: str,
    reason: Reason,
    signed: sshsig.Signed | None,
    handler: Handler | None,
) -> None:
    _record_refusal(
        rt,
        h,
        action,
        reason,
        signed.fingerprint if signed else None,
        handler.name if handler else None,
    )
    raise CheckFailed(f"refused: {reason.message} [{reason.rule}] (recorded)")


def _record_refusal(
    rt: Runtime,
    h: Holding,
    action: str,
    reason: Reason,
    fingerprint: str | None,
    signer: str | None,
) -> None:
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
                    "signer": signer,
                },
                actor=signer,
                key=f"{h.id}:request-refused:{now}",
                time_ns=now,
            )
        ]
    )
    rt.flush()


def _terms_signed(rt: Runtime, agreement: Agreement, handler: Handler) -> bool:
    """Whether the handler's kept signature verifies over the terms as they are now."""
    statement = terms_statement(agreement, rt.settings.party)
    digest = hashlib.sha256(statement).hexdigest()
    with rt.store.engine.connect() as conn:
        rows = conn.execute(
            select(holdings.TERMS.c.signature).where(
                holdings.TERMS.c.agreement == agreement.id,
                holdings.TERMS.c.handler == handler.name,
                holdings.TERMS.c.terms_sha256 == digest,
            )
        ).all()
    for (signature,) in rows:
        # Re-checked, never trusted from the row: whoever can write the database cannot sign.
        try:
            signed = sshsig.verify(statement, signature, TERMS_NAMESPACE)
        except CheckFailed:
            continue
        if rt.registry.by_key(signed.public_key) == handler:
            return True
    return False


def _request_time(statement: bytes) -> tuple[dt.datetime | None, str]:
    """The time and nonce an open request names (the statement is then compared whole)."""
    try:
        lines = statement.decode("utf-8").rstrip("\n").split("\n")
        time_line, nonce_line = lines[-2], lines[-1]
        if not time_line.startswith("time: ") or not nonce_line.startswith("nonce: "):
            return None, ""
        when = dt.datetime.fromisoformat(time_line.removeprefix("time: "))
    except (UnicodeDecodeError, ValueError, IndexError):
        return None, ""
    nonce = nonce_line.removeprefix("nonce: ")
    if when.tzinfo is None or not nonce.isalnum():
        return None, ""
    return when, nonce


def _handler_folder(rt: Runtime, handler: Handler) -> Path:
    """`handlers_folder/NAME/` (0700, owned by the handler's OS user when we may chown)."""
    base = rt.settings.inbound.handlers_folder
    if base is None:
        raise StateError(
            "this gateway has no [inbound] handlers_folder",
            hint='set handlers_folder = "…" under [inbound]',
        )
    folder = base / handler.name
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.path.realpath(folder) != str(folder) or not folder.is_dir():
            raise StorageError(
                f"{folder} passes through a symbolic link; nothing was written",
                hint="remove the link and check who made it",
            )
        os.chmod(folder, 0o700)
        if handler.os_user and os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam(handler.os_user)
            os.chown(folder, user.pw_uid, user.pw_gid)
    except KeyError:
        pass  # no such OS user here: the folder stays the gateway's, still 0700
    except OSError as exc:
        raise StorageError(f"cannot prepare {folder}: {exc.strerror}") from exc
    return folder


def _safe_name(h: Holding) -> str:
    """ID-NAME: the sender's name made harmless (no separators, controls or leading dots)."""
    name = (
        "".join(
            c if c.isprintable() and c not in '/\\:*?"<>|' else "_" for c in (h.file_name or "data")
        ).lstrip(".")
        or "data"
    )
    return f"{h.id}-{name[:150]}"


def _write_plain(rt: Runtime, h: Holding, target: Path, handler: Handler) -> None:
    """Decrypt into `.NAME.tmp` (0600, O_EXCL, no links), check the hash, rename into place."""
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    digest = hashlib.sha256()
    size = 0
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        with os.fdopen(fd, "wb") as out, holdings.plaintext(rt, h) as src:
            os.fchmod(out.fileno(), 0o600)
            while chunk := src.read(erasure.CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if (size, digest.hexdigest()) != (h.size, h.sha256):
            raise StorageError(
                f"the copy of {h.id} does not decrypt to the received bytes; nothing was released",
                hint="tell security",
            )
        if handler.os_user and os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam(handler.os_user)
            os.chown(tmp, user.pw_uid, user.pw_gid)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _json(rt: Runtime, h: Holding, today: dt.date) -> dict[str, Any]:
    # Flagged by the daemon's sweep (its clock decides), or past the deadline by ours.
    overdue = bool(
        h.status in holdings.HELD
        and (h.overdue_ns is not None or (h.deadline and h.deadline < today.isoformat()))
    )
    return {
        "id": h.id,
        "state": h.state,
        "agreement": h.agreement,
        "flow": h.flow,
        "provider": h.provider,
        "recipient": h.recipient,
        "transfer": h.transfer,
        "file_name": h.file_name,
        "delivered_name": h.delivered_name,
        "size": h.size,
        "sha256": h.sha256,
        "sealed_sha256": h.sealed_sha256,
        "profile": h.profile,
        "sender": h.sender,
        "witnesses": h.names("witnesses"),
        "handlers": h.names("handlers"),
        "received_on": h.received_on,
        "deadline": h.deadline,
        "overdue": overdue,
        "days_left": (dt.date.fromisoformat(h.deadline) - today).days if h.deadline else None,
        "openings": h.openings,
        "replies_to": h.replies_to,
        "corrects": h.corrects,
        "superseded_by": h.superseded_by,
        "correction_pending": bool(
            h.corrects and h.applied_ns is None and h.status in holdings.HELD
        ),
        "applied": clock.iso(h.applied_ns) if h.applied_ns else None,
        "erased": clock.iso(h.erased_ns) if h.erased_ns else None,
        "reasons": h.reason_list(),
        "created": clock.iso(h.created_ns),
        "updated": clock.iso(h.updated_ns),
    }


def _certificates(rt: Runtime, holding_id: str) -> list[dict[str, Any]]:
    with rt.store.engine.connect() as conn:
        rows = (
            conn.execute(
                select(holdings.CERTS)
                .where(holdings.CERTS.c.holding == holding_id)
                .order_by(holdings.CERTS.c.id)
            )
            .mappings()
            .all()
        )
    return [
        {k: r[k] for k in ("kind", "handler", "method", "signed_on", "fingerprint")}
        | {"recorded": clock.iso(r["created_ns"])}
        for r in rows
    ]


def _thread(rt: Runtime, h: Holding) -> list[dict[str, str]]:
    """What this holding answers or corrects, and what answers or corrects it, both sides."""
    items: list[dict[str, str]] = []
    for relation, remote in (("replies to", h.replies_to), ("corrects", h.corrects)):
        if remote is None:
            continue
        try:
            t = rt.store.get(remote)
            items.append({"relation": relation, "id": t.id, "what": f"our transfer, {t.state}"})
            continue
        except InputError:
            pass
        for x in holdings.find(rt, transfer=remote):
            items.append({"relation": relation, "id": x.id, "what": f"holding, {x.state}"})
    for link in holdings.links_to(rt, [h.id, *([h.transfer] if h.transfer else [])]):
        t = rt.store.get(link.transfer)
        items.append(
            {
                "relation": "answered by" if link.relation == "replies_to" else "corrected by",
                "id": t.id,
                "what": f"our transfer, {t.state}",
            }
        )
    for x in holdings.find(rt):
        if x.id != h.id and h.transfer and h.transfer in (x.replies_to, x.corrects):
            items.append(
                {
                    "relation": "answered by" if x.replies_to == h.transfer else "corrected by",
                    "id": x.id,
                    "what": f"holding, {x.state}",
                }
            )
    if h.superseded_by:
        items.append({"relation": "superseded by", "id": h.superseded_by, "what": "holding"})
    return items


def _resolve(rt: Runtime, ref: str, agreement: Agreement) -> tuple[str, Flow, str]:
    """(the transfer id both sides know, its flow, the other party) of a holding or transfer.

    Raises:
        NotFound / CheckFailed: no such holding or transfer, or not one under this agreement.
    """
    if ref.startswith("h-"):
        h = holdings.get(rt, ref)
        if h.status not in (*holdings.HELD, *holdings.DISPOSED) or h.transfer is None:
            raise CheckFailed(f"holding {ref} is {h.state}; only received data is answered")
        if h.agreement != agreement.id or h.flow is None:
            raise CheckFailed(f"holding {ref} is under {h.agreement}, not {agreement.id}")
        return h.transfer, agreement.flow(h.flow), h.provider or ""
    t = rt.store.get(ref)
    if t.agreement != agreement.id:
        raise CheckFailed(f"transfer {ref} is under {t.agreement}, not {agreement.id}")
    if t.status not in (State.DELIVERED, State.ACKNOWLEDGED):
        raise CheckFailed(f"transfer {ref} is {t.state}; only a delivered transfer is linked")
    return t.id, agreement.flow(t.flow), t.recipient
