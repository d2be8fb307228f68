"""Pieces every command module of the CLI shares: the common options, command groups, loading
the runtime, reading a signature, printing JSON.

Parsing and printing only: nothing here decides or changes the state of a transfer or holding.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The parser pieces live apart so that `tachiai --help` imports nothing of the gateway.
from gateway.cli.closing import opened
from gateway.cli.parsers import USAGE as USAGE
from gateway.cli.parsers import Handler as Handler
from gateway.cli.parsers import Subparsers as Subparsers
from gateway.cli.parsers import common_parser as common_parser
from gateway.cli.parsers import group as group
from gateway.errors import InputError, UsageError
from gateway.i18n import _

if TYPE_CHECKING:
    from gateway.config.settings import Settings
    from gateway.runtime import Runtime


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings of the configuration the command line names."""
    # Imported here: a batch of approvals handed to the running daemon reads only the places
    # (gateway.config.places), and building the settings' classes is a part of every start.
    from gateway.config.settings import config_path_from, load_settings

    return load_settings(config_path_from(getattr(args, "config", None)))


def runtime_of(args: argparse.Namespace, *, lite: bool = False) -> Runtime:
    """The runtime; `lite` for the commands that on SQLite work without the database layer
    (see gateway.runtime.Runtime.open)."""
    # Imported here: the audit commands, working on the ledger alone, never need it.
    from gateway.runtime import Runtime

    return opened(Runtime.open(settings_of(args), lite=lite))


def signature_from(args: argparse.Namespace, message: bytes, namespace: str) -> str:
    """The signature a command was given: made now with `--key`, or read from `--signature`.

    Raises:
        KeyFileError: the key cannot be used. InputError: the signature file cannot be read.
    """
    if args.key is not None:
        # Imported here: key handling loads `cryptography`, needed only when signing now.
        from gateway.identity import sshsig
        from gateway.identity.sshkeys import load_private_key

        return sshsig.sign(message, load_private_key(args.key), namespace)
    try:
        return Path(args.signature).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(_("cannot read signature file {path}: {error}").format(
            path=args.signature, error=exc)) from exc


#: How many rows a list shows unless told otherwise: the latest ones.
DEFAULT_LIMIT = 50


def paging_options(p: argparse.ArgumentParser) -> None:
    """`--limit N`, `--since TIME` and `--all` of a list that shows the latest rows."""
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                   help=_("show the latest N (default {default_limit})").format(
                            default_limit=DEFAULT_LIMIT))
    p.add_argument("--since", metavar="TIME", help=_("only those created at or after TIME (ISO "
                                                     "date or date and time, JST unless given)"))
    p.add_argument("--all", action="store_true", help=_("show every one"))


def paging_of(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """The (since_ns, limit) of a list's command line.

    Raises:
        UsageError: a limit below 1 or a time that is not ISO 8601.
    """
    if args.limit < 1:
        raise UsageError(_("--limit must be 1 or more"), hint=_("or give --all"))
    from gateway.state import clock  # here: `approve` needs no dates

    try:
        since = clock.parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise UsageError(_("--since: {problem}").format(problem=exc)) from None
    return since, None if args.all else args.limit


def print_footer(args: argparse.Namespace, shown: int, more: int, what: str) -> None:
    """Say how many earlier rows the page left out and how to see them (on stderr with --json,
    so the JSON stays one array of the same objects)."""
    if more <= 0:
        return
    print(_("… {more} earlier {what} not shown (the latest {shown} are); see them with "
            "--limit {total}, --since TIME or --all").format(
              more=more, what=_(what), shown=shown, total=shown + more),
          file=sys.stderr if args.json else sys.stdout)


def print_json(data: Any) -> None:
    import json  # here: a command that prints no JSON does not load it

    print(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
