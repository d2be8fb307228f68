"""Opening a holding (開封): a signed, fresh, single-use request releases its plaintext into the
requesting handler's own folder (`handlers_folder/NAME/`, 0700; the file 0600).

The copy is recorded before any plaintext is written, and written to a temporary name, checked
against the received hash, then renamed. It never writes outside that folder, never follows a
link, and never releases to anyone who has not signed the recipient's terms.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import pwd
import secrets
from collections.abc import Callable
from pathlib import Path

from gateway.errors import StateError, StorageError
from gateway.i18n import N_
from gateway.inbound import erasure, holdings
from gateway.inbound.holdings import Holding, HoldingState
from gateway.inbound.signers import agreement_of, held, holding_statement, refuse, signer
from gateway.inbound.terms import terms_signed
from gateway.runtime import Runtime
from gateway.state import clock, holdings_store
from policies.handlers import Handler
from policies.reasons import Reason

OPEN_NAMESPACE = "tachiai-open"
OPEN_WINDOW_SECONDS = 600  # a signed open request is good for ten minutes, and only once


def open_request(h: Holding, when: str, nonce: str | None = None) -> bytes:
    """What a handler signs to have a holding released to them, at `when` (ISO 8601).

    The nonce makes each request unique (an Ed25519 signature of the same bytes is the same
    bytes, so two openings in one second would otherwise look like a replay).
    """
    nonce = nonce or secrets.token_hex(8)
    return holding_statement("tachiai open request v1", h, [f"time: {when}", f"nonce: {nonce}"])


def open_holding(rt: Runtime, holding_id: str, statement: bytes, signature: str, *,
                 progress: Callable[[int], None] | None = None) -> Path:
    """Release a holding into the signer's own folder (0600); return the file's path.

    `progress`, when given, is told the bytes decrypted so far after each chunk.

    Raises:
        StateError: the holding is not held (refused, or erased after its certificate).
        SignatureError: the request's signature is malformed or over other bytes.
        CheckFailed: not a designated receiving handler, terms not signed, a stale or reused
            request (each refusal recorded).
        StorageError: the copy fails authentication or the folder cannot be written.
    """
    h = held(rt, holding_id, "opened", "open")
    handler, signed = signer(rt, h, statement, signature, OPEN_NAMESPACE, "open")
    when, nonce = _request_time(statement)
    if when is None or statement != open_request(h, when.isoformat(), nonce):
        refuse(
            rt,
            h,
            "open",
            Reason(
                "open.request",
                "the request is not an open request for "
                "this holding; sign the one `tachiai holdings open ID --key KEY` makes",
            ),
            signed,
            handler,
        )
    assert when is not None
    if abs(clock.now_ns() / 1e9 - when.timestamp()) > OPEN_WINDOW_SECONDS:
        refuse(
            rt,
            h,
            "open",
            Reason(
                "open.stale",
                "the signed request is older than ten minutes (or from the future); sign a new one",
            ),
            signed,
            handler,
        )
    # The request (its nonce) is what is used once: a re-wrapped armor of the same signature
    # is still the same request.
    request_sha = hashlib.sha256(statement).hexdigest()
    if holdings_store.request_used(rt.store, request_sha):
        refuse(
            rt,
            h,
            "open",
            Reason(
                "open.replayed",
                "this signed request was used before; each opening needs a request of its own",
            ),
            signed,
            handler,
        )
    agreement = agreement_of(rt, h)
    if not terms_signed(rt, agreement, handler):
        refuse(
            rt,
            h,
            "open",
            agreement.reason(
                "terms.unsigned",
                f"{handler.name} has not signed the recipient's obligations under "
                f"{agreement.id}; read and sign them first: `tachiai holdings terms {h.id} --key "
                "KEY`",
                "obligations",
            ),
            signed,
            handler,
        )
    target = _handler_folder(rt, handler) / _safe_name(h)
    now = clock.now_ns()
    # Recorded before any plaintext is written: a crash never leaves an unrecorded copy.
    target_state = HoldingState.OPENED if h.status is HoldingState.RECEIVED else HoldingState.IN_USE
    with rt.store.transaction() as conn:
        holdings_store.add_copy(conn, h.id, handler.name, str(target), request_sha, now)
        events = [
            holdings.event(
                "holding.opened",
                h,
                {
                    "handler": handler.name,
                    "fingerprint": signed.fingerprint,
                    "sha256": h.sha256,
                    "size": h.size,
                    "path": str(target),
                    "opening": h.openings + 1,
                    "statement": statement.decode("utf-8"),
                    "signature": signature,
                    "namespace": OPEN_NAMESPACE,
                },
                actor=handler.name,
                key=f"{h.id}:holding.opened:{request_sha[:16]}",
                time_ns=now,
            )
        ]
        if target_state is h.status:
            h = holdings.update(rt, h, events, conn, openings=h.openings + 1)
        else:
            h = holdings.transition(rt, h, target_state, events, conn, openings=h.openings + 1)
    rt.flush()
    _write_plain(rt, h, target, handler, progress)
    return target


def _request_time(statement: bytes) -> tuple[dt.datetime | None, str]:
    """The time and nonce an open request names (the statement is then compared whole)."""
    try:
        lines = statement.decode("utf-8").rstrip("\n").split("\n")
        time_line, nonce_line = lines[-2], lines[-1]
        if not time_line.startswith("time: ") or not nonce_line.startswith("nonce: "):
            return None, ""
        when = dt.datetime.fromisoformat(time_line.removeprefix("time: "))
    except (UnicodeDecodeError, ValueError, IndexError):
        return None, ""
    nonce = nonce_line.removeprefix("nonce: ")
    if when.tzinfo is None or not nonce.isalnum():
        return None, ""
    return when, nonce


def _handler_folder(rt: Runtime, handler: Handler) -> Path:
    """`handlers_folder/NAME/` (0700, owned by the handler's OS user when we may chown)."""
    base = rt.settings.inbound.handlers_folder
    if base is None:
        raise StateError(
            N_("this gateway has no [inbound] handlers_folder"),
            hint=N_("set handlers_folder = \"…\" under [inbound]"),
        )
    folder = base / handler.name
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.path.realpath(folder) != str(folder) or not folder.is_dir():
            raise StorageError(
                N_("{folder} passes through a symbolic link; nothing was written").format(
                    folder=folder),
                hint=N_("remove the link and check who made it"),
            )
        os.chmod(folder, 0o700)
        if handler.os_user and os.geteuid() == 0:

            user = pwd.getpwnam(handler.os_user)
            os.chown(folder, user.pw_uid, user.pw_gid)
    except KeyError:
        pass  # no such OS user here: the folder stays the gateway's, still 0700
    except OSError as exc:
        raise StorageError(N_("cannot prepare {folder}: {strerror}").format(
                               folder=folder, strerror=exc.strerror)) from exc
    return folder


def _safe_name(h: Holding) -> str:
    """ID-NAME: the sender's name made harmless (no separators, controls or leading dots)."""
    name = (
        "".join(
            c if c.isprintable() and c not in '/\\:*?"<>|' else "_" for c in (h.file_name or "data")
        ).lstrip(".")
        or "data"
    )
    return f"{h.id}-{name[:150]}"


def _write_plain(rt: Runtime, h: Holding, target: Path, handler: Handler,
                 progress: Callable[[int], None] | None) -> None:
    """Decrypt into `.NAME.tmp` (0600, O_EXCL, no links), check the hash, rename into place."""
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    digest = hashlib.sha256()
    size = 0
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        with os.fdopen(fd, "wb") as out, holdings.plaintext(rt, h) as src:
            os.fchmod(out.fileno(), 0o600)
            while chunk := src.read(erasure.CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(size)
            out.flush()
            os.fsync(out.fileno())
        if (size, digest.hexdigest()) != (h.size, h.sha256):
            raise StorageError(
                N_("the copy of {id} does not decrypt to the received bytes; "
                   "nothing was released").format(id=h.id),
                hint=N_("tell security"),
            )
        if handler.os_user and os.geteuid() == 0:

            user = pwd.getpwnam(handler.os_user)
            os.chown(tmp, user.pw_uid, user.pw_gid)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
