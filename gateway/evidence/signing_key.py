"""The ledger's signing key (Ed25519, a C2SP signed-note key): a 0600 file under the state
folder, made on first use, never in the database and never logged; its public half is written
beside it as ledger.pub for auditors.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from audit.checkpoints import PUBLIC_KEY_FILE
from audit.notes import NoteError, NoteSigner
from gateway.errors import KeyFileError, StorageError
from gateway.evidence.checkpoint_sinks import write_atomic
from gateway.i18n import N_

log = logging.getLogger(__name__)


def load_or_create_key(path: Path, name: str) -> NoteSigner:
    """The signing key in `path`, made (mode 0600) on first use; never logged.

    Raises:
        KeyFileError: when the file is readable by others or not a key.
        StorageError: when it cannot be made.
    """
    try:
        return load_key(path)
    except FileNotFoundError:
        pass
    signer = NoteSigner.generate(name)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (signer.to_text() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process made one first: use theirs
        except FileExistsError:
            return load_key(path)
        finally:
            tmp.unlink(missing_ok=True)
        write_atomic(path.with_name(PUBLIC_KEY_FILE), signer.verifier().to_text() + "\n", 0o644)
    except OSError as exc:
        raise StorageError(N_("cannot make the ledger signing key {path}: {exc}").format(
                               path=path, exc=exc)) from exc
    log.warning("made the ledger signing key %s (public key %s)", path, signer.verifier().to_text())
    return signer


def load_key(path: Path) -> NoteSigner:
    """Raises: FileNotFoundError (no key yet), KeyFileError (unusable)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise KeyFileError(N_("cannot read the ledger signing key {path}: {exc}").format(
                               path=path, exc=exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if mode & 0o077:
            raise KeyFileError(
                N_("the ledger signing key {path} is readable by others").format(path=path),
                hint=N_("chmod 600 {path}").format(path=path)
            )
        text = os.read(fd, 4096).decode("ascii", "replace")
    finally:
        os.close(fd)
    try:
        return NoteSigner.from_text(text)
    except NoteError as exc:
        raise KeyFileError(N_("{path} is not a ledger signing key: {exc}").format(
                               path=path, exc=exc)) from None
