"""Which ledger an `audit` command reads and which key and checkpoints it trusts: a copy given
on the command line (`--ledger`, `--public-key`, `--checkpoint`) or the gateway's own
configuration; and how the trust found is told to the reader.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from audit.checkpoints import SignedCheckpoint, format_time, parse, read_places
from audit.notes import NoteError, NoteVerifier
from gateway.cli.closing import opened
from gateway.cli.common import settings_of
from gateway.errors import InputError, NotFound, StateError
from gateway.evidence.checkpointing import CheckpointSettings
from gateway.evidence.ledgers import open_ledger
from gateway.evidence.signing_key import load_key
from gateway.i18n import _

# The database layer is imported by the commands that need it: `audit verify` and `audit
# prove` on the gateway read the ledger with sqlite3 alone (audit.lite).
if TYPE_CHECKING:
    from audit.ledger import Ledger
    from audit.verify import VerifyReport


def open_for(args: argparse.Namespace, *, lite: bool = False) -> Ledger:
    """The ledger to read: a copy (--ledger), or the gateway's; `lite` for what
    `audit.lite.LiteLedger` offers (events, proofs, verification) on SQLite."""
    if getattr(args, "ledger", None):
        from audit.database import is_postgres_url
        from audit.ledger import Ledger

        # Closed at the end, a copy's settled private copy (audit.database) goes with it.
        if is_postgres_url(args.ledger):
            return opened(Ledger.connect(args.ledger, read_only=True, create=False))
        return opened(Ledger.open(Path(args.ledger), snapshot=True))
    return opened(open_ledger(settings_of(args), read_only=True, lite=lite))


def trust(
    args: argparse.Namespace, *, quiet: bool = False
) -> tuple[NoteVerifier | None, list[tuple[str, str]]]:
    """The trusted key and the external checkpoints: from the command line on a copy, from
    the configuration on the gateway itself."""
    places: list[Path] = list(args.checkpoint)
    on_gateway = not args.ledger and not places
    settings = CheckpointSettings.from_settings(settings_of(args)) if on_gateway else None
    if settings is not None:
        places = [d for d in settings.directories if d.is_dir()]
    try:
        notes, offered = read_places(places)
    except FileNotFoundError as exc:
        raise NotFound(_("no checkpoints at {path}").format(path=exc.filename)) from None
    except (OSError, NoteError) as exc:
        raise InputError(_("cannot read the checkpoints: {problem}").format(problem=exc)) from None
    key: NoteVerifier | None = None
    if args.public_key:
        key = key_file(args.public_key)
    elif settings is not None:
        key = configured_key(args)
    elif offered is not None:
        key = offered
        if not quiet:
            print(
                _("note: using the public key found beside the checkpoints, {key}; compare "
                  "it with the key you were given").format(key=key.to_text()),
                file=sys.stderr,
            )
    return key, notes


def configured_key(args: argparse.Namespace) -> NoteVerifier | None:
    try:
        settings = CheckpointSettings.from_settings(settings_of(args))
        return load_key(settings.key_path).verifier()
    except FileNotFoundError:
        return None


def key_file(path: Path) -> NoteVerifier:
    try:
        return NoteVerifier.from_text(read_text(path))
    except NoteError as exc:
        raise InputError(_("{path} is not a ledger public key: {problem}").format(
            path=path, problem=exc)) from None


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(_("no file {path}").format(path=path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(_("cannot read {path}: {problem}").format(path=path,
                                                                    problem=exc)) from None


def print_trust(report: VerifyReport, key: NoteVerifier | None) -> None:
    latest = report.latest_signed
    if key is None:
        print(
            _("WARNING: no trusted public key was given, so no checkpoint signature was "
              "checked. This shows the ledger is consistent in itself, not that it is the one "
              "the gateway signed: pass --public-key (the ledger.pub you were given) and "
              "--checkpoint (the copies kept outside the database).")
        )
    elif latest is None:
        print(
            _("WARNING: no checkpoint signed by {key} was found, so nothing shows this "
              "ledger is the one the gateway signed; pass --checkpoint").format(key=key.to_text())
        )
    else:
        cp = latest.checkpoint
        print(
            _("signed: {count} checkpoint(s) by {key} match; the latest, {time}, covers "
              "{size} events ({source})").format(count=len(report.signed), key=key.to_text(),
                                                 time=format_time(cp.time_ns), size=cp.size,
                                                 source=latest.source)
        )
        if report.size > cp.size:
            print(
                _("events {first}..{last} came after the latest checkpoint and are not yet "
                  "covered by a signature").format(first=cp.size, last=report.size - 1)
            )


def covering(
    ledger: Ledger, notes: list[tuple[str, str]], key: NoteVerifier | None, seq: int
) -> SignedCheckpoint:
    best: SignedCheckpoint | None = None
    for note, source in [*notes, *ledger.checkpoints()]:
        try:
            signed = parse(note, source, key)
        except NoteError:
            continue
        size = signed.checkpoint.size
        if size > seq and (best is None or size > best.checkpoint.size):
            best = signed
    if best is None:
        raise StateError(
            _("no signed checkpoint covers event {seq} yet").format(seq=seq),
            hint=_("wait for the daemon's next checkpoint (about a second), or run "
                   "`tachiai audit checkpoint` on the gateway"),
        )
    return best
