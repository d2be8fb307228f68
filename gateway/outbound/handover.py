"""Approving through the running daemon (承認の受け渡し): `tachiai approve ID --key KEY` signs the
statement the daemon published and hands the signature to it.

An interpreter that loads the database layer, the agreements and the key library costs a
witness more than the approval itself; the daemon has all of them loaded already. So when the
daemon runs on this node and has published ID's statement in its approvals folder
(`gateway.outbound.approval_folder`), `approve` does what a witness with OpenSSH alone does,
and waits for the verdict:

1. reads the published statement `APPROVALS_DIR/ID` (never through a link, a plain file, at
   most `MAX_STATEMENT_BYTES`) and checks that it is ID's: its `transfer:` (or `fanout:`)
   line names ID. A statement of another transfer under ID's name is refused before anything
   is signed;
2. signs it with `ssh-keygen -Y sign -n tachiai-approval -f KEY` (so a passphrase prompt or
   ssh-agent work as they do for ssh-keygen);
3. hands the signature over as `ID.sig` (a fresh O_EXCL temporary in the folder, renamed in
   without replacing a signature already there); the daemon's watch on the folder takes it at
   once;
4. waits (`WAIT_SECONDS` unless told) for the daemon's verdict, told apart from an earlier one
   by the file itself: a refused file keeps its inode in refused/, whose note the daemon writes
   before moving it there; a counted one is named in `ID.sig.accepted` by its SHA-256.

The daemon checks everything exactly as the in-process approval does: this carries a signature,
nothing else. Any other case (no daemon here, no published statement, a key ssh-keygen cannot
use) returns None and the command approves in-process.

Several transfers at once (`approve ID… --key KEY`, `approve_each`) go the same way when every
one's statement is published: one ssh-keygen run signs them all (one key load, one passphrase
prompt), each signature is handed over, and each verdict is that transfer's own; a statement
that is not its transfer's is refused before signing and stops none of the others.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from gateway.errors import (
    CheckFailed,
    NotFound,
    SignatureError,
    StateError,
    StorageError,
    TachiaiError,
)
from gateway.exchange.words import APPROVAL_NAMESPACE, STATEMENT_HEAD
from gateway.i18n import N_
from gateway.outbound.approval_notes import (
    ACCEPTED_SUFFIX,
    ID_PATTERN,
    MAX_NOTE_BYTES,
    NOTE_SUFFIX,
    REFUSED,
    SIGNATURE_SUFFIX,
    TAKING,
    fields,
    kept_name,
)
from gateway.state import daemon_lock

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from gateway.config.places import Places

#: How long `approve` waits for the daemon's verdict before it says the signature waits.
WAIT_SECONDS = 30.0
#: A statement is a few hundred bytes; a fan-out's a line per part.
MAX_STATEMENT_BYTES = 1 << 20
#: Mode of the handed-over signature: the daemon may run under another account of the
#: folder's group.
SIGNATURE_MODE = 0o640
_FIRST_STEP = 0.002
_LONGEST_STEP = 0.02
#: The wait for a verdict looks every 1 ms for its first 50 ms, then a quarter longer each
#: time: the daemon answers within a few milliseconds (a witness's whole command is some
#: tens), and a look (a stat and a listing) costs tens of µs.
_VERDICT_STEP = 0.001
_VERDICT_QUICK = 0.05
#: Refusals the in-process approval raises as other than CheckFailed, by rule.
_RAISED_AS: dict[str, type[CheckFailed] | type[StateError] | type[NotFound]] = {
    "approval.state": StateError,
    "fanout.incomplete": StateError,
    "approval.unknown": NotFound,
    "approval.signature": SignatureError,
}


class Counted(NamedTuple):
    """The daemon counted the signature: for whom, how many approvals of how many witnesses
    (of the first part of a fan-out of `parts` parts), and whether the transfer is approved
    now."""

    witness: str
    approvals: int
    needed: int
    approved: bool
    parts: int


class Handed(NamedTuple):
    """A signature handed over: its file (device and inode) and the SHA-256 of its bytes."""

    device: int
    inode: int
    sha256: str


class VerdictPending(StateError):
    """Handed over, and no verdict within the wait: the signature waits in the folder (or was
    taken and its verdict not found); the daemon counts or refuses it when it can, and
    `tachiai transfers show ID` tells which."""


def approve(places: Places, ident: str, key: Path,
            wait_seconds: float = WAIT_SECONDS) -> Counted | None:
    """Approve `ident` through the running daemon; None when it cannot be (approve in-process).

    Raises:
        CheckFailed: the published statement is not ID's (nothing was signed), or the daemon
            refused the signature (its rule, reason and fix; StateError, NotFound or
            SignatureError where the in-process approval raises those).
        VerdictPending: no verdict within `wait_seconds`: the signature waits in the folder.
        StorageError: the signature cannot be written into the folder.
    """
    outcomes = approve_each(places, [ident], key, wait_seconds)
    if outcomes is None:
        return None
    ((_ident, outcome),) = outcomes
    if isinstance(outcome, TachiaiError):
        raise outcome
    return outcome


def approve_each(places: Places, idents: Sequence[str], key: Path,
                 wait_seconds: float = WAIT_SECONDS
                 ) -> list[tuple[str, Counted | TachiaiError]] | None:
    """Approve each of `idents` through the running daemon, every statement signed by one run
    of ssh-keygen (one passphrase prompt, one key load); each transfer's outcome on its own, in
    the order given: its verdict, or why it was not approved (as `approve` raises it;
    `VerdictPending` when it waits for the daemon). None when they cannot all be (no daemon
    here, a statement not published, a key ssh-keygen cannot use): the command then approves
    them in-process, nothing having been handed over.

    Each hand-over and each verdict may take `wait_seconds` from the one before it: a daemon
    that works through a long batch is waited for, one that is stopped costs one wait."""
    folder = places.approvals_folder
    if (not idents or len(set(idents)) != len(idents)
            or any(ID_PATTERN.fullmatch(ident) is None for ident in idents)):
        return None  # not ids, or one twice: the in-process approval says so in its words
    if daemon_lock.held(places.state_dir, places.daemon_lock_file) is False:
        return None
    if _daemon_of(folder) is None:
        return None
    refused: dict[str, TachiaiError] = {}
    texts: dict[str, bytes] = {}
    for ident in idents:
        try:
            text = published(folder, ident)
        except CheckFailed as exc:  # not ID's statement: this one is not signed
            refused[ident] = exc
            continue
        if text is None:
            return None
        texts[ident] = text
    signatures = sign_each(texts, key)
    if signatures is None:
        return None
    # From the signatures on: a passphrase typed slowly costs no wait.
    deadline = time.monotonic() + wait_seconds
    handed: dict[str, Handed] = {}
    for ident, signature in zip(texts, signatures, strict=True):
        try:
            handed[ident] = hand_over(folder, ident, signature, _left(deadline))
        except StorageError as exc:  # in the way, or the folder cannot be written
            refused[ident] = exc
        else:
            deadline = time.monotonic() + wait_seconds
    outcomes: list[tuple[str, Counted | TachiaiError]] = []
    for ident in idents:
        if ident in refused:
            outcomes.append((ident, refused[ident]))
            continue
        outcome: Counted | TachiaiError
        try:
            outcome = _verdict_or_again(folder, ident, handed[ident], texts[ident], key,
                                        _left(deadline), wait_seconds)
        except TachiaiError as exc:
            outcome = exc
        outcomes.append((ident, outcome))
        if not isinstance(outcome, VerdictPending):
            deadline = time.monotonic() + wait_seconds  # the daemon answers: wait for the next
    return outcomes


def _verdict_or_again(folder: Path, ident: str, handed: Handed, text: bytes, key: Path,
                      first_wait: float, wait_seconds: float) -> Counted:
    """The daemon's verdict on a handed signature (waited for `first_wait`). Signed over a
    statement that changed after it was published (a reply's link made, the same bytes
    delivered meanwhile), the daemon publishes the new one before it refuses: that one is
    signed and handed (`wait_seconds` from then), as the approval in the command's own process
    signs the statement as it is. Once: a second refusal is the witness's to read. Raises as
    `verdict` does."""
    try:
        return verdict(folder, ident, handed, first_wait)
    except SignatureError:
        again = published(folder, ident)
        if again is None or again == text:
            raise
        signature = sign(again, key)
        if signature is None:
            raise
        deadline = time.monotonic() + wait_seconds
        return verdict(folder, ident, hand_over(folder, ident, signature, _left(deadline)),
                       _left(deadline))


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def published(folder: Path, ident: str) -> bytes | None:
    """ID's statement as the daemon published it, or None when there is none.

    Raises:
        CheckFailed: what is there is not a plain file, or is not ID's statement (rule
            approval.statement): nothing is signed.
    """
    path = folder / ident
    daemon = _daemon_of(folder)
    if daemon is None:
        return None
    try:
        raw = _daemons_file(path, daemon, MAX_STATEMENT_BYTES)
    except (FileNotFoundError, PermissionError):
        return None  # none, or not readable here: the in-process approval says what it can
    except OSError as exc:  # a symbolic link (ELOOP)
        raise _not_the_statement(path) from exc
    if raw is None or not _names(raw, ident):
        raise _not_the_statement(path)
    return raw


def _daemons_file(path: Path, daemon: int, limit: int) -> bytes | None:
    """The bytes of a file the daemon wrote in the folder (never through a link, a plain file
    of at most `limit` bytes, `_daemons`); None when it is not that. Raises OSError as `open`
    does."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit or not _daemons(st, daemon):
            return None
        raw = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    return raw if len(raw) <= limit else None


def _daemon_of(folder: Path) -> int | None:
    """The account whose files in `folder` are the daemon's: the folder's owner, when the
    folder is sticky (no witness can rename, replace or remove another's file in it) and
    writable by no one outside its group; else None, and nothing in it is trusted."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or not st.st_mode & stat.S_ISVTX or st.st_mode & 0o002:
        return None
    return st.st_uid


def _daemons(st: os.stat_result, daemon: int) -> bool:
    """Whether a statement or note is the daemon's own: made by the folder's owner, one name,
    and writable by nobody else. A witness of the group can write files in the folder, but
    none that pass this: a planted statement is never signed, a forged note never believed."""
    return (st.st_uid == daemon and st.st_nlink == 1
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _names(raw: bytes, ident: str) -> bool:
    """Whether `raw` is an approval statement whose one transfer (or fan-out) line is ID."""
    try:
        lines = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return False
    key = "fanout" if ident.startswith("f-") else "transfer"
    named = [line for line in lines if line.startswith(("transfer: ", "fanout: "))]
    return lines[0] == STATEMENT_HEAD and named == [f"{key}: {ident}"]


def _not_the_statement(path: Path) -> CheckFailed:
    return CheckFailed(
        N_("refused before signing: {path} is not the statement of {id} [approval.statement]")
        .format(path=path, id=path.name),
        hint=N_("sign nothing from that folder; tell the gateway's operator, who can compare it "
                "with `tachiai transfers statement {id}`").format(id=path.name))


def sign(statement: bytes, key: Path) -> bytes | None:
    """The SSH signature of `statement` by `key` under the approval namespace, made by
    ssh-keygen; None when ssh-keygen is missing or cannot use the key (the in-process
    approval then says why, in its words)."""
    try:
        done = subprocess.run(
            ["ssh-keygen", "-q", "-Y", "sign", "-n", APPROVAL_NAMESPACE, "-f", str(key)],
            # stderr stays the witness's: a passphrase prompt, a security key's "touch it"
            # and why a key cannot be used are ssh-keygen's to say.
            input=statement, stdout=subprocess.PIPE, check=False, timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or b"-----END SSH SIGNATURE-----" not in done.stdout:
        return None
    return done.stdout


def sign_each(statements: Mapping[str, bytes], key: Path) -> list[bytes] | None:
    """The signatures of `statements` (by transfer id) by `key`, in order, made by one run of
    ssh-keygen (one key load, one passphrase prompt); None as `sign` returns it, or when the
    scratch folder cannot be written."""
    if len(statements) <= 1:  # through ssh-keygen's standard input: no scratch folder
        signed = [s for s in (sign(text, key) for text in statements.values()) if s is not None]
        return signed if len(signed) == len(statements) else None
    import tempfile  # here: one statement needs no scratch folder

    try:
        with tempfile.TemporaryDirectory(prefix="tachiai-approve-") as scratch:  # 0700
            # Named by the ids (ID_PATTERN: plain names), so what ssh-keygen says names them.
            paths = [Path(scratch) / ident for ident in statements]
            for path, statement in zip(paths, statements.values(), strict=True):
                path.write_bytes(statement)
            done = subprocess.run(
                ["ssh-keygen", "-q", "-Y", "sign", "-n", APPROVAL_NAMESPACE, "-f", str(key),
                 *map(str, paths)],
                # Its prompts and complaints are the witness's to see, as with one statement.
                stdout=subprocess.DEVNULL, check=False, timeout=600)
            if done.returncode != 0:
                return None
            signatures = [path.with_name(f"{path.name}{SIGNATURE_SUFFIX}").read_bytes()
                          for path in paths]
    except (OSError, subprocess.TimeoutExpired):
        return None
    if any(b"-----END SSH SIGNATURE-----" not in signature for signature in signatures):
        return None
    return signatures


def hand_over(folder: Path, ident: str, signature: bytes,
              wait_seconds: float = WAIT_SECONDS) -> Handed:
    """Write `signature` as the folder's `ID.sig`: a fresh temporary, renamed in without
    replacing a signature already there (waited for, up to `wait_seconds`: the daemon takes
    it).

    Raises:
        StorageError: the folder cannot be written, or an `ID.sig` stays in the way.
    """
    tmp = folder / f".{ident}{SIGNATURE_SUFFIX}.{os.urandom(6).hex()}.tmp"
    target = folder / f"{ident}{SIGNATURE_SUFFIX}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     SIGNATURE_MODE)
        try:
            os.fchmod(fd, SIGNATURE_MODE)
            # The folder's group, as its set-group-ID bit would give (a folder without one,
            # under RestrictSUIDSGID): the daemon reads the signature through that group.
            with contextlib.suppress(OSError):
                os.fchown(fd, -1, os.stat(folder).st_gid)
            view = memoryview(signature)
            while view:
                view = view[os.write(fd, view):]
            st = os.fstat(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _unwritable(folder, exc) from exc
    deadline = time.monotonic() + wait_seconds
    step = _FIRST_STEP
    try:
        while not _rename_new(tmp, target):
            if time.monotonic() >= deadline:
                raise StorageError(
                    N_("{path} is in the way: another signature waits there").format(
                        path=target),
                    hint=N_("see that the daemon runs (`tachiai nodes`) and try again"))
            time.sleep(step)
            step = min(step * 2, _LONGEST_STEP)
    except OSError as exc:
        raise _unwritable(folder, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return Handed(st.st_dev, st.st_ino, hashlib.sha256(signature).hexdigest())


def _unwritable(folder: Path, exc: OSError) -> StorageError:
    return StorageError(
        N_("cannot hand the signature to the daemon in {folder}: {error}").format(
            folder=folder, error=exc.strerror or exc),
        hint=N_("a witness needs the approvals folder's group (see docs/approvals.md)"))


def _rename_new(source: Path, target: Path) -> bool:
    """Rename `source` to `target` unless `target` exists (False then): renameat2 with
    RENAME_NOREPLACE, or where the file system lacks it, a rename after a look. Never a hard
    link: the daemon refuses a signature with two names."""
    if os.path.lexists(target):
        return False
    result = _renameat2(source, target)
    if result is None:
        try:
            os.rename(source, target)
        except PermissionError:  # the sticky folder: another witness's signature got there
            return False
        return True
    return result


def _renameat2(source: Path, target: Path) -> bool | None:
    """True when renamed, False when `target` exists; None when the kernel or the file system
    cannot rename without replacing."""
    import ctypes  # here: only a hand-over needs it

    libc = ctypes.CDLL(None, use_errno=True)
    call = getattr(libc, "renameat2", None)
    if call is None:
        return None
    at_fdcwd, rename_noreplace = -100, 1
    if call(at_fdcwd, os.fsencode(source), at_fdcwd, os.fsencode(target), rename_noreplace) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EEXIST, errno.EPERM, errno.EACCES) and os.path.lexists(target):
        return False
    if code in (errno.EINVAL, errno.ENOSYS):
        return None
    raise OSError(code, os.strerror(code), str(target))


def verdict(folder: Path, ident: str, handed: Handed,
            wait_seconds: float = WAIT_SECONDS) -> Counted:
    """Wait for the daemon to judge the handed-over signature.

    Raises:
        CheckFailed (or StateError, NotFound, SignatureError): refused, with the note's rule,
            reason and fix.
        VerdictPending: not judged within `wait_seconds` (the signature waits in the folder).
    """
    started = time.monotonic()
    deadline = started + wait_seconds
    step = _VERDICT_STEP
    taken = False
    while True:
        if not _waiting(folder, ident, handed):
            taken = True
            found = _judged(folder, ident, handed)
            if found is not None:
                return found
        now = time.monotonic()
        if now >= deadline:
            break
        time.sleep(step)
        if now - started >= _VERDICT_QUICK:
            step = min(step * 1.25, _LONGEST_STEP)
    if taken:
        raise VerdictPending(
            N_("the daemon took the signature for {id}, but its verdict was not found in "
               "{folder}").format(id=ident, folder=folder),
            hint=N_("`tachiai transfers show {id}` shows whether it counted").format(id=ident))
    raise VerdictPending(
        N_("the daemon did not take the signature for {id} within {seconds} s; it is handed "
           "over and waits in {folder}").format(id=ident, seconds=f"{wait_seconds:g}",
                                                folder=folder),
        hint=N_("the daemon takes it when it can (see `tachiai nodes`); `tachiai transfers show "
                "{id}` shows the outcome").format(id=ident))


def _same(path: Path, handed: Handed) -> bool:
    """Whether `path` is the handed-over file: its inode, and ours (a freed inode another
    witness's new file takes is theirs, not ours)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return ((st.st_dev, st.st_ino) == (handed.device, handed.inode)
            and st.st_uid == os.getuid())


def _waiting(folder: Path, ident: str, handed: Handed) -> bool:
    """Whether the signature is still `ID.sig`, or under the daemon's taking name."""
    if _same(folder / f"{ident}{SIGNATURE_SUFFIX}", handed):
        return True
    prefix = f".{ident}{SIGNATURE_SUFFIX}."
    return any(_same(folder / name, handed) for name in os.listdir(folder)
               if name.startswith(prefix) and name.endswith(TAKING))


def _judged(folder: Path, ident: str, handed: Handed) -> Counted | None:
    """The verdict on the handed-over signature, once the daemon has left one (it has when the
    file is neither `ID.sig` nor under a taking name: refused, it is in refused/; counted, it
    is gone).

    Raises:
        CheckFailed (or StateError, NotFound, SignatureError): refused.
    """
    daemon = _daemon_of(folder)
    note = _note(folder / f"{ident}{NOTE_SUFFIX}", daemon)
    kept = kept_name(note) if note is not None else None
    if note is not None and kept is not None and _same(folder / REFUSED / kept, handed):
        raise _refusal(note)
    # Refused, its note since replaced by another refusal's: the file is still ours. Looked
    # for before the acceptance note, which may name the same bytes: a signature counted once
    # and handed over again (an ed25519 signature of a statement is always the same bytes) is
    # refused the second time.
    prefix = f"{ident}{SIGNATURE_SUFFIX}."
    try:
        names = os.listdir(folder / REFUSED)
    except OSError:
        names = []
    for name in names:
        if name.startswith(prefix) and _same(folder / REFUSED / name, handed):
            raise CheckFailed(
                N_("the daemon refused the signature for {id} (kept as {path})").format(
                    id=ident, path=folder / REFUSED / name),
                hint=N_("`tachiai audit query --subject {id}` shows the rule").format(id=ident))
    accepted = _note(folder / f"{ident}{ACCEPTED_SUFFIX}", daemon)
    if accepted is not None and accepted.get("signature-sha256") == handed.sha256:
        try:
            return Counted(accepted["witness"], int(accepted["approvals"]),
                           int(accepted["needed"]), accepted["state"] != "awaiting_approval",
                           int(accepted["parts"]))
        except (KeyError, ValueError):
            return None
    return None


def _note(path: Path, daemon: int | None) -> Mapping[str, str] | None:
    """A note's fields, or None when it is missing, not a plain file of a note's size, or not
    the daemon's own (`_daemons`: a witness of the group cannot forge one)."""
    if daemon is None:
        return None
    try:
        raw = _daemons_file(path, daemon, MAX_NOTE_BYTES)
    except OSError:
        return None
    return fields(raw.decode("utf-8", errors="replace")) if raw is not None else None


def _refusal(note: Mapping[str, str]) -> CheckFailed | StateError | NotFound:
    """The daemon's refusal as the in-process approval raises it: its reason (with the rule)
    and its fix."""
    rule = note.get("rule", "approval.refused")
    reason = note.get("reason", "") or N_("the daemon refused the signature")
    if f"[{rule}]" not in reason:
        reason = f"{reason} [{rule}]"
    return _RAISED_AS.get(rule, CheckFailed)(reason, hint=note.get("fix") or None)
