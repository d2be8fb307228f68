"""Pieces every command module of the CLI shares: the common options, command groups, loading
the runtime, reading a signature, printing JSON.

Parsing and printing only: nothing here decides or changes the state of a transfer or holding.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from gateway.config.settings import Settings, config_path_from, load_settings
from gateway.errors import InputError
from gateway.identity import sshsig
from gateway.identity.sshkeys import load_private_key
from gateway.runtime import Runtime

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
                        help="configuration file (default ./tachiai.toml or $TACHIAI_CONFIG)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log debug messages")
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


def settings_of(args: argparse.Namespace) -> Settings:
    return load_settings(config_path_from(getattr(args, "config", None)))


def runtime_of(args: argparse.Namespace) -> Runtime:
    return Runtime.open(settings_of(args))


def signature_from(args: argparse.Namespace, message: bytes, namespace: str) -> str:
    """The signature a command was given: made now with `--key`, or read from `--signature`.

    Raises:
        KeyFileError: the key cannot be used. InputError: the signature file cannot be read.
    """
    if args.key is not None:
        return sshsig.sign(message, load_private_key(args.key), namespace)
    try:
        return Path(args.signature).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read signature file {args.signature}: {exc}") from exc


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
