"""The `tachiai` command line: the only place that prints messages and chooses exit codes.

Every command takes --config (default ./tachiai.toml, or $TACHIAI_CONFIG). JSON output keys are
stable: scripts and auditors rely on them. Errors from `policies` and `audit` are mapped onto the
gateway's exception tree here (see gateway.errors for the exit codes).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audit.errors import AuditError, LedgerIntegrityError, LedgerStorageError
from gateway import bootstrap
from gateway.cli import agreements, audit, transfers_ops
from gateway.cli import holdings as cli_holdings
from gateway.cli.common import print_json, runtime_of, settings_of, signature_from
from gateway.errors import CheckFailed, ConfigError, InternalError, StorageError, TachiaiError
from gateway.errors import __doc__ as _EXIT_CODES_DOC
from gateway.outbound import approvals, replies
from gateway.outbound.lifecycle import State
from gateway.outbound.names import withheld_hmac
from gateway.runtime import Runtime
from gateway.state import clock
from gateway.state.store import Transfer
from policies.errors import PolicyFileError

log = logging.getLogger("tachiai")

EPILOG = "exit codes:\n" + (_EXIT_CODES_DOC or "").split("Exit codes (also listed by "
                                                          "`tachiai --help`):\n")[-1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "verbose", False):
        # Every paramiko failure is converted (gateway.transports.sftp) and logged by us, once
        # per outage where it repeats; paramiko's own tracebacks would come with every retry.
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except TachiaiError as exc:
        print(f"tachiai: {exc.diagnostics()}", file=sys.stderr)
        return exc.exit_code
    except PolicyFileError as exc:
        error = ConfigError("\n  ".join(str(p) for p in exc.problems))
        print(f"tachiai: {error.diagnostics()}", file=sys.stderr)
        return error.exit_code
    except LedgerIntegrityError as exc:
        print(f"tachiai: the ledger is NOT intact: {exc}", file=sys.stderr)
        return CheckFailed.exit_code
    except (LedgerStorageError, AuditError) as exc:
        return _report(StorageError(str(exc)))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # a bug: say so, with the trace in the log, and exit 70
        log.exception("internal error")
        return _report(InternalError(f"internal error: {exc.__class__.__name__}"))


def _report(error: TachiaiError) -> int:
    print(f"tachiai: {error.diagnostics()}", file=sys.stderr)
    return error.exit_code


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand must not reset an option given before it (`tachiai --config X run`).
    common.add_argument("--config", default=argparse.SUPPRESS,
                        help="configuration file (default ./tachiai.toml or $TACHIAI_CONFIG)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log debug messages")
    parser = argparse.ArgumentParser(
        prog="tachiai", parents=[common], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="tachiai: witnessed, encrypted, audited file exchange under a data-sharing "
                    "agreement (確認書).")
    sub = parser.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("init", parents=[common], help="create a configuration and folders")
    p.add_argument("directory", type=Path)
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--demo", action="store_true", help="add the demo agreement, people and keys")
    kind.add_argument("--demo-recipient", type=Path, metavar="DEMO",
                      help="the receiving gateway (nhi-central) of the demo made at DEMO")
    p.set_defaults(handler=_init)

    p = sub.add_parser("run", parents=[common], help="run the daemon in the foreground")
    p.set_defaults(handler=_run)

    agreements.add_commands(sub, common)

    transfers = sub.add_parser("transfers", parents=[common], help="outbound transfers")
    tsub = transfers.add_subparsers(metavar="ACTION")
    p = tsub.add_parser("list", parents=[common], help="transfers, oldest first")
    p.add_argument("--state", choices=[s.value for s in State])
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_transfers_list)
    p = tsub.add_parser("show", parents=[common], help="one transfer")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_transfers_show)
    p = tsub.add_parser("statement", parents=[common], help="the exact bytes a witness signs")
    p.add_argument("id")
    p.set_defaults(handler=_transfers_statement)

    p = sub.add_parser("approve", parents=[common], help="approve a transfer as a witness")
    p.add_argument("id")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--key", type=Path, help="your SSH private key: sign and submit")
    how.add_argument("--signature", type=Path, help="a signature made with `ssh-keygen -Y sign "
                     f"-n {approvals.APPROVAL_NAMESPACE} -f KEY STATEMENT_FILE`")
    p.set_defaults(handler=_approve)

    p = sub.add_parser("reject", parents=[common], help="stop a transfer, with a reason")
    p.add_argument("id")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--key", type=Path, help="your SSH private key")
    how.add_argument("--signature", type=Path, help="a signature over the rejection statement, "
                     f"namespace {approvals.REJECTION_NAMESPACE}")
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=_reject)

    audit.add_commands(sub, common)
    transfers_ops.add_commands(sub, common)
    cli_holdings.add_commands(sub, common)  # holdings, link
    return parser


# -- handlers -----------------------------------------------------------------------------------

def _init(args: argparse.Namespace) -> int:
    if args.demo_recipient is not None:
        lines = bootstrap.init_demo_recipient(args.directory, args.demo_recipient)
    else:
        lines = bootstrap.init(args.directory, args.demo)
    for line in lines:
        print(line)
    return 0


def _run(args: argparse.Namespace) -> int:
    from gateway import daemon

    daemon.run(settings_of(args))
    return 0


def _transfer_json(rt: Runtime, t: Transfer) -> dict[str, Any]:
    return {
        "id": t.id, "agreement": t.agreement, "flow": t.flow, "recipient": t.recipient,
        "state": t.state, "file_name": t.file_name, "size": t.size, "sha256": t.sha256,
        "name_hmac": withheld_hmac(t.source_path),  # a refused name is shown by its hash only
        "sender": t.sender, "owner": t.owner,
        "approvals": [a.witness for a in rt.store.approvals(t.id)],
        "reasons": t.reason_list(), "rows": t.rows, "encoding": t.encoding,
        "sealed_sha256": t.sealed_sha256, "delivered_path": t.delivered_path,
        "password_path": t.password_path, "created": clock.iso(t.created_ns),
        "updated": clock.iso(t.updated_ns),
    }


def _transfers_list(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    rows = [_transfer_json(rt, t) for t in rt.store.list_transfers(State(args.state) if args.state
                                                         else None)]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no transfers")
    for r in rows:
        extra = f" approvals: {', '.join(r['approvals'])}" if r["approvals"] else ""
        print(f"{r['id']}  {r['state']:<17} {r['agreement']}/{r['flow']}  {r['file_name']}"
              f"  sender: {r['sender'] or '-'}{extra}")
    return 0


def _transfers_show(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    transfer = rt.store.get(args.id)
    data = _transfer_json(rt, transfer)
    if args.json:
        print_json(data)
        return 0
    for key, value in data.items():
        if key == "reasons":
            continue
        print(f"{key:>15}: {value if value is not None else '-'}")
    for reason in data["reasons"]:
        place = ", ".join(f"{k} {reason[k]}" for k in ("row", "column") if k in reason)
        print(f"         reason: {reason['rule']}{' at ' + place if place else ''}: "
              f"{reason['message']}")
    unlinked = (replies.unlinked_reply(rt, transfer)
                if transfer.status is State.AWAITING_APPROVAL else None)
    if unlinked is not None:  # a witness's approval is refused until it is linked
        print(f"\nnext: {replies.link_first(unlinked, transfer.id).message}")
    elif data["state"] == State.AWAITING_APPROVAL.value:
        print(f"\nnext: a witness runs `tachiai approve {data['id']} --key KEY`, or signs "
              f"`tachiai transfers statement {data['id']}` with ssh-keygen -Y sign -n "
              f"{approvals.APPROVAL_NAMESPACE}")
    return 0


def _transfers_statement(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    sys.stdout.buffer.write(approvals.statement(rt, rt.store.get(args.id)))
    sys.stdout.buffer.flush()
    return 0


def _approve(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    transfer = rt.store.get(args.id)
    signature = signature_from(args, approvals.statement(rt, transfer),
                                approvals.APPROVAL_NAMESPACE)
    outcome = approvals.approve(rt, args.id, signature)
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


if __name__ == "__main__":
    sys.exit(main())
