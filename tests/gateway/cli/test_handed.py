"""gateway.cli.handed: a plain `approve ID --key KEY` read without the parser, exactly as the
parser reads it; every other command line left to the parser."""

from __future__ import annotations

import contextlib
import io
import random
from pathlib import Path

import pytest

from gateway.cli import full_parser, handed
from gateway.outbound import handover

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
    # The hand-over's own default (its callers' without a command line) is the same wait,
    # kept apart so that reading a command line imports nothing of the hand-over.
    assert handed.WAIT_SECONDS == handover.WAIT_SECONDS


#: Words a command line is made of here: values that look like options, like numbers, like
#: the command's name; empty, spaced, non-ASCII.
_WORDS = ("k", "a=b", "x y", "approve", "--", "", "=", "-1", " 2 ", "2_0", "inf", "1e-400",
          ".5", "t-0123456789ab", "f-0123456789ab", "~/k", "é", "--config", "--key", "-v", "-h",
          "reject", "١٢")


def _option(rng: random.Random, name: str) -> list[str]:
    value = rng.choice(_WORDS)
    return [name, value] if rng.random() < 0.5 else [f"{name}={value}"]


def test_made_up_command_lines_are_read_as_the_parser_reads_them_or_left_to_it() -> None:
    rng = random.Random(20261205)
    parser = full_parser("approvals")
    accepted = 0
    for _ in range(6000):
        before: list[str] = []
        for _ in range(rng.randint(0, 2)):
            before += rng.choice([_option(rng, "--config"), ["-v"], [rng.choice(_WORDS)]])
        pieces = [[rng.choice(_WORDS)], _option(rng, "--key")]
        for _ in range(rng.randint(0, 3)):
            pieces.append(rng.choice([_option(rng, "--config"), _option(rng, "--wait"),
                                      _option(rng, "--key"), [rng.choice(_WORDS)]]))
        rng.shuffle(pieces)
        argv = [*before, "approve", *(word for piece in pieces for word in piece)]
        line = handed.plain(argv)
        if line is None:
            continue
        accepted += 1
        with contextlib.redirect_stderr(io.StringIO()):
            args = parser.parse_args(argv)  # SystemExit: the parser refuses what plain took
        assert ([line.ident], line.key, line.config, line.wait) == (
            args.id, args.key, getattr(args, "config", None), args.wait), argv
        assert args.signature is None and args.signatures is None and not args.duplicate_ok
        assert not getattr(args, "verbose", False), argv
    assert accepted > 300  # the words make plain lines often enough to mean something
