"""Delivery (送達): which transport and which password channel serve a recipient.

A thin dispatcher over `gateway.transports`: the configured transport ("local", "sftp",
"mail") and password route ("folder", "sftp", "retrieval") become objects with one small
interface each. The final name of a delivered file is fixed by the transfer id, so every
retry aims at the same name and exactly one file arrives. It never sends anything itself.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config.settings import Recipient
from gateway.errors import ConfigError
from gateway.i18n import N_
from gateway.transports import Parcel, PasswordChannel, Receipt, Transport
from gateway.transports.local import LocalTransport
from gateway.transports.password_channels import channel_for

NAME_MAX = 255
_LONGEST_EXTRA = ".password"  # longer than the "." + ".part" of an upload's temporary name

__all__ = ["Parcel", "Receipt", "delivered_name", "password_channel_for", "transport_for"]


def delivered_name(transfer_id: str, file_name: str, suffix: str = ".zip") -> str:
    """The name a sealed file arrives under: the original name, the transfer id, the suffix.

    The original name is shortened (at a character boundary) when the whole would not fit the
    255-byte file name limit (NAME_MAX) together with the `.NAME.part` and `NAME.password`
    forms the transports write; the transfer id keeps the result unique.
    """
    tail = f".{transfer_id}{suffix}"
    room = NAME_MAX - len(_LONGEST_EXTRA) - len(tail.encode("utf-8"))
    stem = file_name.encode("utf-8", "surrogateescape")
    if len(stem) > room:
        stem = stem[:room]
        file_name = stem.decode("utf-8", "ignore")  # drop a character cut in half
    return f"{file_name}{tail}"


def transport_for(recipient: Recipient) -> Transport:
    """The transport the recipient's configuration names.

    Raises:
        ConfigError: the recipient's table lacks what its transport needs.
    """
    if recipient.transport == "local" and recipient.inbox is not None:
        return LocalTransport(recipient.party, recipient.inbox)
    if recipient.transport == "sftp" and recipient.sftp is not None:
        from gateway.transports.sftp import SftpTransport  # paramiko only where it is used

        return SftpTransport(recipient.party, recipient.sftp)
    if recipient.transport == "mail" and recipient.mail is not None:
        from gateway.transports.mail import MailTransport  # smtplib/ssl only where mail is used

        return MailTransport(recipient.party, recipient.mail)
    raise ConfigError(
        N_("recipient {party}: transport {transport} is not fully configured").format(
            party=recipient.party, transport=repr(recipient.transport))
    )


def password_channel_for(recipient: Recipient, spool_folder: Path) -> PasswordChannel:
    """The password channel of the recipient (retrieval keeps it in `spool_folder`).

    Raises:
        ConfigError: no password route is configured for a recipient of a password profile.
    """
    return channel_for(recipient.require_password_route(), spool_folder)
