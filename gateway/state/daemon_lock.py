"""The daemon lock: one `tachiai run` per state directory (one writer of its SQLite state).

`acquire` takes an exclusive lock on the whole of STATE_DIR/daemon.lock, held for as long as
the process lives, and writes the holder's PID into the file for the operator. The lock is an
open file description lock (Linux's F_OFD_SETLK): like a `flock` it belongs to the open file,
so a forked child shares it and closing the file lets it go; unlike a `flock`, another process
can ask whether it is held (F_OFD_GETLK) without taking it and without reading the kernel's
table of all locks (/proc/locks, whose read waits for an RCU grace period, about 10 ms here,
and holds up every lock taken on the machine meanwhile, SQLite's included). The kernel drops
the lock when the process ends however it ends (kill -9 included), so a stale lock never
needs clearing by hand. It never deletes the file: a daemon that unlinked it would let the
next two daemons lock two different files.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from pathlib import Path
from types import TracebackType

from gateway.errors import AlreadyRunning, StorageError
from gateway.i18n import N_

LOCK_FILE = "daemon.lock"
_MAX_PID_TEXT = 32  # "PID\n" is far shorter; anything longer in the file is not ours
#: struct flock: l_type, l_whence (short); l_start, l_len (off_t); l_pid (pid_t), padded to 8.
_FLOCK = struct.Struct("@hhqqi0q")


class DaemonLock:
    """A held lock on a state directory; `release` (or leaving a `with` block) lets it go."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Let the lock go (closing the file releases it); idempotent."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DaemonLock:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.release()


def acquire(state_dir: Path, file_name: str = LOCK_FILE) -> DaemonLock:
    """Lock `state_dir` for this process, or refuse because another process holds it.

    `file_name`: `daemon.lock` for SQLite state; on PostgreSQL, where every node may share one
    state directory on a shared mount, one lock per node (`Settings.daemon_lock_file`).

    Raises:
        AlreadyRunning: another live process holds the lock (its PID is in the message).
        StorageError: the state directory or the lock file cannot be made, opened or written.
    """
    path = state_dir / file_name
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_CLOEXEC: a child (ssh-keygen, 7zz, age) must never inherit, and so outlive, the lock.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StorageError(N_("cannot open the daemon lock {path}: {value}").format(
                               path=path, value=exc.strerror or exc)) from exc
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _whole_file(fcntl.F_WRLCK))
        # And the flock that earlier releases took (the two kinds do not see each other):
        # while a daemon of an earlier release runs here, this one refuses, and the other way.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _holder(fd)
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StorageError(
                N_("cannot lock {path}: {value}").format(
                    path=path, value=exc.strerror or exc),
            ) from exc
        raise AlreadyRunning(
            N_("another tachiai daemon (PID {value}) already runs on the "
               "state directory {state_dir} (lock {file_name}); one daemon "
               "per state directory, or per node on PostgreSQL, so this one "
               "did not start").format(
                value=holder or 'unknown: it is starting', state_dir=state_dir,
                file_name=file_name),
            hint=N_("stop that daemon first (`kill {value}`, or `systemctl stop "
                    "tachiai` if systemd runs it), or see `systemctl status "
                    "tachiai`; to run a second gateway, give it a state_dir of "
                    "its own ([gateway] node_name on PostgreSQL)").format(
                     value=holder or 'PID'),
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        raise StorageError(N_("cannot write the daemon lock {path}: {value}").format(
                               path=path, value=exc.strerror or exc)) from exc
    # Imported here: a command that only asks whether the lock is held (`held`, a witness's
    # hand-over) does without the logging module.
    import logging

    logging.getLogger(__name__).debug("holding the daemon lock %s (PID %d)", path, os.getpid())
    return DaemonLock(path, fd)


def held(state_dir: Path, file_name: str = LOCK_FILE) -> bool | None:
    """Whether a daemon holds the lock on `state_dir` now (None when it cannot be told: the
    state folder is another account's). Asked of the kernel (F_OFD_GETLK), never by taking
    the lock: a command that held it even for a moment could make a daemon starting at that
    moment refuse to start."""
    path = state_dir / file_name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # no daemon ever ran here
    except PermissionError:
        return listed(path)  # a state folder others may search, its lock file the daemon's
    except OSError:
        return None
    try:
        answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _whole_file(fcntl.F_WRLCK))
    except OSError:
        return None
    finally:
        os.close(fd)
    return bool(_FLOCK.unpack(answer)[0] != fcntl.F_UNLCK)


def listed(path: Path) -> bool | None:
    """Whether the kernel's table of locks (/proc/locks) lists a lock on the file `path`: the
    answer where the file cannot be opened, slower (its read waits for a grace period)."""
    try:
        st = os.stat(path)
        with open("/proc/locks", "rb") as table:
            lines = table.read().splitlines()
    except FileNotFoundError:
        return False
    except OSError:
        return None
    inode = f" {os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino} ".encode()
    return any(inode in line and (b" OFDLCK " in line or b" FLOCK " in line) for line in lines)


def _whole_file(kind: int) -> bytes:
    """A struct flock of `kind` (F_WRLCK, F_RDLCK) over the whole file, as the OFD calls take it
    (l_pid 0)."""
    return _FLOCK.pack(kind, os.SEEK_SET, 0, 0, 0)


def _holder(fd: int) -> int | None:
    """The PID written by the lock's holder, or None while it has not written one yet."""
    try:
        text = os.pread(fd, _MAX_PID_TEXT, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None
