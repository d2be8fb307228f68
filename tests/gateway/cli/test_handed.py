"""gateway.cli.handed: a plain `approve ID --key KEY` read without the parser, exactly as the
parser reads it; every other command line left to the parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import full_parser, handed

PLAIN = [
    ("approve", "t-0123456789ab", "--key", "k"),
    ("approve", "--key", "k", "t-0123456789ab"),
    ("approve", "t-0123456789ab", "--key=~/keys/id_ed25519"),
    ("--config", "/etc/tachiai.toml", "approve", "t-0123456789ab", "--key", "k"),
    ("--config=conf.toml", "approve", "f-0123456789ab", "--key", "k"),
    ("approve", "t-0123456789ab", "--key", "k", "--config", "c.toml"),
    ("approve", "t-0123456789ab", "--wait", "2.5", "--key", "k"),
    ("approve", "t-0123456789ab", "--key", "k", "--wait=1e2", "--config=c.toml"),
    ("approve", "t-0123456789ab", "--key", "k", "--wait", "1_0"),
    ("approve", "t-0123456789ab", "--key", "with space/key=x"),
]

NOT_PLAIN = [
    (),
    ("transfers", "list"),
    ("approve",),
    ("approve", "t-0123456789ab"),
    ("approve", "t-0123456789ab", "t-0123456789ac", "--key", "k"),
    ("approve", "t-0123456789ab", "--signature", "s.sig"),
    ("approve", "--signatures", "dir"),
    ("approve", "t-0123456789ab", "--key", "k", "--duplicate-ok"),
    ("-v", "approve", "t-0123456789ab", "--key", "k"),
    ("approve", "t-0123456789ab", "--key", "k", "--verbose"),
    ("approve", "t-0123456789ab", "--ke", "k"),  # an abbreviation: the parser's to read
    ("approve", "t-0123456789ab", "--key"),
    ("approve", "t-0123456789ab", "--key", "-k"),
    ("approve", "t-0123456789ab", "--key="),
    ("approve", "t-0123456789ab", "--key", "a", "--key", "b"),
    ("--config", "a", "approve", "t-0123456789ab", "--key", "k", "--config", "b"),
    ("approve", "t-0123456789ab", "--key", "k", "--wait", "0"),
    ("approve", "t-0123456789ab", "--key", "k", "--wait", "-1"),
    ("approve", "t-0123456789ab", "--key", "k", "--wait", "nan"),
    ("approve", "t-0123456789ab", "--key", "k", "--wait", "soon"),
    ("approve", "t-0123456789ab", "--key", "k", "--", "t-0123456789ac"),
    ("t-0123456789ab", "approve", "--key", "k"),
    ("--config", "approve", "approve", "t-0123456789ab", "--key", "k"),
    ("reject", "t-0123456789ab", "--key", "k", "--reason", "approve"),
    ("--help", "approve", "t-0123456789ab", "--key", "k"),
    ("approve", "t-0123456789ab", "--key", "k", "-h"),
]


@pytest.mark.parametrize("argv", PLAIN)
def test_a_plain_command_line_is_read_as_the_parser_reads_it(argv: tuple[str, ...]) -> None:
    line = handed.plain(argv)
    assert line is not None
    args = full_parser("approvals").parse_args(argv)
    assert [line.ident] == args.id
    assert line.key == args.key == Path(args.key)
    assert line.config == getattr(args, "config", None)
    assert line.wait == args.wait
    assert args.signature is None and args.signatures is None and not args.duplicate_ok
    assert not getattr(args, "verbose", False)


@pytest.mark.parametrize("argv", NOT_PLAIN)
def test_any_other_command_line_is_left_to_the_parser(argv: tuple[str, ...]) -> None:
    assert handed.plain(argv) is None


def test_the_default_wait_is_the_parsers() -> None:
    argv = ("approve", "t-0123456789ab", "--key", "k")
    line = handed.plain(argv)
    assert line is not None
    assert line.wait == full_parser("approvals").parse_args(argv).wait == handed.WAIT_SECONDS
