"""The one exception tree of the gateway, split by who is at fault.

Every error carries the words a person needs: what went wrong (`str(err)`) and what to do next
(`hint`). Only `gateway.cli.main` turns an error into a message and an exit code; nothing below
it prints or exits. Errors raised by `policies` and `audit` are mapped in `gateway.cli`.

A partner's problem comes in two kinds with no class in common below the root, so a caller
handles each in its own `except` clause and never asks `isinstance`: `PartnerUnavailable` is
transient (unreachable, timed out: retry later), `PartnerRefused` is permanent (the partner
answered and said no, or its host key changed: nothing changes until a person acts). A refusal
exits 1, like any check that said no: the partner's check (its permissions, its size limit, its
pinned host key) refused, and the input we sent was well formed, so it is not 65.

Exit codes: `EXIT_CODES` below, which `tachiai --help` lists.
"""

from __future__ import annotations

from gateway.i18n import N_

#: The exit codes, as `tachiai --help` lists them (translated where it prints them).
EXIT_CODES = N_(
    "exit codes:\n"
    "    0   success\n"
    "    1   a check failed: a file was rejected, a signature refused, the ledger is not intact,\n"
    "        a partner refused a delivery (permanently: fix the cause, then retry by hand)\n"
    "    2   usage error: a wrong command line\n"
    "    65  bad input from a person or a partner (a malformed signature, key or\n"
    "        manifest, an unknown id)\n"
    "    69  a partner or an external place is unreachable (transient: retried by itself)\n"
    "    70  an internal error (a bug: please report it with the log)\n"
    "    74  storage failed (database, spool or file system)\n"
    "    75  the request is out of order for the current state; retry after the state changes\n"
    "        (also: another daemon already runs on the same state directory)\n"
    "    78  configuration or agreement files are invalid\n"
)

#: `extra=` of a log record that repeats an error the same call goes on to raise (a refusal
#: recorded, then raised). The daemon's log keeps it, as what happened to a request handed in;
#: a command leaves it out of its stderr, where `gateway.cli.main` reports the error itself,
#: in the reader's language.
RAISED_TOO = {"raised_too": True}


class TachiaiError(Exception):
    """The root of every error the gateway raises on purpose."""

    exit_code: int = 70
    default_hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint if hint is not None else self.default_hint

    def diagnostics(self) -> str:
        """The message and, on its own line, what to do next."""
        text = str(self)
        if self.hint:
            text += f"\n  next: {self.hint}"
        return text


class CheckFailed(TachiaiError):
    """A check did its job and said no: a rejection, a refused signature, a broken ledger."""

    exit_code = 1


class SignatureError(CheckFailed):
    """An SSH signature (SSHSIG) is malformed, made under another namespace, or does not verify."""


class UsageError(TachiaiError):
    """The command line itself is wrong."""

    exit_code = 2


class InputError(TachiaiError):
    """Input from a person or partner is malformed: a key file, a signature file, an id."""

    exit_code = 65


class NotFound(InputError):
    """An id or path that a person named does not exist."""


class KeyFileError(InputError):
    """A private or public key file cannot be used (missing, unreadable, too open, wrong type)."""


class PartnerUnavailable(TachiaiError):
    """A partner's server or an external place cannot be reached right now."""

    exit_code = 69
    default_hint = N_(
        "the transfer stays queued and is retried; check the partner's address and network"
    )


class PartnerRefused(TachiaiError):
    """A partner answered and said no: permission denied, a name taken, a size limit, a changed
    host key. Permanent until a person acts, so it is never retried by itself.

    Not a `PartnerUnavailable`: a caller that retries the transient kind must not retry this
    one, and needs no `isinstance` to tell them apart.
    """

    exit_code = 1
    default_hint = N_("fix the cause named above (with the partner if it is theirs), then retry")


class InternalError(TachiaiError):
    """A bug: something that the code assumes can never happen did."""

    exit_code = 70
    default_hint = N_("please report this with the daemon's log; no file has been deleted")


class StorageError(TachiaiError):
    """The database, the spool or a folder could not be read or written."""

    exit_code = 74
    default_hint = N_("check free space and permissions of the state directory, then retry")


class StateError(TachiaiError):
    """A request came out of order for the current state of a transfer or holding."""

    exit_code = 75


class AlreadyRunning(StateError):
    """Another daemon holds the state directory: one daemon per SQLite state, by construction."""

    default_hint = N_("stop the other daemon first, or see `systemctl status tachiai`")


class ConfigError(TachiaiError):
    """The configuration, an agreement or the handler registry is invalid."""

    exit_code = 78
    default_hint = N_("run `tachiai agreements check` and fix the files it names")
