"""Mail delivery against a real SMTP server (aiosmtpd) on 127.0.0.1 with STARTTLS (RFC 3207).

The mail arrives over TLS, its attachment is the sealed file and opens with its password, and
neither the password nor anything but words for people is in the mail.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import pyzipper

from gateway.config.routes import MailRoute
from gateway.errors import PartnerUnavailable
from gateway.outbound import sealing
from gateway.transports import DeliveryRefused, Parcel
from gateway.transports.mail import MailTransport
from tests.gateway.transports.servers import SmtpServer, free_port

pytestmark = pytest.mark.slow


def _sealed(tmp_path: Path) -> tuple[Parcel, str, bytes]:
    data = "氏名,生年月日\r\nTEST TARO,1990-04-01\r\n".encode("cp932")
    payload = tmp_path / "payload"
    payload.write_bytes(data)
    password = sealing.new_password()
    out = tmp_path / "sealed.zip"
    sealed = sealing.seal_zip(payload, "滞納者情報.csv", out, password, "deflate")
    parcel = Parcel(
        transfer_id="t-00aa11bb22cc",
        path=out,
        name="滞納者情報.csv.t-00aa11bb22cc.zip",
        size=sealed.sealed_size,
        sha256=sealed.sealed_sha256,
        file_name="滞納者情報.csv",
    )
    return parcel, password, data


def _route(smtp: SmtpServer, **changes: object) -> MailRoute:
    values: dict[str, object] = {
        "relay": "127.0.0.1",
        "port": smtp.port,
        "sender": "taino@city.example.lg.jp",
        "to": ("kanri@isa.example.go.jp",),
        "ca_file": smtp.cert,
        "timeout_seconds": 10.0,
    }
    values.update(changes)
    return MailRoute(**values)  # type: ignore[arg-type]


def test_mail_arrives_over_starttls_and_the_attachment_opens(
    smtp: SmtpServer, tmp_path: Path
) -> None:
    parcel, password, data = _sealed(tmp_path)
    receipt = MailTransport("isa", _route(smtp, starttls="required")).send(parcel)
    assert receipt.details["starttls"] is True
    (mail,) = smtp.received
    assert mail.tls and mail.envelope_to == ["kanri@isa.example.go.jp"]
    message = mail.message()
    assert message["Message-ID"] == receipt.details["message_id"]
    assert "t-00aa11bb22cc" in message["Subject"]
    (attachment,) = [p for p in message.walk() if p.get_filename()]
    assert attachment.get_filename() == parcel.name
    blob = attachment.get_payload(decode=True)
    assert isinstance(blob, bytes) and hashlib.sha256(blob).hexdigest() == parcel.sha256
    opened = tmp_path / "opened.zip"
    opened.write_bytes(blob)
    with pyzipper.AESZipFile(opened) as zf:
        zf.setpassword(password.encode())
        assert zf.read("滞納者情報.csv") == data
    assert password.encode() not in mail.data, "the password never travels with its file"
    body = message.get_body(("plain",))
    assert body is not None and "別経路" in body.get_content()


def test_a_relay_without_starttls_is_refused_when_required(tmp_path: Path) -> None:
    plain = SmtpServer(tmp_path, starttls=False)
    plain.start()
    try:
        parcel, _pw, _data = _sealed(tmp_path)
        with pytest.raises(DeliveryRefused, match="STARTTLS"):
            MailTransport("isa", _route(plain, starttls="required", ca_file=None)).send(parcel)
        assert plain.received == []
        receipt = MailTransport("isa", _route(plain, ca_file=None)).send(parcel)
        assert receipt.details["starttls"] is False and len(plain.received) == 1
    finally:
        plain.stop()


def test_an_untrusted_relay_certificate_is_refused(smtp: SmtpServer, tmp_path: Path) -> None:
    parcel, _pw, _data = _sealed(tmp_path)
    with pytest.raises(DeliveryRefused, match="does not verify"):
        MailTransport("isa", _route(smtp, ca_file=None)).send(parcel)
    assert smtp.received == []


def test_a_file_too_large_for_mail_is_refused(smtp: SmtpServer, tmp_path: Path) -> None:
    parcel, _pw, _data = _sealed(tmp_path)
    with pytest.raises(DeliveryRefused, match="over the mail limit"):
        MailTransport("isa", _route(smtp, max_bytes=100)).send(parcel)


def test_an_unreachable_relay_is_retried(tmp_path: Path) -> None:
    parcel, _pw, _data = _sealed(tmp_path)
    route = MailRoute(
        relay="127.0.0.1",
        port=free_port(),
        sender="a@b.example",
        to=("c@d.example",),
        timeout_seconds=5.0,
    )
    with pytest.raises(PartnerUnavailable) as err:
        MailTransport("isa", route).send(parcel)
    assert not isinstance(err.value, DeliveryRefused)
