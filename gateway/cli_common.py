"""Pieces every command module of the CLI shares: loading the runtime, printing JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway.config import Settings, config_path_from, load_settings
from gateway.runtime import Runtime


def settings_of(args: argparse.Namespace) -> Settings:
    return load_settings(config_path_from(getattr(args, "config", None)))


def runtime_of(args: argparse.Namespace) -> Runtime:
    return Runtime.open(settings_of(args))


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
