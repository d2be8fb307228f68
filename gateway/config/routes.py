"""Routes (経路) as configured: SFTP accounts with pinned host keys, mail relays, password routes.

Pure values parsed from tachiai.toml tables, valid when built and frozen after. This module owns
the rule that a password never shares its file's route (the PPAP problem); it opens no
connection and reads no key file (keys may be readable only by the daemon's user).
Over 400 lines for one reason: every route kind's keys, defaults and refusals are listed where
the separation rule between them is checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.schema import only
from gateway.errors import ConfigError, KeyFileError
from gateway.i18n import N_

Resolve = Callable[[Any, str], Path]

STARTTLS_MODES = ("required", "opportunistic", "off")
#: The opt-in that `starttls = "off"` needs on a relay that is not on loopback: the subject
#: (file name, transfer id) and the sealed file then cross the network in clear.
UNSAFE_PLAINTEXT = "unsafe_plaintext_relay"
SFTP_KEYS = frozenset(
    {"host", "port", "user", "key_file", "known_hosts", "remote_dir", "timeout_seconds"}
)
MAIL_KEYS = frozenset(
    {
        "relay", "port", "from", "to", "starttls", "ca_file", "user", "password_file",
        "max_size", "timeout_seconds", UNSAFE_PLAINTEXT,
    }
)
PASSWORD_KEYS = {"folder": frozenset({"kind", "path"}), "retrieval": frozenset({"kind"})}
PASSWORD_KINDS = ("folder", "sftp", "retrieval")
DEFAULT_MAIL_MAX = 10 * 1024 * 1024  # LGWAN relays commonly cap a mail at about 10 MB


@dataclass(frozen=True)
class SftpEndpoint:
    """An account on a partner's SFTP server, its pinned host keys, and a folder there."""

    host: str
    port: int
    user: str
    key_file: Path
    host_keys: tuple[str, ...]  # "TYPE BASE64" lines, from known_hosts entries
    remote_dir: str
    timeout_seconds: float = 30.0
    known_hosts_file: Path | None = None  # where the pinned keys were read from, if a file

    @property
    def account(self) -> tuple[str, int, str]:
        return (self.host.lower(), self.port, self.user)

    def url(self, name: str = "") -> str:
        folder = self.remote_dir.rstrip("/") or ""
        return f"sftp://{self.user}@{self.host}:{self.port}{folder}/{name}"


@dataclass(frozen=True)
class MailRoute:
    """An SMTP relay (LGWAN mail) and the addresses a sealed file is mailed to."""

    relay: str
    port: int
    sender: str
    to: tuple[str, ...]
    # RFC 3207: "required" refuses a relay without it (the default off loopback),
    # "opportunistic" uses it whenever offered, "off" never (loopback, or the unsafe opt-in).
    starttls: str = "opportunistic"
    ca_file: Path | None = None
    user: str | None = None
    password_file: Path | None = None  # the relay login's password (0600), not a ZIP password
    max_bytes: int = DEFAULT_MAIL_MAX
    timeout_seconds: float = 60.0
    implicit_tls: bool = False  # smtps:// (RFC 8314): TLS from the first byte, port 465

    @property
    def on_loopback(self) -> bool:
        return is_loopback(self.relay)


@dataclass(frozen=True)
class PasswordRoute:
    """Where a ZIP's password goes: a folder, another SFTP account, or retrieval on request."""

    kind: str
    folder: Path | None = None
    sftp: SftpEndpoint | None = None

    def describe(self) -> str:
        if self.kind == "folder":
            return f"folder {self.folder}"
        if self.kind == "sftp" and self.sftp is not None:
            return self.sftp.url()
        return N_("retrieval by a designated receiving handler (`tachiai password ID --key KEY`)")


def parse_sftp(
    body: Mapping[str, Any], where: str, resolve: Resolve, extra: Collection[str] = ()
) -> SftpEndpoint:
    """An SFTP endpoint from a table with host, port, user, key_file, known_hosts, remote_dir.

    `known_hosts` is either the server's known_hosts line(s), pasted, or the path of a
    known_hosts file (relative to the configuration) holding an entry for this host and port.
    `extra` are the other settings of the table the endpoint is written in.

    Raises:
        ConfigError: a key is missing, invalid or not a setting, naming it and the fix.
    """
    only(body, SFTP_KEYS | frozenset(extra), where)
    host = _text(body, "host", where)
    user = _text(body, "user", where)
    port = _int(body.get("port", 22), f"{where}.port", 1, 65535)
    remote_dir = _text(body, "remote_dir", where)
    if not remote_dir.startswith("/") or "\n" in remote_dir:
        raise ConfigError(
            N_("{where}.remote_dir must be an absolute path on the server").format(where=where),
            hint=N_('e.g. remote_dir = "/inbox"'),
        )
    key_file = resolve(body.get("key_file"), f"{where}.key_file")
    pinned = body.get("known_hosts")
    lines = [pinned] if isinstance(pinned, str) else pinned
    if not isinstance(lines, list) or not lines or not all(isinstance(x, str) for x in lines):
        raise ConfigError(
            N_("{where}.known_hosts is missing: the host key of {host_pattern} must be "
               "pinned").format(where=where, host_pattern=host_pattern(host, port)),
            hint=N_("run `{keyscan}`, check the fingerprint (`ssh-keygen -lf known_hosts`) "
                    "against the one the partner gave you by another channel, then set "
                    'known_hosts = "known_hosts"').format(
                     keyscan=keyscan(host, port, 'known_hosts')),
        )
    known_file = None
    if len(lines) == 1 and len(lines[0].split()) == 1:
        known_file = resolve(lines[0], f"{where}.known_hosts")
        lines = _known_hosts_file(known_file, host, port, f"{where}.known_hosts")
    keys = tuple(_pinned_key(line, host, port, f"{where}.known_hosts") for line in lines)
    timeout = _float(body.get("timeout_seconds", 30.0), f"{where}.timeout_seconds")
    return SftpEndpoint(
        host=host,
        port=port,
        user=user,
        key_file=key_file,
        host_keys=keys,
        remote_dir=remote_dir.rstrip("/") or "/",
        timeout_seconds=timeout,
        known_hosts_file=known_file,
    )


def host_pattern(host: str, port: int) -> str:
    """How known_hosts names a server: `host` on port 22, `[host]:port` on any other."""
    return host.lower() if port == 22 else f"[{host.lower()}]:{port}"


def keyscan(host: str, port: int, file: Path | str) -> str:
    """The exact command that appends the server's host keys to `file`."""
    return f"ssh-keyscan -p {port} {host} >> {file}"


def _known_hosts_file(file: Path, host: str, port: int, where: str) -> list[str]:
    """The entries of a known_hosts file for this server (`[host]:port` off port 22).

    Raises:
        ConfigError: the file is missing or unreadable, or holds no entry for the server.
    """
    fix = (
        N_("run `{keyscan}` and check the fingerprint (`ssh-keygen -lf {file}`) against the one "
           "the partner gave you by another channel").format(
            keyscan=keyscan(host, port, file), file=file)
    )
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(N_("{where}: the known_hosts file {file} is missing").format(
                              where=where, file=file), hint=fix) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(N_("{where}: cannot read the known_hosts file {file}: {exc}").format(
                              where=where, file=file, exc=exc)) from exc
    found = [
        line.strip()
        for line in text.splitlines()
        if len(line.split()) >= 3
        and not line.startswith(("#", "@"))
        and _host_matches(line.split()[0], host, port)
    ]
    if not found:
        raise ConfigError(
            N_("{where}: {file} pins no host key for {host_pattern} (known_hosts names a server "
               "on a port other than 22 as [host]:port)").format(
                where=where, file=file, host_pattern=host_pattern(host, port)),
            hint=fix,
        )
    return found


def is_loopback(host: str) -> bool:
    """Whether a relay's host is this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_RELAY = re.compile(
    r"(?:(?P<scheme>[a-z]+)://)?(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:/\[\]\s]+))"
    r"(?::(?P<port>\d{1,5}))?/?"
)


def parse_relay(text: str, where: str) -> tuple[str, int | None, bool]:
    """(host, port or None, implicit TLS) from `host`, `host:port`, `[v6]:port`,
    `smtp://host:port` or `smtps://host:port`.

    Raises:
        ConfigError: any other form, naming the forms that work.
    """
    # A bare IPv6 address does not match (its colons are not a port): it must be in brackets.
    hint = (
        N_('write relay = "smtp://relay.example.lg.jp:587" (or "relay.example.lg.jp:25", '
           '"[2001:db8::25]:25", "smtps://relay.example.lg.jp:465")')
    )
    found = _RELAY.fullmatch(text.strip())
    scheme = found.group("scheme") if found else None
    if found is None or scheme not in (None, "smtp", "smtps"):
        raise ConfigError(N_("{where}.relay {text} is not a mail relay address").format(
                              where=where, text=repr(text)), hint=hint)
    host = found.group("v6") or found.group("host")
    if found.group("v6"):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(N_("{where}.relay {text}: not an IPv6 address").format(
                                  where=where, text=repr(text)), hint=hint) from None
    port = int(found.group("port")) if found.group("port") else None
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(N_("{where}.relay {text}: the port must be from 1 to 65535").format(
                              where=where, text=repr(text)), hint=hint)
    return host, port, scheme == "smtps"


def parse_mail(body: Mapping[str, Any], where: str, resolve: Resolve) -> MailRoute:
    """A mail route from a table with relay, port, from, to, starttls, ca_file, user,
    password_file, max_size, timeout_seconds.

    `relay` may carry the port (`host:port`, `[v6]:port`, `smtp://host:port`; `smtps://` for
    TLS from the first byte); `port`, if also given, must agree. STARTTLS is "required" unless
    the relay is on loopback; "off" on another host needs `unsafe_plaintext_relay = true`.

    Raises:
        ConfigError: a key is missing, invalid or not a setting.
    """
    to = body.get("to")
    to_list = [to] if isinstance(to, str) else to
    if (
        not isinstance(to_list, list)
        or not to_list
        or not all(isinstance(a, str) and "@" in a and "\n" not in a for a in to_list)
    ):
        raise ConfigError(
            N_("{where}.to must be one or more mail addresses").format(where=where),
            hint=N_('e.g. to = ["kanri@example.go.jp"]'),
        )
    sender = _text(body, "from", where)
    if "@" not in sender or "\n" in sender:
        raise ConfigError(N_("{where}.from must be a mail address").format(where=where))
    relay, relay_port, implicit = parse_relay(_text(body, "relay", where), where)
    port = relay_port or (465 if implicit else 25)
    if "port" in body:
        given = _int(body["port"], f"{where}.port", 1, 65535)
        if relay_port is not None and given != relay_port:
            raise ConfigError(
                N_("{where}.port {given} disagrees with the port in relay ({relay_port})").format(
                    where=where, given=given, relay_port=relay_port),
                hint=N_("give the port once: in relay or in port"),
            )
        port = given
    loopback = is_loopback(relay)
    starttls = body.get("starttls", "opportunistic" if loopback else "required")
    if starttls not in STARTTLS_MODES:
        raise ConfigError(
            N_("{where}.starttls must be one of {choices}").format(
                where=where, choices=', '.join(STARTTLS_MODES)),
            hint=N_('"required" (the default off loopback) refuses a relay without STARTTLS'),
        )
    unsafe = body.get(UNSAFE_PLAINTEXT, False)
    if not isinstance(unsafe, bool):
        raise ConfigError(N_("{where}.{unsafe_plaintext} must be true or false").format(
                              where=where, unsafe_plaintext=UNSAFE_PLAINTEXT))
    if implicit and starttls == "off":
        raise ConfigError(
            N_('{where}: smtps:// is TLS from the first byte; starttls = "off" contradicts '
               "it").format(where=where),
            hint=N_('use smtp:// for a plain relay, or remove starttls = "off"'),
        )
    if starttls == "off" and not loopback and not implicit and not unsafe:
        raise ConfigError(
            N_('{where}.starttls = "off" sends the subject (file name, transfer id) and the '
               "sealed file in clear to {relay}, which is not on this machine").format(
                where=where, relay=relay),
            hint=N_('use starttls = "required", or, only on a closed network, add '
                    "{unsafe_plaintext} = true (logged as a warning at every start)").format(
                     unsafe_plaintext=UNSAFE_PLAINTEXT),
        )
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise ConfigError(N_("{where}.user must be a string").format(where=where))
    password_file = (
        resolve(body["password_file"], f"{where}.password_file")
        if "password_file" in body
        else None
    )
    if (user is None) != (password_file is None):
        raise ConfigError(
            N_("{where}: give both user and password_file for a relay login, or neither").format(
                where=where)
        )
    return MailRoute(
        relay=relay,
        port=port,
        sender=sender,
        to=tuple(to_list),
        starttls=str(starttls),
        ca_file=resolve(body["ca_file"], f"{where}.ca_file") if "ca_file" in body else None,
        user=user,
        password_file=password_file,
        max_bytes=_int(body.get("max_size", DEFAULT_MAIL_MAX), f"{where}.max_size", 1, 1 << 40),
        timeout_seconds=_float(body.get("timeout_seconds", 60.0), f"{where}.timeout_seconds"),
        implicit_tls=implicit,
    )


def parse_password_route(raw: Any, where: str, resolve: Resolve) -> PasswordRoute:
    """`password_channel = "path"` (a folder) or `{ kind = "folder" | "sftp" | "retrieval" }`.

    Raises:
        ConfigError: an unknown kind, a missing key, or a key that is not a setting.
    """
    if isinstance(raw, str):
        return PasswordRoute("folder", folder=resolve(raw, where))
    if not isinstance(raw, dict):
        raise ConfigError(
            N_("{where} must be a folder path or a table with a kind").format(where=where),
            hint=N_('e.g. password_channel = { kind = "retrieval" }'),
        )
    kind = raw.get("kind")
    if kind == "folder":
        only(raw, PASSWORD_KEYS["folder"], where)
        return PasswordRoute("folder", folder=resolve(raw.get("path"), f"{where}.path"))
    if kind == "sftp":
        return PasswordRoute("sftp", sftp=parse_sftp(raw, where, resolve, extra={"kind"}))
    if kind == "retrieval":
        only(raw, PASSWORD_KEYS["retrieval"], where)
        return PasswordRoute("retrieval")
    raise ConfigError(
        N_("{where}.kind must be one of {choices}").format(
            where=where, choices=', '.join(PASSWORD_KINDS)),
        hint=N_('e.g. password_channel = { kind = "folder", path = "passwords" }'),
    )


def check_separate(
    inbox: Path | None, sftp: SftpEndpoint | None, password: PasswordRoute, where: str
) -> None:
    """Refuse a password route that is the file's own route (PPAP).

    Mail carries files only: no password route is a mail, so a mailed file's password always
    takes another road.

    Raises:
        ConfigError: the same folder (or one inside the other), or the same SFTP account.
    """
    if password.kind == "folder" and password.folder is not None and inbox is not None:
        # Compared as written and as the links resolve today (delivery re-checks for links).
        pairs = [
            (inbox, password.folder),
            (Path(os.path.realpath(inbox)), Path(os.path.realpath(password.folder))),
        ]
        if any(a == b or a in b.parents or b in a.parents for a, b in pairs):
            # PPAP: a password beside its ZIP protects nothing.
            raise ConfigError(
                N_("{where}: the password channel and the inbox are the same place").format(
                    where=where),
                hint=N_("give password_channel a folder outside the inbox (a separate route)"),
            )
    # One account reaches both: whoever holds its key (or breaks into it) gets file and
    # password together. A separate account or host is required, not just another folder.
    if password.sftp is not None and sftp is not None and password.sftp.account == sftp.account:
        raise ConfigError(
            N_("{where}: the password goes to the same SFTP account ({user}@{host}:{port}) as "
               "the file: the same place").format(
                where=where, user=sftp.user, host=sftp.host, port=sftp.port),
            hint=N_("use another account or another host for password_channel"),
        )


def host_fingerprint(blob: bytes) -> str:
    """A host key's fingerprint as OpenSSH prints it: "SHA256:" + unpadded base64."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def key_blob(line: str) -> bytes:
    """The wire blob of a pinned "TYPE BASE64" key line."""
    return base64.b64decode(line.split()[1])


def _pinned_key(line: str, host: str, port: int, where: str) -> str:
    """A known_hosts entry ("[HOSTS] TYPE BASE64 [COMMENT]") checked and reduced to TYPE BASE64.

    A host field, if present, must name this host (plain or hashed, `[host]:port` for other
    ports): an entry copied for another server is refused rather than silently trusted.
    """
    fields = line.split()
    if fields and fields[0].startswith("@"):
        raise ConfigError(
            N_("{where}: markers like {fields} are not supported").format(
                where=where, fields=fields[0]),
            hint=N_("pin the server's own host key line"),
        )
    if len(fields) >= 2 and _is_key_type(fields[0]):
        key_fields = fields[:2]
    elif len(fields) >= 3 and _is_key_type(fields[1]):
        if not _host_matches(fields[0], host, port):
            raise ConfigError(
                N_("{where}: the entry is for {fields}, not for {host}:{port} (known_hosts "
                   "writes it {host_pattern}: [host]:port off port 22)").format(
                    where=where, fields=repr(fields[0]), host=host, port=port,
                    host_pattern=host_pattern(host, port)),
                hint=N_("pin the line for this server: `{keyscan}`").format(
                         keyscan=keyscan(host, port, 'known_hosts')),
            )
        key_fields = fields[1:3]
    else:
        raise ConfigError(
            N_("{where}: not a known_hosts line ([HOST] TYPE BASE64)").format(where=where),
            hint=N_("copy the server's line from known_hosts or ssh-keyscan"),
        )
    from gateway.identity.sshkeys import parse_public_key  # `cryptography`: only for SFTP routes

    try:
        parse_public_key(" ".join(key_fields))
    except KeyFileError as exc:
        raise ConfigError(f"{where}: {exc}",
                          hint=exc.hint) from None
    return " ".join(key_fields)


def _is_key_type(word: str) -> bool:
    return word.startswith(("ssh-", "ecdsa-sha2-"))


def _host_matches(patterns: str, host: str, port: int) -> bool:
    name = host_pattern(host, port)
    for pattern in patterns.split(","):
        if pattern.startswith("|1|"):  # hashed: |1|base64(salt)|base64(HMAC-SHA1(salt, name))
            try:
                _, _, salt, digest = pattern.split("|")
                mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
            except (ValueError, TypeError):
                continue
            if hmac.compare_digest(base64.b64encode(mac).decode(), digest):
                return True
        elif pattern.lower() == name:
            return True
    return False


def _text(body: Mapping[str, Any], key: str, where: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(N_("{where}.{key} is missing").format(where=where, key=key),
                          hint=N_('set {key} = "…" in [{where}]').format(key=key, where=where))
    return value.strip()


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(N_("{where} must be a whole number from {low} to {high}").format(
                              where=where, low=low, high=high))
    return value


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(N_("{where} must be a positive number of seconds").format(where=where))
    return float(value)
