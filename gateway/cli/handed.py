"""`tachiai approve ID --key KEY` handed to the running daemon before any parser is built.

A witness who approves fifty transfers one by one starts fifty commands. The hand-over itself
(gateway.outbound.handover) is a few milliseconds and one run of ssh-keygen; the interpreter's
start and its imports are most of each command. So `main` asks `plain` first: a command line of
exactly that shape (one id, the key, and at most one --config and one --wait, every option
spelled in full) is handed over here, without the command line's parser, the logging module or
the settings beyond the places they name (gateway.config.places). Anything else goes the whole
way, as does a hand-over that cannot be (no daemon running here, the statement not published):
the full parser, which reads it as `plain` does (a test holds the two equal), then the same
hand-over or the approval in the command's own process.

Also the lines an approval through the daemon prints, which `gateway.cli.approvals` prints the
same way. Imports nothing of the gateway but `i18n` until a hand-over runs: `tachiai --help`
imports this module too.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from gateway.i18n import _

if TYPE_CHECKING:
    from gateway.outbound.handover import Counted

#: How long `approve` waits for the running daemon's verdict unless told (--wait).
WAIT_SECONDS = 30.0


class Plain(NamedTuple):
    """A plain `approve ID --key KEY` command line, read."""

    ident: str
    key: Path
    config: str | None
    wait: float


def plain(argv: Sequence[str]) -> Plain | None:
    """`argv` read as the full parser reads it, when it is `[--config C] approve ID --key KEY`
    with at most one --config and one --wait after the command, in any order; None for any
    other command line (including a --wait the full parser refuses: it says why)."""
    args = list(argv)
    try:
        at = args.index("approve")
    except ValueError:
        return None
    given: dict[str, str] = {}
    if not _options(args[:at], {"--config"}, given):
        return None
    ids: list[str] = []
    if not _options(args[at + 1:], {"--config", "--key", "--wait"}, given, ids):
        return None
    if len(ids) != 1 or "--key" not in given:
        return None
    wait = WAIT_SECONDS
    if "--wait" in given:
        try:
            wait = float(given["--wait"])
        except ValueError:
            return None
        if not math.isfinite(wait) or wait <= 0:
            return None
    return Plain(ids[0], Path(given["--key"]), given.get("--config"), wait)


def _options(args: list[str], names: set[str], given: dict[str, str],
             positional: list[str] | None = None) -> bool:
    """Read `args` into `given` (option → value) and `positional`; False when one is not a
    plain option of `names` with a value, is given twice, or is a positional where none may
    stand."""
    rest = iter(args)
    for arg in rest:
        name, equals, value = arg.partition("=")
        if name in names:
            if not equals:
                value = next(rest, "")
            if not value or value.startswith("-") or name in given:
                return False
            given[name] = value
        elif arg.startswith("-") or positional is None:
            return False
        else:
            positional.append(arg)
    return True


def approve(line: Plain) -> int | None:
    """Hand the approval `line` names to the running daemon and print its verdict: exit 0;
    None when it cannot be handed over here (the command then goes the whole way).

    Raises:
        TachiaiError: as gateway.outbound.handover.approve.
    """
    # Imported here: `tachiai --help` imports this module.
    from gateway.config.places import config_path_from, read_places
    from gateway.outbound import handover

    places = read_places(config_path_from(line.config))
    if places is None:
        return None
    counted = handover.approve(places, line.ident, line.key, line.wait)
    if counted is None:
        return None
    said(line.ident, counted)
    return 0


def said(transfer_id: str, counted: Counted) -> None:
    """What an approval the daemon counted says: for whom and how many, then what comes next."""
    if transfer_id.startswith("f-"):
        print(_("approval by {witness} recorded ({count} of {needed} witness(es))").format(
            witness=counted.witness, count=counted.approvals, needed=counted.needed))
        parts(counted.parts)
        if not counted.approved:
            more(counted.needed - counted.approvals)
    else:
        recorded(transfer_id, counted.witness, counted.approvals, counted.needed, counted.approved)


def recorded(transfer_id: str, witness: str, count: int, needed: int, approved: bool) -> None:
    """What one transfer's approval says: for whom and how many, then what comes next."""
    print(_("approval by {witness} recorded ({count} of {needed} witness(es))").format(
        witness=witness, count=count, needed=needed))
    if approved:
        print(_("transfer {id} is approved; the daemon seals and delivers it now").format(
            id=transfer_id))
    else:
        more(needed - count)


def more(count: int) -> None:
    print(_("next: {count} more witness(es) must approve").format(count=count))


def parts(approved: int) -> None:
    """The line a fan-out's approval adds: how many of its parts it approved."""
    print(_("{approved} of {count} child transfer(s) of the fan-out approved").format(
        approved=approved, count=approved), file=sys.stderr)
