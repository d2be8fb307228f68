"""The approvals folder (承認フォルダ): witnesses approve with nothing but OpenSSH.

For each decision awaiting witnesses the daemon publishes its statement in the folder
(`[gateway] approvals_dir`, by default STATE_DIR/approvals) as the exact bytes to sign, named
by the transfer's id (a fan-out's by the fan-out's id: one signature approves every part), the
same layout `tachiai approve --signatures DIR` reads. A witness runs

    ssh-keygen -Y sign -f KEY -n tachiai-approval DIR/ID

which writes DIR/ID.sig beside it (`tachiai approve ID --key KEY` does the same while the
daemon runs: gateway.outbound.handover). The daemon's watch on the folder wakes it, and it
takes that file and hands it to `gateway.outbound.approvals.approve`, exactly as the command
does: the same checks, rows, ledger events, and refusals of a replay or of a statement that
has changed since it was signed.

- **Accepted**: the signature file is removed once the approval is committed, after
  `ID.sig.accepted` says for whom and how many of how many (gateway.outbound.approval_notes).
  The ledger's `approval.accepted` event holds the signature and the statement verbatim, so a
  copy would add nothing.
- **Refused**: never deleted. It is moved to `refused/ID.sig.TIME` (a link or a FIFO is moved
  as the link or FIFO it is: never followed or opened for writing), `ID.sig.refused` beside the
  statement says why, in Japanese and English, with the rule and the fix, and the refusal is
  an `approval.refused` event (its rule and, when the signature verified, its signer). A
  signature for an id this gateway does not know has no transfer to record against: it is
  moved and explained the same way and logged.
- Each note is written before the signature leaves its taking name, so whoever waits for the
  verdict finds it once the file is gone.
- A statement that changes (a duplicate notice, a reply's link) is written again; a statement
  leaves the folder once its transfer no longer awaits approval, its notes `NOTE_GRACE_SECONDS`
  later.

Statements are written under a temporary name and renamed in, 0640 in a folder made 3770
(set-group-ID: files take the folder's group, the witnesses'; sticky: a witness cannot remove
or replace the daemon's statements or another witness's signature). They are not fsynced: they
are derived from the state database and written again after a restart. Several daemons on one
state directory take each signature once: it is renamed to a name of the taking process before
it is read, and a name left by a process that died is given back after `_ORPHAN_SECONDS`.

Over 400 lines on purpose: taking, publishing and explaining meet in one folder under one set
of names and modes; split apart, each part would have to restate them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config.policyfiles import load_registry
from gateway.errors import (
    CheckFailed,
    ConfigError,
    InputError,
    NotFound,
    SignatureError,
    StateError,
    TachiaiError,
)
from gateway.i18n import N_
from gateway.outbound import approvals
from gateway.outbound.approval_notes import ACCEPTED_SUFFIX as ACCEPTED_SUFFIX
from gateway.outbound.approval_notes import ID_PATTERN as ID_PATTERN
from gateway.outbound.approval_notes import MAX_SIGNATURE_BYTES as MAX_SIGNATURE_BYTES
from gateway.outbound.approval_notes import NOTE_SUFFIX as NOTE_SUFFIX
from gateway.outbound.approval_notes import REFUSED as REFUSED
from gateway.outbound.approval_notes import SIGNATURE_SUFFIX as SIGNATURE_SUFFIX
from gateway.outbound.approval_notes import TAKING as _TAKING
from gateway.outbound.approval_notes import accepted_note, refused_note
from gateway.outbound.approval_notes import signature_id as signature_id
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime
from gateway.state import clock, fanouts
from gateway.state.rows import Transfer
from gateway.state.spool import refuse_linked, sync_dir, write_atomic
from policies.reasons import Reason

log = logging.getLogger(__name__)

FOLDER_MODE = 0o3770
STATEMENT_MODE = 0o640
NOTE_MODE = 0o640
#: How long a note outlives its transfer's wait: a witness's `tachiai approve` reads its
#: verdict there, and a witness signing with ssh-keygen alone looks for it.
NOTE_GRACE_SECONDS = 10.0
_END = b"-----END SSH SIGNATURE-----"
#: ssh-keygen writes the .sig in place: a file without its last line is being written, until
#: it has been left so this long.
_WRITING_SECONDS = 10.0
#: Statements are made again this often even when no transfer changed (a duplicate notice or
#: a reply's link changes the statement of a transfer that did not move).
_REFRESH_SECONDS = 5.0
_ORPHAN_SECONDS = 120.0


@dataclass(frozen=True)
class Refusal:
    """Why a dropped signature was not counted: a rule, a message and a fix (English, marked
    for the catalogue)."""

    rule: str
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class Counted:
    """A signature that counted: for whom, how many of how many, the transfer's state now (of
    the first part when it approved `parts` parts of a fan-out)."""

    witness: str
    count: int
    needed: int
    state: str
    parts: int = 1


@dataclass
class Taken:
    """What one pass did: ids approved (an approval recorded) and ids refused."""

    accepted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


class ApprovalFolder:
    """The folder of one daemon: `prepare()` once, then `poll()` at each turn of its loop."""

    def __init__(self, rt: Runtime, folder: Path) -> None:
        self.rt = rt
        self.folder = folder
        self.refused_dir = folder / REFUSED
        self._owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        # statement name -> (the transfer rows it was made from, its bytes); transfer -> name
        self._made: dict[str, tuple[tuple[tuple[str, int], ...], bytes]] = {}
        self._name_of: dict[str, str] = {}
        self._written: dict[str, bytes] = {}
        self._next_refresh = 0.0
        # The handler registry file as last read (its stat), and as last found invalid.
        self._registry_seen: tuple[int, ...] | None = None
        self._registry_broken: tuple[int, ...] | None = None
        self._unflushed = False  # approvals taken by a woken turn, their events not yet moved

    def prepare(self) -> None:
        """Make the folder (and refused/) 3770, and give back signatures a dead taker left.

        Raises:
            StorageError: the folder's path passes through a symbolic link.
            OSError: it cannot be made.
        """
        for folder in (self.folder, self.refused_dir):
            folder.mkdir(parents=True, exist_ok=True)
        refuse_linked(self.folder, "the approvals folder")
        refuse_linked(self.refused_dir, "the approvals folder's refused/")
        for folder in (self.folder, self.refused_dir):
            # A folder made beforehand (by an operator, to give it the witnesses' group) is
            # made 3770 as well; one owned by another account cannot be, and a witness's
            # `tachiai approve` trusts nothing in it (gateway.outbound.handover): say so.
            st = folder.stat()
            if st.st_uid != os.getuid():
                log.error("the approvals folder %s belongs to another account: witnesses' "
                          "signatures in it are not protected from each other, and `tachiai "
                          "approve` approves in its own process; chown it to the daemon's "
                          "user (docs/approvals.md)", folder)
                continue
            if stat.S_IMODE(st.st_mode) not in (FOLDER_MODE, FOLDER_MODE & 0o1777):
                try:
                    os.chmod(folder, FOLDER_MODE)
                except PermissionError:  # RestrictSUIDSGID=yes: no set-group-ID bit
                    os.chmod(folder, FOLDER_MODE & 0o1777)
        log.info("witnesses approve by signing the statements in %s with ssh-keygen -Y sign "
                 "-n %s", self.folder, approvals.APPROVAL_NAMESPACE)

    def poll(self, *, regular: bool = True) -> Taken:
        """Take the signatures dropped since the last turn, move their events into the ledger
        and publish the statements that await witnesses. Not `regular` (a turn woken by a
        signature arriving): take the signatures only; the events stay committed in the state
        database for the next regular turn's one ledger append, and statements are published
        then too (after a refusal, at once). Never raises: a problem is logged and met again
        at the next turn."""
        taken = Taken()
        try:
            names = os.listdir(self.folder)
        except OSError as exc:
            log.error("the approvals folder %s cannot be read: %s", self.folder, exc.strerror)
            return taken
        try:
            names += self._give_back_orphans(names)
            signatures = sorted(n for n in names if signature_id(n) is not None)
            if signatures:
                # A link put in place of refused/ would carry refused files elsewhere: nothing
                # is taken until it is fixed (StorageError, logged below).
                refuse_linked(self.refused_dir, "the approvals folder's refused/")
                if not self._current_registry():
                    signatures = []  # they wait until the registry is valid again
            try:
                for name in signatures:
                    self._take(name, signature_id(name) or "", taken)
            finally:
                if taken.accepted:
                    # The counted signatures' removals made durable: one sync for the turn's,
                    # not one each (a batch of signatures arrives at once). A machine that
                    # stops before it can bring one back; taken again, it is refused as a
                    # second approval of the same witness, never counted twice.
                    sync_dir(self.folder)
        except TachiaiError as exc:
            log.error("taking approvals from %s: %s", self.folder, exc.diagnostics())
        except OSError as exc:  # the file system: met again at the next turn
            log.error("taking approvals from %s: %s", self.folder, exc)
        finally:
            self._unflushed = self._unflushed or bool(taken.accepted or taken.refused)
            if regular and self._unflushed:
                self._unflushed = False
                try:
                    self.rt.flush()  # once for every approval since the last regular turn
                except TachiaiError as exc:
                    log.error("approvals folder: %s", exc.diagnostics())
        if not regular and not taken.refused:
            return taken
        try:
            # Every read of the statements published in this turn: one read transaction.
            with self.rt.store.snapshot("read the statements awaiting witnesses"):
                self._publish(names, force=bool(taken.refused))
        except (TachiaiError, OSError) as exc:
            log.error("publishing statements in %s: %s", self.folder, exc)
        return taken

    def publish_new(self, transfer_ids: Sequence[str]) -> None:
        """Publish at once the statements of the transfers a worker just left awaiting
        witnesses, so a witness finds each within moments of `transfers list` showing it, not
        at the next regular turn. Only a transfer that still awaits witnesses, is no fan-out's
        child and whose statement is not published yet: a fan-out's children wait for the
        regular turn, which makes their one statement once every part is checked, and which
        takes away what no longer awaits witnesses. Never raises: a problem is logged, the
        others go on."""
        for ident in transfer_ids:
            if ident in self._name_of:
                continue
            try:
                # Its row as of now (approved meanwhile, or rejected, it is not published).
                with self.rt.store.snapshot("read a statement awaiting witnesses"):
                    t = self.rt.store.get(ident)
                    # A fan-out's child, as the regular turn finds it (`_publish`).
                    if (t.status is not State.AWAITING_APPROVAL
                            or fanouts.of_transfer(self.rt.store, t.id) is not None):
                        continue
                    text = approvals.statement(self.rt, t)
                write_atomic(self.folder / t.id, text, STATEMENT_MODE, durable=False,
                             fresh=True)
            except (TachiaiError, OSError) as exc:  # this one: the others go on
                log.error("publishing the statement of %s in %s: %s", ident, self.folder, exc)
                continue
            # As the regular turn records it: that turn finds it made from this row.
            self._made[t.id] = (((t.id, t.updated_ns),), text)
            self._name_of[t.id] = t.id
            self._written[t.id] = text

    # -- taking signatures ----------------------------------------------------------------------

    def _take(self, name: str, ident: str, taken: Taken) -> None:
        path = self.folder / name
        raw, problem = _read(path)
        if raw is None and problem is None:
            return  # gone, or still being written
        claimed = self.folder / f".{name}.{self._owner}{_TAKING}"
        try:
            os.rename(path, claimed)  # one taker, even with several daemons on this folder
        except FileNotFoundError:
            return
        if problem is None:
            raw, problem = _read(claimed, settled=True)  # what was claimed is what counts
            if raw is None and problem is None:
                return
        try:
            if problem is not None:
                self._refuse(claimed, name, ident, problem, record=True)
                taken.refused.append(ident)
                return
            assert raw is not None
            verdict = self._approve(ident, raw.decode("ascii"))
        except OSError as exc:  # the file system, not the witness: give it back for next turn
            log.error("approvals folder: %s: %s", name, exc)
            _give_back(claimed, path)
            return
        except TachiaiError:
            _give_back(claimed, path)
            raise
        if isinstance(verdict, Counted):
            # The verdict is in place before the signature leaves its taking name: a witness's
            # `tachiai approve` waiting for it finds it once the file is gone.
            self._note_counted(name, ident, verdict, raw)
            _remove(self.folder / f"{ident}{NOTE_SUFFIX}")
            claimed.unlink()  # made durable once for the turn (`poll`)
            taken.accepted.append(ident)
            if verdict.state != State.AWAITING_APPROVAL.value:  # nothing left to sign
                _remove(self.folder / ident)
                self._written.pop(ident, None)
                self._made.pop(ident, None)
        else:
            self._refuse(claimed, name, ident, verdict, record=False)
            taken.refused.append(ident)

    def _current_registry(self) -> bool:
        """Read the handler registry again when its file changed since it was read, so that a
        designation ended while the daemon runs counts at once for the signatures it takes (as
        for an approval in a command's own process); False while the changed file is invalid
        (said once in the log: nothing is taken until it is fixed)."""
        path = self.rt.settings.registry_path
        try:
            st = os.stat(path)
            seen: tuple[int, ...] | None = (st.st_mtime_ns, st.st_ctime_ns, st.st_size,
                                             st.st_ino)
        except OSError:
            seen = None
        if seen is not None and seen == self._registry_seen:
            return True
        try:
            self.rt.registry = load_registry(path)
        except ConfigError as exc:
            if seen is None or seen != self._registry_broken:
                log.error("the handler registry %s cannot be read; signatures wait until it is "
                          "fixed: %s", path, exc.diagnostics())
            self._registry_broken = seen
            return False
        if self._registry_seen is not None:
            log.info("the handler registry %s changed: read again", path)
        self._registry_seen = seen
        return True

    def _fresh_statement(self, ident: str) -> None:
        """Publish a transfer's statement anew when it changed since it was published (a
        reply's link made, the same bytes delivered meanwhile), at once rather than at the
        next refresh."""
        if ident not in self._written or not ident.startswith("t-"):
            return  # not published by this process, or a fan-out's (made whole at each turn)
        try:
            transfer = self.rt.store.get(ident)
        except NotFound:
            return
        if transfer.status is not State.AWAITING_APPROVAL:
            return
        text = approvals.statement(self.rt, transfer)
        if text != self._written[ident]:
            write_atomic(self.folder / ident, text, STATEMENT_MODE, durable=False, fresh=True)
            self._written[ident] = text
            self._made[ident] = (((transfer.id, transfer.updated_ns),), text)

    def _note_counted(self, name: str, ident: str, counted: Counted, raw: bytes) -> None:
        """ID.sig.accepted; a failure to write it is logged (the approval is committed: the
        signature must not be taken again)."""
        try:
            write_atomic(self.folder / f"{ident}{ACCEPTED_SUFFIX}", accepted_note(
                name, witness=counted.witness, count=counted.count, needed=counted.needed,
                state=counted.state, parts=counted.parts,
                signature_sha256=hashlib.sha256(raw).hexdigest()), NOTE_MODE, durable=False,
                fresh=True)
        except OSError as exc:
            log.error("approvals folder: cannot write %s%s: %s", ident, ACCEPTED_SUFFIX,
                      exc.strerror)

    def _approve(self, ident: str, signature: str) -> Refusal | Counted:
        """Count the signature for the transfer (or every waiting part of the fan-out) `ident`
        names. Each refusal is recorded by `approvals`."""
        try:
            first, parts = approvals.approve_parts(
                self.rt, ident,
                lambda target: approvals.approve(self.rt, target, signature, flush=False))
        except NotFound:
            return _unknown(ident)
        except SignatureError as exc:
            # Perhaps over the statement as it was: the one of now goes in its place before
            # the refusal is told, for the witness (or `tachiai approve`) to sign.
            self._fresh_statement(ident)
            return _refusal_of(exc)
        except (CheckFailed, InputError, StateError) as exc:
            return _refusal_of(exc)
        return Counted(first.witness, len(first.approvals), first.needed, first.transfer.state,
                       parts)

    def _refuse(self, claimed: Path, name: str, ident: str, refusal: Refusal, *,
                record: bool) -> None:
        """Keep the file in refused/, explain it beside the statement, and (for a problem of
        the file itself, which `approvals` never saw) record it."""
        now = clock.now_ns()
        kept = self.refused_dir / f"{name}.{now}"
        self.refused_dir.mkdir(exist_ok=True)
        if record:
            transfer = _transfer(self.rt, ident)
            if transfer is not None:
                approvals.record_refusal(self.rt, transfer,
                                         Reason(refusal.rule, refusal.message), flush=False)
        # The note first, naming where the file will be kept: a witness's `tachiai approve`
        # that finds its file there finds the reason already in place.
        note = self.folder / f"{ident}{NOTE_SUFFIX}"
        write_atomic(note, refused_note(name, kept.name, refusal.rule, refusal.message,
                                        refusal.hint), NOTE_MODE, durable=False, fresh=True)
        try:
            os.rename(claimed, kept)  # a link or a FIFO moves as itself
        except OSError:
            _remove(note)  # the file is given back and judged again: no verdict yet
            raise
        sync_dir(self.folder)
        log.warning("approvals folder: %s refused (%s): %s; kept as %s", name, refusal.rule,
                    refusal.message, kept)

    def _give_back_orphans(self, names: list[str]) -> list[str]:
        """A taking name whose process died (a crash between the rename and the record)
        becomes ID.sig again, to be taken anew; the names given back."""
        back = []
        for name in names:
            if not (name.startswith(".") and name.endswith(_TAKING)):
                continue
            if f".{self._owner}{_TAKING}" in name:
                continue
            path = self.folder / name
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if time.time() - st.st_ctime < _ORPHAN_SECONDS:
                continue
            original = name[1:].rsplit(".", 2)[0]
            if signature_id(original) is not None and _give_back(path, self.folder / original):
                back.append(original)
        return back

    # -- publishing statements ------------------------------------------------------------------

    def _publish(self, names: list[str], *, force: bool) -> None:
        refresh = force or time.monotonic() >= self._next_refresh
        if refresh:
            self._next_refresh = time.monotonic() + _REFRESH_SECONDS
        groups: dict[str, list[Transfer]] = {}
        for t in self.rt.store.in_states([State.AWAITING_APPROVAL]):
            known = self._name_of.get(t.id)
            if known is not None and not refresh:
                groups.setdefault(known, []).append(t)
                continue
            found = fanouts.of_transfer(self.rt.store, t.id)
            groups.setdefault(found.id if found is not None else t.id, []).append(t)
        made: dict[str, tuple[tuple[tuple[str, int], ...], bytes]] = {}
        for ident, transfers in groups.items():
            rows = tuple(sorted((t.id, t.updated_ns) for t in transfers))
            before = self._made.get(ident)
            if before is not None and before[0] == rows and not refresh:
                made[ident] = before
                continue
            try:
                if ident.startswith("f-") and not approvals.fanout_whole(self.rt, ident):
                    continue  # no part is approved before every part is checked
                made[ident] = (rows, approvals.statement(self.rt, transfers[0]))
            except TachiaiError as exc:  # this one's agreement is gone, say: the others go on
                log.error("the statement of %s cannot be made: %s", ident, exc.diagnostics())
        self._made = made
        self._name_of = {tid: ident for ident, (rows, _t) in made.items() for tid, _ns in rows}
        present = set(names)
        for ident, (_rows, text) in made.items():
            if self._written.get(ident) != text or (refresh and ident not in present):
                write_atomic(self.folder / ident, text, STATEMENT_MODE, durable=False, fresh=True)
                self._written[ident] = text
        for name in names:  # what no longer awaits witnesses leaves the folder
            ident = name.removesuffix(NOTE_SUFFIX).removesuffix(ACCEPTED_SUFFIX)
            if not ID_PATTERN.fullmatch(ident) or ident in made:
                continue
            if ident != name and not _older(self.folder / name, NOTE_GRACE_SECONDS):
                continue  # a note stays a while for the witness who reads it
            _remove(self.folder / name)
            self._written.pop(ident, None)


# -- files ----------------------------------------------------------------------------------------


def _read(path: Path, *, settled: bool = False) -> tuple[bytes | None, Refusal | None]:
    """(the signature's bytes, None), (None, why the file is not one), or (None, None) when it
    is gone or still being written (unless `settled`: then a short file is refused)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, None
    except PermissionError:
        return None, Refusal("approval.file", N_(
            "the daemon cannot read the signature file"), N_(
            "make it readable by the folder's group (chmod g+r ID.sig), or sign with umask "
            "027"))
    except OSError:  # a symbolic link (ELOOP)
        return None, _not_a_file()
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return None, _not_a_file()
        if st.st_size > MAX_SIGNATURE_BYTES:
            return None, _too_large()
        raw = os.read(fd, MAX_SIGNATURE_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_SIGNATURE_BYTES:
        return None, _too_large()
    # A file dated in the future is not being written now: judged, never left in the way.
    if _END not in raw and not settled and 0 <= time.time() - st.st_mtime < _WRITING_SECONDS:
        return None, None  # ssh-keygen has not finished writing it
    try:
        raw.decode("ascii")
    except UnicodeDecodeError:
        return None, Refusal("approval.signature", N_(
            "the file is not an SSH signature (ssh-keygen -Y sign writes ASCII armour)"),
            _SIGN_HINT)
    return raw, None


def _older(path: Path, seconds: float) -> bool:
    """Whether the file was last changed more than `seconds` ago (or is gone)."""
    try:
        return time.time() - path.lstat().st_mtime > seconds
    except FileNotFoundError:
        return True


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.error("approvals folder: cannot remove %s: %s", path, exc.strerror)


def _give_back(claimed: Path, original: Path) -> bool:
    try:
        if not original.exists():
            os.rename(claimed, original)
            return True
    except OSError as exc:
        log.error("approvals folder: cannot give back %s: %s", claimed, exc.strerror)
    return False


def _transfer(rt: Runtime, ident: str) -> Transfer | None:
    try:
        if ident.startswith("f-"):
            children = approvals.fanout_children(rt, ident)
            return rt.store.get(children[0]) if children else None
        return rt.store.get(ident)
    except NotFound:
        return None


# -- refusals -------------------------------------------------------------------------------------

_SIGN_HINT = N_("sign the statement in this folder: ssh-keygen -Y sign -f KEY -n "
                "tachiai-approval ID")


def _not_a_file() -> Refusal:
    return Refusal("approval.file", N_("the signature is not a plain file of its own (a link, "
                                       "a FIFO or a file with other names)"), _SIGN_HINT)


def _too_large() -> Refusal:
    return Refusal("approval.file", N_("the file is larger than {limit} bytes: it is not an "
                                       "SSH signature").format(limit=MAX_SIGNATURE_BYTES),
                   _SIGN_HINT)


def _unknown(ident: str) -> Refusal:
    return Refusal("approval.unknown", N_("no transfer or fan-out {id} on this gateway").format(
        id=ident), N_("sign only the statements this folder publishes"))


def _refusal_of(exc: TachiaiError) -> Refusal:
    message = str(exc)
    rule = "approval.state" if isinstance(exc, StateError) else "approval.refused"
    if isinstance(exc, SignatureError):
        rule = "approval.signature"
    elif (found := re.search(r"\[([a-z0-9.-]+)\]$", message)) is not None:
        rule = found[1]
    hint = exc.hint
    if hint is None and isinstance(exc, SignatureError):
        hint = N_("the statement may have changed since it was signed: sign the statement now "
                  "in this folder again (ssh-keygen -Y sign -f KEY -n tachiai-approval ID)")
    return Refusal(rule, message, hint)
