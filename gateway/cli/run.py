"""`tachiai run`: the daemon in the foreground (under systemd, or in a terminal).

Parsing only; `gateway.daemon` does the work. A bug that escapes the daemon is logged with
its trace even without --verbose: nobody is at a terminal to run it again.
"""

from __future__ import annotations

import argparse

from gateway.cli.common import Subparsers, settings_of
from gateway.i18n import _, english


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help=_("run the daemon in the foreground"))
    # The daemon's log is its account of what it does (journald): INFO up, unlike a command's.
    p.set_defaults(handler=_run, trace_bugs=True, log_info=True)


def _run(args: argparse.Namespace) -> int:
    # Imported here: the daemon pulls in watchdog and openpyxl, about 0.25 s that every
    # other command would otherwise pay at start-up (measured with -X importtime).
    from gateway import daemon, forwarding

    english()  # the daemon's log is read with journald and grep: English, whatever LANG says
    # A `holdings forward` killed mid-way is finished or undone: before the workers start, and
    # with each sweep while the daemon runs.
    daemon.run(settings_of(args), recover=forwarding.recover)
    return 0
