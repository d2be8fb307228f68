"""`tachiai partners test NAME`: prove a recipient's route works now, step by step, timed.

SFTP: connect, check the pinned host key, authenticate, write a probe file into the recipient's
folder and remove it. Mail: reach the relay (with TLS as configured, and its login) and send a
test mail that carries no personal data. A local folder: write and remove a probe file. Nothing
of a transfer is touched and no secret appears in a step; recording the result is the caller's.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from gateway.config.settings import Recipient
from gateway.errors import PartnerUnavailable, TachiaiError
from gateway.i18n import N_
from gateway.transports import DeliveryRefused, HostKeyRefused
from gateway.transports.mail import converted, relay_session
from gateway.transports.sftp import Session

PROBE_BODY = b"tachiai route test: this file carries no data and is removed at once.\n"
MAIL_BODY = """\
tachiai の経路試験です。個人情報は含みません。返信は不要です。
This is a route test of tachiai. It carries no personal data; no reply is needed.
"""

#: Outcomes, from the best: the route works; the partner is unreachable now; the partner
#: answered no (our key, a permission); the server is not the one pinned.
OUTCOMES = ("ok", "unreachable", "refused", "host_key_refused")


@dataclass(frozen=True)
class Step:
    """One step of a test: what, whether it worked, how long it took (seconds)."""

    name: str
    ok: bool
    seconds: float


@dataclass
class ProbeResult:
    """The steps taken, the outcome and, when it failed, the error (with its hint)."""

    party: str
    route: str
    kind: str
    steps: list[Step] = field(default_factory=list)
    outcome: str = "ok"
    error: TachiaiError | None = None

    def ledger_data(self) -> dict[str, object]:
        """What `partner.tested` records: route, outcome and timed steps (never a secret)."""
        return {
            "party": self.party,
            "transport": self.kind,
            "route": self.route,
            "outcome": self.outcome,
            "steps": [
                {"step": s.name, "ok": s.ok, "ms": round(s.seconds * 1000)} for s in self.steps
            ],
        }


class _Clock:
    """Turns "step done" notices into timed steps; the step under way when an error comes is
    recorded as failed."""

    def __init__(self, result: ProbeResult, names: dict[str, str]) -> None:
        self.result = result
        self.names = names  # notice → the name of the step it ends
        self.started = time.monotonic()

    def done(self, notice: str) -> None:
        now = time.monotonic()
        self.result.steps.append(Step(self.names.get(notice, notice), True, now - self.started))
        self.started = now

    def failed(self, name: str) -> None:
        self.result.steps.append(Step(name, False, time.monotonic() - self.started))


def probe(recipient: Recipient) -> ProbeResult:
    """Test the delivery route of `recipient` now. Never raises for the partner's faults: they
    are the result's outcome and error."""
    result = ProbeResult(recipient.party, recipient.route(), recipient.transport)
    try:
        if recipient.transport == "sftp" and recipient.sftp is not None:
            _sftp(recipient, result)
        elif recipient.transport == "mail" and recipient.mail is not None:
            _mail(recipient, result)
        else:
            _local(recipient, result)
    except HostKeyRefused as exc:
        result.outcome, result.error = "host_key_refused", exc
    except DeliveryRefused as exc:
        result.outcome, result.error = "refused", exc
    except PartnerUnavailable as exc:
        result.outcome, result.error = "unreachable", exc
    return result


def probe_name() -> str:
    """A name no delivery uses (deliveries carry a transfer id), hidden from folder readers."""
    return f".tachiai-probe-{secrets.token_hex(6)}"


@contextmanager
def _step_failing(clock: _Clock, pending: Callable[[], str]) -> Iterator[None]:
    try:
        yield
    except TachiaiError:
        clock.failed(pending())
        raise


def _sftp(recipient: Recipient, result: ProbeResult) -> None:
    assert recipient.sftp is not None
    order = [N_("connect"), N_("check the host key"), N_("authenticate"),
             N_("write a probe file"), N_("remove the probe file")]
    clock = _Clock(result, {"connected": order[0], "host key pinned": order[1],
                            "authenticated": order[2]})
    with (
        _step_failing(clock, lambda: order[len(result.steps)]),
        Session(recipient.sftp, on_step=clock.done) as session,
    ):
        name = probe_name()
        session.put_bytes(name, PROBE_BODY)
        clock.done(order[3])
        session.remove(name)
        clock.done(order[4])


def _mail(recipient: Recipient, result: ProbeResult) -> None:
    route = recipient.mail
    assert route is not None
    order = [N_("connect to the relay (TLS, login)"), N_("send a test mail")]
    clock = _Clock(result, {})
    message = EmailMessage()
    message["From"] = route.sender
    message["To"] = ", ".join(route.to)
    message["Subject"] = "[tachiai] route test / 経路試験"
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid("tachiai-probe", route.sender.rsplit("@", 1)[-1])
    message.set_content(MAIL_BODY)
    with (
        _step_failing(clock, lambda: order[len(result.steps)]),
        converted(route),
        relay_session(route) as (smtp, tls),
    ):
        clock.done(order[0] + ("" if tls else " without TLS"))
        refused = smtp.send_message(message)
        if refused:
            raise DeliveryRefused(N_("the relay {relay} refused: {refused}").format(
                                      relay=route.relay, refused=', '.join(refused)))
        clock.done(order[1])


def _local(recipient: Recipient, result: ProbeResult) -> None:
    folder = recipient.inbox
    assert folder is not None
    order = [N_("write a probe file"), N_("remove the probe file")]
    clock = _Clock(result, {})
    path = folder / probe_name()
    with _step_failing(clock, lambda: order[len(result.steps)]):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, PROBE_BODY)
            finally:
                os.close(fd)
            clock.done(order[0])
            os.unlink(path)
            clock.done(order[1])
        except OSError as exc:
            raise DeliveryRefused(
                N_("cannot write in the folder {folder}: {value}").format(
                    folder=folder, value=exc.strerror or exc),
                hint=N_("create the folder, and let the daemon's user write in it (for systemd, "
                        "add it to ReadWritePaths of tachiai.service)"),
            ) from exc
