"""`tachiai password ID`: a delivered file's password, for a receiving handler (受信担当).

Parsing and printing only: who may have a password, the ledger events and erasing it once
handed out live in `gateway.outbound.passwords`. The password is printed only to the person
who proved who they are, and never logged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli.common import Subparsers, runtime_of, signature_from
from gateway.i18n import _
from gateway.outbound.passwords import PASSWORD_NAMESPACE, hand_out, request_statement


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "password",
        parents=[common],
        help=_("retrieve a delivered file's password as a receiving handler"),
    )
    p.add_argument("id")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--key", type=Path, help=_("your SSH private key: sign the request and ask"))
    how.add_argument(
        "--signature",
        type=Path,
        help=_("a signature over the request made with `ssh-keygen -Y sign -n "
               "{password_namespace} -f KEY REQUEST_FILE`").format(
                 password_namespace=PASSWORD_NAMESPACE),
    )
    how.add_argument(
        "--statement",
        action="store_true",
        help=_("print the request statement to sign with ssh-keygen, and stop"),
    )
    p.set_defaults(handler=_password)


def _password(args: argparse.Namespace) -> int:
    rt = runtime_of(args)
    t = rt.store.get(args.id)
    statement = request_statement(rt, t)
    if args.statement:
        sys.stdout.buffer.write(statement)
        sys.stdout.buffer.flush()
        return 0
    signature = signature_from(args, statement, PASSWORD_NAMESPACE)
    name = hand_out(rt, t.id, signature, _show)
    print(
        _("password of {id} handed to {name} (recorded); it is now erased from the gateway")
        .format(id=t.id, name=name),
        file=sys.stderr,
    )
    return 0


def _show(_handler: str, document: bytes) -> None:
    sys.stdout.buffer.write(document)
    sys.stdout.buffer.flush()
