"""Mail delivery (LGWAN mail, seed 003): the sealed file attached, sent to an SMTP relay.

STARTTLS (RFC 3207) is "required" by default for a relay that is not on loopback (a relay
without it is refused), "opportunistic" (used whenever offered) or "off" (never; off loopback
only with `unsafe_plaintext_relay = true`); `smtps://` relays speak TLS from the first byte
(RFC 8314). The relay's certificate is verified (`ca_file` for a private CA). A relay login is
`user` with its password in `password_file` (0600). Mails over `max_size` (10 MB by default)
are refused before connecting. The mail carries the
sealed file (and its manifest) and words for people, never a password: that always takes
another route. A fixed Message-ID per transfer lets the recipient's side drop a repeat. No
smtplib error escapes.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import formatdate

from gateway.config.routes import MailRoute
from gateway.errors import PartnerUnavailable, StorageError
from gateway.i18n import N_
from gateway.transports import DeliveryRefused, Parcel, Receipt

_BODY = """\
tachiai より、確認書に基づくファイルを送付します。
This mail carries a file sent under a data-sharing agreement (確認書) by tachiai.

  transfer / 送信番号:  {transfer}
  file / ファイル:      {name}
  size / サイズ:        {size} bytes
  SHA-256:              {sha256}

The password (or key) that opens the attachment is NOT in this mail; it reaches you by a
separate route agreed with you.
添付ファイルを開くためのパスワードは本メールには記載していません。別経路でお届けします。
"""


class MailTransport:
    """Sends each parcel as one mail through one relay."""

    kind = "mail"

    def __init__(self, party: str, route: MailRoute) -> None:
        self.party = party
        self.route = route

    def send(
        self,
        parcel: Parcel,
        *,
        renamed_before: bool = False,
        committing: Callable[[str], None] | None = None,
    ) -> Receipt:
        """Mail the sealed file to the configured addresses.

        Raises:
            PartnerUnavailable: the relay is unreachable or answered 4xx (retry later).
            DeliveryRefused: too large for mail, the relay refused (5xx), STARTTLS required but
                not offered, or its certificate does not verify.
        """
        route = self.route
        if parcel.size > route.max_bytes:
            raise DeliveryRefused(
                N_("the sealed file is {size} bytes, over the mail limit of {max_bytes}").format(
                    size=parcel.size, max_bytes=route.max_bytes),
                hint=N_("send it by SFTP or a local folder instead, or raise max_size if the "
                        "relay allows larger mails"),
            )
        try:
            message = self._message(parcel)
        except OSError as exc:
            raise StorageError(
                N_("cannot read the sealed file {name}: {value}").format(
                    name=parcel.path.name, value=exc.strerror or exc)
            ) from exc
        with converted(route), relay_session(route) as (smtp, tls):
            if committing is not None:
                committing(f"mail:{message['Message-ID']}")
            refused = smtp.send_message(message)
        if refused:
            raise DeliveryRefused(N_("the relay {relay} refused: {refused}").format(
                                      relay=route.relay, refused=', '.join(refused)))
        return Receipt(
            "mail",
            f"mail to {', '.join(route.to)}",
            {
                "relay": f"{route.relay}:{route.port}",
                "message_id": str(message["Message-ID"]),
                "starttls": tls,
            },
        )

    def _message(self, parcel: Parcel) -> EmailMessage:
        route = self.route
        msg = EmailMessage()
        msg["From"] = route.sender
        msg["To"] = ", ".join(route.to)
        msg["Subject"] = f"[tachiai] {parcel.file_name} ({parcel.transfer_id})"
        msg["Date"] = formatdate(localtime=True)
        domain = route.sender.rsplit("@", 1)[-1]
        msg["Message-ID"] = f"<{parcel.transfer_id}.{parcel.sha256[:16]}@{domain}>"
        msg.set_content(
            _BODY.format(
                transfer=parcel.transfer_id,
                name=parcel.name,
                size=parcel.size,
                sha256=parcel.sha256,
            )
        )
        subtype = "zip" if parcel.name.endswith(".zip") else "octet-stream"
        # Bounded by max_bytes above: the email package needs the attachment in memory.
        data = parcel.path.read_bytes()
        msg.add_attachment(data, maintype="application", subtype=subtype, filename=parcel.name)
        if parcel.manifest is not None:
            # In the same mail, after the file: one message carries both or neither.
            msg.add_attachment(parcel.manifest, maintype="application", subtype="json",
                               filename=parcel.manifest_name)
        return msg



@contextmanager
def relay_session(route: MailRoute) -> Iterator[tuple[smtplib.SMTP, bool]]:
    """A session with the relay, TLS as configured and logged in; yields (session, tls).

    `smtps://` is TLS from the first byte (RFC 8314); otherwise STARTTLS (RFC 3207) is used
    when offered unless `starttls = "off"`, and a relay without it is refused when "required".
    Foreign errors pass through: wrap the call in `converted(route)`.

    Raises:
        DeliveryRefused: STARTTLS required but not offered; the login's password file unusable.
    """
    if route.implicit_tls:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            route.relay, route.port, timeout=route.timeout_seconds, context=_tls_context(route)
        )
    else:
        smtp = smtplib.SMTP(route.relay, route.port, timeout=route.timeout_seconds)
    with smtp:
        smtp.ehlo()
        tls = route.implicit_tls
        if not tls and route.starttls != "off" and smtp.has_extn("starttls"):
            smtp.starttls(context=_tls_context(route))
            smtp.ehlo()
            tls = True
        elif not tls and route.starttls == "required":
            raise DeliveryRefused(
                N_("the relay {relay}:{port} does not offer STARTTLS, which the configuration "
                   "requires").format(relay=route.relay, port=route.port),
                hint=N_("ask the relay's operator to enable STARTTLS, or set starttls = "
                        '"opportunistic" if the network is closed'),
            )
        if route.user is not None and route.password_file is not None:
            smtp.login(route.user, _read_secret(route))
        yield smtp, tls


@contextmanager
def converted(route: MailRoute) -> Iterator[None]:
    """Turn smtplib, ssl and socket errors into the gateway's, naming the relay.

    Raises:
        PartnerUnavailable: unreachable, timed out, or a 4xx answer (retry later).
        DeliveryRefused: a 5xx answer, every recipient refused, a certificate that fails.
    """
    try:
        yield
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        error = DeliveryRefused if 500 <= exc.smtp_code < 600 else PartnerUnavailable
        raise error(f"the relay {route.relay} answered {exc.smtp_code}: {text}") from exc
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryRefused(
            N_("the relay {relay} refused every recipient: {recipients}").format(
                relay=route.relay, recipients=', '.join(exc.recipients))
        ) from exc
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryRefused(
            N_("the certificate of the relay {relay} does not verify: {verify_message}").format(
                relay=route.relay, verify_message=exc.verify_message),
            hint=N_("set ca_file to the relay's CA certificate; if the certificate changed "
                    "unexpectedly, tell security"),
        ) from exc
    except (TimeoutError, smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
        raise PartnerUnavailable(
            N_("mail to the relay {relay}:{port} failed: {reason}").format(
                relay=route.relay, port=route.port, reason=reason)
        ) from exc


def _tls_context(route: MailRoute) -> ssl.SSLContext:
    cafile = str(route.ca_file) if route.ca_file is not None else None
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _read_secret(route: MailRoute) -> str:
    """The relay login's password from its own file (0600), without a trailing newline.

    Raises:
        DeliveryRefused: the file is missing or readable by others.
    """
    assert route.password_file is not None
    try:
        info = route.password_file.stat()
        if info.st_mode & 0o077:
            raise DeliveryRefused(
                N_("{password_file} is readable by other users; refused").format(
                    password_file=route.password_file),
                hint=N_("chmod 600 {password_file}").format(password_file=route.password_file),
            )
        return route.password_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DeliveryRefused(N_("cannot read {password_file}: {strerror}").format(
            password_file=route.password_file, strerror=exc.strerror)) from exc
