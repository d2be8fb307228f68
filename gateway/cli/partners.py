"""`tachiai partners test NAME`: test the route to a recipient now and say how each step went.

Prints each step with its timing and records the test in the ledger (`partner.tested`: the
route, the outcome and the steps; never a key or a password). Exit 0 when the route works,
69 when the partner is unreachable, 1 when it refused us (host key not the pinned one, our key
or a permission refused).
"""

from __future__ import annotations

import argparse

from gateway.cli.common import Subparsers, group, print_json, runtime_of
from gateway.errors import CheckFailed, PartnerUnavailable
from gateway.i18n import _, wording
from gateway.outbound.partner_tests import TESTED, probe_partner
from gateway.transports.probe import ProbeResult


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    _partners, psub = group(sub, "partners", common, "recipients' routes")
    p = psub.add_parser(
        "test",
        parents=[common],
        help=_("connect, authenticate and write/remove a probe file (or send a test mail); exit "
               "0 works, 69 unreachable, 1 refused"),
    )
    p.add_argument("name", help=_("the recipient party, as in [recipients.NAME]"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_test)


def _test(args: argparse.Namespace) -> int:
    """Raises: CheckFailed (exit 1) when refused; PartnerUnavailable (69) when unreachable."""
    result = probe_partner(runtime_of(args), args.name)
    _print(result, args.json)
    if result.error is None:
        return 0
    if result.outcome == "unreachable":
        raise PartnerUnavailable(str(result.error), hint=result.error.hint)
    raise CheckFailed(str(result.error), hint=result.error.hint)


def _print(result: ProbeResult, as_json: bool) -> None:
    if as_json:
        print_json(result.ledger_data())
        return
    print(f"{result.party}: {wording(result.route)}")
    for step in result.steps:
        print(_("  {outcome} {step} ({ms} ms)").format(
            outcome=(_("ok") if step.ok else _("FAILED")).ljust(6), step=wording(step.name),
            ms=f"{step.seconds * 1000:.0f}"))
    print(_("outcome: {outcome} (recorded in the ledger as {kind})").format(
        outcome=result.outcome, kind=TESTED))
