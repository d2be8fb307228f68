"""Pieces every command module of the CLI shares: loading the runtime, printing JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gateway.config.settings import Settings, config_path_from, load_settings
from gateway.errors import InputError
from gateway.identity import sshsig
from gateway.identity.sshkeys import load_private_key
from gateway.runtime import Runtime


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
