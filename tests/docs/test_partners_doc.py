"""Every ```toml example of docs/partners.md passes `tachiai agreements check`.

A block with a [gateway] table is a complete configuration, written into a demo gateway's
folder; any other block is a fragment that replaces the demo's [recipients.nhi-central] (its
recipient tables) or is added to the demo's configuration. Key files, known_hosts entries and
the relay's files the block names are made the way a real gateway has them (an ed25519 key,
mode 0600; a known_hosts entry for each host and port). Blocks tagged with another file's name
(```toml registry.toml) are excerpts of that file: they must be TOML.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Demo
from tests.gateway.transports.servers import ssh_keygen

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "partners.md"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH9rGilOgv4wsUiJDjQUzbJfzahVqKx31NxqlXPuBpoO"


def blocks(info: str) -> list[tuple[str, str]]:
    """(info string, text) of every fenced block whose info string starts with `info`."""
    found = re.findall(r"(?ms)^```([^\n]*)\n(.*?)^```", DOC.read_text(encoding="utf-8"))
    return [(i.strip(), t) for i, t in found if i.strip().split(" ")[0] == info]


def _tables(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        return [data, *(t for v in data.values() for t in _tables(v))]
    if isinstance(data, list):
        return [t for v in data for t in _tables(v)]
    return []


def _prepare_files(root: Path, data: dict[str, Any]) -> None:
    """Make the files the example names, as an operator would have them."""
    entries: set[str] = set()
    for table in _tables(data):
        if "host" in table:
            host, port = table["host"], table.get("port", 22)
            entries.add(f"{host if port == 22 else f'[{host}]:{port}'} {HOST_KEY}")
        for key in ("key_file", "password_file", "ca_file"):
            if key in table:
                path = root / table[key]
                if path.exists():
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                if key == "key_file":
                    ssh_keygen(path)
                else:
                    path.write_text("secret\n" if key == "password_file" else "-----\n")
                    os.chmod(path, 0o600)
    for table in _tables(data):
        known = table.get("known_hosts")
        if isinstance(known, str) and len(known.split()) == 1:
            (root / known).parent.mkdir(parents=True, exist_ok=True)
            (root / known).write_text("\n".join(sorted(entries)) + "\n")


def _config(demo: Demo, block: str) -> None:
    data = tomllib.loads(block)
    if "gateway" in data:
        demo.config.write_text(block, encoding="utf-8")
    else:
        text = demo.config.read_text(encoding="utf-8")
        if "recipients" in data:
            text = text.split("[recipients.nhi-central]")[0]
        for table in set(data) - {"recipients"}:  # the example replaces the demo's table
            text = re.sub(rf"(?ms)^\[{table}\]\n.*?(?=^\[|\Z)", "", text)
        demo.config.write_text(text + "\n" + block, encoding="utf-8")
    _prepare_files(demo.root, data)


EXAMPLES = [t for i, t in blocks("toml") if i == "toml"]


def test_the_page_has_an_example_of_each_route_channel_and_pickup() -> None:
    text = "\n".join(EXAMPLES)
    for needle in ('transport = "local"', 'transport = "sftp"', 'transport = "mail"',
                   'kind = "folder"', 'kind = "sftp"', 'kind = "retrieval"', "[pickup.",
                   "[inbound.pickup.", "[sealing]"):
        assert needle in text, needle
    assert "[host]:port" in DOC.read_text(encoding="utf-8")
    assert "ssh-keyscan -p 2222" in DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("block", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_each_example_passes_agreements_check(demo: Demo, block: str) -> None:
    _config(demo, block)
    result = demo.cli("agreements", "check")
    assert result.returncode == 0, f"{block}\n{result.stdout}\n{result.stderr}"


def test_excerpts_of_other_files_are_toml() -> None:
    excerpts = [t for i, t in blocks("toml") if i != "toml"]
    assert excerpts
    for text in excerpts:
        tomllib.loads(text)
