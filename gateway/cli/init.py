"""`tachiai init DIR [--demo | --demo-recipient DEMO]`: a configuration and its folders.

Parsing and printing only; `gateway.bootstrap` writes the files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway import bootstrap
from gateway.cli.common import Subparsers
from gateway.i18n import _, wording


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("init", parents=[common], help=_("create a configuration and folders"))
    p.add_argument("directory", type=Path)
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--demo", action="store_true", help=_("add the demo agreement, people and "
                                                            "keys"))
    kind.add_argument("--demo-recipient", type=Path, metavar="DEMO",
                      help=_("the receiving gateway (nhi-central) of the demo made at DEMO"))
    p.set_defaults(handler=_init)


def _init(args: argparse.Namespace) -> int:
    if args.demo_recipient is not None:
        lines = bootstrap.init_demo_recipient(args.directory, args.demo_recipient)
    else:
        lines = bootstrap.init(args.directory, args.demo)
    for line in lines:
        print(wording(line))
    return 0
