"""The checkpoint text (C2SP tlog-checkpoint), its exact time, and reading copies back."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from audit.checkpoints import (
    Checkpoint,
    format_time,
    notes_in,
    parse,
    parse_time,
    read_places,
    sign,
    syslog_line,
)
from audit.notes import NoteError, NoteSigner

ROOT = bytes(range(32))


def test_checkpoint_text_is_the_tlog_checkpoint_format() -> None:
    cp = Checkpoint("tachiai/ledger/0123456789abcdef", 42, ROOT, 1_790_000_000_123_456_789)
    assert cp.text() == (
        "tachiai/ledger/0123456789abcdef\n42\n"
        f"{base64.b64encode(ROOT).decode()}\n"
        "time 2026-09-21T23:13:20.123456789+09:00\n"
    )
    assert Checkpoint.from_text(cp.text()) == cp


@pytest.mark.parametrize("ns", [0, 1, 999_999_999, 1_790_000_000_123_456_789, 2**62])
def test_time_lines_are_exact_to_the_nanosecond(ns: int) -> None:
    assert parse_time("time " + format_time(ns)) == ns


@pytest.mark.parametrize(
    "text",
    [
        "o\n1\nAAAA\ntime 2026-09-22T02:53:20.000000000+09:00\n",  # root too short
        f"o\n01\n{base64.b64encode(ROOT).decode()}\ntime 2026-09-22T02:53:20.000000000+09:00\n",
        f"o\n1\n{base64.b64encode(ROOT).decode()}\ntime 2026-09-22T02:53:20+09:00\n",
        f"o\n1\n{base64.b64encode(ROOT).decode()}\n",
        f"o p\n1\n{base64.b64encode(ROOT).decode()}\ntime 2026-09-22T02:53:20.000000000+09:00\n",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.from_text(text)


def test_notes_are_found_in_every_kind_of_copy(tmp_path: Path) -> None:
    signer = NoteSigner.generate("tachiai-test-ledger")
    signed = [sign(Checkpoint("o/x", n, ROOT, n), signer) for n in (1, 2, 3)]
    history = "".join(s.note + "\n" for s in signed)
    assert notes_in(history) == [s.note for s in signed]
    assert notes_in(signed[0].note) == [signed[0].note]
    syslog = "".join(f"Nov 22 host tachiai[1]: {syslog_line(s)}\nother line\n" for s in signed)
    assert notes_in(syslog) == [s.note for s in signed]
    folder = tmp_path / "cps"
    (folder / "history").mkdir(parents=True)
    (folder / "history" / "2026-11-22.checkpoints").write_text(history)
    (folder / "checkpoint").write_text(signed[-1].note)
    (folder / "ledger.pub").write_text(signer.verifier().to_text() + "\n")
    (tmp_path / "syslog").write_text(syslog)
    notes, key = read_places([folder, tmp_path / "syslog"])
    assert key == signer.verifier()
    assert [n for n, _ in notes].count(signed[-1].note) == 3
    for note, source in notes:
        assert parse(note, source, key).verified


def test_a_checkpoint_must_be_signed_by_the_trusted_key() -> None:
    mine, theirs = NoteSigner.generate("gw"), NoteSigner.generate("gw")
    signed = sign(Checkpoint("o/x", 5, ROOT, 5), theirs)
    with pytest.raises(NoteError):
        parse(signed.note, "x", mine.verifier())
    assert not parse(signed.note, "x", None).verified
