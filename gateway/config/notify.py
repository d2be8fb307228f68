"""The `[notify]` table of tachiai.toml: how people are told what waits for them, and how long
a transfer may wait for its witnesses (the approval window).

Pure values, valid when built: the mail relay (the same keys and checks as a recipient's mail
route, without `to`: each person's address is their `email` in the registry), the command hook,
reminder and window lengths. It sends nothing and reads no file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.config.schema import only
from gateway.errors import ConfigError
from gateway.i18n import N_

if TYPE_CHECKING:
    from gateway.config.routes import MailRoute, Resolve

NOTIFY_KEYS = frozenset(
    {
        "mail", "command", "command_timeout_seconds", "remind_after_hours",
        "approval_window_hours", "flow_windows", "sweep_seconds", "language",
    }
)
#: The languages a notice is written in: Japanese (the default: the people told are the staff
#: of Japanese public bodies), English, or both in one mail, Japanese first.
LANGUAGES = ("ja", "en", "ja+en")
#: The relay's settings: a recipient's mail route without `to` (addresses come from the registry).
_MAX_HOURS = 24 * 366


@dataclass(frozen=True)
class NotifySettings:
    """Channels and timers of the notifications (`[notify]`); empty means nobody is told.

    `approval_window_hours` (0 = never) is how long a transfer may await approval before it
    expires; `flow_windows` overrides it per flow ("AGREEMENT/FLOW" = hours). The window is the
    providing gateway's operating rule, not a term agreed with the recipient, so it lives here
    and not in the agreement (確認書). `remind_after_hours` (0 = never) repeats a reminder to
    the witnesses each time that long has passed without a decision. `language` is what a mail
    and the hook's `title` are written in (one of LANGUAGES).
    """

    mail: MailRoute | None = None
    command: tuple[str, ...] = ()
    command_timeout_seconds: float = 30.0
    remind_after_hours: float = 0.0
    approval_window_hours: float = 0.0
    flow_windows: Mapping[str, float] = field(default_factory=dict)
    sweep_seconds: float = 30.0
    language: str = "ja"

    @property
    def channels(self) -> bool:
        """Whether anybody can be told anything."""
        return self.mail is not None or bool(self.command)

    def window_hours(self, agreement: str, flow: str) -> float:
        """The approval window of one flow in hours; 0 when transfers never expire."""
        return self.flow_windows.get(f"{agreement}/{flow}", self.approval_window_hours)


def parse_notify(body: Mapping[str, Any], resolve: Resolve, path: Path) -> NotifySettings:
    """The `[notify]` table (absent: no notifications, no window).

    Raises:
        ConfigError: an unknown key, or a value out of range, naming `notify.KEY` and the fix.
    """
    if not isinstance(body, dict):
        raise ConfigError(N_("{path}: [notify] must be a table").format(path=path))
    only(body, NOTIFY_KEYS, f"{path}: notify")
    mail = None
    raw_mail = body.get("mail")
    if raw_mail is not None:
        # Here: the routes module (addresses, key pins) is for a gateway that mails people.
        from gateway.config.routes import MAIL_KEYS, parse_mail

        if not isinstance(raw_mail, dict):
            raise ConfigError(N_("{path}: notify.mail must be a table").format(path=path),
                              hint=N_('write [notify.mail] with relay = "…" and from = "…"'))
        only(raw_mail, MAIL_KEYS - {"to", "max_size"}, f"{path}: notify.mail")
        try:
            # The recipient's parser checks relay, TLS and login; `to` is filled per person.
            route = parse_mail({**raw_mail, "to": [str(raw_mail.get("from", "x@x"))]},
                               "notify.mail", resolve)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}",
                              hint=exc.hint) from None
        mail = dataclasses.replace(route, to=())
    command = body.get("command", [])
    if not isinstance(command, list) or not all(isinstance(c, str) and c for c in command):
        raise ConfigError(N_("{path}: notify.command must be a list of strings").format(path=path),
                          hint=N_('e.g. command = ["/usr/local/bin/tachiai-notify", "--json"]'))
    windows = body.get("flow_windows", {})
    if not isinstance(windows, dict) or not all("/" in k for k in windows):
        raise ConfigError(N_('{path}: notify.flow_windows must map "AGREEMENT/FLOW" to '
                             "hours").format(path=path),
                          hint=N_('e.g. flow_windows = { "isa-nhi-status-loss/monthly" = 48 }'))
    language = body.get("language", "ja")
    if language not in LANGUAGES:
        raise ConfigError(N_("{path}: notify.language {language} is not one of {choices}").format(
                              path=path, language=repr(language), choices=", ".join(LANGUAGES)),
                          hint=N_('"ja" (the default), "en", or "ja+en" for both in one mail'))
    return NotifySettings(
        mail=mail,
        command=tuple(command),
        command_timeout_seconds=_number(body, "command_timeout_seconds", 30.0, path, 1, 600),
        remind_after_hours=_number(body, "remind_after_hours", 0.0, path, 0, _MAX_HOURS),
        approval_window_hours=_number(body, "approval_window_hours", 0.0, path, 0, _MAX_HOURS),
        flow_windows={str(k): _number(windows, k, 0.0, path, 0, _MAX_HOURS, "notify.flow_windows")
                      for k in windows},
        sweep_seconds=_number(body, "sweep_seconds", 30.0, path, 0.05, 3600),
        language=str(language),
    )


def _number(body: Mapping[str, Any], key: str, default: float, path: Path, low: float,
            high: float, table: str = "notify") -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(N_("{path}: {table}.{key} must be a number from {low:g} to "
                             "{high:g}").format(path=path, table=table, key=key, low=low,
                                                high=high),
                          hint=N_("hours may have a fraction, e.g. 0.5 for half an hour"))
    return float(value)
