"""Pieces every command module of the CLI shares: the common options, command groups, loading
the runtime, reading a signature, printing JSON.

Parsing and printing only: nothing here decides or changes the state of a transfer or holding.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The parser pieces live apart so that `tachiai --help` imports nothing of the gateway.
from gateway.cli.parsers import USAGE as USAGE
from gateway.cli.parsers import Handler as Handler
from gateway.cli.parsers import Subparsers as Subparsers
from gateway.cli.parsers import common_parser as common_parser
from gateway.cli.parsers import group as group
from gateway.config.settings import Settings, config_path_from, load_settings
from gateway.errors import InputError

if TYPE_CHECKING:
    from gateway.runtime import Runtime


def settings_of(args: argparse.Namespace) -> Settings:
    return load_settings(config_path_from(getattr(args, "config", None)))


def runtime_of(args: argparse.Namespace) -> Runtime:
    # Imported here: the runtime loads the database layer (about half of a command's start-up
    # CPU), which the audit commands, working on the ledger alone, never need.
    from gateway.runtime import Runtime

    return Runtime.open(settings_of(args))


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
        raise InputError(f"cannot read signature file {args.signature}: {exc}") from exc


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
