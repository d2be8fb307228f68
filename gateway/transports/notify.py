"""The two channels a notice to a person travels by: a mail through the configured relay, and a
command hook that gets one JSON document on stdin.

Words in, bytes out: what a notice says is decided elsewhere (`gateway.exchange.notices`), and
it never carries personal data or file content. Foreign errors become ours here: a relay's
through `gateway.transports.mail.converted`, a hook's as PartnerUnavailable.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate

from gateway.config.routes import MailRoute
from gateway.errors import PartnerUnavailable
from gateway.i18n import N_
from gateway.transports import DeliveryRefused
from gateway.transports.mail import converted, relay_session

log = logging.getLogger(__name__)


def send_mail(route: MailRoute, to: str, subject: str, body: str, message_id: str) -> None:
    """Mail one plain-text notice to one address through the relay.

    The Message-ID is fixed per notice, so a repeat after a crash can be recognised.

    Raises:
        PartnerUnavailable: the relay is unreachable or answered 4xx (try again later).
        DeliveryRefused: the relay refused (5xx), TLS required but not offered, and so on.
    """
    msg = EmailMessage()
    msg["From"] = route.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    domain = route.sender.rsplit("@", 1)[-1]
    msg["Message-ID"] = f"<{message_id}@{domain}>"
    msg.set_content(body)
    with converted(route), relay_session(route) as (smtp, _tls):
        refused = smtp.send_message(msg)
    if refused:
        raise DeliveryRefused(N_("the relay {relay} refused the address of a notice").format(
                                  relay=route.relay))


def run_hook(command: Sequence[str], document: bytes, timeout_seconds: float) -> None:
    """Run the hook once with `document` on stdin; exit 0 means the person was told.

    The hook's own output is not logged: it is the hook's, and may name people.

    Raises:
        PartnerUnavailable: the command is missing, timed out or exited non-zero.
    """
    try:
        done = subprocess.run(list(command), input=document, capture_output=True,
                              timeout=timeout_seconds, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PartnerUnavailable(N_("the notification command did not finish within "
                                    "{timeout_seconds:g} s").format(
                                     timeout_seconds=timeout_seconds),
                                 hint=N_("make it return quickly, or raise "
                                         "notify.command_timeout_seconds")) from exc
    except OSError as exc:
        raise PartnerUnavailable(N_("the notification command cannot run: {value}").format(
                                     value=exc.strerror or exc.__class__.__name__),
                                 hint=N_("check the path in the configuration's command")) from exc
    if done.returncode != 0:
        raise PartnerUnavailable(N_("the notification command exited {returncode}").format(
                                     returncode=done.returncode),
                                 hint=N_("run it by hand with the document on stdin to see why"))
