"""The command line's parser pieces: the options every command accepts and command groups.

Imported by `tachiai --help` and every command before it knows which one runs, so it imports
argparse and nothing of the gateway but `i18n` (gettext, already loaded by the command line):
a slow import here slows every command.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Protocol

from gateway.i18n import _

#: A command's handler: takes the parsed arguments, returns the exit code.
Handler = Callable[[argparse.Namespace], int]

#: Exit code of a command line that names a group but no action (as argparse's usage errors).
USAGE = 2


class Subparsers(Protocol):
    """What a command module needs of `ArgumentParser.add_subparsers()`: adding a command."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def common_parser() -> argparse.ArgumentParser:
    """The options every command and action accepts, before or after its name."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand must not reset an option given before it (`tachiai --config X run`).
    common.add_argument("--config", default=argparse.SUPPRESS,
                        help=_("configuration file (default ./tachiai.toml or $TACHIAI_CONFIG)"))
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help=_("log debug messages"))
    return common


def group(
    sub: Subparsers, name: str, common: argparse.ArgumentParser, help: str
) -> tuple[argparse.ArgumentParser, Subparsers]:
    """A command with actions (`tachiai NAME ACTION`); given alone it prints its help, exit 2.

    The group's handler is a default that each action's own handler overrides.
    """
    parser = sub.add_parser(name, parents=[common], help=help)
    parser.set_defaults(handler=_help_of(parser))
    return parser, parser.add_subparsers(metavar="ACTION")


def _help_of(parser: argparse.ArgumentParser) -> Handler:
    def show_help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return USAGE

    return show_help
