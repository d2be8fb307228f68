"""`tachiai approve ID…` and `tachiai reject ID --reason …`: a witness's signed decision.

`approve` takes any number of transfers: with `--key` the key is read once and each statement
signed with it; with `--signatures DIR` each transfer's signature is DIR/ID.sig, what
`ssh-keygen -Y sign` writes beside a statement saved as DIR/ID (`tachiai transfers statement ID
> DIR/ID`); given no ID, every ID.sig in DIR. Each transfer is verified and recorded on its own,
with a line of its own; a refusal stops none of the others (exit 1 when any was refused).
While the daemon runs on this node, `approve ID… --key KEY` signs the statements the daemon
published in its approvals folder with ssh-keygen (one run for them all) and hands each
signature to the daemon, which checks and records it (gateway.outbound.handover): the command
then loads neither the database layer nor the agreements. Parsing and printing only: the
statement, the checks of who may approve and the state changes live in
`gateway.outbound.approvals`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli import handed
from gateway.cli.common import Subparsers, runtime_of, signature_from
from gateway.cli.handed import WAIT_SECONDS, parts, recorded
from gateway.config.places import Places, config_path_from, read_places
from gateway.errors import (
    CheckFailed,
    InputError,
    StateError,
    TachiaiError,
    UsageError,
)
from gateway.exchange.words import APPROVAL_NAMESPACE, REJECTION_NAMESPACE
from gateway.i18n import _

# The approval in-process loads the database layer, the agreements and the key library:
# imported where it runs, so that handing a signature to the running daemon loads none of them.
if TYPE_CHECKING:
    from gateway.outbound import approvals
    from gateway.runtime import Runtime


#: The name of a transfer's signature in a `--signatures` folder.
SIGNATURE_SUFFIX = ".sig"


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("approve", parents=[common], help=_("approve transfers as a witness"))
    p.add_argument("id", nargs="*", help=_("the transfers to approve (with --signatures: default "
                                           "every ID.sig in the folder)"))
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--key", type=Path, help=_(
        "your SSH private key: read once, sign each transfer's statement and submit it. While "
        "the daemon runs here and has published every statement named, they are signed with "
        "ssh-keygen (once for all) and handed to the daemon, which checks and records each as "
        "always; the command waits for each verdict (see --wait)"))
    how.add_argument("--signature", type=Path, help=_(
        "a signature made with `ssh-keygen -Y sign -n {namespace} -f KEY STATEMENT_FILE` (one "
        "ID)").format(namespace=APPROVAL_NAMESPACE))
    how.add_argument("--signatures", type=Path, metavar="DIR", help=_(
        "a folder of signatures named ID.sig: save each statement as DIR/ID (`tachiai transfers "
        "statement ID > DIR/ID`), sign it with `ssh-keygen -Y sign -n {namespace} -f KEY "
        "DIR/ID`").format(namespace=APPROVAL_NAMESPACE))
    p.add_argument("--duplicate-ok", action="store_true", help=_(
        "approve although the same bytes were already delivered on this flow (the statement's "
        "duplicate-of line)"))
    p.add_argument("--wait", type=float, default=WAIT_SECONDS, metavar="SECONDS", help=_(
        "how long to wait for the running daemon's verdict on a signature handed to it "
        "(default {seconds:g}); after that the signature waits in the approvals folder and "
        "`tachiai transfers show ID` shows the outcome").format(seconds=WAIT_SECONDS))
    p.set_defaults(handler=_approve)

    p = sub.add_parser("reject", parents=[common], help=_("stop a transfer, with a reason"))
    p.add_argument("id")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--key", type=Path, help=_("your SSH private key"))
    how.add_argument("--signature", type=Path, help=_(
        "a signature over the rejection statement, namespace {namespace}").format(
            namespace=REJECTION_NAMESPACE))
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=_reject)


def _approve(args: argparse.Namespace) -> int:
    ids: list[str] = list(args.id)
    if args.signatures is not None:
        return _approve_each(args, ids or _signed_in(args.signatures))
    if not ids:
        raise UsageError(_("name the transfer(s) to approve"), hint="tachiai approve ID --key KEY")
    if args.signature is not None and len(ids) > 1:
        raise UsageError(_("--signature is one transfer's signature"),
                         hint=_("for several, use --key KEY or --signatures DIR"))
    if len(ids) > 1:
        return _approve_each(args, ids)
    # Not when main tried it already (gateway.cli.handed): ssh-keygen would ask a second time.
    if (args.key is not None and not args.duplicate_ok
            and not getattr(args, "handover_tried", False)):
        code = _through_daemon(args, ids[0])
        if code is not None:
            return code
    from gateway.outbound import approvals

    rt = runtime_of(args, lite=True)
    children = approvals.fanout_children(rt, ids[0])
    if children is not None:
        # One witnessed decision for a fan-out: its one statement, signed once, for every child.
        return _approve_fanout(args, rt, children)
    transfer = rt.store.get(ids[0])
    signature = signature_from(args, approvals.statement(rt, transfer),
                               APPROVAL_NAMESPACE)
    outcome = approvals.approve(rt, ids[0], signature, duplicate_ok=args.duplicate_ok)
    recorded(ids[0], outcome.witness, len(outcome.approvals), outcome.needed, outcome.approved)
    return 0


def _through_daemon(args: argparse.Namespace, transfer_id: str) -> int | None:
    """Approve through the running daemon, as a plain command line is (gateway.cli.handed);
    None when it cannot be (no daemon here, no published statement, a key ssh-keygen cannot
    use): then in-process."""
    return handed.approve(handed.Plain(transfer_id, args.key, getattr(args, "config", None),
                                       _wait_of(args)))


def _each_through_daemon(args: argparse.Namespace, ids: list[str]) -> int | None:
    """Approve several through the running daemon, every statement signed by one ssh-keygen
    run, each outcome on its own line; None when they cannot all be: then in-process."""
    from gateway.outbound import handover

    places = _places(args)
    outcomes = (handover.approve_each(places, ids, args.key, _wait_of(args))
                if places is not None else None)
    if outcomes is None:
        return None
    refused = pending = 0
    for transfer_id, outcome in outcomes:
        if isinstance(outcome, handover.VerdictPending):
            pending += 1
            print(_("{id}: handed to the daemon, its verdict not yet given: {problem}").format(
                id=transfer_id, problem=_one_line(outcome)), file=sys.stderr)
        elif isinstance(outcome, TachiaiError):
            refused += 1
            _not_approved(transfer_id, outcome)
        else:
            _recorded(transfer_id, outcome.witness, outcome.approvals, outcome.needed,
                      outcome.approved)
            if transfer_id.startswith("f-"):
                parts(outcome.parts)
    return _summary(len(ids), refused, pending)


def _places(args: argparse.Namespace) -> Places | None:
    """Where the daemon is, by the configuration's few keys that say so (the whole settings
    would load every table; None when those keys cannot be read: the in-process approval
    loads the whole, which says what is wrong)."""
    return read_places(config_path_from(getattr(args, "config", None)))


def _wait_of(args: argparse.Namespace) -> float:
    """Raises: UsageError when --wait is not a number of seconds above 0."""
    if not math.isfinite(args.wait) or args.wait <= 0:
        raise UsageError(_("--wait must be more than 0 seconds"))
    return float(args.wait)


def _approve_each(args: argparse.Namespace, ids: list[str]) -> int:
    """Approve several transfers, each on its own: one line each, exit 1 if any was refused."""
    if not ids:
        raise UsageError(_("no signatures (*{suffix}) in {folder}").format(
            suffix=SIGNATURE_SUFFIX, folder=args.signatures))
    if args.key is not None and not args.duplicate_ok:
        code = _each_through_daemon(args, ids)
        if code is not None:
            return code
    from gateway.identity.sshkeys import load_private_key
    from gateway.outbound import approvals

    key = load_private_key(args.key) if args.key is not None else None  # once, for them all
    rt = runtime_of(args, lite=True)

    def one(ref: str) -> approvals.ApprovalOutcome:
        def submit(transfer_id: str) -> approvals.ApprovalOutcome:
            if key is not None:
                return approvals.approve_with_key(rt, transfer_id, key, flush=False,
                                                  duplicate_ok=args.duplicate_ok)
            # A fan-out's parts, by the signature of its one statement (DIR/f-….sig).
            return approvals.approve(rt, transfer_id, _signature_in(args.signatures, ref),
                                     duplicate_ok=args.duplicate_ok, flush=False)

        outcome, approved_parts = approvals.approve_parts(rt, ref, submit)
        if ref.startswith("f-"):
            parts(approved_parts)
        return outcome

    return _summary(len(ids), _each(rt, ids, one))


def _summary(total: int, refused: int, pending: int = 0) -> int:
    """Say how many were recorded; exit 1 when any was refused, else 75 when any still waits
    for the daemon's verdict."""
    print(_("{recorded} of {total} approval(s) recorded").format(
        recorded=total - refused - pending, total=total), file=sys.stderr)
    if refused:
        return CheckFailed.exit_code
    return StateError.exit_code if pending else 0


def _approve_fanout(args: argparse.Namespace, rt: Runtime, children: list[str]) -> int:
    from gateway.outbound import approvals

    statement = approvals.statement(rt, rt.store.get(children[0]))
    signature = signature_from(args, statement, APPROVAL_NAMESPACE)
    refused = _each(rt, children, lambda transfer_id: approvals.approve(
        rt, transfer_id, signature, duplicate_ok=args.duplicate_ok, flush=False))
    print(_("{approved} of {count} child transfer(s) of the fan-out approved").format(
        approved=len(children) - refused, count=len(children)), file=sys.stderr)
    return CheckFailed.exit_code if refused else 0


def _each(rt: Runtime, ids: list[str], approve: Callable[[str], approvals.ApprovalOutcome]) -> int:
    """Approve each transfer on its own, a line each; how many were refused. Each approval
    commits with its events, and they move into the ledger together at the end: one durable
    append for the batch instead of one per transfer."""
    refused = 0
    try:
        for transfer_id in ids:
            try:
                outcome = approve(transfer_id)
            except (CheckFailed, InputError, StateError) as exc:  # this transfer's; go on
                refused += 1
                _not_approved(transfer_id, exc)
                continue
            _recorded(transfer_id, outcome.witness, len(outcome.approvals), outcome.needed,
                      outcome.approved)
    finally:
        rt.flush()
    return refused


def _recorded(transfer_id: str, witness: str, count: int, needed: int, approved: bool) -> None:
    print(_("{id}: approval by {witness} recorded ({count} of {needed} witness(es))").format(
        id=transfer_id, witness=witness, count=count, needed=needed)
          + (_("; approved, the daemon seals and delivers it now") if approved else ""))


def _not_approved(transfer_id: str, error: TachiaiError) -> None:
    print(_("{id}: NOT approved: {problem}").format(id=transfer_id, problem=_one_line(error)),
          file=sys.stderr)


def _signed_in(folder: Path) -> list[str]:
    """The transfer ids of the signatures in a `--signatures` folder, in name order.

    Raises:
        InputError: the folder cannot be read.
    """
    try:
        names = sorted(p.name for p in folder.iterdir() if p.name.endswith(SIGNATURE_SUFFIX))
    except OSError as exc:
        raise InputError(_("cannot read the folder {folder}: {error}").format(
            folder=folder, error=exc.strerror)) from exc
    return [n.removesuffix(SIGNATURE_SUFFIX) for n in names]


def _signature_in(folder: Path, transfer_id: str) -> str:
    """Raises: InputError when DIR/ID.sig is missing or unreadable."""
    path = folder / f"{transfer_id}{SIGNATURE_SUFFIX}"
    try:
        return path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(_("cannot read the signature {path}: {error}").format(
            path=path, error=getattr(exc, 'strerror', None) or exc.__class__.__name__),
                         hint=_("sign the statement saved as DIR/ID with ssh-keygen -Y sign")
                         ) from exc


def _one_line(error: TachiaiError) -> str:
    from gateway.cli.messages import diagnostics

    return " ".join(diagnostics(error).split())


def _reject(args: argparse.Namespace) -> int:
    from gateway.outbound import approvals

    rt = runtime_of(args, lite=True)
    transfer = rt.store.get(args.id)
    signature = signature_from(args, approvals.statement(rt, transfer,
                                                         rejection_reason=args.reason),
                               approvals.REJECTION_NAMESPACE)
    approvals.reject(rt, args.id, signature, args.reason)
    print(_("transfer {id} rejected; its file stays in the spool").format(id=args.id))
    return 0
