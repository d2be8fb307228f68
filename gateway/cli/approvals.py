"""`tachiai approve ID` and `tachiai reject ID --reason …`: a witness's signed decision.

Parsing and printing only: the statement, the checks of who may approve and the state changes
live in `gateway.outbound.approvals`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.cli.common import Subparsers, runtime_of, signature_from
from gateway.outbound import approvals


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("approve", parents=[common], help="approve a transfer as a witness")
    p.add_argument("id")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--key", type=Path, help="your SSH private key: sign and submit")
    how.add_argument("--signature", type=Path, help="a signature made with `ssh-keygen -Y sign "
                     f"-n {approvals.APPROVAL_NAMESPACE} -f KEY STATEMENT_FILE`")
    p.add_argument("--duplicate-ok", action="store_true", help="approve although the same "
                   "bytes were already delivered on this flow (the statement's duplicate-of line)")
    p.set_defaults(handler=_approve)

    p = sub.add_parser("reject", parents=[common], help="stop a transfer, with a reason")
    p.add_argument("id")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--key", type=Path, help="your SSH private key")
    how.add_argument("--signature", type=Path, help="a signature over the rejection statement, "
                     f"namespace {approvals.REJECTION_NAMESPACE}")
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=_reject)


def _approve(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    transfer = rt.store.get(args.id)
    signature = signature_from(args, approvals.statement(rt, transfer),
                               approvals.APPROVAL_NAMESPACE)
    outcome = approvals.approve(rt, args.id, signature, duplicate_ok=args.duplicate_ok)
    print(f"approval by {outcome.witness} recorded ({len(outcome.approvals)} of "
          f"{outcome.needed} witness(es))")
    if outcome.approved:
        print(f"transfer {args.id} is approved; the daemon seals and delivers it now")
    else:
        print(f"next: {outcome.needed - len(outcome.approvals)} more witness(es) must approve")
    return 0


def _reject(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    transfer = rt.store.get(args.id)
    signature = signature_from(args, approvals.statement(rt, transfer,
                                                         rejection_reason=args.reason),
                               approvals.REJECTION_NAMESPACE)
    approvals.reject(rt, args.id, signature, args.reason)
    print(f"transfer {args.id} rejected; its file stays in the spool")
    return 0
